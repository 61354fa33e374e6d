/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The metrics formatter on constructed snapshots (vmem-metrics), and the
 * textfile writer (vmem-textfile).  Real parsers read the same output in
 * test_metrics_text.py. */
#include "metrics-sample.h"
#include "vmem-metrics.h"
#include "vmem-textfile.h"

#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

/* ---- helpers ------------------------------------------------------------ */

static gboolean
has_line (const char *text, const char *line)
{
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  return g_strv_contains ((const char *const *) lines, line);
}

static void
assert_line (const char *text, const char *line)
{
  if (!has_line (text, line))
    fail_msg ("no line '%s' in:\n%s", line, text);
}

static void
assert_no_line_starting (const char *text, const char *prefix)
{
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], prefix))
      fail_msg ("unexpected line '%s'", lines[i]);
}

static guint
count_lines_starting (const char *text, const char *prefix)
{
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  guint n = 0;
  for (guint i = 0; lines[i] != NULL; i++)
    n += g_str_has_prefix (lines[i], prefix);
  return n;
}

/* The sample lines (not comments) of @text, in order. */
static char *
samples_of (const char *text)
{
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  GString *s = g_string_new (NULL);
  for (guint i = 0; lines[i] != NULL; i++)
    if (lines[i][0] != '#' && lines[i][0] != '\0')
      g_string_append_printf (s, "%s\n", lines[i]);
  return g_string_free (s, FALSE);
}

static char *
format_counters (const VmemMetricsCounters *c, VmemMetricsFormat format)
{
  g_autoptr(VmemMetricsSnapshot) s = vmem_metrics_snapshot_new ("1.2.3");
  s->counters = *c;
  return vmem_metrics_format (s, format);
}

/* ---- counters ----------------------------------------------------------- */

static void
test_histogram (void **state)
{
  VmemMetricsCounters c = { 0 };
  vmem_metrics_collector_cycle (&c, TRUE, 0.005);  /* on a bound: in its bucket */
  vmem_metrics_collector_cycle (&c, TRUE, 0.0051); /* just above it: the next */
  vmem_metrics_collector_cycle (&c, FALSE, 11);    /* above the last bound */
  vmem_metrics_collector_cycle (&c, TRUE, NAN);    /* counted as 0 */
  vmem_metrics_collector_cycle (&c, TRUE, -1);
  c.collector_skipped = 2;

  assert_int_equal (c.collector_cycles[0], 4);
  assert_int_equal (c.collector_cycles[1], 1);
  assert_int_equal (c.collector_cycle.counts[0], 3);
  assert_int_equal (c.collector_cycle.counts[1], 1);
  assert_int_equal (c.collector_cycle.count, 5);
  assert_true (fabs (c.collector_cycle.sum - 11.0101) < 1e-9);

  g_autofree char *text = format_counters (&c, VMEM_METRICS_OPENMETRICS);
  assert_line (text, "vmemd_collector_cycles_total{result=\"read\"} 4");
  assert_line (text, "vmemd_collector_cycles_total{result=\"failed\"} 1");
  assert_line (text, "vmemd_collector_cycles_skipped_total 2");
  /* Buckets are cumulative, +Inf is the count. */
  assert_line (text, "vmemd_collector_cycle_duration_seconds_bucket{le=\"0.005\"} 3");
  assert_line (text, "vmemd_collector_cycle_duration_seconds_bucket{le=\"0.01\"} 4");
  assert_line (text, "vmemd_collector_cycle_duration_seconds_bucket{le=\"2.5\"} 4");
  assert_line (text, "vmemd_collector_cycle_duration_seconds_bucket{le=\"10\"} 4");
  assert_line (text, "vmemd_collector_cycle_duration_seconds_bucket{le=\"+Inf\"} 5");
  assert_line (text, "vmemd_collector_cycle_duration_seconds_count 5");
  assert_line (text, "vmemd_collector_cycle_duration_seconds_sum 11.0101");
}

