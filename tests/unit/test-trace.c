/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-cleanup.h"
#include "vmem-demand.h"
#include "vmem-error.h"
#include "vmem-replay.h"
#include "vmem-trace.h"
#include "vmemctl-replay-file.h"

#include <glib/gstdio.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <zlib.h>
#include <cmocka.h>

typedef struct {
  char *dir;
} Fixture;

static int
setup (void **state)
{
  Fixture *f = g_new0 (Fixture, 1);
  f->dir = g_dir_make_tmp ("vmem-test-trace-XXXXXX", NULL);
  assert_non_null (f->dir);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  Fixture *f = *state;
  g_autoptr(GDir) dir = g_dir_open (f->dir, 0, NULL);
  const char *name;
  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (f->dir, name, NULL);
      g_unlink (path);
    }
  g_rmdir (f->dir);
  g_free (f->dir);
  g_free (f);
  return 0;
}

static char *
write_file (Fixture *f, const char *name, const char *text)
{
  char *path = g_build_filename (f->dir, name, NULL);
  if (!g_file_set_contents (path, text, -1, NULL))
    fail_msg ("cannot write %s", path);
  return path;
}

static char *
write_gz (Fixture *f, const char *name, const char *text)
{
  char *path = g_build_filename (f->dir, name, NULL);
  gzFile gz = gzopen (path, "wb");
  assert_non_null (gz);
  assert_int_equal (gzwrite (gz, text, strlen (text)), (int) strlen (text));
  assert_int_equal (gzclose (gz), Z_OK);
  return path;
}

static char *
fixture_path (const char *name)
{
  const char *srcdir = g_getenv ("VMEM_TEST_SRCDIR");
  if (srcdir == NULL)
    fail_msg ("VMEM_TEST_SRCDIR is not set");
  return g_build_filename (srcdir, "data", "traces", name, NULL);
}

#define HEADER VMEM_TRACE_HEADER "\n"

static const char good[] =
  HEADER
  "100,vm-1,web,2,2097152,1024\n"
  "100,vm-2,web,2,2097152,2048\r\n"
  "160,vm-1,web,2,2097152,4096";

static void
check_good_rows (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemTraceReader) r = vmem_trace_reader_open (path, &error);
  VmemTraceRow row;

  assert_non_null (r);
  assert_true (vmem_trace_reader_next (r, &row, &error));
  assert_int_equal (row.t, 100);
  assert_string_equal (row.domain, "vm-1");
  assert_string_equal (row.workload, "web");
  assert_int_equal (row.vcpus, 2);
  assert_int_equal (row.ceiling_kib, 2097152);
  assert_int_equal (row.used_kib, 1024);
  assert_int_equal (row.line, 2);

  assert_true (vmem_trace_reader_next (r, &row, &error));
  assert_string_equal (row.domain, "vm-2");
  assert_int_equal (row.used_kib, 2048);

  assert_true (vmem_trace_reader_next (r, &row, &error));
  assert_int_equal (row.t, 160);
  assert_int_equal (row.used_kib, 4096);
  assert_int_equal (row.line, 4);

  assert_false (vmem_trace_reader_next (r, &row, &error));
  assert_null (error);
  assert_false (vmem_trace_reader_next (r, &row, &error));
  assert_null (error);
}

static void
test_parse_plain (void **state)
{
  g_autofree char *path = write_file (*state, "good.csv", good);
  check_good_rows (path);
}

static void
test_parse_gz (void **state)
{
  g_autofree char *path = write_gz (*state, "good.csv.gz", good);
  check_good_rows (path);
}

