/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-replay.h"
#include "vmem-error.h"
#include "vmem-trace.h"

#include <math.h>
#include <string.h>

/* The reference recommender, as Kubernetes' VPA sizes memory. */
#define VPA_QUANTILE    0.90
#define VPA_MARGIN      0.15
#define VPA_HALF_LIFE_H 24.0

typedef struct {
  char            *name;
  VmemWorkloadAgg *vmemd;
  VmemWorkloadAgg *vpa;
} Workload;

typedef struct {
  char     *name;
  Workload *workload;
  guint     vcpus;
  guint64   ceiling_kib;
  /* The current day. */
  guint64   day_peak_kib;
  guint     day_samples;
  gboolean  has_case;
  VmemReplayCase c;
} Domain;

typedef struct {
  const VmemEstimatorConfig *config;
  VmemEstimatorConfig        vpa_config;
  GHashTable                *workloads;  /* name -> Workload */
  GHashTable                *domains;    /* name -> Domain */
  GPtrArray                 *active;     /* Domain seen on the current day */
  gint64                     first_t;
  gint64                     day;        /* start of the current day; -1 before any */
  VmemReplayCaseFunc         on_case;
  gpointer                   user_data;
} Replay;

static const char *const estimator_names[] = { "vmemd", "vpa", "static" };

const char *
vmem_replay_estimator_to_string (VmemReplayEstimator estimator)
{
  return (guint) estimator < G_N_ELEMENTS (estimator_names) ? estimator_names[estimator]
                                                             : "unknown";
}

gboolean
vmem_replay_estimator_from_string (const char *s, VmemReplayEstimator *out, GError **error)
{
  for (guint i = 0; i < G_N_ELEMENTS (estimator_names); i++)
    if (s != NULL && g_str_equal (s, estimator_names[i]))
      {
        *out = (VmemReplayEstimator) i;
        return TRUE;
      }
  g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
               "estimator: unknown value '%s' (use vmemd, vpa or static)", s ? s : "");
  return FALSE;
}

static void
workload_free (gpointer data)
{
  Workload *w = data;
  g_free (w->name);
  vmem_workload_agg_free (w->vmemd);
  vmem_workload_agg_free (w->vpa);
  g_free (w);
}

static void
domain_free (gpointer data)
{
  Domain *d = data;
  g_free (d->name);
  g_free (d);
}

static guint64
mib_to_kib_ceil (double mib)
{
  return (guint64) ceil (mib * 1024.0 - 1e-6);
}

/* Sizes @d's start at the current day boundary; the aggregates hold only
 * the days before it. */
static gboolean
replay_estimate (Replay *r, Domain *d, GError **error)
{
  VmemReplayCase *c = &d->c;
  double memory_mib = (double) d->ceiling_kib / 1024.0;

  memset (c, 0, sizeof *c);
  c->t = r->day;
  c->ceiling_kib = d->ceiling_kib;

  VmemEstimateTarget target = {
    .uuid = d->name,
    .exclude_self = TRUE,
    .vcpus = d->vcpus,
    .memory_mib = memory_mib,
  };
  g_autoptr(VmemEstimate) e = vmem_estimator_estimate (d->workload->vmemd, r->config, NULL,
                                                       &target, r->day, error);
  if (e == NULL)
    return FALSE;
  c->peers = e->peers->len;
  c->estimate_kib[VMEM_REPLAY_VMEMD] = mib_to_kib_ceil (e->value_mib);
  c->source[VMEM_REPLAY_VMEMD] = vmem_estimate_source_to_string (e->source);

  double q = 0;
  if (vmem_workload_agg_pooled_quantile (d->workload->vpa, d->name, VPA_QUANTILE, r->day, &q,
                                         NULL))
    {
      c->estimate_kib[VMEM_REPLAY_VPA] = mib_to_kib_ceil (MIN (q * (1.0 + VPA_MARGIN),
                                                               memory_mib));
      c->source[VMEM_REPLAY_VPA] = vmem_estimate_source_to_string (VMEM_SOURCE_PEERS);
    }
  else
    {
      c->estimate_kib[VMEM_REPLAY_VPA] = d->ceiling_kib;
      c->source[VMEM_REPLAY_VPA] =
        vmem_estimate_source_to_string (VMEM_SOURCE_FALLBACK_DOMAIN_MEMORY);
    }

  c->estimate_kib[VMEM_REPLAY_STATIC] = d->ceiling_kib;
  c->source[VMEM_REPLAY_STATIC] = "static";
  return TRUE;
}

static int
domain_cmp (gconstpointer a, gconstpointer b)
{
  const Domain *x = *(Domain *const *) a;
  const Domain *y = *(Domain *const *) b;
  return strcmp (x->name, y->name);
}

