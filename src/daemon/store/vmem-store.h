/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Persistent state: profiles, domains, samples, peaks, runs, plans, hosts.
 * Callers see only this interface; the backend (SQLite, the single-host
 * default, or PostgreSQL, a database that several hosts can reach) sits
 * behind a table of operations and behaves the same either way.  Every call is
 * atomic: it commits whole or changes nothing.  A store is used from one
 * thread at a time (see vmem_store_open()).  Every failure of the
 * database itself is VMEM_ERROR_STORE; bad arguments are
 * VMEM_ERROR_INVALID_ARGUMENT and change nothing. */

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

/* Interval lengths of the per-domain peaks. */
#define VMEM_STORE_HOUR 3600u
#define VMEM_STORE_DAY  86400u

/* Default length of a run's start-up phase: samples taken within this many
 * seconds after the run started also raise its startup_peak_mib.  Change it
 * per store with vmem_store_set_startup_window(). */
#define VMEM_STORE_STARTUP_WINDOW_S 600

/* A domain as last seen.  On upsert first_seen is ignored (the store keeps
 * the first time it saw the uuid); on read every field is filled. */
typedef struct {
  char *uuid;
  char *name;
  char *host;
  char *workload;
  guint64 memory_mib;
  guint vcpus;
  gint64 last_seen;
  gint64 first_seen;
} VmemDomainRow;

/* One raw sample, as the collector takes it.  Only read by the store. */
typedef struct {
  const char *uuid;
  const char *host;
  const char *workload;
  gint64 t;
  guint64 used_mib;
  guint64 rss_mib;
  guint64 current_mib;
  guint64 available_mib;
  guint64 usable_mib;
  gboolean guest_quality; /* the guest's own figure, not the host's RSS */
  guint64 swap_in;
  guint64 major_fault;
  guint vcpus;
} VmemSample;

/* The largest used_mib of one domain over one interval.  The caller (the
 * daemon's peak tracker) computes it; the store keeps it as given and reads
 * it back the same way. */
typedef struct {
  char *uuid;
  char *domain; /* name, when known; filled on read, ignored on write */
  char *host;
  char *workload;
  guint interval_s; /* VMEM_STORE_HOUR or VMEM_STORE_DAY */
  gint64 start_t;   /* start of the interval, a multiple of interval_s */
  guint64 peak_mib;
  guint samples;       /* samples that went into it */
  guint guest_samples; /* of which the guest reported itself */
  guint vcpus;         /* at the sample that set the peak */
} VmemPeak;

typedef struct {
  char *uuid;
  char *host; /* the id of the host that staged it */
  char *workload;
  gint64 t;
  guint64 demand_mib;
  char *source;
  char *reasons_json;
} VmemPlanRow;

/* A host sharing the store, as its last heartbeat wrote it: keyed by its
 * id ([daemon] host_id), which every sample, peak, run, plan and move of
 * the host carries; the name is for display. */
typedef struct {
  char *id;
  char *name;
  guint64 capacity_mib;     /* what admission counts against, the reserve taken off */
  guint64 reserved_mib;     /* [admission] reserve */
  double overcommit;
  guint64 committed_mib;    /* what admission counts as committed */
  guint64 reservations_mib; /* boot reservations: starts admitted, not yet running */
  guint reservations;
  guint domains;            /* managed domains defined on the host */
  guint interval_s;         /* seconds between its heartbeats */
  gint64 heartbeat;
} VmemHostRow;

/* A host is alive while its last heartbeat is at most this many of its
 * intervals old. */
#define VMEM_STORE_HOST_ALIVE_INTERVALS 3
gboolean vmem_store_host_alive (const VmemHostRow *row, gint64 now);

typedef struct {
  gint64 id;
  char *uuid;
  char *host;
  char *workload;
  gint64 started;
  gint64 stopped;    /* 0 = still running */
  char *stop_reason; /* NULL while running; "lost" when a later start found it open */
  guint64 demand_mib;
  guint64 startup_peak_mib;
  guint64 peak_mib;
} VmemRun;

/* One decision of the on-demand controller, applied or not (observe mode,
 * or the libvirt call failed). */
typedef struct {
  char *uuid;
  char *host;
  char *workload;
  gint64 t;
  char *action;  /* "grow", "shrink", ... */
  char *mode;    /* the profile's mode when it was decided */
  guint64 from_mib;
  guint64 to_mib;
  gboolean applied;
  char *reason;
} VmemMoveRow;

/* One checked estimate (vmem-demand.h VmemOutcome): what a start was given
 * against what it then used, for the calibration of the margin. */
typedef struct {
  char *uuid;
  char *host;
  char *workload;
  char *kind;       /* "own" or "first-start" */
  gint64 start_t;
  gint64 end_t;
  double base_mib;
  double given_mib;
  double peak_mib;
  double risk;      /* 0..1 */
  gboolean censored;
} VmemOutcomeRow;