/* Each bad line: the error starts with FILE:LINE: and names the field. */
static void
test_bad_rows (void **state)
{
  static const struct {
    const char *text;
    guint       line;
    const char *what;
  } cases[] = {
    { "", 1, "empty file" },
    { "time,domain,workload,vcpus,ceiling_kib\n", 1, "header" },
    { HEADER "x,vm,w,1,100,10\n", 2, "time:" },
    { HEADER "-5,vm,w,1,100,10\n", 2, "time:" },
    { HEADER "1,vm,w,1,100,10\n1,,w,1,100,10\n", 3, "domain: must not be empty" },
    { HEADER "1,vm,,1,100,10\n", 2, "workload: must not be empty" },
    { HEADER "1,vm,w,0,100,10\n", 2, "vcpus:" },
    { HEADER "1,vm,w,1.5,100,10\n", 2, "vcpus:" },
    { HEADER "1,vm,w,1,0,10\n", 2, "ceiling_kib:" },
    { HEADER "1,vm,w,1,100,\n", 2, "used_kib:" },
    { HEADER "1,vm,w,1,100,10 \n", 2, "used_kib:" },
    { HEADER "1,vm,w,1,100\n", 2, "expected 6 fields" },
    { HEADER "1,vm,w,1,100,10,7\n", 2, "expected 6 fields" },
    { HEADER "1,vm,w,1,100,10\n\n", 3, "expected 6 fields" },
    { HEADER "5,vm,w,1,100,10\n6,vm,w,1,100,10\n4,vm,w,1,100,10\n", 4,
      "time: 4 is before the previous line's 6" },
    { HEADER "1,\"vm\",w,1,100,10\n", 2, "domain:" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *name = g_strdup_printf ("bad-%u.csv", i);
      g_autofree char *path = write_file (*state, name, cases[i].text);
      g_autoptr(GError) error = NULL;
      g_autoptr(VmemTraceReader) r = vmem_trace_reader_open (path, &error);
      VmemTraceRow row;

      while (r != NULL && vmem_trace_reader_next (r, &row, &error))
        ;
      if (error == NULL)
        fail_msg ("case %u was accepted", i);
      assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
      g_autofree char *prefix = g_strdup_printf ("%s:%u: ", path, cases[i].line);
      if (!g_str_has_prefix (error->message, prefix) || strstr (error->message, cases[i].what) == NULL)
        fail_msg ("case %u: error \"%s\" does not start with \"%s\" or lacks \"%s\"", i,
                  error->message, prefix, cases[i].what);
    }
}

static void
test_long_line_and_missing (void **state)
{
  g_autoptr(GString) text = g_string_new (HEADER "1,");
  for (int i = 0; i < 5000; i++)
    g_string_append_c (text, 'x');
  g_string_append (text, ",w,1,100,10\n");
  g_autofree char *path = write_file (*state, "long.csv", text->str);
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemTraceReader) r = vmem_trace_reader_open (path, &error);
  VmemTraceRow row;
  assert_non_null (r);
  assert_false (vmem_trace_reader_next (r, &row, &error));
  assert_non_null (error);
  assert_non_null (strstr (error->message, ":2: line longer than"));

  g_autoptr(GError) missing = NULL;
  g_autofree char *nopath = g_build_filename (((Fixture *) *state)->dir, "nope.csv", NULL);
  assert_null (vmem_trace_reader_open (nopath, &missing));
  assert_true (g_error_matches (missing, VMEM_ERROR, VMEM_ERROR_NOT_FOUND));
  assert_true (g_str_has_prefix (missing->message, nopath));
}

/* A truncated gzip file is an error, not a short trace. */
static void
test_truncated_gz (void **state)
{
  g_autoptr(GString) text = g_string_new (HEADER);
  for (int i = 0; i < 20000; i++)
    g_string_append_printf (text, "%d,vm-%d,w,1,1048576,%d\n", i, i % 7, (i * 7919) % 100000);
  g_autofree char *path = write_gz (*state, "trunc.csv.gz", text->str);
  g_autofree char *data = NULL;
  gsize len = 0;
  assert_true (g_file_get_contents (path, &data, &len, NULL));
  assert_true (g_file_set_contents (path, data, len / 2, NULL));

  g_autoptr(GError) error = NULL;
  g_autoptr(VmemTraceReader) r = vmem_trace_reader_open (path, &error);
  VmemTraceRow row;
  assert_non_null (r);
  while (vmem_trace_reader_next (r, &row, &error))
    ;
  assert_non_null (error);
  assert_true (g_str_has_prefix (error->message, path));
}

