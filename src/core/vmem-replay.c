/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-replay.h"
#include "vmem-demand.h"
#include "vmem-error.h"

#include <math.h>
#include <string.h>

/* The reference recommender, as Kubernetes' VPA sizes memory. */
#define VPA_QUANTILE    0.90
#define VPA_MARGIN      0.15
#define VPA_HALF_LIFE_H 24.0
#define VPA_UPPER_QUANTILE 0.95

typedef struct {
  char            *name;
  VmemWorkloadAgg *vpa;     /* daily peaks */
  GPtrArray       *members; /* Domain */
} Workload;

typedef struct {
  char          *name;    /* also its uuid in the VmemDemand */
  Workload      *workload;
  gint64         first_day;    /* its first daily peak in the VPA aggregate; -1 = none */
  /* The current day. */
  gboolean       active;
  guint          vcpus;        /* at its first sample of the day */
  guint64        ceiling_kib;  /* at its first sample of the day */
  VmemPeakObs    day_peak;     /* from the VmemDemand; strings unused */
  gboolean       has_case;
  VmemReplayCase c;
} Domain;

/* A row of the current day, kept until the day is over: the starts of a
 * day are sized before any of its samples is observed. */
typedef struct {
  gint64   t;
  Domain  *domain;
  guint    vcpus;
  guint64  used_kib;
  guint64  line;
} DayRow;

struct _VmemReplay {
  VmemEstimatorConfig config;
  VmemEstimatorConfig vpa_config;
  VmemDemand         *demand;
  gboolean            first_start;
  GHashTable         *workloads;  /* name -> Workload */
  GHashTable         *domains;    /* name -> Domain */
  GArray             *rows;       /* DayRow of the current day */
  GPtrArray          *active;     /* Domain seen on the current day */
  char               *source;     /* names the trace in errors */
  gint64              first_t;
  gint64              last_t;
  gint64              day;        /* start of the current day; -1 before any */
  gboolean            failed;
  gboolean            finished;
  VmemReplayCaseFunc  on_case;
  gpointer            user_data;
};

static const char *const estimator_names[] = { "vmemd", "vpa", "vpa-upper", "static" };

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
               "estimator: unknown value '%s' (use vmemd, vpa, vpa-upper or static)", s ? s : "");
  return FALSE;
}

static void
workload_free (gpointer data)
{
  Workload *w = data;
  g_free (w->name);
  vmem_workload_agg_free (w->vpa);
  g_ptr_array_unref (w->members);
  g_free (w);
}

static void
domain_free (gpointer data)
{
  Domain *d = data;
  g_free (d->name);
  g_free (d);
}

VmemReplay *
vmem_replay_new (const VmemEstimatorConfig *config, gboolean first_start,
                 VmemReplayCaseFunc on_case, gpointer user_data, GError **error)
{
  g_return_val_if_fail (config != NULL, NULL);

  g_autoptr(VmemDemand) demand = vmem_demand_new (config, error);
  if (demand == NULL)
    return NULL;
  VmemReplay *r = g_new0 (VmemReplay, 1);
  r->config = *config;
  vmem_estimator_config_init (&r->vpa_config);
  r->vpa_config.half_life_hours = VPA_HALF_LIFE_H;
  r->demand = g_steal_pointer (&demand);
  r->first_start = first_start;
  r->workloads = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, workload_free);
  r->domains = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, domain_free);
  r->rows = g_array_new (FALSE, FALSE, sizeof (DayRow));
  r->active = g_ptr_array_new ();
  r->day = -1;
  r->on_case = on_case;
  r->user_data = user_data;
  return r;
}

void
vmem_replay_free (VmemReplay *r)
{
  if (r == NULL)
    return;
  vmem_demand_free (r->demand);
  g_hash_table_destroy (r->workloads);
  g_hash_table_destroy (r->domains);
  g_array_unref (r->rows);
  g_ptr_array_unref (r->active);
  g_free (r->source);
  g_free (r);
}

static const char *
source_name (const char *source)
{
  return source != NULL ? source : "trace";
}

static guint64
mib_to_kib_ceil (double mib)
{
  return (guint64) ceil (mib * 1024.0 - 1e-6);
}

/* Sizes @d's start at the current day boundary; the VmemDemand and the
 * VPA aggregates hold only the samples before it. */
