/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-daemon.h"
#include "vmem-cache.h"
#include "vmem-collector.h"
#include "vmem-control.h"
#include "vmem-demand.h"
#include "vmem-error.h"
#include "vmem-hostmem.h"
#include "vmem-log.h"
#include "vmem-methods.h"
#include "vmem-metrics.h"
#include "vmem-planner.h"
#include "vmem-server.h"
#include "vmem-stager.h"
#include "vmem-store.h"
#include "vmem-store-buffer.h"
#include "vmem-textfile.h"
#include "vmem-units.h"
#include "vmem-varlink.h"
#include "vmem-virt.h"
#include "vmem-worker.h"

#include <errno.h>
#include <gio/gio.h>
#include <malloc.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PRUNE_S            3600
#define EXPIRE_CHECK_S     5
/* A reservation taken this long before a full read began, of a domain the
 * read shows shut off, belongs to a start that did not happen: a start
 * still in flight reads as active (libvirt marks it so before its prepare
 * hook runs), or holds the read up until it ends. */
#define RECONCILE_GRACE_S  5
#define WARN_EVERY_S       300
/* The store's thread runs this much nicer than the main loop (see
 * vmem_daemon_new). */
#define STORE_NICE         10

typedef struct _Cycle Cycle;
typedef struct _TrimJob TrimJob;

struct _VmemDaemon {
  VmemConfig    *config;
  VmemStore     *store;       /* used only by store_worker once it runs */
  VmemStoreBuffer *buffer;    /* samples not yet written; store_worker's too */
  guint64        dropped_logged; /* buffer drops already warned about: samples */
  guint64        writes_dropped_logged; /* and other writes */
  VmemWorker    *store_worker;
  char          *store_backend;
  char          *store_location;
  int            schema_version;
  GHashTable    *profiles;    /* name -> VmemProfile: the store's, as last read */
  VmemDemand    *demand;
  VmemCache     *cache;
  VmemVirt      *virt;
  VmemStager    *stager;
  VmemControl   *control;
  VmemCollector *collector;
  VmemServer    *server;
  VmemMethods   *methods;
  GHashTable    *intents;     /* uuid -> Intent: what to do once a refresh is read */
  GHashTable    *host_names;  /* host id -> name, this host's and, with a shared store,
                                 the others' as their heartbeats last wrote them */
  guint          heartbeat_id;
  guint          heartbeat_interval; /* seconds, the stats interval when it was set */
  gint64         sync_since;  /* other hosts' hourly peaks are read from here on */
  guint          prune_id;
  guint          expire_id;
  gint64         started_at;
  guint64        mem_total_mib; /* MemTotal as last read; the hook path reads no file */
  gboolean       stopping;
  /* What the daemon did, for its metrics: the methods count the hook's
   * calls through a pointer, the rest is counted here. */
  VmemMetricsCounters counters;
  guint          textfile_id;       /* writes [daemon] metrics_textfile */
  guint          textfile_interval; /* its period, seconds */
  char          *textfile;          /* the file last written, removed at stop */
  Cycle         *cycle;             /* the collector's cycle being handled, or NULL */
  guint          cycle_id;          /* its slices' source */
  TrimJob       *trim_job;          /* its malloc_trim, while it runs */
  VmemDaemonCycleFigures last_cycle;
  /* vmem_daemon_set_stats_source: told of every target set. */
  void         (*source_moved) (const char *uuid, guint64 to_mib, gpointer data);
  gpointer       source_data;
};

/* ---- small helpers ------------------------------------------------------ */

static gint64
now_s (void)
{
  return g_get_real_time () / G_USEC_PER_SEC;
}

static const VmemProfile *
profile_for (VmemDaemon *daemon, const VmemDomain *d)
{
  return vmem_profile_resolve (daemon->profiles, d->workload, d->name);
}

static void
estimator_config (const VmemConfig *c, VmemEstimatorConfig *ec)
{
  vmem_estimator_config_init (ec);
  ec->half_life_hours = c->half_life_hours;
  ec->quantile = c->quantile;
  ec->margin_pct = c->margin_pct;
  ec->min_peers = c->min_peers;
  ec->min_history_hours = c->min_history_hours;
  ec->prior_hours = c->prior_hours;
}

/* Reads the host's memory; MemTotal is kept for the hook path, which
 * reads no file.  FALSE (and a rate-limited warning) when unreadable. */
static gboolean
read_host_memory (VmemDaemon *daemon, VmemHostMem *mem)
{
  g_autoptr(GError) error = NULL;
  if (!vmem_hostmem_read (NULL, NULL, mem, &error))
    {
      vmem_log_warning_limited ("meminfo", WARN_EVERY_S, "cannot read the host's memory: %s",
                                error->message);
      return FALSE;
    }
  daemon->mem_total_mib = mem->total_mib;
  return TRUE;
}

static guint64
host_total_mib (VmemDaemon *daemon)
{
  return daemon->config->capacity_mib ? daemon->config->capacity_mib : daemon->mem_total_mib;
}

static guint64
capacity_cb (gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  guint64 total = host_total_mib (daemon);
  return total > daemon->config->reserve_mib ? total - daemon->config->reserve_mib : 0;
}

static void cycle_finish (VmemDaemon *daemon);

static void
replace_profiles (VmemDaemon *daemon, GPtrArray *list /* transfer full */)
{
  g_autoptr(GPtrArray) owned = list;
  /* The running cycle holds the profiles it began with. */
  cycle_finish (daemon);
  g_hash_table_remove_all (daemon->profiles);
  for (guint i = 0; i < owned->len; i++)
    {
      VmemProfile *p = g_ptr_array_index (owned, i);
      g_hash_table_insert (daemon->profiles, g_strdup (p->name), vmem_profile_copy (p));
    }
}

/* ---- the store, on its worker ------------------------------------------ */

/* One write to the store, run on the store worker; a failure is a
 * warning naming what was written and why it failed. */
typedef enum {
  WRITE_SAMPLES,
  WRITE_DOMAIN,
  WRITE_RUN_OPEN,
  WRITE_RUN_CLOSE,
  WRITE_PLAN,
  WRITE_HEARTBEAT,
  WRITE_PRUNE,
  WRITE_MOVE,
  WRITE_OUTCOME,
} WriteKind;

typedef struct {
  WriteKind     kind;
  VmemMetricsCounters *counters; /* the daemon's, counting the write once it ends */
  VmemStoreBuffer *buffer;       /* the daemon's, for samples */
  guint64      *dropped_logged; /* the daemon's: drops already warned about */
  guint64      *writes_dropped_logged;
  char         *about;     /* the domain's name, for the warning */
  GStringChunk *strings;
  GArray       *samples;   /* VmemSample */
  GArray       *peaks;     /* VmemPeak */
  VmemDomainRow domain;
  VmemPlanRow   plan;
  VmemHostRow   host;
  VmemMoveRow   move;
  VmemOutcomeRow outcome;
  char         *uuid, *host_id, *workload, *reason;
  gint64        t;
  guint64       mib;
  guint         raw_hours, full_hours, thinned_s, peak_days;
} StoreWrite;

static const char *
str (StoreWrite *w, const char *s)
{
  if (s == NULL)
    return NULL;
  if (w->strings == NULL)
    w->strings = g_string_chunk_new (256);
  return g_string_chunk_insert_const (w->strings, s);
}

static void
store_write_free (StoreWrite *w)
{
  g_free (w->about);
  if (w->strings != NULL)
    g_string_chunk_free (w->strings);
  g_clear_pointer (&w->samples, g_array_unref);
  g_clear_pointer (&w->peaks, g_array_unref);
  g_free (w->uuid);
  g_free (w->host_id);
  g_free (w->workload);
  g_free (w->reason);
  g_free (w);
}

static gpointer
store_write_work (gpointer state, gpointer data, GError **error)
{
  VmemStore *store = state;
  StoreWrite *w = data;
  gboolean ok = FALSE;

  switch (w->kind)
    {
    case WRITE_SAMPLES:
      ok = vmem_store_buffer_write (w->buffer, store, (const VmemSample *) w->samples->data,
                                    w->samples->len, (const VmemPeak *) w->peaks->data,
                                    w->peaks->len, error);
      break;
    /* These are kept while the store cannot be reached, and written in
     * their order once it can (vmem-store-buffer.h). */
    case WRITE_DOMAIN:
      ok = vmem_store_buffer_domain_upsert (w->buffer, store, &w->domain, error);
      break;
    case WRITE_RUN_OPEN:
      ok = vmem_store_buffer_run_open (w->buffer, store, w->uuid, w->host_id, w->workload, w->t,
                                       w->mib, error);
      break;
    case WRITE_RUN_CLOSE:
      ok = vmem_store_buffer_run_close (w->buffer, store, w->uuid, w->host_id, w->t, w->reason,
                                        error);
      /* A stop of a domain vmemd never saw start is not an error. */
      if (!ok && g_error_matches (*error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND))
        {
          g_clear_error (error);
          ok = TRUE;
        }
      break;
    case WRITE_PLAN:
      ok = vmem_store_buffer_plan_add (w->buffer, store, &w->plan, error);
      break;
    /* Heartbeats and prunes are not kept: the next heartbeat replaces the
     * host's row whole, the next prune deletes what this one would have. */
    case WRITE_HEARTBEAT:
      /* Writes kept while the store was away go in when it is back, also
       * with nothing new to write behind them. */
      vmem_store_buffer_flush (w->buffer, store, NULL);
      ok = vmem_store_host_heartbeat (store, &w->host, error);
      break;
    case WRITE_PRUNE:
      ok = vmem_store_prune (store, w->t, w->raw_hours, w->full_hours, w->thinned_s,
                             w->peak_days, error);
      break;
    case WRITE_MOVE:
      ok = vmem_store_buffer_move_add (w->buffer, store, &w->move, error);
      break;
    case WRITE_OUTCOME:
      ok = vmem_store_buffer_outcome_add (w->buffer, store, &w->outcome, error);
      break;
    }
  return ok ? GINT_TO_POINTER (1) : NULL;
}

static const char *const write_names[] = {
  "record samples", "record a domain", "record the start of", "record the stop of",
  "record the plan of", "record the host heartbeat", "prune old samples",
  "record a move of", "record the outcome of a start of",
};

/* The metrics' name of each WriteKind. */
static const VmemMetricsWrite write_metrics[] = {
  [WRITE_SAMPLES] = VMEM_METRICS_WRITE_SAMPLES,
  [WRITE_DOMAIN] = VMEM_METRICS_WRITE_DOMAIN,
  [WRITE_RUN_OPEN] = VMEM_METRICS_WRITE_RUN_OPEN,
  [WRITE_RUN_CLOSE] = VMEM_METRICS_WRITE_RUN_CLOSE,
  [WRITE_PLAN] = VMEM_METRICS_WRITE_PLAN,
  [WRITE_HEARTBEAT] = VMEM_METRICS_WRITE_HEARTBEAT,
  [WRITE_PRUNE] = VMEM_METRICS_WRITE_PRUNE,
  [WRITE_MOVE] = VMEM_METRICS_WRITE_MOVE,
  [WRITE_OUTCOME] = VMEM_METRICS_WRITE_OUTCOME,
};
G_STATIC_ASSERT (G_N_ELEMENTS (write_metrics) == G_N_ELEMENTS (write_names));