typedef struct {
  GString          *csv;
  VmemReplaySummary summary[VMEM_REPLAY_N_ESTIMATORS];
  guint             peers[8];
  guint             n;
  double            progress;
} Collect;

static void
collect (const VmemReplayCase *c, gpointer user_data)
{
  Collect *col = user_data;
  g_string_append_printf (col->csv, "%" G_GINT64_FORMAT ",%s,%" G_GUINT64_FORMAT ",%s|%"
                          G_GUINT64_FORMAT ",%s|%" G_GUINT64_FORMAT "\n", c->t, c->domain,
                          c->estimate_kib[VMEM_REPLAY_VMEMD], c->source[VMEM_REPLAY_VMEMD],
                          c->estimate_kib[VMEM_REPLAY_VPA], c->source[VMEM_REPLAY_VPA],
                          c->peak_kib);
  if (col->n < G_N_ELEMENTS (col->peers))
    col->peers[col->n] = c->peers;
  col->n++;
  for (guint i = 0; i < VMEM_REPLAY_N_ESTIMATORS; i++)
    vmem_replay_summary_add (&col->summary[i], c, i);
}

static void
collect_progress (double fraction, gpointer user_data)
{
  Collect *col = user_data;
  assert_true (fraction >= col->progress && fraction <= 1.0);
  col->progress = fraction;
}

/* tests/data/traces/tiny.csv, worked by hand, every start a first start:
 * day 86400 (the first boundary, no history): everyone gets its <memory>
 *   (a fallback: no outcome is checked for it).
 * day 172800, workload web: the hourly peaks of day 86400 were
 *   a 100 (hour 86400) and 200 (hour 90000), b 300 (86400), c 400 (90000) MiB;
 *   each peer's level is the p99 of its own: a 200, b 300, c 400, all of
 *   the same <memory> as the domain starting, so scaled as they are.  No
 *   outcome yet: the configured margin, 15 %.  Each peer weighs its hourly
 *   peaks, decayed by u = 2^(-1/24) an hour: a 1 + u, b u, c 1.
 *   a: peers b (u), c (1) -> p90 = 400 MiB -> 460 MiB = 471040 KiB (peak 600 MiB: under)
 *   b: peers a (1 + u), c (1) -> 400 -> 471040 KiB
 *   c: peers a (1 + u), b (u) -> 300 -> 345 MiB = 353280 KiB (peak 400 MiB: under)
 *   VPA: a, b: p90 of {300, 400} = 400 * 1.15 = 460 MiB = 471040 KiB;
 *        c: p90 of {200, 300} = 300 * 1.15 = 345 MiB = 353280 KiB.
 *   d (workload solo) has no peers: its <memory>, 524288 KiB. */