static void
test_hook_requests (void **state)
{
  assert_int_equal (vmem_metrics_hook_op ("prepare"), VMEM_METRICS_HOOK_PREPARE);
  assert_int_equal (vmem_metrics_hook_op ("attach"), VMEM_METRICS_HOOK_ATTACH);
  assert_int_equal (vmem_metrics_hook_op ("Prepare"), VMEM_METRICS_HOOK_OTHER);
  assert_int_equal (vmem_metrics_hook_op ("other"), VMEM_METRICS_HOOK_OTHER);
  assert_int_equal (vmem_metrics_hook_op (NULL), VMEM_METRICS_HOOK_OTHER);

  VmemMetricsCounters c = { 0 };
  vmem_metrics_hook_request (&c, VMEM_METRICS_HOOK_PREPARE, VMEM_METRICS_HOOK_ALLOWED, 0.0005);
  vmem_metrics_hook_request (&c, VMEM_METRICS_HOOK_PREPARE, VMEM_METRICS_HOOK_REFUSED, 0.003);
  vmem_metrics_hook_request (&c, VMEM_METRICS_HOOK_OTHER, VMEM_METRICS_HOOK_ERROR, 0.00001);
  g_autofree char *text = format_counters (&c, VMEM_METRICS_OPENMETRICS);
  assert_line (text, "vmemd_hook_requests_total{op=\"prepare\",result=\"allowed\"} 1");
  assert_line (text, "vmemd_hook_requests_total{op=\"prepare\",result=\"refused\"} 1");
  assert_line (text, "vmemd_hook_requests_total{op=\"prepare\",result=\"error\"} 0");
  assert_line (text, "vmemd_hook_requests_total{op=\"other\",result=\"error\"} 1");
  /* Every op and result from the start, zero or not. */
  assert_line (text, "vmemd_hook_requests_total{op=\"restore\",result=\"refused\"} 0");
  assert_int_equal (count_lines_starting (text, "vmemd_hook_requests_total{"),
                    VMEM_METRICS_N_HOOK_OPS * VMEM_METRICS_N_HOOK_RESULTS);
  assert_line (text, "vmemd_hook_request_duration_seconds_bucket{op=\"prepare\",le=\"0.0005\"} 1");
  assert_line (text, "vmemd_hook_request_duration_seconds_bucket{op=\"prepare\",le=\"0.0025\"} 1");
  assert_line (text, "vmemd_hook_request_duration_seconds_bucket{op=\"prepare\",le=\"0.005\"} 2");
  assert_line (text, "vmemd_hook_request_duration_seconds_bucket{op=\"prepare\",le=\"+Inf\"} 2");
  assert_line (text, "vmemd_hook_request_duration_seconds_count{op=\"prepare\"} 2");
  assert_line (text, "vmemd_hook_request_duration_seconds_sum{op=\"prepare\"} 0.0035");
  assert_line (text, "vmemd_hook_request_duration_seconds_sum{op=\"other\"} 1e-05");
  assert_line (text, "vmemd_hook_request_duration_seconds_count{op=\"attach\"} 0");
}