/* The day is over: report its cases, then let its peaks into the
 * aggregates for the days after. */
static gboolean
replay_close_day (Replay *r, GError **error)
{
  g_ptr_array_sort (r->active, domain_cmp);
  for (guint i = 0; i < r->active->len; i++)
    {
      Domain *d = g_ptr_array_index (r->active, i);
      if (!d->has_case)
        continue;
      d->c.domain = d->name;
      d->c.workload = d->workload->name;
      d->c.peak_kib = d->day_peak_kib;
      if (r->on_case != NULL)
        r->on_case (&d->c, r->user_data);
    }
  for (guint i = 0; i < r->active->len; i++)
    {
      Domain *d = g_ptr_array_index (r->active, i);
      VmemPeakObs obs = {
        .uuid = d->name,
        .domain = d->name,
        .start_t = r->day,
        .interval_s = VMEM_REPLAY_DAY,
        .peak_mib = (double) d->day_peak_kib / 1024.0,
        .samples = d->day_samples,
        .guest_samples = d->day_samples,
        .vcpus = d->vcpus,
      };
      if (!vmem_workload_agg_add (d->workload->vmemd, &obs, error) ||
          !vmem_workload_agg_add (d->workload->vpa, &obs, error))
        return FALSE;
      d->day_samples = 0;
      d->day_peak_kib = 0;
      d->has_case = FALSE;
    }
  g_ptr_array_set_size (r->active, 0);
  return TRUE;
}

static gboolean
replay_row (Replay *r, VmemTraceReader *reader, const VmemTraceRow *row, GError **error)
{
  gint64 day = row->t - row->t % VMEM_REPLAY_DAY;

  if (r->day < 0)
    r->first_t = row->t;
  else if (day != r->day && !replay_close_day (r, error))
    return FALSE;
  r->day = day;

  Workload *w = g_hash_table_lookup (r->workloads, row->workload);
  if (w == NULL)
    {
      w = g_new0 (Workload, 1);
      w->name = g_strdup (row->workload);
      w->vmemd = vmem_workload_agg_new (r->config, error);
      if (w->vmemd == NULL)
        {
          workload_free (w);
          return FALSE;
        }
      w->vpa = vmem_workload_agg_new (&r->vpa_config, NULL);
      g_hash_table_insert (r->workloads, w->name, w);
    }

  Domain *d = g_hash_table_lookup (r->domains, row->domain);
  if (d == NULL)
    {
      d = g_new0 (Domain, 1);
      d->name = g_strdup (row->domain);
      d->workload = w;
      g_hash_table_insert (r->domains, d->name, d);
    }
  else if (d->workload != w)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s:%" G_GUINT64_FORMAT ": workload: domain '%s' was in workload '%s' "
                   "before, now '%s'", vmem_trace_reader_path (reader), row->line,
                   row->domain, d->workload->name, row->workload);
      return FALSE;
    }
  d->vcpus = row->vcpus;

  if (d->day_samples == 0)
    {
      /* The domain's first sample of the day: it "starts" at the boundary
       * with the <memory> it has now. */
      d->ceiling_kib = row->ceiling_kib;
      g_ptr_array_add (r->active, d);
      if (day >= r->first_t)
        {
          if (!replay_estimate (r, d, error))
            return FALSE;
          d->has_case = TRUE;
        }
    }
  d->day_samples++;
  d->day_peak_kib = MAX (d->day_peak_kib, row->used_kib);
  return TRUE;
}

gboolean
vmem_replay_run (const char *path, const VmemEstimatorConfig *config,
                 VmemReplayCaseFunc on_case, VmemReplayProgressFunc on_progress,
                 gpointer user_data, GError **error)
{
  g_return_val_if_fail (path != NULL && config != NULL, FALSE);

  if (!vmem_estimator_config_validate (config, error))
    return FALSE;
  g_autoptr(VmemTraceReader) reader = vmem_trace_reader_open (path, error);
  if (reader == NULL)
    return FALSE;

  g_autoptr(GHashTable) workloads = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                                           workload_free);
  g_autoptr(GHashTable) domains = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                                         domain_free);
  g_autoptr(GPtrArray) active = g_ptr_array_new ();
  Replay r = {
    .config = config,
    .workloads = workloads,
    .domains = domains,
    .active = active,
    .day = -1,
    .on_case = on_case,
    .user_data = user_data,
  };
  vmem_estimator_config_init (&r.vpa_config);
  r.vpa_config.half_life_hours = VPA_HALF_LIFE_H;

  VmemTraceRow row;
  guint64 n = 0;
  for (;;)
    {
      g_autoptr(GError) local = NULL;
      if (!vmem_trace_reader_next (reader, &row, &local))
        {
          if (local != NULL)
            {
              g_propagate_error (error, g_steal_pointer (&local));
              return FALSE;
            }
          break;
        }
      if (!replay_row (&r, reader, &row, error))
        return FALSE;
      if (on_progress != NULL && (++n & 0x3fff) == 0)
        on_progress (vmem_trace_reader_progress (reader), user_data);
    }
  if (r.day >= 0 && !replay_close_day (&r, error))
    return FALSE;
  if (on_progress != NULL)
    on_progress (1.0, user_data);
  return TRUE;
}