static void
test_replay_fixture (void **state)
{
  g_autofree char *path = fixture_path ("tiny.csv");
  VmemEstimatorConfig config;
  vmem_estimator_config_init (&config);
  Collect col = { .csv = g_string_new (NULL) };
  g_autoptr(GError) error = NULL;

  assert_true (vmemctl_replay_file (path, &config, TRUE, collect, collect_progress, &col, &error));
  assert_null (error);
  assert_true (col.progress == 1.0);
  assert_string_equal (col.csv->str,
    "86400,a,1048576,fallback-domain-memory|1048576,fallback-domain-memory|204800\n"
    "86400,b,1048576,fallback-domain-memory|1048576,fallback-domain-memory|307200\n"
    "86400,c,1048576,fallback-domain-memory|1048576,fallback-domain-memory|409600\n"
    "86400,d,524288,fallback-domain-memory|524288,fallback-domain-memory|102400\n"
    "172800,a,471040,peers|471040,peers|614400\n"
    "172800,b,471040,peers|471040,peers|102400\n"
    "172800,c,353280,peers|353280,peers|409600\n"
    "172800,d,524288,fallback-domain-memory|524288,fallback-domain-memory|204800\n");
  g_string_free (col.csv, TRUE);
  assert_int_equal (col.n, 8);
  assert_int_equal (col.peers[4], 2);
  assert_int_equal (col.peers[7], 0);

  const VmemReplayTally *v = &col.summary[VMEM_REPLAY_VMEMD].all;
  assert_int_equal (v->cases, 8);
  assert_int_equal (v->under, 2);
  assert_true (v->estimate_kib == 5489664.0);
  assert_true (v->waste_kib == 3334144.0);
  assert_true (vmem_replay_tally_gib_days (v) == 5489664.0 / 1048576.0);
  /* by peer count: the four starts with 0 peers, three with 2, d's 0 */
  assert_int_equal (col.summary[VMEM_REPLAY_VMEMD].by_peers[0].cases, 5);
  assert_int_equal (col.summary[VMEM_REPLAY_VMEMD].by_peers[2].cases, 3);
  assert_int_equal (col.summary[VMEM_REPLAY_VMEMD].by_peers[2].under, 2);

  const VmemReplayTally *vpa = &col.summary[VMEM_REPLAY_VPA].all;
  assert_int_equal (vpa->under, 2);
  assert_true (vpa->estimate_kib == 5489664.0);
  assert_true (vpa->waste_kib == 3334144.0);

  const VmemReplayTally *st = &col.summary[VMEM_REPLAY_STATIC].all;
  assert_int_equal (st->under, 0);
  assert_true (st->estimate_kib == 3.0 * 2 * 1048576 + 2 * 524288);

  g_autofree char *table = vmem_replay_summary_format (&col.summary[VMEM_REPLAY_VMEMD]);
  assert_non_null (strstr (table, "all             8        2     25.00    60.73        5.2\n"));
}

/* The replay stops at the first bad line and names it. */
static void
test_replay_bad_row (void **state)
{
  g_autofree char *path = write_gz (*state, "bad.csv.gz",
                                    HEADER "1,a,w,1,100,10\n2,a,w,1,100,10\n3,a,w,one,100,10\n");
  VmemEstimatorConfig config;
  vmem_estimator_config_init (&config);
  Collect col = { .csv = g_string_new (NULL) };
  g_autoptr(GError) error = NULL;

  assert_false (vmemctl_replay_file (path, &config, TRUE, collect, NULL, &col, &error));
  g_string_free (col.csv, TRUE);
  g_autofree char *prefix = g_strdup_printf ("%s:4: vcpus:", path);
  assert_true (g_str_has_prefix (error->message, prefix));

  g_autofree char *moved = write_file (*state, "moved.csv",
                                       HEADER "1,a,w,1,100,10\n2,a,x,1,100,10\n");
  g_autoptr(GError) error2 = NULL;
  assert_false (vmemctl_replay_file (moved, &config, TRUE, NULL, NULL, NULL, &error2));
  assert_non_null (strstr (error2->message, ":3: workload:"));
}

static VmemTraceRow
trace_row (gint64 t, const char *domain, const char *workload, guint64 used_kib, guint64 line)
{
  VmemTraceRow row = {
    .t = t,
    .domain = domain,
    .workload = workload,
    .vcpus = 1,
    .ceiling_kib = 1048576,
    .used_kib = used_kib,
    .line = line,
  };
  return row;
}

static void
feed (VmemReplay *r, VmemTraceRow row)
{
  g_autoptr(GError) error = NULL;
  if (!vmem_replay_feed (r, &row, "mem", &error))
    fail_msg ("feed failed: %s", error->message);
}

/* History is counted from the first sample actually seen: two peers first
 * sampled at 12:30 have 11.5 h of history at midnight, not the 12 h from
 * the start of their hour, nor the 24 h a daily peak would claim.
 *   p90 of {100, 200} = 200 MiB -> +15 % = 235520 KiB; VPA the same. */