static void
store_write_done (gpointer result, const GError *error, gpointer data)
{
  StoreWrite *w = data;
  w->counters->store_writes[write_metrics[w->kind]]++;
  guint64 dropped = vmem_store_buffer_dropped (w->buffer);
  if (dropped > *w->dropped_logged)
    {
      *w->dropped_logged = dropped;
      vmem_log_warning_limited ("store:dropped", WARN_EVERY_S,
                                "%" G_GUINT64_FORMAT " samples dropped in all: the store could "
                                "not be written and [store] buffer_samples were kept",
                                dropped);
    }
  guint64 writes_dropped = vmem_store_buffer_dropped_writes (w->buffer);
  if (writes_dropped > *w->writes_dropped_logged)
    {
      *w->writes_dropped_logged = writes_dropped;
      vmem_log_warning_limited ("store:writes-dropped", WARN_EVERY_S,
                                "%" G_GUINT64_FORMAT " writes (runs, plans, moves, ...) dropped in "
                                "all: the store could not be written and [store] buffer_writes "
                                "were kept, or it refused them",
                                writes_dropped);
    }
  if (error == NULL)
    return;
  w->counters->store_write_errors[write_metrics[w->kind]]++;
  g_autofree char *key = g_strdup_printf ("store:%d:%s", w->kind, w->about ? w->about : "");
  if (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_STORE_UNAVAILABLE) &&
      w->kind != WRITE_HEARTBEAT && w->kind != WRITE_PRUNE)
    {
      vmem_log_warning_limited (key, WARN_EVERY_S,
                                "cannot %s%s%s now, kept to be written once the store can be: %s",
                                write_names[w->kind], w->about ? " " : "",
                                w->about ? w->about : "", error->message);
      return;
    }
  vmem_log_warning_limited (key, WARN_EVERY_S, "cannot %s%s%s: %s", write_names[w->kind],
                            w->about ? " " : "", w->about ? w->about : "", error->message);
}

static void
store_write (VmemDaemon *daemon, StoreWrite *w)
{
  w->counters = &daemon->counters;
  w->buffer = daemon->buffer;
  w->dropped_logged = &daemon->dropped_logged;
  w->writes_dropped_logged = &daemon->writes_dropped_logged;
  const VmemWorkerJob job = {
    .what = write_names[w->kind],
    .work = store_write_work,
    .done = store_write_done,
    .data = w,
    .data_free = (GDestroyNotify) store_write_free,
  };
  vmem_worker_submit (daemon->store_worker, &job);
}

static StoreWrite *
store_write_new (WriteKind kind, const char *about)
{
  StoreWrite *w = g_new0 (StoreWrite, 1);
  w->kind = kind;
  w->about = g_strdup (about);
  return w;
}

static void
record_domain (VmemDaemon *daemon, const VmemDomain *d)
{
  const VmemProfile *p = profile_for (daemon, d);
  const char *workload = p ? p->name : d->workload;
  if (workload == NULL)
    return;
  StoreWrite *w = store_write_new (WRITE_DOMAIN, d->name);
  w->domain = (VmemDomainRow){
    .uuid = (char *) str (w, d->uuid),
    .name = (char *) str (w, d->name),
    .host = (char *) str (w, daemon->config->host_id),
    .workload = (char *) str (w, workload),
    .memory_mib = d->memory_mib,
    .vcpus = d->vcpus,
    .last_seen = now_s (),
  };
  store_write (daemon, w);
  /* Its peers compare their usage with it relative to its size. */
  vmem_demand_set_memory (daemon->demand, workload, d->uuid, (double) d->memory_mib);
}

static void record_outcomes (VmemDaemon *daemon);

/* The domain started: the estimate it started with is checked against
 * what it then uses, to calibrate the margin (vmem_demand_start()). */
static void
track_outcome (VmemDaemon *daemon, const VmemDomain *d)
{
  const VmemProfile *p = profile_for (daemon, d);
  if (p == NULL)
    return;
  VmemEstimateTarget target = {
    .uuid = d->uuid,
    .vcpus = d->vcpus,
    .memory_mib = (double) d->memory_mib,
  };
  gint64 now = now_s ();
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemEstimate) est = vmem_demand_estimate (daemon->demand, p->name, p, &target, now,
                                                      &error);
  if (est == NULL || !vmem_demand_start (daemon->demand, p->name, d->uuid, est, now, &error))
    vmem_log_warning_limited ("estimate", WARN_EVERY_S, "cannot track the start of %s: %s",
                              d->name, error->message);
  record_outcomes (daemon);
}

/* ---- planning and staging ----------------------------------------------- */

static VmemStagedPlan *
plan_for (VmemDaemon *daemon, const VmemProfile *p, const VmemDomain *d)
{
  g_autoptr(GError) error = NULL;
  VmemEstimateTarget target = {
    .uuid = d ? d->uuid : NULL,
    .exclude_self = FALSE,
    .vcpus = d ? d->vcpus : 0,
    .memory_mib = d ? (double) d->memory_mib : 0,
  };
  gint64 now = now_s ();
  g_autoptr(VmemEstimate) est = vmem_demand_estimate (daemon->demand, p->name, p, &target, now,
                                                      &error);
  if (est == NULL)
    vmem_log_warning_limited ("estimate", WARN_EVERY_S, "cannot estimate the demand of %s: %s",
                              d ? d->name : p->name, error->message);
  return vmem_planner_plan (p, d, est, now);
}

static VmemStagedPlan *
plan_cb (const VmemProfile *p, const VmemDomain *d, gpointer user_data)
{
  return plan_for (user_data, p, d);
}

static void
stage (VmemDaemon *daemon, const char *uuid, const char *why)
{
  VmemCacheEntry *e = vmem_cache_lookup (daemon->cache, uuid);
  if (e == NULL || !e->domain->persistent)
    return;
  const VmemProfile *p = profile_for (daemon, e->domain);
  if (p == NULL)
    return;
  vmem_stager_stage (daemon->stager, uuid, plan_for (daemon, p, e->domain), why);
}

/* Every managed domain of @workload (NULL: all). */
static void
stage_workload (VmemDaemon *daemon, const char *workload, const char *why)
{
  g_autoptr(GPtrArray) list = vmem_cache_list (daemon->cache);
  for (guint i = 0; i < list->len; i++)
    {
      const VmemCacheEntry *e = g_ptr_array_index (list, i);
      const VmemProfile *p = profile_for (daemon, e->domain);
      if (p != NULL && (workload == NULL || g_str_equal (p->name, workload)))
        stage (daemon, e->domain->uuid, why);
    }
}

/* Re-stages @e, shut off, when it belongs to one of @workloads (a set of
 * names) and its estimate moved beyond the hysteresis since it was
 * staged. */
static void
restage_one (VmemDaemon *daemon, const VmemCacheEntry *e, GHashTable *workloads)
{
  const VmemConfig *c = daemon->config;
  const VmemDomain *d = e->domain;
  if (d->active || e->staged_mib == 0 || vmem_cache_is_starting (daemon->cache, d->uuid))
    return;
  const VmemProfile *p = profile_for (daemon, d);
  if (p == NULL || !g_hash_table_contains (workloads, p->name))
    return;
  g_autoptr(VmemStagedPlan) sp = plan_for (daemon, p, d);
  if (vmem_planner_moved (e->staged_mib, sp->plan.demand_mib, c->hysteresis_pct,
                          c->hysteresis_mib))
    vmem_stager_stage (daemon->stager, d->uuid, g_steal_pointer (&sp), "estimate moved");
}

/* Re-stages the shut-off domains of the workloads in @workloads whose
 * estimate moved: one pass over the cache whatever the number of
 * workloads. */
static void
restage_moved (VmemDaemon *daemon, GHashTable *workloads)
{
  g_autoptr(GPtrArray) list = vmem_cache_list (daemon->cache);
  for (guint i = 0; i < list->len; i++)
    restage_one (daemon, g_ptr_array_index (list, i), workloads);
}

static VmemMetricsStage
stage_metric (VmemStageOutcome outcome)
{
  switch (outcome)
    {
    case VMEM_STAGE_STAGED:
      return VMEM_METRICS_STAGE_STAGED;
    case VMEM_STAGE_UNCHANGED:
      return VMEM_METRICS_STAGE_UNCHANGED;
    case VMEM_STAGE_OBSERVED:
      return VMEM_METRICS_STAGE_OBSERVED;
    case VMEM_STAGE_DEFERRED:
      return VMEM_METRICS_STAGE_DEFERRED;
    case VMEM_STAGE_SKIPPED:
      return VMEM_METRICS_STAGE_SKIPPED;
    case VMEM_STAGE_GONE:
      return VMEM_METRICS_STAGE_GONE;
    case VMEM_STAGE_FAILED:
    default:
      return VMEM_METRICS_STAGE_FAILED;
    }
}

static void
on_staged (const char *uuid, const char *name, const VmemStagedPlan *sp, VmemStageOutcome outcome,
           const GError *error, const char *why, gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  VmemCacheEntry *e = vmem_cache_lookup (daemon->cache, uuid);
  g_autofree char *demand = vmem_size_format (sp->plan.demand_mib);

  daemon->counters.stages[stage_metric (outcome)]++;
  switch (outcome)
    {
    case VMEM_STAGE_STAGED:
      {
        if (e != NULL)
          e->staged_mib = sp->plan.demand_mib;
        vmem_log_decision (name, sp->workload, "staged",
                           "staged %s for its next start (%s): demand %s from %s, prealloc %s, "
                           "mode %s", name, why, demand, sp->source,
                           sp->plan.prealloc ? "on" : "off", vmem_mode_to_string (sp->plan.mode));
        StoreWrite *w = store_write_new (WRITE_PLAN, name);
        w->plan = (VmemPlanRow){
          .uuid = (char *) str (w, uuid),
          .host = (char *) str (w, daemon->config->host_id),
          .workload = (char *) str (w, sp->workload),
          .t = sp->plan.time,
          .demand_mib = sp->plan.demand_mib,
          .source = (char *) str (w, sp->source),
          .reasons_json = (char *) str (w, json_object_to_json_string_ext (sp->reasons,
                                                                          JSON_C_TO_STRING_PLAIN)),
        };
        store_write (daemon, w);
        break;
      }
    case VMEM_STAGE_UNCHANGED:
      if (e != NULL)
        e->staged_mib = sp->plan.demand_mib;
      g_debug ("plan of %s unchanged (%s)", name, why);
      break;
    case VMEM_STAGE_OBSERVED:
      vmem_log_decision (name, sp->workload, "observed",
                         "would stage %s (%s): demand %s from %s (mode observe: nothing changed)",
                         name, why, demand, sp->source);
      break;
    case VMEM_STAGE_DEFERRED:
      g_debug ("staging of %s (%s) waits for its start to end", name, why);
      break;
    case VMEM_STAGE_SKIPPED:
      vmem_log_decision (name, sp->workload, "not-staged", "%s not staged (%s): %s", name, why,
                         error->message);
      break;
    case VMEM_STAGE_GONE:
      break;
    case VMEM_STAGE_FAILED:
      vmem_log_decision (name, sp->workload, "not-staged", "cannot stage %s (%s): %s", name, why,
                         error->message);
      break;
    }
}

/* ---- the cache, from libvirt ------------------------------------------- */

/* What to do once a domain has been read again; intents of events that
 * arrive while a read is queued are merged. */
typedef enum {
  INTENT_STAGE_DEFINED = 1 << 0, /* a DEFINED event: stage unless it was our own define */
  INTENT_STAGE = 1 << 1,         /* stage */
  INTENT_STARTED = 1 << 2,       /* it started: end its start, set its balloon target */
  INTENT_RUN_OPEN = 1 << 3,      /* it started unknown (migrated in): open its run once read */
} IntentFlags;

typedef struct {
  guint flags;
  char *why;
} Intent;

static void
intent_free (Intent *i)
{
  g_free (i->why);
  g_free (i);
}

static void start_over (VmemDaemon *daemon, const char *uuid, const char *why);