static void
test_moves_stages_writes (void **state)
{
  VmemMetricsCounters c = { 0 };
  vmem_metrics_move (&c, "grow", TRUE);
  vmem_metrics_move (&c, "grow", TRUE);
  vmem_metrics_move (&c, "shrink", FALSE);
  vmem_metrics_move (&c, "stuck", TRUE);
  vmem_metrics_move (&c, "hold", TRUE);
  vmem_metrics_move (&c, NULL, FALSE);
  c.stages[VMEM_METRICS_STAGE_DEFERRED] = 3;
  c.store_writes[VMEM_METRICS_WRITE_RUN_CLOSE] = 7;
  c.store_write_errors[VMEM_METRICS_WRITE_RUN_CLOSE] = 2;
  c.textfile_errors = 5;
  c.store_samples_dropped = 11;
  c.store_writes_dropped = 4;

  g_autofree char *text = format_counters (&c, VMEM_METRICS_OPENMETRICS);
  assert_line (text, "vmemd_controller_moves_total{action=\"grow\",applied=\"true\"} 2");
  assert_line (text, "vmemd_controller_moves_total{action=\"grow\",applied=\"false\"} 0");
  assert_line (text, "vmemd_controller_moves_total{action=\"shrink\",applied=\"false\"} 1");
  assert_line (text, "vmemd_controller_moves_total{action=\"stuck\",applied=\"true\"} 1");
  assert_line (text, "vmemd_controller_moves_total{action=\"other\",applied=\"true\"} 1");
  assert_line (text, "vmemd_controller_moves_total{action=\"other\",applied=\"false\"} 1");
  assert_line (text, "vmemd_stages_total{outcome=\"deferred\"} 3");
  assert_line (text, "vmemd_stages_total{outcome=\"staged\"} 0");
  assert_line (text, "vmemd_store_writes_total{write=\"run-close\"} 7");
  assert_line (text, "vmemd_store_write_errors_total{write=\"run-close\"} 2");
  assert_line (text, "vmemd_store_write_errors_total{write=\"samples\"} 0");
  assert_line (text, "vmemd_textfile_write_errors_total 5");
  assert_line (text, "vmemd_store_samples_dropped_total 11");
  assert_line (text, "vmemd_store_writes_dropped_total 4");
}

/* ---- the two text forms ---------------------------------------------------- */