static void
test_replay_history_from_first_sample (void **state)
{
  for (int k = 0; k < 2; k++)
    {
      VmemEstimatorConfig config;
      vmem_estimator_config_init (&config);
      config.min_history_hours = k == 0 ? 11.75 : 11.25;
      Collect col = { .csv = g_string_new (NULL) };
      g_autoptr(VmemReplay) r = vmem_replay_new (&config, TRUE, collect, &col, NULL);

      feed (r, trace_row (45000, "p", "w", 100 * 1024, 2));
      feed (r, trace_row (45000, "q", "w", 200 * 1024, 3));
      feed (r, trace_row (86400, "x", "w", 50 * 1024, 4));
      assert_int_equal (col.n, 0);
      assert_true (vmem_replay_finish (r, NULL));
      assert_true (vmem_replay_finish (r, NULL));
      assert_string_equal (col.csv->str, k == 0
                           ? "86400,x,1048576,fallback-domain-memory|235520,peers|51200\n"
                           : "86400,x,235520,peers|235520,peers|51200\n");
      assert_int_equal (col.peers[0], 2);
      g_string_free (col.csv, TRUE);
    }
}

typedef struct {
  gint64  t;
  char   *domain;
  guint64 estimate_kib;
  guint64 peak_kib;
  guint   peers;
} SeenCase;

static void
seen_case_clear (gpointer data)
{
  g_free (((SeenCase *) data)->domain);
}

static void
collect_seen (const VmemReplayCase *c, gpointer user_data)
{
  SeenCase sc = {
    .t = c->t,
    .domain = g_strdup (c->domain),
    .estimate_kib = c->estimate_kib[VMEM_REPLAY_VMEMD],
    .peak_kib = c->peak_kib,
    .peers = c->peers,
  };
  g_array_append_val (user_data, sc);
}

/* Every start is sized as a VmemDemand fed the samples before it sizes it,
 * and its outcome is the domain's highest sample of the day. */
static void
replay_equals_demand (gboolean first_start)
{
  static const char *const domains[] = { "a", "b", "c", "d", "e" };
  VmemEstimatorConfig config;
  vmem_estimator_config_init (&config);
  config.min_history_hours = 2;
  g_autoptr(GRand) rand = g_rand_new_with_seed (3);
  g_autoptr(GArray) rows = g_array_new (FALSE, FALSE, sizeof (VmemTraceRow));
  g_autoptr(GArray) seen = g_array_new (FALSE, FALSE, sizeof (SeenCase));
  g_array_set_clear_func (seen, seen_case_clear);

  /* Three and a half days from 06:00; e runs on the second day only, and
   * vcpus and memory change from day to day. */
  for (gint64 t = 6 * 3600; t < 4 * 86400 - 6 * 3600; t += 900)
    for (guint i = 0; i < G_N_ELEMENTS (domains); i++)
      {
        if (i == 4 && (t < 86400 || t >= 2 * 86400))
          continue;
        VmemTraceRow row = trace_row (t, domains[i], i < 3 ? "w" : "v",
                                      1024 * (100 + g_rand_int_range (rand, 0, 900)), rows->len + 2);
        row.vcpus = 1 + (guint) (t / 86400) % 3;
        row.ceiling_kib = 1024 * (600 + 100 * (guint64) (t / 86400));
        g_array_append_val (rows, row);
      }

  g_autoptr(VmemReplay) r = vmem_replay_new (&config, first_start, collect_seen, seen, NULL);
  for (guint i = 0; i < rows->len; i++)
    assert_true (vmem_replay_feed (r, &g_array_index (rows, VmemTraceRow, i), "mem", NULL));
  assert_true (vmem_replay_finish (r, NULL));
  /* Days 1, 2 and 3: a-d each day, e on day 1. */
  assert_int_equal (seen->len, 3 * 4 + 1);

  g_autoptr(VmemDemand) d = vmem_demand_new (&config, NULL);
  guint next = 0, checked = 0;
  for (guint k = 0; k < seen->len; k++)
    {
      const SeenCase *sc = &g_array_index (seen, SeenCase, k);
      for (; next < rows->len && g_array_index (rows, VmemTraceRow, next).t < sc->t; next++)
        {
          const VmemTraceRow *row = &g_array_index (rows, VmemTraceRow, next);
          VmemPeakSample s = {
            .uuid = row->domain,
            .domain = row->domain,
            .t = row->t,
            .used_mib = row->used_kib / 1024.0,
            .guest = TRUE,
            .vcpus = row->vcpus,
          };
          VmemPeakObs out[2];
          assert_true (vmem_demand_observe (d, row->workload, &s, out, NULL));
        }
      /* The domain's first row of the day gives its vcpus and memory, and
       * the day's highest its outcome. */
      const VmemTraceRow *first = NULL;
      guint64 peak = 0;
      for (guint i = next; i < rows->len; i++)
        {
          const VmemTraceRow *row = &g_array_index (rows, VmemTraceRow, i);
          if (row->t >= sc->t + 86400)
            break;
          if (!g_str_equal (row->domain, sc->domain))
            continue;
          if (first == NULL)
            first = row;
          peak = MAX (peak, row->used_kib);
        }
      assert_non_null (first);
      VmemEstimateTarget target = {
        .uuid = sc->domain,
        .exclude_self = first_start,
        .vcpus = first->vcpus,
        .memory_mib = first->ceiling_kib / 1024.0,
      };
      vmem_demand_set_memory (d, first->workload, sc->domain, target.memory_mib);
      g_autoptr(VmemEstimate) e = vmem_demand_estimate (d, first->workload, NULL, &target, sc->t,
                                                        NULL);
      assert_non_null (e);
      assert_true (vmem_demand_start (d, first->workload, sc->domain, e, sc->t, NULL));
      assert_int_equal (sc->estimate_kib, (guint64) ceil (e->value_mib * 1024.0 - 1e-6));
      assert_int_equal (sc->peers, e->peers->len);
      assert_int_equal (sc->peak_kib, peak);
      checked += e->source == (first_start ? VMEM_SOURCE_PEERS : VMEM_SOURCE_OWN);
    }
  /* Most starts were sized from history, not from a fallback. */
  assert_true (checked >= 10);
}