static VmemCacheEntry *
entry_updated (VmemDaemon *daemon, VmemDomain *d /* transfer full */)
{
  VmemCacheEntry *e = vmem_cache_update (daemon->cache, d, g_get_monotonic_time ());
  record_domain (daemon, e->domain);
  return e;
}

static void
apply_live_target (VmemDaemon *daemon, const VmemDomain *d)
{
  const VmemProfile *p = profile_for (daemon, d);
  if (p == NULL || !d->active)
    return;
  if (p->mode != VMEM_MODE_BALLOON)
    {
      vmem_control_started (daemon->control, d->uuid, 0, now_s ());
      return;
    }
  g_autoptr(VmemStagedPlan) sp = plan_for (daemon, p, d);
  guint64 target = MIN (sp->plan.demand_mib, d->memory_mib);
  if (sp->plan.demand_mib < d->memory_mib)
    vmem_stager_set_live_target (daemon->stager, d->uuid, target);
  vmem_control_started (daemon->control, d->uuid, target, now_s ());
}

/* The run of @d, a managed domain that started, opens in the store. */
static void
open_run (VmemDaemon *daemon, const VmemProfile *p, const VmemDomain *d, guint64 demand_mib)
{
  StoreWrite *w = store_write_new (WRITE_RUN_OPEN, d->name);
  w->uuid = g_strdup (d->uuid);
  w->host_id = g_strdup (daemon->config->host_id);
  w->workload = g_strdup (p->name);
  w->t = now_s ();
  w->mib = demand_mib;
  store_write (daemon, w);
}

typedef struct {
  VmemDaemon *daemon;
  char       *uuid;
} RefreshJob;

static void
refresh_job_free (RefreshJob *r)
{
  g_free (r->uuid);
  g_free (r);
}

static gpointer
refresh_work (virConnectPtr conn, gpointer data, GError **error)
{
  RefreshJob *r = data;
  g_autoptr(virDomain) dom = vmem_virt_lookup (conn, r->uuid, error);
  if (dom == NULL)
    return NULL;
  return vmem_virt_read_domain (dom, error);
}

static void
refresh_done (gpointer result, const GError *error, gpointer data)
{
  RefreshJob *r = data;
  VmemDaemon *daemon = r->daemon;
  g_autoptr(VmemDomain) d = result;
  Intent *intent = g_hash_table_lookup (daemon->intents, r->uuid);
  guint flags = intent ? intent->flags : 0;
  g_autofree char *why = intent ? g_strdup (intent->why) : NULL;
  g_hash_table_remove (daemon->intents, r->uuid);

  if (daemon->stopping)
    return;
  if (error != NULL)
    {
      if (flags & INTENT_STARTED)
        start_over (daemon, r->uuid, "start ended");
      if (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND))
        vmem_cache_remove (daemon->cache, r->uuid);
      else
        vmem_log_warning_limited (r->uuid, WARN_EVERY_S, "cannot read domain %s: %s", r->uuid,
                                  error->message);
      return;
    }
  if ((flags & INTENT_STAGE_DEFINED) && !(flags & INTENT_STAGE) &&
      vmem_stager_is_own_define (daemon->stager, d))
    {
      g_debug ("domain %s: the definition vmemd staged", d->name);
      flags &= ~INTENT_STAGE_DEFINED;
    }
  const VmemDomain *dom = entry_updated (daemon, g_steal_pointer (&d))->domain;
  /* Its boot reservation ends once the cache counts it running. */
  if (flags & INTENT_STARTED)
    {
      start_over (daemon, r->uuid, "start ended");
      apply_live_target (daemon, dom);
    }
  /* A domain that arrived running (an incoming migration) has its run
   * here, under the plan it runs with on this host. */
  const VmemProfile *p = profile_for (daemon, dom);
  if ((flags & INTENT_RUN_OPEN) && dom->active && p != NULL)
    {
      g_autoptr(VmemStagedPlan) sp = plan_for (daemon, p, dom);
      open_run (daemon, p, dom, MIN (sp->plan.demand_mib, dom->memory_mib));
    }
  if (flags & (INTENT_STAGE | INTENT_STAGE_DEFINED))
    stage (daemon, r->uuid, why ? why : "refresh");
}

static void
refresh (VmemDaemon *daemon, const char *uuid, guint flags, const char *why)
{
  Intent *intent = g_hash_table_lookup (daemon->intents, uuid);
  if (intent == NULL)
    {
      intent = g_new0 (Intent, 1);
      g_hash_table_insert (daemon->intents, g_strdup (uuid), intent);
    }
  intent->flags |= flags;
  if (why != NULL)
    {
      g_free (intent->why);
      intent->why = g_strdup (why);
    }
  RefreshJob *r = g_new0 (RefreshJob, 1);
  r->daemon = daemon;
  r->uuid = g_strdup (uuid);
  g_autofree char *key = g_strconcat ("refresh:", uuid, NULL);
  vmem_virt_submit (daemon->virt, "refresh domain", key, refresh_work, refresh_done, r,
                    (GDestroyNotify) refresh_job_free, (GDestroyNotify) vmem_domain_free);
}

/* Every domain, and when the read began (monotonic µs). */
typedef struct {
  GPtrArray *domains;
  gint64     read_at;
} ReadAll;

static void
read_all_free (ReadAll *r)
{
  g_clear_pointer (&r->domains, g_ptr_array_unref);
  g_free (r);
}

static gpointer
read_all_work (virConnectPtr conn, gpointer data, GError **error)
{
  gint64 read_at = g_get_monotonic_time ();
  GPtrArray *domains = vmem_virt_read_all (conn, error);
  if (domains == NULL)
    return NULL;
  ReadAll *r = g_new0 (ReadAll, 1);
  r->domains = domains;
  r->read_at = read_at;
  return r;
}

/* After a full read: the boot reservations of starts that did not happen
 * (libvirtd died in the middle of one, and no STOPPED event or release
 * hook came) are dropped, and their domains staged again. */
static void
reconcile_reservations (VmemDaemon *daemon, gint64 read_at)
{
  g_autoptr(GPtrArray) held = vmem_cache_reservations (daemon->cache);
  g_autoptr(GPtrArray) lost = g_ptr_array_new_with_free_func (g_free);
  gint64 now = g_get_monotonic_time ();

  for (guint i = 0; i < held->len; i++)
    {
      const VmemReservation *r = g_ptr_array_index (held, i);
      if (r->since > read_at - (gint64) RECONCILE_GRACE_S * G_USEC_PER_SEC)
        continue; /* maybe a start still in flight when the read began */
      const VmemCacheEntry *e = vmem_cache_lookup (daemon->cache, r->uuid);
      if (e != NULL && e->domain->active)
        continue;
      g_autofree char *mib = vmem_size_format (r->mib);
      vmem_log_decision (r->name, NULL, "reservation-dropped",
                         "boot reservation of %s (%s) dropped: libvirt shows it %s %" G_GINT64_FORMAT
                         " s after its start was admitted, so that start did not happen",
                         r->name, mib, e != NULL ? "shut off" : "gone",
                         (now - r->since) / G_USEC_PER_SEC);
      g_ptr_array_add (lost, g_strdup (r->uuid));
    }
  for (guint i = 0; i < lost->len; i++)
    {
      const char *uuid = g_ptr_array_index (lost, i);
      vmem_cache_release (daemon->cache, uuid);
      vmem_stager_unhold (daemon->stager, uuid);
      stage (daemon, uuid, "start did not happen");
    }
}

static void
read_all_done (gpointer result, const GError *error, gpointer data)
{
  VmemDaemon *daemon = data;
  ReadAll *all = result;

  if (daemon->stopping)
    {
      g_clear_pointer (&all, read_all_free);
      return;
    }
  if (error != NULL)
    {
      g_warning ("cannot read the domains: %s; admission stays not ready until it can",
                 error->message);
      return;
    }
  gboolean was_ready = vmem_cache_is_ready (daemon->cache);
  gint64 read_at = all->read_at;
  vmem_cache_replace_all (daemon->cache, g_steal_pointer (&all->domains), g_get_monotonic_time ());
  read_all_free (all);
  guint managed = 0;
  g_autoptr(GPtrArray) entries = vmem_cache_list (daemon->cache);
  for (guint i = 0; i < entries->len; i++)
    {
      const VmemCacheEntry *e = g_ptr_array_index (entries, i);
      if (profile_for (daemon, e->domain) != NULL)
        {
          managed++;
          record_domain (daemon, e->domain);
        }
    }
  g_message ("%u domains known, %u managed%s", vmem_cache_size (daemon->cache), managed,
             was_ready ? "" : "; admission control is ready");
  stage_workload (daemon, NULL, "daemon start");
  /* After the stage jobs above: a lost start's domain is staged once more,
   * now that nothing holds it, for its own reason. */
  reconcile_reservations (daemon, read_at);
}

static void
on_connected (gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  /* A connection that completes while the daemon stops: the libvirt part
   * is being freed. */
  if (daemon->stopping)
    return;
  vmem_virt_submit (daemon->virt, "read all domains", "read-all", read_all_work, read_all_done,
                    daemon, NULL, (GDestroyNotify) read_all_free);
}

static void
on_disconnected (gpointer user_data)
{
  /* The cache stays: running domains keep running while libvirtd restarts,
   * and admission control keeps counting them. */
}

/* ---- starts -------------------------------------------------------------- */

/* The start of @uuid is over (STARTED, STOPPED, its release hook, or its
 * reservation expired). */
static void
start_over (VmemDaemon *daemon, const char *uuid, const char *why)
{
  vmem_cache_release (daemon->cache, uuid);
  if (vmem_stager_unhold (daemon->stager, uuid))
    stage (daemon, uuid, why);
}

static void
start_admitted_cb (const char *uuid, const char *name, guint64 boot_mib, gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  vmem_cache_reserve (daemon->cache, uuid, name, boot_mib, g_get_monotonic_time ());
  vmem_stager_hold (daemon->stager, uuid);
}

static void
start_ended_cb (const char *uuid, const char *why, gpointer user_data)
{
  start_over (user_data, uuid, why);
}

static gboolean
expire_reservations (gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  gint64 timeout = (gint64) daemon->config->reservation_timeout * G_USEC_PER_SEC;
  g_autoptr(GPtrArray) expired = vmem_cache_expire (daemon->cache, g_get_monotonic_time (), timeout);
  for (guint i = 0; i < expired->len; i++)
    {
      const VmemReservation *r = g_ptr_array_index (expired, i);
      g_autofree char *mib = vmem_size_format (r->mib);
      vmem_log_decision (r->name, NULL, "reservation-expired",
                         "boot reservation of %s (%s) expired after %u s without a STARTED or "
                         "STOPPED event", r->name, mib, daemon->config->reservation_timeout);
      if (vmem_stager_unhold (daemon->stager, r->uuid))
        stage (daemon, r->uuid, "reservation expired");
      /* Whatever became of that start, read the domain again. */
      refresh (daemon, r->uuid, 0, NULL);
    }
  return G_SOURCE_CONTINUE;
}

/* ---- events ------------------------------------------------------------- */

static const char *
event_name (int event)
{
  switch (event)
    {
    case -1:
      return "metadata-changed";
    case VIR_DOMAIN_EVENT_DEFINED:
      return "defined";
    case VIR_DOMAIN_EVENT_UNDEFINED:
      return "undefined";
    case VIR_DOMAIN_EVENT_STARTED:
      return "started";
    case VIR_DOMAIN_EVENT_SUSPENDED:
      return "suspended";
    case VIR_DOMAIN_EVENT_RESUMED:
      return "resumed";
    case VIR_DOMAIN_EVENT_STOPPED:
      return "stopped";
    case VIR_DOMAIN_EVENT_SHUTDOWN:
      return "shutdown";
    case VIR_DOMAIN_EVENT_PMSUSPENDED:
      return "pmsuspended";
    case VIR_DOMAIN_EVENT_CRASHED:
      return "crashed";
    default:
      return "other";
    }
}