static void
test_openmetrics (void **state)
{
  g_autoptr(VmemMetricsSnapshot) s = metrics_sample_snapshot ();
  g_autofree char *text = vmem_metrics_format (s, VMEM_METRICS_OPENMETRICS);

  assert_true (g_str_has_prefix (text, "# TYPE vmemd_build info\n"
                                       "# HELP vmemd_build The version of vmemd.\n"
                                       "vmemd_build_info{version=\"0.1.0\"} 1\n"));
  assert_true (g_str_has_suffix (text, "\n# EOF\n"));
  assert_int_equal (count_lines_starting (text, "# EOF"), 1);
  /* Metadata names the family; a counter's samples add _total. */
  assert_line (text, "# TYPE vmemd_hook_requests counter");
  assert_no_line_starting (text, "# TYPE vmemd_hook_requests_total");
  assert_line (text, "# TYPE vmemd_host_capacity_bytes gauge");
  assert_line (text, "# UNIT vmemd_host_capacity_bytes bytes");
  assert_line (text, "# UNIT vmemd_hook_request_duration_seconds seconds");
  assert_line (text, "# UNIT vmemd_workload_observed_risk_ratio ratio");
  assert_no_line_starting (text, "# UNIT vmemd_ready");

  /* The host. */
  assert_line (text, "vmemd_start_time_seconds 1767225600");
  assert_line (text, "vmemd_ready 1");
  assert_line (text, "vmemd_libvirt_connected 1");
  assert_line (text, "vmemd_host_capacity_bytes 67645734912");
  assert_line (text, "vmemd_host_reserve_bytes 1073741824");
  assert_line (text, "vmemd_host_committed_bytes 22011707392");
  assert_line (text, "vmemd_host_boot_reservations 1");
  assert_line (text, "vmemd_host_boot_reserved_bytes 4294967296");

  /* Domains: what is known, and nothing else. */
  assert_line (text, "vmemd_domain_demand_bytes{domain=\"erp-db-1\",workload=\"erp\"} 9437184000");
  assert_line (text, "vmemd_domain_target_bytes{domain=\"erp-db-1\",workload=\"erp\"} 10737418240");
  assert_line (text, "vmemd_domain_actual_bytes{domain=\"erp-db-1\",workload=\"erp\"} 10737418240");
  assert_line (text, "vmemd_domain_used_bytes{domain=\"erp-db-1\",workload=\"erp\"} 8191475712");
  assert_line (text,
               "vmemd_domain_available_bytes{domain=\"erp-db-1\",workload=\"erp\"} 2545942528");
  assert_line (text, "vmemd_domain_actual_bytes{domain=\"erp-db-2\",workload=\"erp\"} 9437184000");
  assert_no_line_starting (text, "vmemd_domain_target_bytes{domain=\"erp-db-2\"");
  assert_no_line_starting (text, "vmemd_domain_used_bytes{domain=\"erp-db-2\"");
  assert_line (text, "vmemd_domain_running{domain=\"web-2\",workload=\"web\"} 0");
  assert_line (text, "vmemd_domain_demand_bytes{domain=\"web-2\",workload=\"web\"} 1610612736");
  assert_no_line_starting (text, "vmemd_domain_actual_bytes{domain=\"web-2\"");
  assert_no_line_starting (text, "vmemd_domain_target_bytes{domain=\"web-2\"");
  /* Label values escaped. */
  assert_line (text, "vmemd_domain_used_bytes{domain=\"web \\\"blue\\\"\\\\1\",workload=\"web\"} "
                     "943718400");

  /* Workloads: the calibration only when the estimate comes from peers. */
  assert_line (text, "vmemd_workload_domains{workload=\"erp\"} 2");
  assert_line (text, "vmemd_workload_domains{workload=\"batch\"} 0");
  assert_line (text, "vmemd_workload_estimate_bytes{workload=\"erp\"} 9437184000");
  assert_no_line_starting (text, "vmemd_workload_estimate_bytes{workload=\"batch\"");
  assert_line (text, "vmemd_workload_estimate_source{workload=\"erp\",source=\"peers\"} 1");
  assert_line (text, "vmemd_workload_estimate_source{workload=\"erp\",source=\"profile\"} 0");
  assert_line (text, "vmemd_workload_estimate_source{workload=\"web\",source=\"profile\"} 1");
  assert_line (text, "vmemd_workload_estimate_source{workload=\"batch\",source=\"none\"} 1");
  assert_line (text, "vmemd_workload_peers{workload=\"erp\"} 2");
  assert_line (text, "vmemd_workload_peers{workload=\"batch\"} 0");
  assert_line (text, "vmemd_workload_history_seconds{workload=\"erp\"} 109800");
  assert_no_line_starting (text, "vmemd_workload_history_seconds{workload=\"batch\"");
  assert_line (text, "vmemd_workload_margin_ratio{workload=\"erp\"} 0.15");
  assert_line (text, "vmemd_workload_effective_margin_ratio{workload=\"erp\"} 0.196");
  assert_line (text, "vmemd_workload_observed_risk_ratio{workload=\"erp\"} 0.765625");
  assert_no_line_starting (text, "vmemd_workload_margin_ratio{workload=\"web\"");
  assert_no_line_starting (text, "vmemd_workload_observed_risk_ratio{workload=\"web\"");
}

static void
test_prometheus (void **state)
{
  g_autoptr(VmemMetricsSnapshot) s = metrics_sample_snapshot ();
  g_autofree char *om = vmem_metrics_format (s, VMEM_METRICS_OPENMETRICS);
  g_autofree char *text = vmem_metrics_format (s, VMEM_METRICS_PROMETHEUS);

  /* The metadata names the samples, HELP first; no UNIT, no EOF. */
  assert_true (g_str_has_prefix (text, "# HELP vmemd_build_info The version of vmemd.\n"
                                       "# TYPE vmemd_build_info gauge\n"
                                       "vmemd_build_info{version=\"0.1.0\"} 1\n"));
  assert_line (text, "# TYPE vmemd_hook_requests_total counter");
  assert_true (strstr (text, "# HELP vmemd_hook_requests_total Calls of the libvirt hook") != NULL);
  assert_line (text, "# TYPE vmemd_hook_request_duration_seconds histogram");
  assert_line (text, "# TYPE vmemd_domain_used_bytes gauge");
  assert_no_line_starting (text, "# UNIT");
  assert_no_line_starting (text, "# EOF");
  assert_true (g_str_has_suffix (text, "\n"));

  /* The same samples, in the same order. */
  g_autofree char *a = samples_of (om);
  g_autofree char *b = samples_of (text);
  assert_string_equal (a, b);
  /* As many families. */
  assert_int_equal (count_lines_starting (om, "# TYPE "), count_lines_starting (text, "# TYPE "));
  assert_int_equal (count_lines_starting (text, "# HELP "), count_lines_starting (text, "# TYPE "));
}