static void
test_replay_equals_demand (void **state)
{
  replay_equals_demand (TRUE);
  replay_equals_demand (FALSE);
}

/* A first start never reads the domain's own samples: a domain whose own
 * usage is absurd gets the same estimates as with sane usage, while as a
 * restart its own history leads.  (Three days of five domains give too
 * few outcomes to calibrate on, so the margin is the configured one; the
 * first day is a fallback in both.) */
static void
test_replay_first_start_ignores_own (void **state)
{
  static const char *const domains[] = { "a", "b", "c", "d", "e" };
  for (int mode = 0; mode < 2; mode++)
    {
      gboolean first_start = mode == 0;
      GArray *seen[2] = { NULL, NULL };
      for (int absurd = 0; absurd < 2; absurd++)
        {
          VmemEstimatorConfig config;
          vmem_estimator_config_init (&config);
          seen[absurd] = g_array_new (FALSE, FALSE, sizeof (SeenCase));
          g_array_set_clear_func (seen[absurd], seen_case_clear);
          g_autoptr(VmemReplay) r = vmem_replay_new (&config, first_start, collect_seen,
                                                     seen[absurd], NULL);
          g_autoptr(GRand) rand = g_rand_new_with_seed (7);
          guint64 line = 2;
          for (gint64 t = 0; t < 3 * 86400; t += 1800)
            for (guint i = 0; i < G_N_ELEMENTS (domains); i++)
              {
                guint64 used = 1024 * (200 + g_rand_int_range (rand, 0, 200));
                /* "e" uses its whole memory, or nearly nothing. */
                if (i == 4)
                  used = absurd ? 1048576 : 1024;
                feed (r, trace_row (t, domains[i], "w", used, line++));
              }
          assert_true (vmem_replay_finish (r, NULL));
        }
      guint compared = 0, differ = 0;
      assert_int_equal (seen[0]->len, seen[1]->len);
      for (guint k = 0; k < seen[0]->len; k++)
        {
          const SeenCase *x = &g_array_index (seen[0], SeenCase, k);
          const SeenCase *y = &g_array_index (seen[1], SeenCase, k);
          assert_string_equal (x->domain, y->domain);
          if (!g_str_equal (x->domain, "e"))
            continue;
          compared++;
          differ += x->estimate_kib != y->estimate_kib;
          if (first_start)
            assert_int_equal (x->estimate_kib, y->estimate_kib);
        }
      assert_int_equal (compared, 3);
      /* As a restart, e's own history leads: the absurd usage shows. */
      if (!first_start)
        assert_int_equal (differ, 2);
      g_array_unref (seen[0]);
      g_array_unref (seen[1]);
    }
}