static void
on_domain_event (const char *uuid, const char *name, int event, int detail, gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  VmemCacheEntry *e = vmem_cache_lookup (daemon->cache, uuid);

  if (daemon->stopping)
    return;
  g_debug ("event %s on domain %s (%s)", event_name (event), name, uuid);
  switch (event)
    {
    case VIR_DOMAIN_EVENT_STARTED:
      if (e != NULL && profile_for (daemon, e->domain) != NULL)
        {
          open_run (daemon, profile_for (daemon, e->domain), e->domain, e->staged_mib);
          track_outcome (daemon, e->domain);
        }
      refresh (daemon, uuid, INTENT_STARTED | (e == NULL ? INTENT_RUN_OPEN : 0), NULL);
      break;
    case VIR_DOMAIN_EVENT_STOPPED:
      start_over (daemon, uuid, "stopped");
      vmem_control_forget (daemon->control, uuid);
      vmem_demand_stop (daemon->demand, uuid, now_s ());
      record_outcomes (daemon);
      {
        StoreWrite *w = store_write_new (WRITE_RUN_CLOSE, name);
        w->uuid = g_strdup (uuid);
        w->host_id = g_strdup (daemon->config->host_id);
        w->t = now_s ();
        w->reason = g_strdup ("stopped");
        store_write (daemon, w);
      }
      refresh (daemon, uuid, INTENT_STAGE, "stopped");
      break;
    case VIR_DOMAIN_EVENT_DEFINED:
      refresh (daemon, uuid, INTENT_STAGE_DEFINED, "defined");
      break;
    case -1:
      refresh (daemon, uuid, INTENT_STAGE, "metadata-changed");
      break;
    default:
      /* UNDEFINED of a stopped domain makes the read fail with NOT_FOUND,
       * which drops it from the cache. */
      refresh (daemon, uuid, 0, NULL);
      break;
    }
}

/* ---- the collector's cycles --------------------------------------------- */

static GPtrArray *
want_period_cb (gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) list = vmem_cache_list (daemon->cache);
  for (guint i = 0; i < list->len; i++)
    {
      VmemCacheEntry *e = g_ptr_array_index (list, i);
      if (e->domain->active && !e->period_set && profile_for (daemon, e->domain) != NULL)
        {
          g_ptr_array_add (out, g_strdup (e->domain->uuid));
          e->period_set = TRUE;
        }
    }
  return out;
}

/* The host as the controller sees it: capacity, what is committed, and
 * the kernel's figures. */
static void
controller_host (VmemDaemon *daemon, VmemControllerHost *host)
{
  VmemHostMem mem;
  gboolean read = read_host_memory (daemon, &mem);
  *host = (VmemControllerHost){
    .capacity_mib = capacity_cb (daemon),
    .committed_mib = vmem_cache_committed (daemon->cache, NULL),
  };
  if (read)
    {
      host->has_available = TRUE;
      host->mem_available_mib = mem.available_mib;
      host->has_psi = mem.has_psi;
      host->psi_some_avg10 = mem.psi_some_avg10;
      host->psi_full_avg10 = mem.psi_full_avg10;
    }
}

static VmemPeak
peak_row (StoreWrite *w, const char *workload, const VmemPeakObs *o)
{
  return (VmemPeak){
    .uuid = (char *) str (w, o->uuid),
    .domain = (char *) str (w, o->domain),
    .host = (char *) str (w, o->host),
    .workload = (char *) str (w, workload),
    .interval_s = o->interval_s,
    .start_t = o->start_t,
    .peak_mib = (guint64) o->peak_mib,
    .samples = o->samples,
    .guest_samples = o->guest_samples,
    .vcpus = o->vcpus,
  };
}

/* A collector cycle ended: its time, from its statistics call to now. */
static void
count_cycle (VmemDaemon *daemon, gboolean ok)
{
  gint64 began = vmem_collector_cycle_started (daemon->collector);
  vmem_metrics_collector_cycle (&daemon->counters, ok,
                                (double) (g_get_monotonic_time () - began) / G_USEC_PER_SEC);
}

/* A cycle's statistics are handled in slices of at most about SLICE_US of
 * the main loop, at a priority below the server's and the workers'
 * sources, SLICE_GAP_MS apart: a hook call that arrives while a cycle
 * runs waits for one slice at most, not for the cycle, and on a busy host
 * the gaps keep this thread from being scheduled as a CPU hog, which
 * waits for the processor longest.  The cycle stays one cycle: the statistics
 * of one read, the profiles and settings of when it began (a change of
 * either first finishes it at once), each domain acted on only while it
 * still runs the run its sample came from. */
#define SLICE_US     500
#define SLICE_GAP_MS 1

typedef enum {
  CYCLE_SAMPLES, /* samples, peaks and the controller's inputs, per domain */
  CYCLE_CONTROL, /* the controller's decisions, arbitration and moves */
  CYCLE_RESTAGE, /* shut-off domains whose estimate moved */
  CYCLE_TRIM,    /* malloc_trim, on a thread of its own */
  CYCLE_TRIMMING, /* waiting for it */
  CYCLE_DONE,
} CyclePhase;

struct _Cycle {
  GPtrArray        *stats;   /* VmemBalloonStats */
  gint64            now;     /* unix seconds the statistics stand for */
  gint64            mono;    /* when they came, monotonic µs */
  guint             interval;
  guint             next;    /* the next of stats, or of restage */
  StoreWrite       *w;       /* samples and peaks, written once all are taken */
  GHashTable       *moved;   /* workloads whose peaks moved */
  GArray           *inputs;  /* VmemControlInput; uuids point into stats */
  VmemControlCycle *control;
  GPtrArray        *restage; /* uuids of shut-off domains to look at */
  CyclePhase        phase;
  VmemDaemonCycleFigures figures;
};

static double
thread_cpu_us (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double) ts.tv_sec * 1e6 + (double) ts.tv_nsec / 1e3;
}

static void
cycle_free (Cycle *cy)
{
  if (cy == NULL)
    return;
  g_clear_pointer (&cy->control, vmem_control_cycle_free);
  if (cy->w != NULL)
    store_write_free (cy->w);
  g_clear_pointer (&cy->stats, g_ptr_array_unref);
  g_clear_pointer (&cy->moved, g_hash_table_unref);
  g_clear_pointer (&cy->inputs, g_array_unref);
  g_clear_pointer (&cy->restage, g_ptr_array_unref);
  g_free (cy);
}

/* One domain's statistics: its sample and peaks, and its input to the
 * controller. */
static void
cycle_sample (VmemDaemon *daemon, Cycle *cy, const VmemBalloonStats *s)
{
  StoreWrite *w = cy->w;
  gint64 now = cy->now;
  VmemCacheEntry *e = vmem_cache_lookup (daemon->cache, s->uuid);
  if (e == NULL)
    return;
  /* The cache's balloon size is what admission control counts. */
  vmem_cache_set_balloon (daemon->cache, s->uuid, s->current_kib / 1024);
  const VmemProfile *p = profile_for (daemon, e->domain);
  if (p == NULL)
    return;
  gboolean guest = FALSE;
  guint64 used = vmem_collector_used_mib (s, now, cy->interval, &guest);
  if (e->domain->active)
    {
      /* The controller sees every cycle of a running domain, also a
       * guest that does not report (it is then left alone). */
      VmemControlInput in = {
        .uuid = s->uuid,
        .active_since = e->active_since,
        .profile = p,
        .sample = {
          .t = now,
          .fresh = guest,
          /* The balloon's actual size less MemAvailable: with
           * autodeflate an inflated balloon stays in MemTotal.  (In
           * virtio-mem form VmemControl counts from the memory it
           * gave the guest instead.) */
          .used_mib = used,
          .available_mib = s->usable_kib / 1024,
          .total_mib = s->available_kib / 1024,
          .actual_mib = s->current_kib / 1024,
          .swap_in_kib = s->swap_in_kib,
          .major_fault = s->major_fault,
        },
        .reported_t = s->last_update,
      };
      g_array_append_val (cy->inputs, in);
      if (guest)
        {
          e->seen_t = now;
          e->used_mib = in.sample.used_mib;
          e->available_mib = in.sample.available_mib;
          e->guest_quality = TRUE;
        }
    }
  if (!vmem_collector_keep_sample (guest, e->active_since, cy->mono))
    return;
  guint vcpus = s->vcpus ? s->vcpus : e->domain->vcpus;
  gboolean swapped = e->swap_in_seen && s->swap_in_kib > e->swap_in_kib;
  e->swap_in_kib = s->swap_in_kib;
  e->swap_in_seen = TRUE;
  VmemSample smp = {
    .uuid = str (w, e->domain->uuid),
    .host = str (w, daemon->config->host_id),
    .workload = str (w, p->name),
    .t = now,
    .used_mib = used,
    .rss_mib = s->rss_kib / 1024,
    .current_mib = s->current_kib / 1024,
    .available_mib = s->available_kib / 1024,
    .usable_mib = s->usable_kib / 1024,
    .guest_quality = guest,
    .swap_in = s->swap_in_kib,
    .major_fault = s->major_fault,
    .vcpus = vcpus,
  };
  g_array_append_val (w->samples, smp);

  /* Peaks are made here, once: the store writes them as they are and
   * the estimator's aggregates are fed the same. */
  const VmemPeakSample ps = {
    .uuid = e->domain->uuid,
    .domain = e->domain->name,
    .host = daemon->config->host_id,
    .t = now,
    .used_mib = (double) used,
    .guest = guest,
    .vcpus = vcpus,
    /* MemAvailable under 2 % of MemTotal, or swapping in: the guest
     * is short, and what it uses is only a lower bound of what it
     * needs. */
    .squeezed = (guest && s->has_guest && s->usable_kib * 50 < s->available_kib) || swapped,
  };
  VmemPeakObs out[2];
  g_autoptr(GError) error = NULL;
  if (!vmem_demand_observe (daemon->demand, p->name, &ps, out, &error))
    {
      vmem_log_warning_limited (e->domain->uuid, WARN_EVERY_S,
                                "cannot take the sample of %s into its peaks: %s",
                                e->domain->name, error->message);
      return;
    }
  for (guint k = 0; k < G_N_ELEMENTS (out); k++)
    {
      VmemPeak row = peak_row (w, p->name, &out[k]);
      g_array_append_val (w->peaks, row);
    }
  g_hash_table_add (cy->moved, g_strdup (p->name));
}

/* Every sample taken: they go to the store in one write, and the
 * controller's cycle begins on them. */
static void
cycle_samples_done (VmemDaemon *daemon, Cycle *cy)
{
  StoreWrite *w = g_steal_pointer (&cy->w);
  if (w->samples->len == 0)
    store_write_free (w);
  else
    store_write (daemon, w);
  /* Starts whose 24 h are over are checked now, not at the next estimate. */
  vmem_demand_settle (daemon->demand, cy->now);
  record_outcomes (daemon);

  if (cy->inputs->len > 0)
    {
      VmemControllerHost host;
      controller_host (daemon, &host);
      cy->control = vmem_control_cycle_new (daemon->control,
                                            (const VmemControlInput *) cy->inputs->data,
                                            cy->inputs->len, &host, cy->now);
    }
}

/* The shut-off domains of the workloads whose peaks moved, to look at
 * one by one: one pass over the cache whatever the number of workloads. */
