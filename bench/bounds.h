/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Bounds on what an estimator that sees only a domain's peers can reach on
 * the replay's simulated starts (see bounds.c). */

#include "vmem-replay.h"

G_BEGIN_DECLS

typedef struct _VmemBounds VmemBounds;

VmemBounds *vmem_bounds_new (void);
void        vmem_bounds_free (VmemBounds *b);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemBounds, vmem_bounds_free)

/* Keeps what the bounds need of one case; call it for every case, in the
 * replay's order. */
void vmem_bounds_add (VmemBounds *b, const VmemReplayCase *c);
/* Prints both bounds for at most @target_pct under-provisioned starts. */
void vmem_bounds_print (VmemBounds *b, double target_pct);

G_END_DECLS
