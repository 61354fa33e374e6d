/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-metrics.h"

#include <math.h>
#include <string.h>

#define MIB 1048576.0

/* Bounds, in seconds, of the histograms.  A collector cycle is one stats
 * call and the handling of its samples; a hook call is answered from
 * memory, within the hook's timeout (2 s by default). */
static const double cycle_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
static const double hook_bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                      0.05,   0.1,   0.25,   0.5,   1,    2.5 };
G_STATIC_ASSERT (G_N_ELEMENTS (cycle_bounds) <= VMEM_METRICS_MAX_BUCKETS);
G_STATIC_ASSERT (G_N_ELEMENTS (hook_bounds) <= VMEM_METRICS_MAX_BUCKETS);

static const char *const hook_ops[] = {
  "prepare", "start",   "started",   "stopped", "release",
  "migrate", "restore", "reconnect", "attach",  "other",
};
static const char *const hook_results[] = { "allowed", "refused", "error" };
static const char *const writes[] = {
  "samples", "domain", "run-open", "run-close", "plan", "heartbeat", "prune", "move",
  "outcome",
};
static const char *const stages[] = {
  "staged", "unchanged", "observed", "deferred", "skipped", "gone", "failed",
};
static const char *const moves[] = { "grow", "shrink", "stuck", "other" };
static const VmemEstimateSource sources[] = {
  VMEM_SOURCE_PEERS,
  VMEM_SOURCE_PROFILE,
  VMEM_SOURCE_FALLBACK_DOMAIN_MEMORY,
  VMEM_SOURCE_NONE,
};
G_STATIC_ASSERT (G_N_ELEMENTS (hook_ops) == VMEM_METRICS_N_HOOK_OPS);
G_STATIC_ASSERT (G_N_ELEMENTS (hook_results) == VMEM_METRICS_N_HOOK_RESULTS);
G_STATIC_ASSERT (G_N_ELEMENTS (writes) == VMEM_METRICS_N_WRITES);
G_STATIC_ASSERT (G_N_ELEMENTS (stages) == VMEM_METRICS_N_STAGES);
G_STATIC_ASSERT (G_N_ELEMENTS (moves) == VMEM_METRICS_N_MOVES);

/* ---- counters ----------------------------------------------------------- */

static void
observe (VmemMetricsHistogram *h, const double *bounds, guint n_bounds, double v)
{
  if (!isfinite (v) || v < 0)
    v = 0;
  guint i = 0;
  while (i < n_bounds && v > bounds[i])
    i++;
  h->counts[i]++;
  h->count++;
  h->sum += v;
}

void
vmem_metrics_collector_cycle (VmemMetricsCounters *c, gboolean ok, double seconds)
{
  c->collector_cycles[ok ? 0 : 1]++;
  observe (&c->collector_cycle, cycle_bounds, G_N_ELEMENTS (cycle_bounds), seconds);
}

VmemMetricsHookOp
vmem_metrics_hook_op (const char *op)
{
  for (guint i = 0; op != NULL && i < VMEM_METRICS_HOOK_OTHER; i++)
    if (g_str_equal (op, hook_ops[i]))
      return (VmemMetricsHookOp) i;
  return VMEM_METRICS_HOOK_OTHER;
}

void
vmem_metrics_hook_request (VmemMetricsCounters *c, VmemMetricsHookOp op,
                           VmemMetricsHookResult result, double seconds)
{
  g_return_if_fail ((guint) op < VMEM_METRICS_N_HOOK_OPS);
  g_return_if_fail ((guint) result < VMEM_METRICS_N_HOOK_RESULTS);
  c->hook_requests[op][result]++;
  observe (&c->hook_duration[op], hook_bounds, G_N_ELEMENTS (hook_bounds), seconds);
}

void
vmem_metrics_move (VmemMetricsCounters *c, const char *action, gboolean applied)
{
  guint i = 0;
  while (i < VMEM_METRICS_MOVE_OTHER && g_strcmp0 (action, moves[i]) != 0)
    i++;
  c->moves[i][applied ? 1 : 0]++;
}

/* ---- snapshot ------------------------------------------------------------ */

static void
domain_free (VmemMetricsDomain *d)
{
  g_free (d->name);
  g_free (d->workload);
  g_free (d);
}

static void
workload_free (VmemMetricsWorkload *w)
{
  g_free (w->name);
  g_free (w);
}