static GPtrArray *
restage_candidates (VmemDaemon *daemon, GHashTable *workloads)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  if (g_hash_table_size (workloads) == 0)
    return out;
  g_autoptr(GPtrArray) list = vmem_cache_list (daemon->cache);
  for (guint i = 0; i < list->len; i++)
    {
      const VmemCacheEntry *e = g_ptr_array_index (list, i);
      if (!e->domain->active && e->staged_mib > 0)
        g_ptr_array_add (out, g_strdup (e->domain->uuid));
    }
  return out;
}

/* malloc_trim on a thread of its own; the cycle ends when it is done. */
struct _TrimJob {
  VmemDaemon *daemon; /* NULL once the daemon stops or the cycle ended without it */
  gint64      started;
};

static void
trim_thread (GTask *task, gpointer object, gpointer task_data, GCancellable *cancellable)
{
  malloc_trim (0);
  g_task_return_boolean (task, TRUE);
}

static void cycle_end (VmemDaemon *daemon);

static void
trim_done (GObject *object, GAsyncResult *result, gpointer user_data)
{
  TrimJob *j = g_task_get_task_data (G_TASK (result));
  VmemDaemon *daemon = j->daemon;
  if (daemon == NULL)
    return;
  daemon->trim_job = NULL;
  Cycle *cy = daemon->cycle;
  cy->figures.trim_us = (double) (g_get_monotonic_time () - j->started);
  cy->phase = CYCLE_DONE;
  cycle_end (daemon);
}

static void
trim_begin (VmemDaemon *daemon)
{
  TrimJob *j = g_new0 (TrimJob, 1);
  j->daemon = daemon;
  j->started = g_get_monotonic_time ();
  daemon->trim_job = j;
  g_autoptr(GTask) task = g_task_new (NULL, NULL, trim_done, NULL);
  g_task_set_task_data (task, j, g_free);
  g_task_run_in_thread (task, trim_thread);
}

/* Runs @cy until it is done (TRUE) or the monotonic clock passes
 * @deadline (µs; 0: to the end). */
static gboolean
cycle_step (VmemDaemon *daemon, Cycle *cy, gint64 deadline)
{
  gboolean worked = FALSE;
#define OVER() (deadline != 0 && g_get_monotonic_time () >= deadline)
  for (;;)
    switch (cy->phase)
      {
      case CYCLE_SAMPLES:
        while (cy->next < cy->stats->len)
          {
            cycle_sample (daemon, cy, g_ptr_array_index (cy->stats, cy->next++));
            worked = TRUE;
            if (OVER ())
              return FALSE;
          }
        cycle_samples_done (daemon, cy);
        cy->phase = CYCLE_CONTROL;
        if (OVER ())
          return FALSE;
        break;
      case CYCLE_CONTROL:
        if (cy->control != NULL)
          {
            gboolean done = vmem_control_cycle_run (cy->control, deadline);
            worked = TRUE;
            if (!done)
              return FALSE;
          }
        /* Peers' new peaks may move the estimate of domains staged
         * earlier. */
        cy->restage = restage_candidates (daemon, cy->moved);
        cy->next = 0;
        cy->phase = CYCLE_RESTAGE;
        if (OVER ())
          return FALSE;
        break;
      case CYCLE_RESTAGE:
        while (cy->next < cy->restage->len)
          {
            VmemCacheEntry *e =
              vmem_cache_lookup (daemon->cache, g_ptr_array_index (cy->restage, cy->next++));
            if (e != NULL)
              restage_one (daemon, e, cy->moved);
            worked = TRUE;
            if (OVER ())
              return FALSE;
          }
        cy->phase = CYCLE_TRIM;
        /* The trim is a slice of its own. */
        if (deadline != 0 && worked)
          return FALSE;
        break;
      case CYCLE_TRIM:
        /* A cycle allocates and frees a little per domain on this
         * thread and the workers; glibc keeps what was freed in its
         * arenas unless told.  The trim walks every arena and gives
         * back page by page: milliseconds, during which this thread
         * answers the hook. */
        if (deadline == 0)
          {
            gint64 t0 = g_get_monotonic_time ();
            malloc_trim (0);
            cy->figures.trim_us = (double) (g_get_monotonic_time () - t0);
            cy->phase = CYCLE_DONE;
            break;
          }
        trim_begin (daemon);
        cy->phase = CYCLE_TRIMMING;
        return FALSE;
      case CYCLE_TRIMMING:
        /* trim_done ends the cycle; nothing of it is left here. */
        if (deadline == 0)
          {
            cy->phase = CYCLE_DONE;
            break;
          }
        return FALSE;
      case CYCLE_DONE:
      default:
        return TRUE;
      }
#undef OVER
}

static void
cycle_end (VmemDaemon *daemon)
{
  Cycle *cy = g_steal_pointer (&daemon->cycle);
  /* Ended at once while its trim ran: the trim ends without it. */
  if (daemon->trim_job != NULL)
    g_steal_pointer (&daemon->trim_job)->daemon = NULL;
  g_clear_handle_id (&daemon->cycle_id, g_source_remove);
  cy->figures.control_steps = cy->control ? vmem_control_cycle_steps (cy->control) : 0;
  daemon->last_cycle = cy->figures;
  count_cycle (daemon, TRUE);
  cycle_free (cy);
}

/* Runs the cycle's next slice, or (@deadline 0) the rest of it. */
static gboolean
cycle_run (VmemDaemon *daemon, gint64 deadline)
{
  Cycle *cy = daemon->cycle;
  double c0 = thread_cpu_us ();
  gint64 t0 = g_get_monotonic_time ();
  gboolean done = cycle_step (daemon, cy, deadline);
  double wall = (double) (g_get_monotonic_time () - t0);
  cy->figures.cpu_us += thread_cpu_us () - c0;
  cy->figures.slices++;
  cy->figures.longest_slice_us = MAX (cy->figures.longest_slice_us, wall);
  if (done)
    cycle_end (daemon);
  return done;
}

static gboolean
cycle_slice (gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  if (cycle_run (daemon, g_get_monotonic_time () + SLICE_US))
    return G_SOURCE_REMOVE; /* cycle_end removed the source already */
  if (daemon->cycle->phase == CYCLE_TRIMMING)
    {
      /* Nothing to do here until the trim is done. */
      daemon->cycle_id = 0;
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

/* What the running cycle rests on is about to change (profiles, settings,
 * the estimator's aggregates): the cycle ends first, on what it began
 * with. */
static void
cycle_finish (VmemDaemon *daemon)
{
  if (daemon->cycle == NULL)
    return;
  daemon->cycle->figures.finished_at_once = TRUE;
  cycle_run (daemon, 0);
}

static gboolean
cycle_handling_cb (gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  return daemon->cycle != NULL;
}

static void
collected_cb (GPtrArray *stats, gint64 now, gpointer user_data)
{
  VmemDaemon *daemon = user_data;

  /* The collector starts no cycle while one is handled. */
  g_return_if_fail (daemon->cycle == NULL);
  if (daemon->stopping)
    return;
  Cycle *cy = g_new0 (Cycle, 1);
  cy->stats = g_ptr_array_ref (stats);
  cy->now = now;
  cy->mono = g_get_monotonic_time ();
  cy->interval = vmem_collector_get_interval (daemon->collector);
  cy->w = store_write_new (WRITE_SAMPLES, NULL);
  cy->w->samples = g_array_new (FALSE, TRUE, sizeof (VmemSample));
  cy->w->peaks = g_array_new (FALSE, TRUE, sizeof (VmemPeak));
  cy->moved = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  cy->inputs = g_array_new (FALSE, TRUE, sizeof (VmemControlInput));
  daemon->cycle = cy;
  GSource *src = g_timeout_source_new (SLICE_GAP_MS);
  g_source_set_priority (src, G_PRIORITY_LOW);
  g_source_set_callback (src, cycle_slice, daemon, NULL);
  g_source_set_name (src, "vmemd cycle");
  daemon->cycle_id = g_source_attach (src, NULL);
  g_source_unref (src);
}

static void
moved_cb (const VmemControlMove *m, gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  vmem_metrics_move (&daemon->counters, m->action, m->applied);
  if (daemon->source_moved != NULL && m->applied)
    daemon->source_moved (m->uuid, m->to_mib, daemon->source_data);
  StoreWrite *w = store_write_new (WRITE_MOVE, m->name);
  w->move = (VmemMoveRow){
    .uuid = (char *) str (w, m->uuid),
    .host = (char *) str (w, daemon->config->host_id),
    .workload = (char *) str (w, m->workload),
    .t = m->t,
    .action = (char *) str (w, m->action),
    .mode = (char *) str (w, m->mode),
    .from_mib = m->from_mib,
    .to_mib = m->to_mib,
    .applied = m->applied,
    .reason = (char *) str (w, m->reason),
  };
  store_write (daemon, w);
}

static void
collect_failed_cb (const GError *error, gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  /* The stats periods asked for in that cycle may not be set: ask again. */
  g_autoptr(GPtrArray) list = vmem_cache_list (daemon->cache);
  for (guint i = 0; i < list->len; i++)
    ((VmemCacheEntry *) g_ptr_array_index (list, i))->period_set = FALSE;
  vmem_log_warning_limited ("collector", WARN_EVERY_S, "cannot collect domain statistics: %s",
                            error->message);
  count_cycle (daemon, FALSE);
}

/* ---- timers ------------------------------------------------------------- */

static void sync_others (VmemDaemon *daemon);

static gboolean
heartbeat (gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  VmemHostMem mem;
  read_host_memory (daemon, &mem);
  StoreWrite *w = store_write_new (WRITE_HEARTBEAT, NULL);
  w->host = (VmemHostRow){
    .id = (char *) str (w, daemon->config->host_id),
    .name = (char *) str (w, daemon->config->host_name),
    .capacity_mib = capacity_cb (daemon),
    .reserved_mib = daemon->config->reserve_mib,
    .overcommit = 1.0,
    .committed_mib = vmem_cache_committed (daemon->cache, NULL),
    .interval_s = daemon->heartbeat_interval,
    .heartbeat = now_s (),
  };
  g_autoptr(GPtrArray) reservations = vmem_cache_reservations (daemon->cache);
  for (guint i = 0; i < reservations->len; i++)
    {
      const VmemReservation *r = g_ptr_array_index (reservations, i);
      w->host.reservations++;
      w->host.reservations_mib += r->mib;
    }
  g_autoptr(GPtrArray) entries = vmem_cache_list (daemon->cache);
  for (guint i = 0; i < entries->len; i++)
    {
      const VmemCacheEntry *e = g_ptr_array_index (entries, i);
      if (profile_for (daemon, e->domain) != NULL)
        w->host.domains++;
    }
  store_write (daemon, w);
  sync_others (daemon);
  /* Every stats interval, so that the other hosts see this one alive
   * within a few of them; a reload may change it. */
  if (daemon->heartbeat_interval != daemon->config->stats_interval)
    {
      g_clear_handle_id (&daemon->heartbeat_id, g_source_remove);
      daemon->heartbeat_interval = daemon->config->stats_interval;
      daemon->heartbeat_id = g_timeout_add_seconds (daemon->heartbeat_interval, heartbeat, daemon);
      return G_SOURCE_REMOVE;
    }
  return G_SOURCE_CONTINUE;
}

/* Retention, hourly whatever the stats interval. */
static gboolean
prune (gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  StoreWrite *w = store_write_new (WRITE_PRUNE, NULL);
  w->t = now_s ();
  w->raw_hours = daemon->config->raw_retention_hours;
  w->full_hours = daemon->config->raw_full_hours;
  w->thinned_s = daemon->config->raw_thinned_seconds;
  w->peak_days = daemon->config->peak_retention_days;
  store_write (daemon, w);
  return G_SOURCE_CONTINUE;
}

/* ---- the demand, from the store ----------------------------------------- */

typedef struct {
  VmemDaemon *daemon;
  GPtrArray *names;     /* workloads */
  gint64     since_hour;
  gint64     since_day;
  GPtrArray *outcomes;  /* VmemOutcomeRow, read with the peaks */
} PeaksLoad;

typedef struct {
  char      *workload;
  GPtrArray *hours;     /* VmemPeak */
  GPtrArray *days;
  GPtrArray *domains;   /* VmemDomainRow: their <memory>, to compare peers */
} WorkloadPeaks;

static void
workload_peaks_free (WorkloadPeaks *wp)
{
  g_free (wp->workload);
  g_clear_pointer (&wp->hours, g_ptr_array_unref);
  g_clear_pointer (&wp->days, g_ptr_array_unref);
  g_clear_pointer (&wp->domains, g_ptr_array_unref);
  g_free (wp);
}

static void
peaks_load_free (PeaksLoad *l)
{
  g_ptr_array_unref (l->names);
  g_clear_pointer (&l->outcomes, g_ptr_array_unref);
  g_free (l);
}

/* Store worker (or before it runs): every workload's hourly peaks within
 * retention, and the latest daily ones, which seed the trackers. */
static gpointer
peaks_load_work (gpointer state, gpointer data, GError **error)
{
  VmemStore *store = state;
  PeaksLoad *l = data;
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) workload_peaks_free);
  for (guint i = 0; i < l->names->len; i++)
    {
      WorkloadPeaks *wp = g_new0 (WorkloadPeaks, 1);
      wp->workload = g_strdup (g_ptr_array_index (l->names, i));
      g_ptr_array_add (out, wp);
      wp->hours = vmem_store_peaks_for_workload (store, wp->workload, VMEM_STORE_HOUR,
                                                 l->since_hour, error);
      if (wp->hours == NULL)
        return NULL;
      wp->days = vmem_store_peaks_for_workload (store, wp->workload, VMEM_STORE_DAY,
                                                l->since_day, error);
      if (wp->days == NULL)
        return NULL;
      wp->domains = vmem_store_domain_list (store, wp->workload, error);
      if (wp->domains == NULL)
        return NULL;
    }
  g_clear_pointer (&l->outcomes, g_ptr_array_unref);
  l->outcomes = vmem_store_outcome_list (store, l->since_hour, error);
  if (l->outcomes == NULL)
    return NULL;
  return g_steal_pointer (&out);
}

