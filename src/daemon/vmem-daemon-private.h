/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* State shared by the daemon's modules.  Only the main thread touches it. */

#include "vmem-config.h"
#include "vmem-daemon.h"
#include "vmem-profile.h"
#include "vmem-server.h"
#include "vmem-store.h"
#include "vmem-virt.h"

G_BEGIN_DECLS

typedef struct {
  VmemVirtDomain *info;          /* latest read from libvirt */
  gboolean        starting;      /* between the prepare hook and STARTED/STOPPED */
  gint64          starting_since; /* monotonic µs */
  guint64         boot_mib;      /* charged while starting */
  gboolean        stage_pending; /* a staging waits for the start to end */
  gboolean        period_set;    /* the collector gave it a stats period */
  gint64          active_since;  /* monotonic µs when seen running; 0 = not running */
  guint64         staged_mib;    /* demand in its persistent definition; 0 = unknown */
  gint64          hour_start;    /* the current hour's peak, fed to the estimator */
  guint64         hour_peak;
  guint           hour_samples;
  guint           hour_guest;
} VmemDomainEntry;

struct _VmemDaemon {
  VmemConfig *config;
  VmemStore  *store;
  VmemServer *server;
  VmemVirt   *virt;
  struct _VmemCollector *collector;
  GHashTable *domains;   /* uuid -> VmemDomainEntry */
  GHashTable *profiles;  /* name -> VmemProfile, mirror of the store */
  GHashTable *aggs;      /* workload -> VmemWorkloadAgg */
  guint       heartbeat_id;
  gint64      started_at;
};

/* vmem-daemon.c */
VmemDomainEntry   *vmem_daemon_find_domain (VmemDaemon *daemon, const char *name_or_uuid);
const VmemProfile *vmem_daemon_profile_for (VmemDaemon *daemon, const VmemVirtDomain *d);
gboolean           vmem_daemon_reload_profiles (VmemDaemon *daemon, GError **error);
void               vmem_daemon_refresh_domain (VmemDaemon *daemon, const char *uuid);
/* Takes @info (transfer full) as the domain's current state. */
void               vmem_daemon_update_entry (VmemDaemon *daemon, VmemVirtDomain *info);
guint64            vmem_daemon_host_capacity (VmemDaemon *daemon);
guint64            vmem_daemon_committed (VmemDaemon *daemon, const char *except_uuid);
void               vmem_daemon_profiles_changed (VmemDaemon *daemon, const char *workload);

/* vmem-daemon-methods.c */
void               vmem_daemon_register_methods (VmemDaemon *daemon);

G_END_DECLS