VmemMetricsSnapshot *
vmem_metrics_snapshot_new (const char *version)
{
  VmemMetricsSnapshot *s = g_new0 (VmemMetricsSnapshot, 1);
  s->version = g_strdup (version ? version : "");
  s->domains = g_ptr_array_new_with_free_func ((GDestroyNotify) domain_free);
  s->workloads = g_ptr_array_new_with_free_func ((GDestroyNotify) workload_free);
  return s;
}

void
vmem_metrics_snapshot_free (VmemMetricsSnapshot *s)
{
  if (s == NULL)
    return;
  g_free (s->version);
  g_ptr_array_unref (s->domains);
  g_ptr_array_unref (s->workloads);
  g_free (s);
}

VmemMetricsDomain *
vmem_metrics_snapshot_add_domain (VmemMetricsSnapshot *s, const char *name, const char *workload)
{
  VmemMetricsDomain *d = g_new0 (VmemMetricsDomain, 1);
  d->name = g_strdup (name ? name : "");
  d->workload = g_strdup (workload ? workload : "");
  g_ptr_array_add (s->domains, d);
  return d;
}

VmemMetricsWorkload *
vmem_metrics_snapshot_add_workload (VmemMetricsSnapshot *s, const char *name)
{
  VmemMetricsWorkload *w = g_new0 (VmemMetricsWorkload, 1);
  w->name = g_strdup (name ? name : "");
  g_ptr_array_add (s->workloads, w);
  return w;
}

void
vmem_metrics_workload_set_estimate (VmemMetricsWorkload *w, const VmemEstimate *e)
{
  w->has_estimate = e != NULL;
  if (e == NULL)
    return;
  w->source = e->source;
  w->estimate_mib = e->demand_mib;
  w->peers = e->n_peers;
  w->history_hours = e->history_hours;
  w->margin_pct = e->margin_pct;
  w->effective_margin_pct = e->effective_margin_pct;
  w->observed_risk = e->calibration.observed_pct / 100.0;
}

/* ---- output --------------------------------------------------------------- */

const char *
vmem_metrics_format_to_string (VmemMetricsFormat format)
{
  return format == VMEM_METRICS_PROMETHEUS ? "prometheus" : "openmetrics";
}

gboolean
vmem_metrics_format_from_string (const char *text, VmemMetricsFormat *format)
{
  if (g_strcmp0 (text, "openmetrics") == 0)
    *format = VMEM_METRICS_OPENMETRICS;
  else if (g_strcmp0 (text, "prometheus") == 0)
    *format = VMEM_METRICS_PROMETHEUS;
  else
    return FALSE;
  return TRUE;
}

typedef enum {
  TYPE_GAUGE,
  TYPE_COUNTER,
  TYPE_HISTOGRAM,
  TYPE_INFO,
} Type;

static const char *const type_names[] = { "gauge", "counter", "histogram", "info" };

/* Writes the families as text or JSON, one family, then its samples. */
typedef struct {
  VmemMetricsFormat format;
  GString *text;         /* NULL: JSON */
  json_object *families; /* JSON */
  json_object *samples;  /* JSON: the current family's */
  const char *name;      /* the current family */
} Writer;

/* The shortest text that reads back as @v. */
static void
append_double (GString *s, double v)
{
  if (isnan (v))
    g_string_append (s, "NaN");
  else if (isinf (v))
    g_string_append (s, v > 0 ? "+Inf" : "-Inf");
  else if (v == 0)
    g_string_append_c (s, '0');
  else if (v == floor (v) && fabs (v) < 9007199254740992.0)
    g_string_append_printf (s, "%.0f", v);
  else
    {
      static const char *const formats[] = { "%.15g", "%.16g", "%.17g" };
      char buf[G_ASCII_DTOSTR_BUF_SIZE];
      for (guint i = 0; i < G_N_ELEMENTS (formats); i++)
        {
          g_ascii_formatd (buf, sizeof buf, formats[i], v);
          if (g_ascii_strtod (buf, NULL) == v)
            break;
        }
      g_string_append (s, buf);
    }
}

static void
append_escaped (GString *s, const char *text, gboolean quotes)
{
  g_autofree char *valid = g_utf8_make_valid (text, -1);
  for (const char *p = valid; *p != '\0'; p++)
    {
      if (*p == '\\')
        g_string_append (s, "\\\\");
      else if (*p == '\n')
        g_string_append (s, "\\n");
      else if (*p == '"' && quotes)
        g_string_append (s, "\\\"");
      else
        g_string_append_c (s, *p);
    }
}