static PeaksLoad *
peaks_load_new (VmemDaemon *daemon)
{
  PeaksLoad *l = g_new0 (PeaksLoad, 1);
  gint64 now = now_s ();
  l->daemon = daemon;
  l->names = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter it;
  const char *name;
  g_hash_table_iter_init (&it, daemon->profiles);
  while (g_hash_table_iter_next (&it, (gpointer *) &name, NULL))
    g_ptr_array_add (l->names, g_strdup (name));
  l->since_hour = now - (gint64) daemon->config->peak_retention_days * 86400;
  l->since_day = now - now % VMEM_STORE_DAY;
  return l;
}

/* A stored peak as the estimator takes it (borrowing its strings). */
static VmemPeakObs
peak_obs (const VmemPeak *p, guint interval_s)
{
  return (VmemPeakObs){
    .uuid = p->uuid,
    .domain = p->domain,
    .host = p->host,
    .start_t = p->start_t,
    .interval_s = interval_s,
    .peak_mib = (double) p->peak_mib,
    .samples = p->samples,
    .guest_samples = p->guest_samples,
    .vcpus = p->vcpus,
  };
}

/* Rebuilds the demand from loaded peaks (transfer full) and outcomes. */
static void
demand_fill (VmemDaemon *daemon, GPtrArray *loaded, GPtrArray *outcomes)
{
  g_autoptr(GPtrArray) owned = loaded;
  VmemEstimatorConfig ec;
  g_autoptr(GError) error = NULL;
  guint total = 0;

  estimator_config (daemon->config, &ec);
  if (!vmem_demand_reset (daemon->demand, &ec, &error))
    {
      g_warning ("estimator settings refused: %s", error->message);
      return;
    }
  for (guint i = 0; i < owned->len; i++)
    {
      WorkloadPeaks *wp = g_ptr_array_index (owned, i);
      /* Peers on other hosts, or not defined here now, are compared by
       * the <memory> the store last saw them with. */
      for (guint j = 0; wp->domains != NULL && j < wp->domains->len; j++)
        {
          const VmemDomainRow *row = g_ptr_array_index (wp->domains, j);
          if (row->memory_mib > 0)
            vmem_demand_set_memory (daemon->demand, wp->workload, row->uuid,
                                    (double) row->memory_mib);
        }
      GPtrArray *sets[] = { wp->hours, wp->days };
      const guint intervals[] = { VMEM_STORE_HOUR, VMEM_STORE_DAY };
      for (guint k = 0; k < G_N_ELEMENTS (sets); k++)
        for (guint j = 0; j < sets[k]->len; j++)
          {
            const VmemPeakObs obs = peak_obs (g_ptr_array_index (sets[k], j), intervals[k]);
            g_clear_error (&error);
            if (vmem_demand_load_peak (daemon->demand, wp->workload, &obs, &error))
              total += k == 0;
            else
              g_debug ("estimator: %s", error->message);
          }
    }
  guint learnt = 0;
  for (guint i = 0; outcomes != NULL && i < outcomes->len; i++)
    {
      const VmemOutcomeRow *row = g_ptr_array_index (outcomes, i);
      VmemOutcome o = {
        .uuid = row->uuid,
        .workload = row->workload,
        .kind = g_strcmp0 (row->kind, "own") == 0 ? VMEM_START_OWN : VMEM_START_FIRST,
        .start_t = row->start_t,
        .end_t = row->end_t,
        .base_mib = row->base_mib,
        .given_mib = row->given_mib,
        .risk = row->risk,
        .peak_mib = row->peak_mib,
        .censored = row->censored,
      };
      g_clear_error (&error);
      if (vmem_demand_load_outcome (daemon->demand, &o, &error))
        learnt++;
      else
        g_debug ("estimator: outcome: %s", error->message);
    }
  g_info ("estimator: %u hourly peaks loaded for %u workloads, %u outcomes of past starts",
          total, owned->len, learnt);
}

/* Outcomes completed since the last call go to the store. */
static void
record_outcomes (VmemDaemon *daemon)
{
  g_autoptr(GArray) done = vmem_demand_take_outcomes (daemon->demand);
  for (guint i = 0; i < done->len; i++)
    {
      const VmemOutcome *o = &g_array_index (done, VmemOutcome, i);
      StoreWrite *w = store_write_new (WRITE_OUTCOME, o->uuid);
      w->outcome = (VmemOutcomeRow){
        .uuid = (char *) str (w, o->uuid),
        .host = (char *) str (w, daemon->config->host_id),
        .workload = (char *) str (w, o->workload),
        .kind = (char *) str (w, vmem_start_kind_to_string (o->kind)),
        .start_t = o->start_t,
        .end_t = o->end_t,
        .base_mib = o->base_mib,
        .given_mib = o->given_mib,
        .peak_mib = o->peak_mib,
        .risk = o->risk,
        .censored = o->censored,
      };
      store_write (daemon, w);
    }
}

static void
peaks_reload_done (gpointer result, const GError *error, gpointer data)
{
  PeaksLoad *l = data;
  VmemDaemon *daemon = l->daemon;
  if (daemon->stopping)
    {
      if (result != NULL)
        g_ptr_array_unref (result);
      return;
    }
  if (error != NULL)
    {
      g_warning ("cannot reload the peaks; estimates keep the old settings: %s", error->message);
      return;
    }
  /* The running cycle feeds the aggregates about to be rebuilt. */
  cycle_finish (daemon);
  demand_fill (daemon, result, l->outcomes);
  stage_workload (daemon, NULL, "estimator settings reloaded");
}

/* ---- other hosts, through a shared store ---------------------------------- */

/* With a store other hosts write too, every heartbeat reads what they
 * changed: the profiles (a profile set on another host re-stages this
 * host's domains of it) and the hourly peaks of their domains since the
 * hour of the last read (the hour still growing is read again, and
 * replaces what was loaded of it), which join the estimates as this
 * host's own do. */
typedef struct {
  VmemDaemon *daemon;
  char       *host_id;
  GPtrArray  *names;    /* workloads */
  gint64      since;
  gint64      now;
  GPtrArray  *profiles; /* VmemProfile, the store's */
  GPtrArray  *peaks;    /* WorkloadPeaks, hours only, other hosts' */
  GPtrArray  *hosts;    /* VmemHostRow */
} SyncJob;

static void
sync_job_free (SyncJob *j)
{
  g_free (j->host_id);
  g_ptr_array_unref (j->names);
  g_clear_pointer (&j->profiles, g_ptr_array_unref);
  g_clear_pointer (&j->peaks, g_ptr_array_unref);
  g_clear_pointer (&j->hosts, g_ptr_array_unref);
  g_free (j);
}

static gpointer
sync_work (gpointer state, gpointer data, GError **error)
{
  VmemStore *store = state;
  SyncJob *j = data;
  j->profiles = vmem_store_profile_list (store, error);
  if (j->profiles == NULL)
    return NULL;
  j->hosts = vmem_store_host_list (store, error);
  if (j->hosts == NULL)
    return NULL;
  j->peaks = g_ptr_array_new_with_free_func ((GDestroyNotify) workload_peaks_free);
  for (guint i = 0; i < j->names->len; i++)
    {
      g_autoptr(GPtrArray) all = vmem_store_peaks_for_workload (
        store, g_ptr_array_index (j->names, i), VMEM_STORE_HOUR, j->since, error);
      if (all == NULL)
        return NULL;
      WorkloadPeaks *wp = g_new0 (WorkloadPeaks, 1);
      wp->workload = g_strdup (g_ptr_array_index (j->names, i));
      wp->hours = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_peak_free);
      for (guint k = 0; k < all->len; k++)
        {
          VmemPeak *p = g_ptr_array_index (all, k);
          if (g_strcmp0 (p->host, j->host_id) != 0)
            g_ptr_array_add (wp->hours, g_ptr_array_steal_index_fast (all, k--));
        }
      g_ptr_array_add (j->peaks, wp);
    }
  return GINT_TO_POINTER (1);
}

/* The workloads whose profile differs between the daemon's and @list. */
static GHashTable *
profiles_changed (VmemDaemon *daemon, GPtrArray *list)
{
  GHashTable *changed = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < list->len; i++)
    {
      const VmemProfile *p = g_ptr_array_index (list, i);
      const VmemProfile *old = g_hash_table_lookup (daemon->profiles, p->name);
      g_hash_table_add (seen, p->name);
      if (old != NULL)
        {
          json_object *a = vmem_profile_to_json (old);
          json_object *b = vmem_profile_to_json (p);
          gboolean same =
            g_str_equal (json_object_to_json_string (a), json_object_to_json_string (b));
          json_object_put (a);
          json_object_put (b);
          if (same)
            continue;
        }
      g_hash_table_add (changed, g_strdup (p->name));
    }
  GHashTableIter it;
  const char *name;
  g_hash_table_iter_init (&it, daemon->profiles);
  while (g_hash_table_iter_next (&it, (gpointer *) &name, NULL))
    if (!g_hash_table_contains (seen, name))
      g_hash_table_add (changed, g_strdup (name));
  return changed;
}