static gboolean
replay_estimate (VmemReplay *r, Domain *d, GError **error)
{
  VmemReplayCase *c = &d->c;
  double memory_mib = (double) d->ceiling_kib / 1024.0;

  memset (c, 0, sizeof *c);
  c->t = r->day;
  c->ceiling_kib = d->ceiling_kib;

  VmemEstimateTarget target = {
    .uuid = d->name,
    .exclude_self = r->first_start,
    .vcpus = d->vcpus,
    .memory_mib = memory_mib,
    .no_peer_list = TRUE,
  };
  vmem_demand_set_memory (r->demand, d->workload->name, d->name, memory_mib);
  g_autoptr(VmemEstimate) e = vmem_demand_estimate (r->demand, d->workload->name, NULL, &target,
                                                    r->day, error);
  if (e == NULL)
    return FALSE;
  /* Its outcome, complete a day later, calibrates the starts after it. */
  if (!vmem_demand_start (r->demand, d->workload->name, d->name, e, r->day, error))
    return FALSE;
  c->peers = e->n_peers;
  c->own = e->source == VMEM_SOURCE_OWN;
  c->estimate_kib[VMEM_REPLAY_VMEMD] = mib_to_kib_ceil (e->value_mib);
  c->source[VMEM_REPLAY_VMEMD] = vmem_estimate_source_to_string (e->source);

  /* VPA pools the workload's daily peaks, the domain's own among them
   * unless this is a first start. */
  const char *exclude = r->first_start ? d->name : NULL;
  double q = 0, upper = 0;
  if (vmem_workload_agg_pooled_quantile (d->workload->vpa, exclude, VPA_QUANTILE, r->day, &q,
                                         NULL) &&
      vmem_workload_agg_pooled_quantile (d->workload->vpa, exclude, VPA_UPPER_QUANTILE, r->day,
                                         &upper, NULL))
    {
      gint64 first = G_MAXINT64;
      for (guint i = 0; i < d->workload->members->len; i++)
        {
          const Domain *m = g_ptr_array_index (d->workload->members, i);
          if (m->first_day >= 0 && (exclude == NULL || m != d))
            first = MIN (first, m->first_day);
        }
      double days = MAX ((double) (r->day - first) / VMEM_REPLAY_DAY, 1.0 / 24);
      c->estimate_kib[VMEM_REPLAY_VPA] = mib_to_kib_ceil (MIN (q * (1.0 + VPA_MARGIN),
                                                               memory_mib));
      c->estimate_kib[VMEM_REPLAY_VPA_UPPER] =
        mib_to_kib_ceil (MIN (upper * (1.0 + VPA_MARGIN) * (1.0 + 1.0 / days), memory_mib));
      c->source[VMEM_REPLAY_VPA] = vmem_estimate_source_to_string (VMEM_SOURCE_PEERS);
      c->source[VMEM_REPLAY_VPA_UPPER] = c->source[VMEM_REPLAY_VPA];
    }
  else
    {
      for (guint k = VMEM_REPLAY_VPA; k <= VMEM_REPLAY_VPA_UPPER; k++)
        {
          c->estimate_kib[k] = d->ceiling_kib;
          c->source[k] = vmem_estimate_source_to_string (VMEM_SOURCE_FALLBACK_DOMAIN_MEMORY);
        }
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

/* The day is over: sizes its starts from what came before it, observes
 * its samples, reports its cases, and lets its daily peaks into the VPA
 * aggregates for the days after. */
static gboolean
replay_close_day (VmemReplay *r, GError **error)
{
  g_ptr_array_sort (r->active, domain_cmp);
  for (guint i = 0; i < r->active->len; i++)
    {
      Domain *d = g_ptr_array_index (r->active, i);
      d->has_case = r->day >= r->first_t;
      if (d->has_case && !replay_estimate (r, d, error))
        return FALSE;
    }

  for (guint i = 0; i < r->rows->len; i++)
    {
      const DayRow *row = &g_array_index (r->rows, DayRow, i);
      Domain *d = row->domain;
      VmemPeakSample s = {
        .uuid = d->name,
        .domain = d->name,
        .t = row->t,
        .used_mib = (double) row->used_kib / 1024.0,
        .guest = TRUE,
        .vcpus = row->vcpus,
      };
      VmemPeakObs out[2];
      if (!vmem_demand_observe (r->demand, d->workload->name, &s, out, error))
        {
          g_prefix_error (error, "%s:%" G_GUINT64_FORMAT ": ", source_name (r->source),
                          row->line);
          return FALSE;
        }
      d->day_peak = out[1];
    }

  for (guint i = 0; i < r->active->len; i++)
    {
      Domain *d = g_ptr_array_index (r->active, i);
      if (!d->has_case)
        continue;
      d->c.domain = d->name;
      d->c.workload = d->workload->name;
      /* Exact: the peak is a whole number of KiB over 1024. */
      d->c.peak_kib = (guint64) llround (d->day_peak.peak_mib * 1024.0);
      if (r->on_case != NULL)
        r->on_case (&d->c, r->user_data);
    }

  for (guint i = 0; i < r->active->len; i++)
    {
      Domain *d = g_ptr_array_index (r->active, i);
      VmemPeakObs obs = d->day_peak;
      obs.uuid = d->name;
      obs.domain = d->name;
      obs.host = NULL;
      if (!vmem_workload_agg_add (d->workload->vpa, &obs, error))
        return FALSE;
      if (d->first_day < 0)
        d->first_day = obs.start_t;
      d->active = FALSE;
      d->has_case = FALSE;
    }
  g_ptr_array_set_size (r->active, 0);
  g_array_set_size (r->rows, 0);
  return TRUE;
}

static gboolean
replay_feed (VmemReplay *r, const VmemTraceRow *row, const char *source, GError **error)
{
  if (r->day >= 0 && row->t < r->last_t)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s:%" G_GUINT64_FORMAT ": time: %" G_GINT64_FORMAT " is before the "
                   "previous row's %" G_GINT64_FORMAT, source_name (source), row->line, row->t,
                   r->last_t);
      return FALSE;
    }
  if (row->domain == NULL || row->workload == NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s:%" G_GUINT64_FORMAT ": %s: must be set", source_name (source), row->line,
                   row->domain == NULL ? "domain" : "workload");
      return FALSE;
    }

  Domain *d = g_hash_table_lookup (r->domains, row->domain);
  if (d != NULL && !g_str_equal (d->workload->name, row->workload))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s:%" G_GUINT64_FORMAT ": workload: domain '%s' was in workload '%s' "
                   "before, now '%s'", source_name (source), row->line, row->domain,
                   d->workload->name, row->workload);
      return FALSE;
    }

  if (g_strcmp0 (r->source, source) != 0)
    {
      g_free (r->source);
      r->source = g_strdup (source);
    }
  gint64 day = vmem_peak_start (row->t, VMEM_REPLAY_DAY);
  if (r->day < 0)
    r->first_t = row->t;
  else if (day != r->day && !replay_close_day (r, error))
    return FALSE;
  r->day = day;
  r->last_t = row->t;

  if (d == NULL)
    {
      Workload *w = g_hash_table_lookup (r->workloads, row->workload);
      if (w == NULL)
        {
          w = g_new0 (Workload, 1);
          w->name = g_strdup (row->workload);
          w->vpa = vmem_workload_agg_new (&r->vpa_config, NULL);
          w->members = g_ptr_array_new ();
          g_hash_table_insert (r->workloads, w->name, w);
        }
      d = g_new0 (Domain, 1);
      d->name = g_strdup (row->domain);
      d->workload = w;
      d->first_day = -1;
      g_ptr_array_add (w->members, d);
      g_hash_table_insert (r->domains, d->name, d);
    }
  if (!d->active)
    {
      /* The domain's first sample of the day: it "starts" at the boundary
       * with the <memory> and vCPUs it has now. */
      d->active = TRUE;
      d->ceiling_kib = row->ceiling_kib;
      d->vcpus = row->vcpus;
      g_ptr_array_add (r->active, d);
    }
  DayRow dr = {
    .t = row->t,
    .domain = d,
    .vcpus = row->vcpus,
    .used_kib = row->used_kib,
    .line = row->line,
  };
  g_array_append_val (r->rows, dr);
  return TRUE;
}

gboolean
vmem_replay_feed (VmemReplay *r, const VmemTraceRow *row, const char *source, GError **error)
{
  g_return_val_if_fail (r != NULL && row != NULL, FALSE);
  g_return_val_if_fail (!r->finished, FALSE);

  if (r->failed)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "the replay stopped at an earlier error");
      return FALSE;
    }
  if (!replay_feed (r, row, source, error))
    {
      r->failed = TRUE;
      return FALSE;
    }
  return TRUE;
}

gboolean
vmem_replay_finish (VmemReplay *r, GError **error)
{
  g_return_val_if_fail (r != NULL, FALSE);

  if (r->failed)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "the replay stopped at an earlier error");
      return FALSE;
    }
  if (r->finished)
    return TRUE;
  r->finished = TRUE;
  if (r->day >= 0 && !replay_close_day (r, error))
    {
      r->failed = TRUE;
      return FALSE;
    }
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