static void
test_json (void **state)
{
  g_autoptr(VmemMetricsSnapshot) s = metrics_sample_snapshot ();
  g_autofree char *om = vmem_metrics_format (s, VMEM_METRICS_OPENMETRICS);
  json_object *families = vmem_metrics_to_json (s);

  assert_int_equal (json_object_array_length (families), count_lines_starting (om, "# TYPE "));
  g_autofree char *lines = samples_of (om);
  guint n_lines = count_lines_starting (lines, "vmemd_");
  guint n_samples = 0;
  json_object *used = NULL, *observed = NULL, *hooks = NULL;
  for (size_t i = 0; i < json_object_array_length (families); i++)
    {
      json_object *f = json_object_array_get_idx (families, i);
      const char *name = json_object_get_string (json_object_object_get (f, "name"));
      json_object *samples = json_object_object_get (f, "samples");
      n_samples += json_object_array_length (samples);
      if (g_str_equal (name, "vmemd_domain_used_bytes"))
        used = f;
      else if (g_str_equal (name, "vmemd_workload_observed_risk_ratio"))
        observed = f;
      else if (g_str_equal (name, "vmemd_hook_requests"))
        hooks = f;
    }
  assert_int_equal (n_samples, n_lines);

  assert_non_null (used);
  assert_string_equal (json_object_get_string (json_object_object_get (used, "type")), "gauge");
  assert_string_equal (json_object_get_string (json_object_object_get (used, "unit")), "bytes");
  json_object *first = json_object_array_get_idx (json_object_object_get (used, "samples"), 0);
  json_object *labels = json_object_object_get (first, "labels");
  assert_string_equal (json_object_get_string (json_object_object_get (labels, "domain")),
                       "erp-db-1");
  assert_string_equal (json_object_get_string (json_object_object_get (labels, "workload")), "erp");
  json_object *value = json_object_object_get (first, "value");
  assert_true (json_object_is_type (value, json_type_int));
  assert_int_equal (json_object_get_int64 (value), 8191475712);

  assert_non_null (observed);
  json_object *c0 = json_object_array_get_idx (json_object_object_get (observed, "samples"), 0);
  assert_true (json_object_get_double (json_object_object_get (c0, "value")) == 0.765625);

  assert_non_null (hooks);
  assert_string_equal (json_object_get_string (json_object_object_get (hooks, "type")), "counter");
  assert_null (json_object_object_get (hooks, "unit"));
  json_object *h0 = json_object_array_get_idx (json_object_object_get (hooks, "samples"), 0);
  assert_string_equal (json_object_get_string (json_object_object_get (h0, "name")),
                       "vmemd_hook_requests_total");
  json_object_put (families);
}

/* A daemon that has seen nothing: every family is there, with every
 * counter at zero and no per-domain or per-workload sample. */
static void
test_empty (void **state)
{
  g_autoptr(VmemMetricsSnapshot) s = vmem_metrics_snapshot_new (NULL);
  g_autofree char *text = vmem_metrics_format (s, VMEM_METRICS_OPENMETRICS);
  assert_line (text, "vmemd_build_info{version=\"\"} 1");
  assert_line (text, "vmemd_ready 0");
  assert_line (text, "# TYPE vmemd_domain_used_bytes gauge");
  assert_no_line_starting (text, "vmemd_domain_");
  assert_no_line_starting (text, "vmemd_workload_");
  assert_line (text, "vmemd_collector_cycle_duration_seconds_bucket{le=\"+Inf\"} 0");
  assert_line (text, "vmemd_collector_cycle_duration_seconds_sum 0");
  assert_line (text, "vmemd_textfile_write_errors_total 0");
}

