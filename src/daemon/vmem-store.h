/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Persistent state: profiles, domains, samples, peaks, runs, plans, hosts.
 * Callers see only this interface; the backend (SQLite, the single-host
 * default) sits behind a table of operations so another (PostgreSQL, for a
 * cluster of hosts) can be added without touching them.  Every call is
 * atomic: it commits whole or changes nothing. */

#include <glib.h>

#include "vmem-config.h"
#include "vmem-profile.h"

G_BEGIN_DECLS

typedef struct _VmemStore VmemStore;

typedef enum {
  VMEM_STORE_PUT_CREATE, /* Exists when the profile is there */
  VMEM_STORE_PUT_UPDATE, /* NotFound when it is not */
  VMEM_STORE_PUT_UPSERT,
} VmemStorePut;

typedef struct {
  const char *uuid;
  const char *name;
  const char *host;
  const char *workload;
  guint64     memory_mib;
  guint       vcpus;
  gint64      last_seen;
} VmemDomainRow;

typedef struct {
  const char *uuid;
  const char *host;
  const char *workload;
  gint64      t;
  guint64     used_mib;
  guint64     rss_mib;
  guint64     current_mib;
  guint64     available_mib;
  guint64     usable_mib;
  gboolean    guest_quality; /* the guest's own figure, not the host's RSS */
  guint64     swap_in;
  guint64     major_fault;
  guint       vcpus;
} VmemSample;

typedef struct {
  char   *uuid;
  char   *domain;       /* name, when known */
  char   *host;
  gint64  start_t;
  guint64 peak_mib;
  guint   samples;
  guint   guest_samples;
  guint   vcpus;
} VmemPeak;

typedef struct {
  char   *uuid;
  char   *workload;
  gint64  t;
  guint64 demand_mib;
  char   *source;
  char   *reasons_json;
} VmemPlanRow;

typedef struct {
  const char *name;
  guint64     capacity_mib;
  guint64     reserved_mib;
  double      overcommit;
  guint64     committed_mib;
  gint64      heartbeat;
} VmemHostRow;

typedef struct {
  gint64  id;
  char   *uuid;
  char   *host;
  char   *workload;
  gint64  started;
  gint64  stopped;      /* 0 = still running */
  char   *stop_reason;
  guint64 demand_mib;
  guint64 startup_peak_mib;
  guint64 peak_mib;
} VmemRun;

void vmem_peak_free (VmemPeak *p);
void vmem_plan_row_free (VmemPlanRow *p);
void vmem_run_free (VmemRun *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemPlanRow, vmem_plan_row_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemRun, vmem_run_free)

/* Seconds after a start that count as its start-up phase. */
#define VMEM_STORE_STARTUP_WINDOW_S 600

VmemStore  *vmem_store_open (const VmemConfig *config, GError **error);
VmemStore  *vmem_store_open_sqlite (const char *path, GError **error);
void        vmem_store_free (VmemStore *store);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemStore, vmem_store_free)
int         vmem_store_schema_version (VmemStore *store);
const char *vmem_store_backend_name (VmemStore *store);

/* Profiles. Lists are sorted by name; elements are VmemProfile. */
GPtrArray   *vmem_store_profile_list (VmemStore *store, GError **error);
VmemProfile *vmem_store_profile_get (VmemStore *store, const char *name, GError **error);
gboolean     vmem_store_profile_put (VmemStore *store, const VmemProfile *profile,
                                     VmemStorePut mode, GError **error);
gboolean     vmem_store_profile_delete (VmemStore *store, const char *name, GError **error);
/* All validated, then written in one transaction; replace also deletes the
 * profiles missing from @profiles. */
gboolean     vmem_store_profile_import (VmemStore *store, GPtrArray *profiles, gboolean replace,
                                        guint *created, guint *updated, guint *deleted,
                                        GError **error);

gboolean     vmem_store_domain_upsert (VmemStore *store, const VmemDomainRow *row, GError **error);

/* One transaction: raw samples, hourly and daily peaks, run peaks. */
gboolean     vmem_store_samples_add (VmemStore *store, const VmemSample *samples, guint n,
                                     GError **error);
/* Per-domain peaks of a workload over @interval_s (3600 or 86400) since
 * @since, across every host sharing the store; elements are VmemPeak. */
GPtrArray   *vmem_store_peaks_for_workload (VmemStore *store, const char *workload,
                                            guint interval_s, gint64 since, GError **error);
gboolean     vmem_store_prune (VmemStore *store, gint64 now, guint raw_hours, guint peak_days,
                               GError **error);

/* Runs: one row per start..stop.  Opening closes a dangling run as 'lost'. */
gint64       vmem_store_run_open (VmemStore *store, const char *uuid, const char *host,
                                  const char *workload, gint64 started, guint64 demand_mib,
                                  GError **error);
gboolean     vmem_store_run_close (VmemStore *store, const char *uuid, gint64 stopped,
                                   const char *reason, GError **error);
GPtrArray   *vmem_store_run_list (VmemStore *store, const char *uuid, guint limit, GError **error);

gboolean     vmem_store_plan_add (VmemStore *store, const VmemPlanRow *row, GError **error);
VmemPlanRow *vmem_store_plan_latest (VmemStore *store, const char *uuid, GError **error);

gboolean     vmem_store_host_heartbeat (VmemStore *store, const VmemHostRow *row, GError **error);

G_END_DECLS