static void
sync_done (gpointer result, const GError *error, gpointer data)
{
  SyncJob *j = data;
  VmemDaemon *daemon = j->daemon;
  if (daemon->stopping)
    return;
  if (error != NULL)
    {
      vmem_log_warning_limited ("sync", WARN_EVERY_S,
                                "cannot read the other hosts' profiles and peaks: %s",
                                error->message);
      return;
    }
  daemon->sync_since = j->now - j->now % VMEM_STORE_HOUR;
  for (guint i = 0; i < j->hosts->len; i++)
    {
      const VmemHostRow *h = g_ptr_array_index (j->hosts, i);
      if (!g_str_equal (h->id, daemon->config->host_id))
        g_hash_table_replace (daemon->host_names, g_strdup (h->id), g_strdup (h->name));
    }

  g_autoptr(GHashTable) moved = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (guint i = 0; i < j->peaks->len; i++)
    {
      WorkloadPeaks *wp = g_ptr_array_index (j->peaks, i);
      for (guint k = 0; k < wp->hours->len; k++)
        {
          const VmemPeakObs obs = peak_obs (g_ptr_array_index (wp->hours, k), VMEM_STORE_HOUR);
          g_autoptr(GError) local = NULL;
          if (vmem_demand_load_peak (daemon->demand, wp->workload, &obs, &local))
            g_hash_table_add (moved, g_strdup (wp->workload));
          else
            g_debug ("estimator: a peak of another host: %s", local->message);
        }
    }

  g_autoptr(GHashTable) changed = profiles_changed (daemon, j->profiles);
  if (g_hash_table_size (changed) > 0)
    {
      replace_profiles (daemon, g_steal_pointer (&j->profiles));
      GHashTableIter it;
      const char *name;
      g_hash_table_iter_init (&it, changed);
      while (g_hash_table_iter_next (&it, (gpointer *) &name, NULL))
        {
          g_message ("profile %s changed in the store (by another host)", name);
          g_hash_table_remove (moved, name);
          stage_workload (daemon, name, "profile changed on another host");
        }
    }
  if (g_hash_table_size (moved) > 0)
    restage_moved (daemon, moved);
}

static void
sync_others (VmemDaemon *daemon)
{
  if (g_strcmp0 (daemon->store_backend, "postgres") != 0)
    return;
  SyncJob *j = g_new0 (SyncJob, 1);
  j->daemon = daemon;
  j->host_id = g_strdup (daemon->config->host_id);
  j->now = now_s ();
  j->since = daemon->sync_since;
  j->names = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter it;
  const char *name;
  g_hash_table_iter_init (&it, daemon->profiles);
  while (g_hash_table_iter_next (&it, (gpointer *) &name, NULL))
    g_ptr_array_add (j->names, g_strdup (name));
  const VmemWorkerJob job = {
    .what = "read the other hosts' profiles and peaks",
    .key = "sync",
    .work = sync_work,
    .done = sync_done,
    .data = j,
    .data_free = (GDestroyNotify) sync_job_free,
  };
  vmem_worker_submit (daemon->store_worker, &job);
}

/* ---- methods' calls up -------------------------------------------------- */

static void
profiles_changed_cb (GPtrArray *profiles, const char *workload, gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  replace_profiles (daemon, profiles);
  /* A write that ends while the daemon stops: the stager is gone. */
  if (!daemon->stopping)
    stage_workload (daemon, workload, "profile changed");
}

static void
domain_read_cb (VmemDomain *domain, gpointer user_data)
{
  entry_updated (user_data, domain);
}

/* ---- metrics ------------------------------------------------------------ */

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* What the metrics show now: the one snapshot behind io.vmemd.Metrics and
 * [daemon] metrics_textfile.  Per managed domain what status shows; per
 * workload the estimate for a new domain of it, as explain --workload. */
static VmemMetricsSnapshot *
metrics_snapshot (VmemDaemon *daemon)
{
  VmemMetricsSnapshot *s = vmem_metrics_snapshot_new (VMEM_VERSION);
  gint64 now = now_s ();

  s->started_at = daemon->started_at;
  s->ready = vmem_cache_is_ready (daemon->cache);
  s->libvirt_connected = daemon->virt != NULL && vmem_virt_is_connected (daemon->virt);
  s->capacity_mib = capacity_cb (daemon);
  s->reserve_mib = daemon->config->reserve_mib;
  s->committed_mib = vmem_cache_committed (daemon->cache, NULL);
  g_autoptr(GPtrArray) reservations = vmem_cache_reservations (daemon->cache);
  for (guint i = 0; i < reservations->len; i++)
    {
      const VmemReservation *r = g_ptr_array_index (reservations, i);
      s->boot_reservations++;
      s->boot_reserved_mib += r->mib;
    }

  g_autoptr(GHashTable) per_workload = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GPtrArray) entries = vmem_cache_list (daemon->cache);
  for (guint i = 0; i < entries->len; i++)
    {
      const VmemCacheEntry *e = g_ptr_array_index (entries, i);
      const VmemDomain *d = e->domain;
      const VmemProfile *p = profile_for (daemon, d);
      if (p == NULL)
        continue;
      VmemMetricsDomain *md = vmem_metrics_snapshot_add_domain (s, d->name, p->name);
      md->running = d->active;
      md->memory_mib = d->memory_mib;
      md->demand_mib = e->staged_mib;
      if (d->active)
        {
          md->actual_mib = d->current_mib;
          /* A guest that never reported has no target yet. */
          md->has_target = e->action != NULL && e->target_mib > 0;
          md->target_mib = e->target_mib;
          md->has_used = e->seen_t > 0;
          md->used_mib = e->used_mib;
          md->available_mib = e->available_mib;
        }
      guint n = GPOINTER_TO_UINT (g_hash_table_lookup (per_workload, p->name));
      g_hash_table_insert (per_workload, (gpointer) p->name, GUINT_TO_POINTER (n + 1));
    }

  g_autoptr(GPtrArray) names = g_ptr_array_new ();
  GHashTableIter it;
  gpointer name;
  g_hash_table_iter_init (&it, daemon->profiles);
  while (g_hash_table_iter_next (&it, &name, NULL))
    g_ptr_array_add (names, name);
  g_ptr_array_sort (names, compare_names);
  for (guint i = 0; i < names->len; i++)
    {
      const VmemProfile *p = g_hash_table_lookup (daemon->profiles, g_ptr_array_index (names, i));
      VmemMetricsWorkload *w = vmem_metrics_snapshot_add_workload (s, p->name);
      w->domains = GPOINTER_TO_UINT (g_hash_table_lookup (per_workload, p->name));
      const VmemEstimateTarget target = { 0 };
      g_autoptr(GError) error = NULL;
      g_autoptr(VmemEstimate) est = vmem_demand_estimate (daemon->demand, p->name, p, &target, now,
                                                          &error);
      if (est == NULL)
        vmem_log_warning_limited ("estimate", WARN_EVERY_S,
                                  "cannot estimate the demand of %s: %s", p->name,
                                  error->message);
      vmem_metrics_workload_set_estimate (w, est);
    }
  s->counters = daemon->counters;
  s->counters.collector_skipped = vmem_collector_skipped (daemon->collector);
  s->counters.store_samples_dropped = vmem_store_buffer_dropped (daemon->buffer);
  s->store_samples_buffered = vmem_store_buffer_pending (daemon->buffer);
  s->counters.store_writes_dropped = vmem_store_buffer_dropped_writes (daemon->buffer);
  s->store_writes_buffered = vmem_store_buffer_pending_writes (daemon->buffer);
  return s;
}

static VmemMetricsSnapshot *
metrics_cb (gpointer user_data)
{
  return metrics_snapshot (user_data);
}

/* [daemon] metrics_textfile, for node exporter's textfile collector: the
 * Prometheus text format, which it reads. */
static void
textfile_write (VmemDaemon *daemon)
{
  const char *path = daemon->config->metrics_textfile;
  if (path == NULL)
    return;
  g_autoptr(VmemMetricsSnapshot) s = metrics_snapshot (daemon);
  g_autofree char *text = vmem_metrics_format (s, VMEM_METRICS_PROMETHEUS);
  g_autoptr(GError) error = NULL;
  if (!vmem_textfile_write (path, text, &error))
    {
      daemon->counters.textfile_errors++;
      vmem_log_warning_limited ("metrics-textfile", WARN_EVERY_S,
                                "cannot write the metrics for node exporter: %s", error->message);
      return;
    }
  if (g_strcmp0 (daemon->textfile, path) != 0)
    {
      g_free (daemon->textfile);
      daemon->textfile = g_strdup (path);
    }
}

static gboolean
textfile_tick (gpointer user_data)
{
  textfile_write (user_data);
  return G_SOURCE_CONTINUE;
}

/* The file written last, once the configuration no longer names it or
 * vmemd stops: metrics left behind would read as current. */
static void
textfile_remove (VmemDaemon *daemon)
{
  if (daemon->textfile == NULL)
    return;
  if (unlink (daemon->textfile) < 0 && errno != ENOENT)
    vmem_log_warning_limited ("metrics-textfile", WARN_EVERY_S, "cannot remove %s: %s",
                              daemon->textfile, g_strerror (errno));
  g_clear_pointer (&daemon->textfile, g_free);
}

/* Writes the textfile now and every stats interval, as the configuration
 * says. */
static void
textfile_schedule (VmemDaemon *daemon)
{
  const VmemConfig *c = daemon->config;
  if (g_strcmp0 (daemon->textfile, c->metrics_textfile) != 0)
    textfile_remove (daemon);
  if (c->metrics_textfile == NULL)
    {
      g_clear_handle_id (&daemon->textfile_id, g_source_remove);
      return;
    }
  if (daemon->textfile_id == 0 || daemon->textfile_interval != c->stats_interval)
    {
      g_clear_handle_id (&daemon->textfile_id, g_source_remove);
      daemon->textfile_interval = c->stats_interval;
      daemon->textfile_id = g_timeout_add_seconds (c->stats_interval, textfile_tick, daemon);
    }
  textfile_write (daemon);
}

/* ---- life cycle --------------------------------------------------------- */

VmemDaemon *
vmem_daemon_new (VmemConfig *config, GError **error)
{
  g_autoptr(VmemConfig) owned = config;
  g_autoptr(VmemDaemon) daemon = g_new0 (VmemDaemon, 1);
  VmemEstimatorConfig ec;

  daemon->config = g_steal_pointer (&owned);
  daemon->profiles = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                            (GDestroyNotify) vmem_profile_free);
  daemon->intents = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                           (GDestroyNotify) intent_free);
  daemon->cache = vmem_cache_new ();
  VmemHostMem mem;
  read_host_memory (daemon, &mem);
  estimator_config (daemon->config, &ec);
  daemon->demand = vmem_demand_new (&ec, error);
  if (daemon->demand == NULL)
    return NULL;

  /* Read here, before the store worker runs; from then on only the worker
   * touches the store. */
  daemon->store = vmem_store_open (daemon->config, error);
  if (daemon->store == NULL)
    return NULL;
  daemon->store_backend = g_strdup (vmem_store_backend_name (daemon->store));
  daemon->store_location = g_strdup (vmem_store_location (daemon->store));
  daemon->schema_version = vmem_store_schema_version (daemon->store);
  GPtrArray *list = vmem_store_profile_list (daemon->store, error);
  if (list == NULL)
    return NULL;
  replace_profiles (daemon, list);
  PeaksLoad *load = peaks_load_new (daemon);
  GPtrArray *peaks = peaks_load_work (daemon->store, load, error);
  if (peaks == NULL)
    {
      peaks_load_free (load);
      return NULL;
    }
  demand_fill (daemon, peaks, load->outcomes);
  peaks_load_free (load);
  daemon->sync_since = now_s () - now_s () % VMEM_STORE_HOUR;
  daemon->host_names = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_hash_table_replace (daemon->host_names, g_strdup (daemon->config->host_id),
                        g_strdup (daemon->config->host_name));
  daemon->buffer = vmem_store_buffer_new (daemon->config->buffer_samples,
                                         daemon->config->buffer_writes);
  /* The store writes behind the main loop, a cycle's samples at once: at
   * a lower priority, so that on a busy host the main loop, which answers
   * the hook, gets the processor first, and the writes take what is left
   * (they have the interval to finish, and are buffered past it). */
  daemon->store_worker = vmem_worker_new_niced ("vmemd-store", STORE_NICE, daemon->store);
  return g_steal_pointer (&daemon);
}