static void
family (Writer *w, const char *name, Type type, const char *unit, const char *help)
{
  w->name = name;
  if (w->text == NULL)
    {
      json_object *f = json_object_new_object ();
      json_object_object_add (f, "name", json_object_new_string (name));
      json_object_object_add (f, "type", json_object_new_string (type_names[type]));
      if (unit != NULL)
        json_object_object_add (f, "unit", json_object_new_string (unit));
      json_object_object_add (f, "help", json_object_new_string (help));
      w->samples = json_object_new_array ();
      json_object_object_add (f, "samples", w->samples);
      json_object_array_add (w->families, f);
      return;
    }
  if (w->format == VMEM_METRICS_OPENMETRICS)
    {
      g_string_append_printf (w->text, "# TYPE %s %s\n", name, type_names[type]);
      if (unit != NULL)
        g_string_append_printf (w->text, "# UNIT %s %s\n", name, unit);
      g_string_append_printf (w->text, "# HELP %s ", name);
      append_escaped (w->text, help, TRUE);
      g_string_append_c (w->text, '\n');
      return;
    }
  /* Prometheus text 0.0.4: the metadata names the samples. */
  const char *suffix = type == TYPE_COUNTER ? "_total" : type == TYPE_INFO ? "_info" : "";
  g_string_append_printf (w->text, "# HELP %s%s ", name, suffix);
  append_escaped (w->text, help, FALSE);
  g_string_append_printf (w->text, "\n# TYPE %s%s %s\n", name, suffix,
                          type == TYPE_INFO ? "gauge" : type_names[type]);
}

/* One sample of the current family: its name and @suffix, @labels (name,
 * value, ..., NULL; NULL for none) and @value. */
static void
sample (Writer *w, const char *suffix, const char *const *labels, double value)
{
  if (w->text == NULL)
    {
      json_object *o = json_object_new_object ();
      g_autofree char *full = g_strconcat (w->name, suffix, NULL);
      json_object_object_add (o, "name", json_object_new_string (full));
      json_object *jl = json_object_new_object ();
      for (guint i = 0; labels != NULL && labels[i] != NULL; i += 2)
        json_object_object_add (jl, labels[i], json_object_new_string (labels[i + 1]));
      json_object_object_add (o, "labels", jl);
      if (isfinite (value) && value == floor (value) && fabs (value) < 9007199254740992.0)
        json_object_object_add (o, "value", json_object_new_int64 ((gint64) value));
      else
        json_object_object_add (o, "value", json_object_new_double (value));
      json_object_array_add (w->samples, o);
      return;
    }
  g_string_append (w->text, w->name);
  g_string_append (w->text, suffix);
  if (labels != NULL && labels[0] != NULL)
    {
      g_string_append_c (w->text, '{');
      for (guint i = 0; labels[i] != NULL; i += 2)
        {
          g_string_append_printf (w->text, "%s%s=\"", i > 0 ? "," : "", labels[i]);
          append_escaped (w->text, labels[i + 1], TRUE);
          g_string_append_c (w->text, '"');
        }
      g_string_append_c (w->text, '}');
    }
  g_string_append_c (w->text, ' ');
  append_double (w->text, value);
  g_string_append_c (w->text, '\n');
}

#define L(...) ((const char *const[]){ __VA_ARGS__, NULL })

static void
histogram (Writer *w, const char *label, const char *value, const double *bounds, guint n_bounds,
           const VmemMetricsHistogram *h)
{
  guint64 below = 0;
  for (guint i = 0; i <= n_bounds; i++)
    {
      GString *le = g_string_new (NULL);
      if (i < n_bounds)
        append_double (le, bounds[i]);
      else
        g_string_append (le, "+Inf");
      below += h->counts[i];
      if (label != NULL)
        sample (w, "_bucket", L (label, value, "le", le->str), (double) below);
      else
        sample (w, "_bucket", L ("le", le->str), (double) below);
      g_string_free (le, TRUE);
    }
  const char *const *labels = label != NULL ? L (label, value) : NULL;
  sample (w, "_count", labels, (double) h->count);
  sample (w, "_sum", labels, h->sum);
}

static double
bytes (guint64 mib)
{
  return (double) mib * MIB;
}

/* A gauge of every domain that has the figure. */
typedef gboolean (*DomainFigure) (const VmemMetricsDomain *d, double *value);