/* A raw sample as stored, for history. */
typedef struct {
  gint64 t;
  guint64 used_mib;
  guint64 current_mib;   /* balloon actual */
  guint64 available_mib; /* guest MemTotal */
  guint64 usable_mib;    /* guest MemAvailable */
  guint64 rss_mib;
  gboolean guest_quality;
} VmemSampleRow;

void vmem_move_row_free (VmemMoveRow *row);
void vmem_outcome_row_free (VmemOutcomeRow *row);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemOutcomeRow, vmem_outcome_row_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemMoveRow, vmem_move_row_free)
void vmem_domain_row_free (VmemDomainRow *row);
void vmem_peak_free (VmemPeak *peak);
void vmem_plan_row_free (VmemPlanRow *row);
void vmem_host_row_free (VmemHostRow *row);
void vmem_run_free (VmemRun *run);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemDomainRow, vmem_domain_row_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemPeak, vmem_peak_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemPlanRow, vmem_plan_row_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemHostRow, vmem_host_row_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemRun, vmem_run_free)

/* Opens the backend the configuration names.  The SQLite database is
 * created (with its directory) when missing and migrated to the current
 * schema, after a backup to PATH.bak-vN; a database of a newer schema, or a
 * file that is not a vmemd database, is refused and left as it is.
 *
 * A store is used from one thread at a time: the daemon opens it on the
 * main thread at start-up, then uses it only from the store's worker
 * thread.  A database locked by another process fails the call with
 * VMEM_ERROR_STORE within about a second, rather than waiting for it. */
VmemStore *vmem_store_open (const VmemConfig *config, GError **error);
VmemStore *vmem_store_open_sqlite (const char *path, GError **error);
/* As vmem_store_open_sqlite(), for the host @host_id: a database of schema
 * 4 or older was written by this host alone, so migrating it gives its
 * rows this id (with NULL they keep the host name they hold). */
VmemStore *vmem_store_open_sqlite_as (const char *path, const char *host_id, GError **error);
/* A PostgreSQL database, by a libpq connection string (one with a
 * password is refused: libpq reads it from a password file).  Created
 * tables go to the first schema of the search path, migrated as the SQLite
 * database is (without a backup: that is the server's), one host at a time
 * under an advisory lock; a database of a newer schema, or one holding
 * tables but not vmemd's, is refused and left as it is.  A call that loses
 * the connection fails with VMEM_ERROR_STORE; the next one connects again,
 * to whichever host of the string is writable.  A lock held by another
 * session fails a call after about a second, as in SQLite.  Without libpq
 * this vmemd has no such backend: VMEM_ERROR_CONFIG. */
VmemStore *vmem_store_open_pg (const char *conninfo, GError **error);
/* What vmem_store_open() would refuse in @config before it connects: a
 * backend this vmemd lacks, a PostgreSQL connection string that libpq
 * cannot read or that holds a password (VMEM_ERROR_CONFIG).  Opens and
 * connects to nothing, for vmemd --check-config. */
gboolean vmem_store_check_config (const VmemConfig *config, GError **error);
void vmem_store_free (VmemStore *store);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemStore, vmem_store_free)
int vmem_store_schema_version (VmemStore *store);
const char *vmem_store_backend_name (VmemStore *store);
/* Where the store is, for messages and status: the SQLite file's path, or
 * the PostgreSQL server's host, port, database and user (never more of
 * the connection string). */
const char *vmem_store_location (VmemStore *store);
void vmem_store_set_startup_window (VmemStore *store, guint seconds);

/* Profiles.  Lists are sorted by name; elements are VmemProfile.  put and
 * import validate first and set created/updated. */
GPtrArray *vmem_store_profile_list (VmemStore *store, GError **error);
VmemProfile *vmem_store_profile_get (VmemStore *store, const char *name, GError **error);
gboolean vmem_store_profile_put (VmemStore *store, const VmemProfile *profile, VmemStorePut mode,
                                 GError **error);
gboolean vmem_store_profile_delete (VmemStore *store, const char *name, GError **error);
/* All validated (a name twice is an error), then written in one
 * transaction; replace also deletes the profiles missing from @profiles. */
gboolean vmem_store_profile_import (VmemStore *store, GPtrArray *profiles, gboolean replace,
                                    guint *created, guint *updated, guint *deleted, GError **error);

/* Domains.  Lists are sorted by name; elements are VmemDomainRow. */
gboolean vmem_store_domain_upsert (VmemStore *store, const VmemDomainRow *row, GError **error);
VmemDomainRow *vmem_store_domain_get (VmemStore *store, const char *uuid, GError **error);
GPtrArray *vmem_store_domain_list (VmemStore *store, const char *workload /* NULL = all */,
                                   GError **error);