static VmemServerLimits
server_limits (const VmemConfig *c)
{
  return (VmemServerLimits){
    .max_message = VMEM_VARLINK_MAX_MESSAGE,
    .max_root_message = VMEM_VARLINK_MAX_ROOT_MESSAGE,
    .max_clients = c->max_clients,
    .root_clients = c->root_clients,
    .request_timeout_s = c->request_timeout,
    .idle_timeout_s = c->idle_timeout,
    .silent_timeout_s = c->silent_timeout,
  };
}

gboolean
vmem_daemon_start (VmemDaemon *daemon, int listen_fd, GError **error)
{
  const VmemConfig *c = daemon->config;
  VmemServerLimits limits = server_limits (c);

  daemon->started_at = now_s ();

  const VmemVirtCallbacks virt_callbacks = {
    .connected = on_connected,
    .disconnected = on_disconnected,
    .domain_event = on_domain_event,
  };
  daemon->virt = vmem_virt_new (c->uri, &virt_callbacks, daemon);
  const VmemStagerCallbacks stager_callbacks = { .staged = on_staged };
  daemon->stager = vmem_stager_new (daemon->virt, &stager_callbacks, daemon);
  const VmemControlCallbacks control_callbacks = { .moved = moved_cb };
  daemon->control = vmem_control_new (daemon->stager, daemon->cache, &control_callbacks, daemon);
  if (!vmem_control_configure (daemon->control, c, error))
    {
      g_prefix_error (error, "[controller]: ");
      return FALSE;
    }

  daemon->server = vmem_server_new (&limits);
  vmem_server_set_admin_group (daemon->server, c->admin_group);
  const VmemMethodsContext ctx = {
    .config = &daemon->config,
    .cache = daemon->cache,
    .profiles = daemon->profiles,
    .virt = daemon->virt,
    .store = daemon->store_worker,
    .store_backend = daemon->store_backend,
    .store_location = daemon->store_location,
    .schema_version = daemon->schema_version,
    .started_at = daemon->started_at,
    .plan = plan_cb,
    .profiles_changed = profiles_changed_cb,
    .domain_read = domain_read_cb,
    .start_admitted = start_admitted_cb,
    .start_ended = start_ended_cb,
    .capacity = capacity_cb,
    .counters = &daemon->counters,
    .host_names = daemon->host_names,
    .buffer = daemon->buffer,
    .metrics = metrics_cb,
    .user_data = daemon,
  };
  daemon->methods = vmem_methods_register (daemon->server, &ctx);
  if (listen_fd >= 0)
    {
      if (!vmem_server_adopt_fd (daemon->server, listen_fd, error))
        return FALSE;
      g_message ("listening on the socket passed by systemd");
    }
  else
    {
      if (!vmem_server_listen (daemon->server, c->socket_path, 0666, c->admin_group, error))
        return FALSE;
      g_message ("listening on %s", c->socket_path);
    }
  /* The hook's note that vmemd did not answer (vmem-hook(8)) is stale
   * now: the next start may wait for it the whole timeout again. */
  g_autofree char *silent = g_strconcat (c->socket_path, ".silent", NULL);
  if (unlink (silent) == 0)
    g_info ("removed %s, left by a hook that vmemd did not answer", silent);
  g_message ("store: %s %s (schema %d), %u profiles", daemon->store_backend,
             daemon->store_location, daemon->schema_version, g_hash_table_size (daemon->profiles));

  vmem_virt_start (daemon->virt);
  const VmemCollectorCallbacks collector_callbacks = {
    .want_period = want_period_cb,
    .collected = collected_cb,
    .failed = collect_failed_cb,
    .handling = cycle_handling_cb,
  };
  daemon->collector = vmem_collector_new (daemon->virt, c->stats_interval, &collector_callbacks,
                                          daemon);
  daemon->heartbeat_interval = c->stats_interval;
  daemon->heartbeat_id = g_timeout_add_seconds (daemon->heartbeat_interval, heartbeat, daemon);
  heartbeat (daemon);
  prune (daemon);
  daemon->prune_id = g_timeout_add_seconds (PRUNE_S, prune, daemon);
  daemon->expire_id = g_timeout_add_seconds (EXPIRE_CHECK_S, expire_reservations, daemon);
  textfile_schedule (daemon);
  return TRUE;
}

void
vmem_daemon_set_stats_source (VmemDaemon *daemon, VmemStatsSourceFunc source,
                              void (*moved) (const char *uuid, guint64 to_mib, gpointer data),
                              gpointer data)
{
  vmem_collector_set_source (daemon->collector, source, data);
  daemon->source_moved = moved;
  daemon->source_data = data;
}

gboolean
vmem_daemon_collect_now (VmemDaemon *daemon)
{
  return vmem_collector_cycle_now (daemon->collector);
}

gboolean
vmem_daemon_cycle_running (VmemDaemon *daemon)
{
  return vmem_collector_is_busy (daemon->collector);
}

void
vmem_daemon_last_cycle (VmemDaemon *daemon, VmemDaemonCycleFigures *figures)
{
  *figures = daemon->last_cycle;
}

guint
vmem_daemon_store_pending (VmemDaemon *daemon)
{
  return vmem_worker_pending (daemon->store_worker);
}

guint
vmem_daemon_n_domains (VmemDaemon *daemon)
{
  return vmem_cache_is_ready (daemon->cache) ? vmem_cache_size (daemon->cache) : 0;
}

void
vmem_daemon_reload (VmemDaemon *daemon, VmemConfig *config, char **restart_needed)
{
  g_autoptr(VmemConfig) next = config;
  const VmemConfig *cur = daemon->config;
  g_autoptr(GPtrArray) restart = g_ptr_array_new_with_free_func (g_free);

  /* The running cycle ends on the settings it began with. */
  cycle_finish (daemon);

  /* These stay as they are until a restart; everything else applies. */
#define KEEP_STR(field, key)                                         \
  if (g_strcmp0 (cur->field, next->field) != 0)                      \
    {                                                                \
      g_ptr_array_add (restart, g_strdup (key));                     \
      g_free (next->field);                                          \
      next->field = g_strdup (cur->field);                           \
    }
  KEEP_STR (socket_path, "[daemon] socket");
  KEEP_STR (uri, "[daemon] uri");
  KEEP_STR (host_name, "[daemon] host_name");
  KEEP_STR (host_id, "[daemon] host_id");
  KEEP_STR (database, "[store] database");
  KEEP_STR (postgres, "[store] postgres");
#undef KEEP_STR
  if (cur->buffer_samples != next->buffer_samples)
    {
      g_ptr_array_add (restart, g_strdup ("[store] buffer_samples"));
      next->buffer_samples = cur->buffer_samples;
    }
  if (cur->buffer_writes != next->buffer_writes)
    {
      g_ptr_array_add (restart, g_strdup ("[store] buffer_writes"));
      next->buffer_writes = cur->buffer_writes;
    }
  if (cur->backend != next->backend)
    {
      g_ptr_array_add (restart, g_strdup ("[store] backend"));
      next->backend = cur->backend;
    }

  gboolean estimator_changed = cur->half_life_hours != next->half_life_hours ||
                               cur->quantile != next->quantile ||
                               cur->margin_pct != next->margin_pct ||
                               cur->min_peers != next->min_peers ||
                               cur->min_history_hours != next->min_history_hours ||
                               cur->prior_hours != next->prior_hours;
  if (daemon->control != NULL)
    {
      g_autoptr(GError) local = NULL;
      if (!vmem_control_configure (daemon->control, next, &local))
        g_warning ("[controller] settings not applied, keeping the running ones: %s",
                   local->message);
    }
  vmem_log_set_level (next->log_level);
  if (daemon->collector != NULL)
    vmem_collector_set_interval (daemon->collector, next->stats_interval);
  if (daemon->server != NULL)
    {
      VmemServerLimits limits = server_limits (next);
      vmem_server_set_limits (daemon->server, &limits);
      vmem_server_set_admin_group (daemon->server, next->admin_group);
    }
  vmem_config_free (daemon->config);
  daemon->config = g_steal_pointer (&next);
  if (daemon->virt != NULL)
    textfile_schedule (daemon);

  /* An aggregate's decay is fixed when it is built: rebuild them from the
   * store, then re-stage with the new settings. */
  if (estimator_changed)
    {
      const VmemWorkerJob job = {
        .what = "reload peaks",
        .key = "reload-peaks",
        .work = peaks_load_work,
        .done = peaks_reload_done,
        .data = peaks_load_new (daemon),
        .data_free = (GDestroyNotify) peaks_load_free,
        .result_free = (GDestroyNotify) g_ptr_array_unref,
      };
      vmem_worker_submit (daemon->store_worker, &job);
    }
  if (restart_needed != NULL)
    {
      g_ptr_array_add (restart, NULL);
      *restart_needed = restart->len > 1 ? g_strjoinv (", ", (char **) restart->pdata) : NULL;
    }
}

void
vmem_daemon_free (VmemDaemon *daemon)
{
  if (daemon == NULL)
    return;
  daemon->stopping = TRUE;
  /* A cycle cut by the stop makes no further move and writes nothing it
   * had not written, as a cycle whose statistics come after the stop. */
  g_clear_handle_id (&daemon->cycle_id, g_source_remove);
  if (daemon->trim_job != NULL)
    g_steal_pointer (&daemon->trim_job)->daemon = NULL;
  g_clear_pointer (&daemon->cycle, cycle_free);
  g_clear_handle_id (&daemon->heartbeat_id, g_source_remove);
  g_clear_handle_id (&daemon->prune_id, g_source_remove);
  g_clear_handle_id (&daemon->expire_id, g_source_remove);
  g_clear_handle_id (&daemon->textfile_id, g_source_remove);
  textfile_remove (daemon);
  g_clear_pointer (&daemon->server, vmem_server_free);
  /* The libvirt worker's last results still reach the collector and the
   * stager: free them after it. */
  g_clear_pointer (&daemon->virt, vmem_virt_free);
  g_clear_pointer (&daemon->collector, vmem_collector_free);
  g_clear_pointer (&daemon->control, vmem_control_free);
  g_clear_pointer (&daemon->stager, vmem_stager_free);
  /* Writes still queued are written before the store closes. */
  g_clear_pointer (&daemon->store_worker, vmem_worker_free);
  g_clear_pointer (&daemon->store, vmem_store_free);
  g_clear_pointer (&daemon->buffer, vmem_store_buffer_free);
  /* Last of the parts: the jobs of an Assign or a profile write still in
   * flight on either worker finish through the methods. */
  g_clear_pointer (&daemon->methods, vmem_methods_free);
  g_clear_pointer (&daemon->demand, vmem_demand_free);
  g_clear_pointer (&daemon->cache, vmem_cache_free);
  g_clear_pointer (&daemon->intents, g_hash_table_unref);
  g_clear_pointer (&daemon->host_names, g_hash_table_unref);
  g_clear_pointer (&daemon->profiles, g_hash_table_unref);
  g_free (daemon->store_backend);
  g_free (daemon->store_location);
  vmem_config_free (daemon->config);
  g_free (daemon);
}