static void
domain_gauge (Writer *w, const VmemMetricsSnapshot *s, const char *name, const char *unit,
              const char *help, DomainFigure figure)
{
  family (w, name, TYPE_GAUGE, unit, help);
  for (guint i = 0; i < s->domains->len; i++)
    {
      const VmemMetricsDomain *d = g_ptr_array_index (s->domains, i);
      double v;
      if (figure (d, &v))
        sample (w, "", L ("domain", d->name, "workload", d->workload), v);
    }
}

static gboolean
fig_running (const VmemMetricsDomain *d, double *v)
{
  *v = d->running ? 1 : 0;
  return TRUE;
}

static gboolean
fig_memory (const VmemMetricsDomain *d, double *v)
{
  *v = bytes (d->memory_mib);
  return TRUE;
}

static gboolean
fig_demand (const VmemMetricsDomain *d, double *v)
{
  *v = bytes (d->demand_mib);
  return d->demand_mib > 0;
}

static gboolean
fig_target (const VmemMetricsDomain *d, double *v)
{
  *v = bytes (d->target_mib);
  return d->running && d->has_target;
}

static gboolean
fig_actual (const VmemMetricsDomain *d, double *v)
{
  *v = bytes (d->actual_mib);
  return d->running && d->actual_mib > 0;
}

static gboolean
fig_used (const VmemMetricsDomain *d, double *v)
{
  *v = bytes (d->used_mib);
  return d->running && d->has_used;
}

static gboolean
fig_available (const VmemMetricsDomain *d, double *v)
{
  *v = bytes (d->available_mib);
  return d->running && d->has_used;
}

/* A gauge of every workload that has the figure. */
typedef gboolean (*WorkloadFigure) (const VmemMetricsWorkload *wl, double *value);

static void
workload_gauge (Writer *w, const VmemMetricsSnapshot *s, const char *name, const char *unit,
                const char *help, WorkloadFigure figure)
{
  family (w, name, TYPE_GAUGE, unit, help);
  for (guint i = 0; i < s->workloads->len; i++)
    {
      const VmemMetricsWorkload *wl = g_ptr_array_index (s->workloads, i);
      double v;
      if (figure (wl, &v))
        sample (w, "", L ("workload", wl->name), v);
    }
}

static gboolean
fig_domains (const VmemMetricsWorkload *wl, double *v)
{
  *v = wl->domains;
  return TRUE;
}

static gboolean
fig_estimate (const VmemMetricsWorkload *wl, double *v)
{
  *v = bytes (wl->estimate_mib);
  return wl->has_estimate && wl->estimate_mib > 0;
}

static gboolean
fig_peers (const VmemMetricsWorkload *wl, double *v)
{
  *v = wl->peers;
  return wl->has_estimate;
}

static gboolean
fig_history (const VmemMetricsWorkload *wl, double *v)
{
  *v = wl->history_hours * 3600.0;
  return wl->has_estimate && wl->peers > 0;
}

static gboolean
from_peers (const VmemMetricsWorkload *wl)
{
  return wl->has_estimate && (wl->source == VMEM_SOURCE_PEERS || wl->source == VMEM_SOURCE_OWN);
}

static gboolean
fig_margin (const VmemMetricsWorkload *wl, double *v)
{
  *v = wl->margin_pct / 100.0;
  return from_peers (wl);
}

static gboolean
fig_effective_margin (const VmemMetricsWorkload *wl, double *v)
{
  *v = wl->effective_margin_pct / 100.0;
  return from_peers (wl);
}

static gboolean
fig_observed_risk (const VmemMetricsWorkload *wl, double *v)
{
  *v = wl->observed_risk;
  return from_peers (wl);
}

static void
gauge (Writer *w, const char *name, const char *unit, const char *help, double value)
{
  family (w, name, TYPE_GAUGE, unit, help);
  sample (w, "", NULL, value);
}

/* A counter with one label over every value of it. */
static void
counter_by (Writer *w, const char *name, const char *help, const char *label,
            const char *const *values, guint n, const guint64 *counts)
{
  family (w, name, TYPE_COUNTER, NULL, help);
  for (guint i = 0; i < n; i++)
    sample (w, "_total", L (label, values[i]), (double) counts[i]);
}