/* One transaction: raw samples (a sample of the same host, domain and time
 * as one stored is skipped, so a batch written again after an error that
 * hid its commit adds nothing), their domains when not yet known, the
 * peaks given (each row replaced whole: the caller computed it; a domain
 * not yet known gets a row named by its uuid) and the peaks of each
 * domain's open run, which the store computes from the samples.  Every
 * sample needs uuid, host and workload; every peak uuid, host, workload,
 * an interval_s of VMEM_STORE_HOUR or VMEM_STORE_DAY, a start_t that is a
 * multiple of it and no more guest_samples than samples. */
gboolean vmem_store_samples_add (VmemStore *store, const VmemSample *samples, guint n,
                                 const VmemPeak *peaks, guint n_peaks, GError **error);
/* Per-domain peaks of a workload over @interval_s (VMEM_STORE_HOUR or
 * VMEM_STORE_DAY) starting at or after @since, across every host sharing
 * the store, oldest first; elements are VmemPeak. */
GPtrArray *vmem_store_peaks_for_workload (VmemStore *store, const char *workload, guint interval_s,
                                          gint64 since, GError **error);
/* Each domain's latest hourly and latest daily peak, when it starts at or
 * after @since, whatever the workload or host; sorted by uuid, then hour
 * before day.  Seeds the peak tracker at start-up, so that the rows of the
 * current hour and day go on from what was stored instead of being
 * replaced by the samples taken since.  Elements are VmemPeak. */
GPtrArray *vmem_store_peaks_latest (VmemStore *store, gint64 since, GError **error);
/* Retention.  Every raw sample is kept @full_hours; older ones, up to
 * @raw_hours, are thinned to one per domain and per @thinned_s seconds
 * (periods aligned to multiples of it): the sample of the highest
 * used_mib in its period, the earliest of equals, whole as it was taken.
 * Samples older than @raw_hours go, and peaks, moves, outcomes (and plans
 * other than each domain's latest) older than @peak_days.  @thinned_s 0,
 * or @full_hours at or above @raw_hours, thins nothing. */
gboolean vmem_store_prune (VmemStore *store, gint64 now, guint raw_hours, guint full_hours,
                           guint thinned_s, guint peak_days, GError **error);

/* Runs: one row per start..stop.  Opening closes a dangling run of the same
 * domain as 'lost' and returns the new run's id, or -1.  Closing closes
 * @host's open run only (a domain migrated away runs on at another host);
 * without one it is NOT_FOUND.  Lists are newest first, at most @limit (0 = all),
 * elements VmemRun. */
gint64 vmem_store_run_open (VmemStore *store, const char *uuid, const char *host,
                            const char *workload, gint64 started, guint64 demand_mib,
                            GError **error);
gboolean vmem_store_run_close (VmemStore *store, const char *uuid, const char *host,
                               gint64 stopped, const char *reason, GError **error);
GPtrArray *vmem_store_run_list (VmemStore *store, const char *uuid, guint limit, GError **error);

/* Plans as staged.  latest is NOT_FOUND when none; lists are newest first,
 * at most @limit (0 = all), elements VmemPlanRow. */
gboolean vmem_store_plan_add (VmemStore *store, const VmemPlanRow *row, GError **error);
VmemPlanRow *vmem_store_plan_latest (VmemStore *store, const char *uuid, GError **error);
GPtrArray *vmem_store_plan_list (VmemStore *store, const char *uuid, guint limit, GError **error);

/* Controller moves, and a domain's history: moves and raw samples at or
 * after @since (as retention left them: older than its full window, one
 * per thinning period; see vmem_store_prune()), oldest first, at most
 * @limit (0 = all; the newest are kept), elements VmemMoveRow and
 * VmemSampleRow. */
gboolean vmem_store_move_add (VmemStore *store, const VmemMoveRow *row, GError **error);
GPtrArray *vmem_store_move_list (VmemStore *store, const char *uuid, gint64 since, guint limit,
                                 GError **error);
GPtrArray *vmem_store_sample_list (VmemStore *store, const char *uuid, gint64 since, guint limit,
                                   GError **error);

/* Outcomes of past starts, kept as long as peaks; the list holds those
 * that ended at or after @since, oldest first, elements VmemOutcomeRow. */
gboolean vmem_store_outcome_add (VmemStore *store, const VmemOutcomeRow *row, GError **error);
GPtrArray *vmem_store_outcome_list (VmemStore *store, gint64 since, GError **error);

/* Hosts sharing the store.  A heartbeat replaces the host's row (by id);
 * the list is sorted by name, then id, elements VmemHostRow. */
gboolean vmem_store_host_heartbeat (VmemStore *store, const VmemHostRow *row, GError **error);
GPtrArray *vmem_store_host_list (VmemStore *store, GError **error);

G_END_DECLS
