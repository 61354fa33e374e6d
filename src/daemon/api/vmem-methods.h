/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The io.vmemd varlink methods: parse and check parameters, call a part,
 * reply.  They see the parts the daemon hands them in a VmemMethodsContext
 * and reach the daemon itself only through its callbacks.
 *
 * HookEvent, the start path, answers from memory alone (the cache, the
 * profile mirror, the estimates): libvirt holds the starting domain's lock
 * while its hook runs, and the store may be slow.  Store reads and writes
 * run on the store worker; libvirt calls on the libvirt worker. */

#include <glib.h>

#include "vmem-cache.h"
#include "vmem-config.h"
#include "vmem-metrics.h"
#include "vmem-planner.h"
#include "vmem-server.h"
#include "vmem-virt.h"
#include "vmem-store-buffer.h"
#include "vmem-worker.h"

G_BEGIN_DECLS

typedef struct {
  /* Owned by the daemon, read on the main thread. */
  VmemConfig *const *config;    /* the current configuration (a reload replaces it) */
  VmemCache         *cache;
  GHashTable        *profiles;  /* name -> VmemProfile: the mirror of the store */
  VmemVirt          *virt;      /* assign and unassign run on its worker */
  VmemWorker        *store;     /* store jobs: the worker's state is the VmemStore */
  const char        *store_backend;
  const char        *store_location; /* no password: vmem_store_location() */
  int                schema_version;
  gint64             started_at;
  VmemMetricsCounters *counters; /* the daemon's: HookEvent counts its calls here */
  GHashTable        *host_names; /* host id -> name, of the hosts sharing the store */
  VmemStoreBuffer   *buffer;     /* writes waiting for the store; its counters only */

  /* Calls up to the owner, on the main thread. */
  /* The plan for @domain's next start (@domain NULL: a new domain of the
   * workload); never NULL. */
  VmemStagedPlan *(*plan) (const VmemProfile *profile, const VmemDomain *domain,
                           gpointer user_data);
  /* The profiles were written: @profiles (VmemProfile, transfer full) is
   * the store's new list; @workload the one changed, NULL = several. */
  void (*profiles_changed) (GPtrArray *profiles, const char *workload, gpointer user_data);
  /* A domain was read back after assign or unassign (transfer full). */
  void (*domain_read) (VmemDomain *domain, gpointer user_data);
  /* A start was admitted at prepare with this boot footprint. */
  void (*start_admitted) (const char *uuid, const char *name, guint64 boot_mib,
                          gpointer user_data);
  /* A start is over as far as the hook can tell (stopped, release). */
  void (*start_ended) (const char *uuid, const char *why, gpointer user_data);
  /* Memory usable by guests: capacity minus reserve. */
  guint64 (*capacity) (gpointer user_data);
  /* What the metrics show now (transfer full): the one snapshot that
   * [daemon] metrics_textfile is written from too. */
  VmemMetricsSnapshot *(*metrics) (gpointer user_data);
  gpointer user_data;
} VmemMethodsContext;

typedef struct _VmemMethods VmemMethods;

/* Adds the io.vmemd interface and its methods to @server.  The methods
 * object must outlive the server's connections: free it after the server. */
VmemMethods *vmem_methods_register (VmemServer *server, const VmemMethodsContext *context);
void         vmem_methods_free (VmemMethods *methods);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemMethods, vmem_methods_free)

G_END_DECLS