static void
test_values (void **state)
{
  g_autoptr(VmemMetricsSnapshot) s = vmem_metrics_snapshot_new ("x");
  s->capacity_mib = G_GUINT64_CONSTANT (1) << 30; /* 1 PiB: exact in bytes */
  VmemMetricsWorkload *w = vmem_metrics_snapshot_add_workload (s, "w\nx");
  w->has_estimate = TRUE;
  w->source = VMEM_SOURCE_PEERS;
  w->estimate_mib = 1;
  w->peers = 3;
  w->history_hours = 1.0 / 3600;
  w->margin_pct = 10;
  w->effective_margin_pct = 100.0 / 3;
  w->observed_risk = 0.3;
  g_autofree char *text = vmem_metrics_format (s, VMEM_METRICS_OPENMETRICS);
  assert_line (text, "vmemd_host_capacity_bytes 1125899906842624");
  assert_line (text, "vmemd_workload_estimate_bytes{workload=\"w\\nx\"} 1048576");
  assert_line (text, "vmemd_workload_history_seconds{workload=\"w\\nx\"} 1");
  assert_line (text, "vmemd_workload_margin_ratio{workload=\"w\\nx\"} 0.1");
  /* The shortest text that reads back as the same double. */
  assert_line (text,
               "vmemd_workload_effective_margin_ratio{workload=\"w\\nx\"} 0.33333333333333337");
  assert_line (text, "vmemd_workload_observed_risk_ratio{workload=\"w\\nx\"} 0.3");
}

static void
test_set_estimate (void **state)
{
  VmemEstimate *e = g_new0 (VmemEstimate, 1);
  /* The count, not the list (an estimate may come without it). */
  e->peers = g_ptr_array_new ();
  e->n_peers = 2;
  e->source = VMEM_SOURCE_PEERS;
  e->demand_mib = 741;
  e->history_hours = 0.5;
  e->margin_pct = 15;
  e->effective_margin_pct = 59.6;
  e->calibration.observed_pct = 25;
  g_autoptr(VmemMetricsSnapshot) s = vmem_metrics_snapshot_new ("x");
  VmemMetricsWorkload *w = vmem_metrics_snapshot_add_workload (s, "erp");
  vmem_metrics_workload_set_estimate (w, e);
  vmem_estimate_free (e);
  assert_true (w->has_estimate);
  assert_int_equal (w->source, VMEM_SOURCE_PEERS);
  assert_int_equal (w->estimate_mib, 741);
  assert_int_equal (w->peers, 2);
  assert_true (w->history_hours == 0.5);
  assert_true (w->margin_pct == 15);
  assert_true (w->effective_margin_pct == 59.6);
  assert_true (w->observed_risk == 0.25);

  /* Estimating failed: nothing of it is written. */
  VmemMetricsWorkload *none = vmem_metrics_snapshot_add_workload (s, "web");
  vmem_metrics_workload_set_estimate (none, NULL);
  assert_false (none->has_estimate);
  g_autofree char *text = vmem_metrics_format (s, VMEM_METRICS_OPENMETRICS);
  assert_line (text, "vmemd_workload_domains{workload=\"web\"} 0");
  assert_no_line_starting (text, "vmemd_workload_estimate_source{workload=\"web\"");
  assert_no_line_starting (text, "vmemd_workload_peers{workload=\"web\"");
}

static void
test_format_names (void **state)
{
  VmemMetricsFormat f = VMEM_METRICS_OPENMETRICS;
  assert_true (vmem_metrics_format_from_string ("prometheus", &f));
  assert_int_equal (f, VMEM_METRICS_PROMETHEUS);
  assert_string_equal (vmem_metrics_format_to_string (f), "prometheus");
  assert_true (vmem_metrics_format_from_string ("openmetrics", &f));
  assert_int_equal (f, VMEM_METRICS_OPENMETRICS);
  assert_string_equal (vmem_metrics_format_to_string (f), "openmetrics");
  assert_false (vmem_metrics_format_from_string ("json", &f));
  assert_false (vmem_metrics_format_from_string (NULL, &f));
  assert_int_equal (f, VMEM_METRICS_OPENMETRICS);
}

