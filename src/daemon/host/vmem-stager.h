/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Keeps every managed domain's persistent definition carrying its current
 * plan, so that the next `virsh start` boots with it: a hook cannot change
 * the XML of the domain it starts. */

#include "vmem-daemon-private.h"
#include "vmem-xml.h"

G_BEGIN_DECLS

/* The plan for a domain's next start, and why (a JSON object for explain). */
typedef struct {
  VmemPlan     plan;
  char        *workload;
  char        *source;
  json_object *reasons;
} VmemStagedPlan;

void            vmem_staged_plan_free (VmemStagedPlan *sp);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemStagedPlan, vmem_staged_plan_free)

/* Computes the plan from the daemon's state (no libvirt call). NULL when the
 * domain is not managed. */
VmemStagedPlan *vmem_stager_plan (VmemDaemon *daemon, const VmemVirtDomain *d);

/* Rewrites the persistent definition when its staged plan differs.  Queued
 * while the domain is starting. */
void            vmem_stager_stage (VmemDaemon *daemon, const char *uuid, const char *why);
/* Every managed domain of @workload (NULL: all). */
void            vmem_stager_stage_workload (VmemDaemon *daemon, const char *workload, const char *why);
/* Sets the live balloon target of a managed running domain to its plan. */
void            vmem_stager_apply_live (VmemDaemon *daemon, const char *uuid);

G_END_DECLS