static void
write_all (Writer *w, const VmemMetricsSnapshot *s)
{
  const VmemMetricsCounters *c = &s->counters;

  /* The daemon and the host. */
  family (w, "vmemd_build", TYPE_INFO, NULL, "The version of vmemd.");
  sample (w, "_info", L ("version", s->version), 1);
  gauge (w, "vmemd_start_time_seconds", "seconds", "When vmemd started, in unix time.",
         (double) s->started_at);
  gauge (w, "vmemd_ready", NULL,
         "1 once vmemd has read every domain: until then admission cannot know what is "
         "committed.",
         s->ready ? 1 : 0);
  gauge (w, "vmemd_libvirt_connected", NULL, "1 while vmemd is connected to libvirt.",
         s->libvirt_connected ? 1 : 0);
  gauge (w, "vmemd_host_capacity_bytes", "bytes",
         "Memory usable by guests: the host's memory (or [admission] capacity) less the reserve.",
         bytes (s->capacity_mib));
  gauge (w, "vmemd_host_reserve_bytes", "bytes",
         "Memory kept back for the host ([admission] reserve).", bytes (s->reserve_mib));
  gauge (w, "vmemd_host_committed_bytes", "bytes",
         "Memory committed: every running domain at its balloon size, and every boot "
         "reservation.",
         bytes (s->committed_mib));
  gauge (w, "vmemd_host_boot_reservations", NULL,
         "Boot reservations held: starts admitted and not yet running.", s->boot_reservations);
  gauge (w, "vmemd_host_boot_reserved_bytes", "bytes", "Memory held by boot reservations.",
         bytes (s->boot_reserved_mib));
  gauge (w, "vmemd_store_samples_buffered", NULL,
         "Samples kept in memory until the store can be written.",
         (double) s->store_samples_buffered);
  gauge (w, "vmemd_store_writes_buffered", NULL,
         "Other writes (domains, runs opened and closed, plans, moves, outcomes) kept in memory "
         "until the store can be written, to be written in their order.",
         (double) s->store_writes_buffered);

  /* Managed domains. */
  domain_gauge (w, s, "vmemd_domain_running", NULL, "1 while the managed domain runs.",
                fig_running);
  domain_gauge (w, s, "vmemd_domain_memory_bytes", "bytes",
                "The managed domain's maximum memory (its <memory>).", fig_memory);
  domain_gauge (w, s, "vmemd_domain_demand_bytes", "bytes",
                "The demand staged in the domain's definition for its next start.", fig_demand);
  domain_gauge (w, s, "vmemd_domain_target_bytes", "bytes",
                "The on-demand controller's target for the running domain.", fig_target);
  domain_gauge (w, s, "vmemd_domain_actual_bytes", "bytes", "The running domain's balloon size.",
                fig_actual);
  domain_gauge (w, s, "vmemd_domain_used_bytes", "bytes",
                "Memory the running guest uses, as it reports it.", fig_used);
  domain_gauge (w, s, "vmemd_domain_available_bytes", "bytes",
                "Memory available in the running guest (its MemAvailable).", fig_available);

  /* Workloads: the estimate for a new domain, and its calibration. */
  workload_gauge (w, s, "vmemd_workload_domains", NULL, "Managed domains of the workload.",
                  fig_domains);
  workload_gauge (w, s, "vmemd_workload_estimate_bytes", "bytes",
                  "The demand estimated now for a new domain of the workload (per vCPU with "
                  "scale per-vcpu).",
                  fig_estimate);
  family (w, "vmemd_workload_estimate_source", TYPE_GAUGE, NULL,
          "Where the estimate comes from: 1 for its source, 0 for the others.");
  for (guint i = 0; i < s->workloads->len; i++)
    {
      const VmemMetricsWorkload *wl = g_ptr_array_index (s->workloads, i);
      for (guint k = 0; wl->has_estimate && k < G_N_ELEMENTS (sources); k++)
        sample (w, "",
                L ("workload", wl->name, "source", vmem_estimate_source_to_string (sources[k])),
                wl->source == sources[k] ? 1 : 0);
    }
  workload_gauge (w, s, "vmemd_workload_peers", NULL,
                  "Peers (domains of the workload) with history behind the estimate.", fig_peers);
  workload_gauge (w, s, "vmemd_workload_history_seconds", "seconds",
                  "Age of the oldest peak the estimate uses.", fig_history);
  workload_gauge (w, s, "vmemd_workload_margin_ratio", "ratio",
                  "The margin on top of the peers' quantile, as configured (0.15 is 15 %).",
                  fig_margin);
  workload_gauge (w, s, "vmemd_workload_effective_margin_ratio", "ratio",
                  "The margin as applied: calibrated to the risk, or the configured one.", fig_effective_margin);
  workload_gauge (w, s, "vmemd_workload_observed_risk_ratio", "ratio",
                  "The share of the workload's checked starts that needed more than they were given.", fig_observed_risk);

  /* What the daemon did since it started. */
  counter_by (w, "vmemd_collector_cycles", "Collector cycles: statistics read, or failed.",
              "result", (const char *const[]){ "read", "failed" }, 2, c->collector_cycles);
  family (w, "vmemd_collector_cycles_skipped", TYPE_COUNTER, NULL,
          "Collector cycles skipped: due while the one before had not finished.");
  sample (w, "_total", NULL, (double) c->collector_skipped);
  family (w, "vmemd_collector_cycle_duration_seconds", TYPE_HISTOGRAM, "seconds",
          "Time of a collector cycle, from its statistics call to its samples handled.");
  histogram (w, NULL, NULL, cycle_bounds, G_N_ELEMENTS (cycle_bounds), &c->collector_cycle);

  family (w, "vmemd_hook_requests", TYPE_COUNTER, NULL,
          "Calls of the libvirt hook, by op and by what they got.");
  for (guint op = 0; op < VMEM_METRICS_N_HOOK_OPS; op++)
    for (guint r = 0; r < VMEM_METRICS_N_HOOK_RESULTS; r++)
      sample (w, "_total", L ("op", hook_ops[op], "result", hook_results[r]),
              (double) c->hook_requests[op][r]);
  family (w, "vmemd_hook_request_duration_seconds", TYPE_HISTOGRAM, "seconds",
          "Time vmemd takes to answer a hook call, from its receipt to the reply.");
  for (guint op = 0; op < VMEM_METRICS_N_HOOK_OPS; op++)
    histogram (w, "op", hook_ops[op], hook_bounds, G_N_ELEMENTS (hook_bounds),
               &c->hook_duration[op]);

  counter_by (w, "vmemd_store_writes", "Writes to the store that ended, failed or not.", "write",
              writes, VMEM_METRICS_N_WRITES, c->store_writes);
  counter_by (w, "vmemd_store_write_errors", "Writes to the store that failed.", "write", writes,
              VMEM_METRICS_N_WRITES, c->store_write_errors);
  counter_by (w, "vmemd_stages",
              "Stage jobs (a plan into a domain's definition, at start-up or on a change), "
              "by outcome.",
              "outcome", stages, VMEM_METRICS_N_STAGES, c->stages);
  family (w, "vmemd_controller_moves", TYPE_COUNTER, NULL,
          "Moves of the on-demand controller, by action and whether they were applied.");
  for (guint a = 0; a < VMEM_METRICS_N_MOVES; a++)
    for (guint applied = 0; applied < 2; applied++)
      sample (w, "_total", L ("action", moves[a], "applied", applied ? "true" : "false"),
              (double) c->moves[a][applied]);
  family (w, "vmemd_textfile_write_errors", TYPE_COUNTER, NULL,
          "Writes of the metrics textfile ([daemon] metrics_textfile) that failed.");
  sample (w, "_total", NULL, (double) c->textfile_errors);
  family (w, "vmemd_store_samples_dropped", TYPE_COUNTER, NULL,
          "Samples never written: the store could not be reached and [store] buffer_samples "
          "were already kept.");
  sample (w, "_total", NULL, (double) c->store_samples_dropped);
  family (w, "vmemd_store_writes_dropped", TYPE_COUNTER, NULL,
          "Other writes never written: the store could not be reached and [store] "
          "buffer_writes were already kept, or the store refused them for good.");
  sample (w, "_total", NULL, (double) c->store_writes_dropped);
}

char *
vmem_metrics_format (const VmemMetricsSnapshot *s, VmemMetricsFormat format)
{
  Writer w = { .format = format, .text = g_string_sized_new (16384) };
  write_all (&w, s);
  if (format == VMEM_METRICS_OPENMETRICS)
    g_string_append (w.text, "# EOF\n");
  return g_string_free (w.text, FALSE);
}

json_object *
vmem_metrics_to_json (const VmemMetricsSnapshot *s)
{
  Writer w = { .families = json_object_new_array () };
  write_all (&w, s);
  return w.families;
}