/* ---- the textfile -------------------------------------------------------- */

static char *
read_text (const char *path)
{
  g_autoptr(GError) error = NULL;
  char *text = NULL;
  if (!g_file_get_contents (path, &text, NULL, &error))
    fail_msg ("%s", error->message);
  return text;
}

static void
test_textfile (void **state)
{
  g_autofree char *dir = g_dir_make_tmp ("vmem-textfile-XXXXXX", NULL);
  assert_non_null (dir);
  g_autofree char *path = g_build_filename (dir, "vmemd.prom", NULL);
  g_autofree char *tmp = g_strconcat (path, ".tmp", NULL);
  g_autoptr(GError) error = NULL;

  /* Readable by node exporter whatever vmemd's umask. */
  mode_t old = umask (077);
  gboolean ok = vmem_textfile_write (path, "a 1\n", &error);
  umask (old);
  if (!ok)
    fail_msg ("%s", error->message);
  struct stat st;
  assert_int_equal (stat (path, &st), 0);
  assert_int_equal (st.st_mode & 07777, 0644);
  g_autofree char *first = read_text (path);
  assert_string_equal (first, "a 1\n");
  assert_false (g_file_test (tmp, G_FILE_TEST_EXISTS));

  /* Replaced whole, over a PATH.tmp left by a crash. */
  assert_true (g_file_set_contents (tmp, "stale", -1, NULL));
  if (!vmem_textfile_write (path, "b 2\n", &error))
    fail_msg ("%s", error->message);
  g_autofree char *second = read_text (path);
  assert_string_equal (second, "b 2\n");
  assert_false (g_file_test (tmp, G_FILE_TEST_EXISTS));

  /* A link planted at PATH.tmp is not followed. */
  g_autofree char *victim = g_build_filename (dir, "victim", NULL);
  assert_true (g_file_set_contents (victim, "keep", -1, NULL));
  assert_int_equal (symlink (victim, tmp), 0);
  if (!vmem_textfile_write (path, "c 3\n", &error))
    fail_msg ("%s", error->message);
  g_autofree char *kept = read_text (victim);
  assert_string_equal (kept, "keep");
  g_autofree char *third = read_text (path);
  assert_string_equal (third, "c 3\n");
  assert_int_equal (lstat (path, &st), 0);
  assert_true (S_ISREG (st.st_mode));

  /* A directory that is not there: the error names the file. */
  g_autofree char *missing = g_build_filename (dir, "no", "such", "vmemd.prom", NULL);
  assert_false (vmem_textfile_write (missing, "x\n", &error));
  assert_non_null (strstr (error->message, "no/such/vmemd.prom.tmp"));
  g_clear_error (&error);

  /* PATH cannot be replaced (it is a directory): PATH.tmp goes too. */
  g_autofree char *sub = g_build_filename (dir, "sub.prom", NULL);
  g_autofree char *sub_tmp = g_strconcat (sub, ".tmp", NULL);
  assert_int_equal (mkdir (sub, 0755), 0);
  assert_false (vmem_textfile_write (sub, "x\n", &error));
  assert_non_null (strstr (error->message, "cannot replace"));
  assert_false (g_file_test (sub_tmp, G_FILE_TEST_EXISTS));

  rmdir (sub);
  unlink (victim);
  unlink (path);
  assert_int_equal (rmdir (dir), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_histogram),
    cmocka_unit_test (test_hook_requests),
    cmocka_unit_test (test_moves_stages_writes),
    cmocka_unit_test (test_openmetrics),
    cmocka_unit_test (test_prometheus),
    cmocka_unit_test (test_json),
    cmocka_unit_test (test_empty),
    cmocka_unit_test (test_values),
    cmocka_unit_test (test_set_estimate),
    cmocka_unit_test (test_format_names),
    cmocka_unit_test (test_textfile),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
