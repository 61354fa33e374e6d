/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Writes plans into domains' persistent definitions, so that the next
 * `virsh start` boots with them: a hook cannot change the XML of the domain
 * it starts.  Every libvirt call runs on the libvirt worker; at most one
 * stage per domain waits there (a newer plan replaces a queued one).
 *
 * Whatever the plan says, a stage job checks, when it runs, on the XML it
 * has just read: that the domain is persistent, still carries the tag the
 * plan was made for (or, when it was matched by name, still no tag), and
 * that no start of it is under way (vmem_stager_hold); otherwise it changes
 * nothing. */

#include <glib.h>

#include "vmem-domain.h"
#include "vmem-planner.h"
#include "vmem-virt.h"

G_BEGIN_DECLS

typedef enum {
  VMEM_STAGE_STAGED,    /* the definition now carries the plan */
  VMEM_STAGE_UNCHANGED, /* it carried it already */
  VMEM_STAGE_OBSERVED,  /* mode observe: it would have changed; nothing was written */
  VMEM_STAGE_DEFERRED,  /* a start is under way: nothing was written */
  VMEM_STAGE_SKIPPED,   /* no longer managed as the plan assumed (tag changed, transient) */
  VMEM_STAGE_GONE,      /* the domain no longer exists */
  VMEM_STAGE_FAILED,    /* see the error */
} VmemStageOutcome;

const char *vmem_stage_outcome_to_string (VmemStageOutcome outcome);

typedef struct {
  /* Main context: a stage job ended.  @name may be the uuid when the
   * domain could not be read; @error is set for SKIPPED and FAILED. */
  void (*staged) (const char *uuid, const char *name, const VmemStagedPlan *plan,
                  VmemStageOutcome outcome, const GError *error, const char *why,
                  gpointer user_data);
} VmemStagerCallbacks;

typedef struct _VmemStager VmemStager;

VmemStager *vmem_stager_new (VmemVirt *virt, const VmemStagerCallbacks *callbacks,
                             gpointer user_data);
void        vmem_stager_free (VmemStager *stager);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemStager, vmem_stager_free)

/* Queues the staging of @plan (transfer full) into @uuid's definition. */
void        vmem_stager_stage (VmemStager *stager, const char *uuid, VmemStagedPlan *plan,
                               const char *why);

/* A start of @uuid is under way (from its prepare hook to its STARTED or
 * STOPPED event): stage jobs that run meanwhile write nothing. */
void        vmem_stager_hold (VmemStager *stager, const char *uuid);
/* The start is over.  TRUE when a stage was deferred meanwhile: the owner
 * should stage again. */
gboolean    vmem_stager_unhold (VmemStager *stager, const char *uuid);

/* TRUE when @domain, read after a DEFINED event, is the definition this
 * stager wrote last for it: vmemd's own define, which needs no new plan. */
gboolean    vmem_stager_is_own_define (VmemStager *stager, const VmemDomain *domain);

/* Sets the live balloon target of a running domain. */
void        vmem_stager_set_live_target (VmemStager *stager, const char *uuid,
                                         guint64 target_mib);

/* Sets the live <requested> size of the virtio-mem device that staging in
 * virtio-mem mode gave a running domain (VMEM_XML_VIRTIO_MEM_ALIAS), rounded
 * up to its block and clamped to its size, with virDomainUpdateDeviceFlags
 * (AFFECT_LIVE: the definition keeps 0, so each start boots with the
 * base).  A newer request for the same domain replaces a queued one.  The
 * outcome is logged. */
void        vmem_stager_set_virtio_mem_requested (VmemStager *stager, const char *uuid,
                                                  guint64 requested_mib);

/* Stage jobs dropped because a newer plan replaced them in the queue. */
guint64     vmem_stager_n_replaced (VmemStager *stager);

G_END_DECLS
