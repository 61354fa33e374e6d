/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Drives the on-demand controller (core/vmem-controller) every stats
 * interval: the samples of the managed running domains and the host's
 * memory in, the pure decisions and the host-level arbitration, then each
 * move through the stager (balloon target or virtio-mem requested size),
 * never through the hook path.  In observe mode the moves are decided,
 * logged and recorded, and nothing changes.  Keeps, per running domain,
 * the controller's state and its recent samples. */

#include <glib.h>

#include "vmem-cache.h"
#include "vmem-config.h"
#include "vmem-controller.h"
#include "vmem-stager.h"

G_BEGIN_DECLS

typedef struct _VmemControl VmemControl;

/* One move, applied or not, for the owner to record. */
typedef struct {
  const char *uuid;
  const char *name;
  const char *workload;
  const char *mode;
  const char *action;
  guint64     from_mib;
  guint64     to_mib;
  gboolean    applied;
  const char *reason;
  gint64      t;
} VmemControlMove;

typedef struct {
  /* Main thread: a move was decided (applied, or observed). */
  void (*moved) (const VmemControlMove *move, gpointer user_data);
} VmemControlCallbacks;

/* Domains are looked up in @cache by uuid at each step of a cycle: one
 * that stopped, went or started again since its sample was taken is left
 * out of what remains of the cycle. */
VmemControl *vmem_control_new (VmemStager *stager, VmemCache *cache,
                               const VmemControlCallbacks *callbacks, gpointer user_data);
void         vmem_control_free (VmemControl *control);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemControl, vmem_control_free)

/* The [controller] settings of @config (the rest keeps the controller's
 * defaults).  FALSE, and the settings unchanged, when they do not hold
 * together. */
gboolean vmem_control_configure (VmemControl *control, const VmemConfig *config, GError **error);

/* One guest sample of a managed running domain, this cycle. */
typedef struct {
  const char          *uuid;         /* copied by the cycle */
  gint64               active_since; /* the cache entry's when the sample was taken */
  const VmemProfile   *profile;      /* must outlive the cycle */
  VmemControllerSample sample;
  gint64               reported_t;   /* when the guest's figures were taken (unix s) */
} VmemControlInput;

/* One cycle of decisions and moves, run in steps so that the main loop
 * can do other work (answer the hook) between them: each domain's
 * decision, the host-level arbitration over all of them, each domain's
 * move.  The controller's settings are those when the cycle began. */
typedef struct _VmemControlCycle VmemControlCycle;

/* A cycle over @inputs (copied) at @now (unix seconds), @host as read
 * (capacity, committed, pressure).  Nothing is decided until it runs. */
VmemControlCycle *vmem_control_cycle_new (VmemControl *control, const VmemControlInput *inputs,
                                          gsize n, const VmemControllerHost *host, gint64 now);
/* Runs @cycle until it is done or the monotonic clock passes @deadline
 * (µs; 0: to the end), at least one step per call; the arbitration is one
 * step.  Fills each entry's action, reason and target for status.  TRUE
 * once done. */
gboolean          vmem_control_cycle_run (VmemControlCycle *cycle, gint64 deadline);
/* Steps run so far. */
guint             vmem_control_cycle_steps (VmemControlCycle *cycle);
/* A cycle freed before it is done makes no further move. */
void              vmem_control_cycle_free (VmemControlCycle *cycle);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemControlCycle, vmem_control_cycle_free)

/* A whole cycle at once. */
void vmem_control_cycle (VmemControl *control, const VmemControlInput *inputs, gsize n,
                         const VmemControllerHost *host, gint64 now);

/* The domain started and its target was set to @target_mib: its state
 * starts afresh from there. */
void vmem_control_started (VmemControl *control, const char *uuid, guint64 target_mib, gint64 now);

/* The domain stopped or is no longer managed: its state goes. */
void vmem_control_forget (VmemControl *control, const char *uuid);

G_END_DECLS