double
vmem_replay_tally_under_pct (const VmemReplayTally *t)
{
  return t->cases > 0 ? 100.0 * (double) t->under / (double) t->cases : 0.0;
}

double
vmem_replay_tally_waste_pct (const VmemReplayTally *t)
{
  return t->estimate_kib > 0 ? 100.0 * t->waste_kib / t->estimate_kib : 0.0;
}

double
vmem_replay_tally_gib_days (const VmemReplayTally *t)
{
  return t->estimate_kib / (1024.0 * 1024.0);
}

guint
vmem_replay_peer_class (guint peers)
{
  if (peers <= 2)
    return peers;
  if (peers <= 4)
    return 3;
  if (peers <= 9)
    return 4;
  return 5;
}

const char *
vmem_replay_peer_class_label (guint peer_class)
{
  static const char *const labels[VMEM_REPLAY_PEER_CLASSES] = {
    "0", "1", "2", "3-4", "5-9", "10+",
  };
  return peer_class < VMEM_REPLAY_PEER_CLASSES ? labels[peer_class] : "?";
}

static void
tally_add (VmemReplayTally *t, guint64 estimate, guint64 peak)
{
  t->cases++;
  if (peak > estimate)
    t->under++;
  else
    t->waste_kib += (double) (estimate - peak);
  t->estimate_kib += (double) estimate;
}

void
vmem_replay_summary_add (VmemReplaySummary *s, const VmemReplayCase *c,
                         VmemReplayEstimator estimator)
{
  g_return_if_fail ((guint) estimator < VMEM_REPLAY_N_ESTIMATORS);

  tally_add (&s->all, c->estimate_kib[estimator], c->peak_kib);
  tally_add (&s->by_peers[vmem_replay_peer_class (c->peers)], c->estimate_kib[estimator],
             c->peak_kib);
}

static void
format_tally (GString *out, const char *label, const VmemReplayTally *t)
{
  g_string_append_printf (out, "%-8s %8" G_GUINT64_FORMAT " %8" G_GUINT64_FORMAT
                          " %9.2f %8.2f %10.1f\n", label, t->cases, t->under,
                          vmem_replay_tally_under_pct (t), vmem_replay_tally_waste_pct (t),
                          vmem_replay_tally_gib_days (t));
}

char *
vmem_replay_summary_format (const VmemReplaySummary *s)
{
  GString *out = g_string_new (NULL);
  g_string_append_printf (out, "%-8s %8s %8s %9s %8s %10s\n", "peers", "starts", "under",
                          "under%", "waste%", "GiB-days");
  format_tally (out, "all", &s->all);
  for (guint i = 0; i < VMEM_REPLAY_PEER_CLASSES; i++)
    if (s->by_peers[i].cases > 0)
      format_tally (out, vmem_replay_peer_class_label (i), &s->by_peers[i]);
  return g_string_free (out, FALSE);
}

static json_object *
tally_to_json (const VmemReplayTally *t)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "starts", json_object_new_int64 ((gint64) t->cases));
  json_object_object_add (o, "under", json_object_new_int64 ((gint64) t->under));
  json_object_object_add (o, "under_pct", json_object_new_double (vmem_replay_tally_under_pct (t)));
  json_object_object_add (o, "waste_pct", json_object_new_double (vmem_replay_tally_waste_pct (t)));
  json_object_object_add (o, "gib_days", json_object_new_double (vmem_replay_tally_gib_days (t)));
  return o;
}

json_object *
vmem_replay_summary_to_json (const VmemReplaySummary *s)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "all", tally_to_json (&s->all));
  json_object *by = json_object_new_object ();
  for (guint i = 0; i < VMEM_REPLAY_PEER_CLASSES; i++)
    if (s->by_peers[i].cases > 0)
      json_object_object_add (by, vmem_replay_peer_class_label (i),
                              tally_to_json (&s->by_peers[i]));
  json_object_object_add (o, "by_peers", by);
  return o;
}