/* Rows fed out of order, or a domain changing workload, stop the replay
 * with SOURCE:LINE. */
static void
test_replay_feed_errors (void **state)
{
  VmemEstimatorConfig config;
  vmem_estimator_config_init (&config);
  g_autoptr(VmemReplay) r = vmem_replay_new (&config, TRUE, NULL, NULL, NULL);
  feed (r, trace_row (100, "a", "w", 10, 2));
  VmemTraceRow back = trace_row (99, "b", "w", 10, 3);
  g_autoptr(GError) error = NULL;
  assert_false (vmem_replay_feed (r, &back, "mem", &error));
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  assert_true (g_str_has_prefix (error->message, "mem:3: time:"));
  g_autoptr(GError) after = NULL;
  VmemTraceRow fine = trace_row (200, "b", "w", 10, 4);
  assert_false (vmem_replay_feed (r, &fine, "mem", &after));
  assert_non_null (after);
  g_autoptr(GError) fin = NULL;
  assert_false (vmem_replay_finish (r, &fin));
  assert_non_null (fin);

  g_autoptr(VmemReplay) r2 = vmem_replay_new (&config, TRUE, NULL, NULL, NULL);
  feed (r2, trace_row (100, "a", "w", 10, 2));
  VmemTraceRow moved = trace_row (100, "a", "x", 10, 7);
  g_autoptr(GError) e2 = NULL;
  assert_false (vmem_replay_feed (r2, &moved, NULL, &e2));
  assert_true (g_str_has_prefix (e2->message, "trace:7: workload:"));

  VmemEstimatorConfig bad = config;
  bad.margin_pct = -1;
  g_autoptr(GError) e3 = NULL;
  assert_null (vmem_replay_new (&bad, TRUE, NULL, NULL, &e3));
  assert_true (g_str_has_prefix (e3->message, "margin_pct:"));
}

static void
test_estimator_names (void **state)
{
  VmemReplayEstimator e;
  g_autoptr(GError) error = NULL;
  assert_true (vmem_replay_estimator_from_string ("vpa", &e, NULL));
  assert_int_equal (e, VMEM_REPLAY_VPA);
  assert_false (vmem_replay_estimator_from_string ("magic", &e, &error));
  assert_true (g_str_has_prefix (error->message, "estimator:"));
  assert_int_equal (vmem_replay_peer_class (0), 0);
  assert_int_equal (vmem_replay_peer_class (4), 3);
  assert_int_equal (vmem_replay_peer_class (9), 4);
  assert_int_equal (vmem_replay_peer_class (10), 5);
  assert_string_equal (vmem_replay_peer_class_label (3), "3-4");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_parse_plain, setup, teardown),
    cmocka_unit_test_setup_teardown (test_parse_gz, setup, teardown),
    cmocka_unit_test_setup_teardown (test_bad_rows, setup, teardown),
    cmocka_unit_test_setup_teardown (test_long_line_and_missing, setup, teardown),
    cmocka_unit_test_setup_teardown (test_truncated_gz, setup, teardown),
    cmocka_unit_test (test_replay_fixture),
    cmocka_unit_test_setup_teardown (test_replay_bad_row, setup, teardown),
    cmocka_unit_test (test_replay_history_from_first_sample),
    cmocka_unit_test (test_replay_equals_demand),
    cmocka_unit_test (test_replay_first_start_ignores_own),
    cmocka_unit_test (test_replay_feed_errors),
    cmocka_unit_test (test_estimator_names),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
