/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Several hosts writing to one PostgreSQL store, through the store's own
 * code (vmem_store_samples_add(), one connection per writer thread, each
 * serving its share of the simulated hosts on their schedule): samples per
 * second sustained against the rate asked for, the latency of each host's
 * batch, the time to estimate a workload with 1,000 peers and 90 days of
 * hourly peaks (read from the store as the daemon reads them, then
 * estimated as the hook path does), and the database's size per 1,000
 * domain-days.  The same figures on an SQLite file, written by one host as
 * fast as it goes, are the single-host baseline.
 *
 *   bench-cluster [--hosts 200] [--domains 50] [--interval 10] [--seconds 60]
 *                 [--threads 8] [--peers 1000] [--days 90]
 *                 [--test-postgres tools/test-postgres]
 *
 * The server: VMEM_BENCH_PG (a libpq connection string to an
 * administrator's database), else VMEM_TEST_PG, else a private one started
 * with tools/test-postgres (and stopped at the end).  A fresh database is
 * made on it and dropped at the end. */
#include "config.h"

#include "vmem-demand.h"
#include "vmem-error.h"
#include "vmem-store.h"

#include <glib/gstdio.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static guint opt_hosts = 200, opt_domains = 50, opt_interval = 10, opt_seconds = 60;
static guint opt_threads = 8, opt_peers = 1000, opt_days = 90;
static char *opt_test_postgres = NULL;

#define T0 G_GINT64_CONSTANT (1779926400) /* simulated time of the first batch, a day start */

static void G_GNUC_NORETURN G_GNUC_PRINTF (1, 2)
die (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  fputs ("bench-cluster: ", stderr);
  vfprintf (stderr, fmt, ap);
  fputc ('\n', stderr);
  va_end (ap);
  exit (1);
}

static double
now_s (void)
{
  return (double) g_get_monotonic_time () / G_USEC_PER_SEC;
}

static int
cmp_double (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

static double
quantile (GArray *v, double q)
{
  if (v->len == 0)
    return 0;
  g_array_sort (v, cmp_double);
  guint i = (guint) ceil (q * v->len) - 1;
  return g_array_index (v, double, MIN (i, v->len - 1));
}

/* ---- the server ------------------------------------------------------------ */

static char *pg_dir; /* a private server's directory, stopped at exit */

static void
pg_exec (const char *conninfo, const char *sql)
{
  PGconn *c = PQconnectdb (conninfo);
  if (PQstatus (c) != CONNECTION_OK)
    die ("cannot connect: %s", PQerrorMessage (c));
  PGresult *r = PQexec (c, sql);
  if (PQresultStatus (r) != PGRES_COMMAND_OK && PQresultStatus (r) != PGRES_TUPLES_OK)
    die ("%s: %s", sql, PQerrorMessage (c));
  PQclear (r);
  PQfinish (c);
}

static gint64
pg_int (const char *conninfo, const char *sql)
{
  PGconn *c = PQconnectdb (conninfo);
  if (PQstatus (c) != CONNECTION_OK)
    die ("cannot connect: %s", PQerrorMessage (c));
  PGresult *r = PQexec (c, sql);
  if (PQresultStatus (r) != PGRES_TUPLES_OK || PQntuples (r) < 1)
    die ("%s: %s", sql, PQerrorMessage (c));
  gint64 v = g_ascii_strtoll (PQgetvalue (r, 0, 0), NULL, 10);
  PQclear (r);
  PQfinish (c);
  return v;
}

static char *
admin_conninfo (void)
{
  const char *env = g_getenv ("VMEM_BENCH_PG");
  if (env == NULL || *env == '\0')
    env = g_getenv ("VMEM_TEST_PG");
  if (env != NULL && *env != '\0')
    return g_strdup (env);
  if (opt_test_postgres == NULL)
    die ("no server: set VMEM_BENCH_PG (or VMEM_TEST_PG), or give --test-postgres "
         "tools/test-postgres to start a private one");
  g_autofree char *out = NULL, *err = NULL;
  int status = 0;
  g_autoptr(GError) error = NULL;
  const char *argv[] = { opt_test_postgres, "start", NULL };
  if (!g_spawn_sync (NULL, (char **) argv, NULL, 0, NULL, NULL, &out, &err, &status, &error) ||
      !g_spawn_check_wait_status (status, &error))
    die ("%s start: %s %s", opt_test_postgres, error->message, err ? err : "");
  g_autofree char *conninfo = NULL;
  g_auto(GStrv) lines = g_strsplit (out, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    {
      const char *l = lines[i];
      if (g_str_has_prefix (l, "export VMEM_TEST_PG='"))
        conninfo = g_strndup (l + 21, strlen (l) - 22);
      else if (g_str_has_prefix (l, "export VMEM_TEST_PG_DIR='"))
        pg_dir = g_strndup (l + 25, strlen (l) - 26);
    }
  if (conninfo == NULL || pg_dir == NULL)
    die ("%s start printed no connection string", opt_test_postgres);
  return g_steal_pointer (&conninfo);
}

static void
stop_private_server (void)
{
  if (pg_dir == NULL)
    return;
  const char *argv[] = { opt_test_postgres, "stop", pg_dir, NULL };
  g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL, NULL,
                NULL, NULL);
}

static char *
with_dbname (const char *conninfo, const char *db)
{
  return g_strdup_printf ("%s dbname=%s", conninfo, db);
}

/* ---- sustained writes ------------------------------------------------------- */

typedef struct {
  guint first_host, n_hosts;
  char *target; /* conninfo or SQLite path */
  gboolean sqlite;
  double start;   /* wall clock of batch 0 */
  guint batches;  /* per host */
  gboolean paced; /* FALSE: as fast as it goes */
  GArray *latency; /* seconds per batch */
  double max_lag;  /* how late a batch started, at worst */
  guint64 samples;
  char *error;
} Writer;

static void
batch_fill (guint host, guint batch, GStringChunk *strings, GArray *samples, GArray *peaks)
{
  g_array_set_size (samples, 0);
  g_array_set_size (peaks, 0);
  char buf[64];
  g_snprintf (buf, sizeof buf, "bench-host-%04u", host);
  const char *host_id = g_string_chunk_insert_const (strings, buf);
  gint64 t = T0 + (gint64) batch * opt_interval;
  for (guint d = 0; d < opt_domains; d++)
    {
      g_snprintf (buf, sizeof buf, "%08x-0000-4000-8000-%012x", host, d);
      const char *uuid = g_string_chunk_insert_const (strings, buf);
      const char *workload = d % 10 == 0 ? "db" : d % 10 < 4 ? "web" : "app";
      guint64 used = 1024 + (guint64) ((host * 131 + d * 17 + batch * 7) % 2048);
      VmemSample s = {
        .uuid = uuid, .host = host_id, .workload = workload, .t = t, .used_mib = used,
        .rss_mib = used + 200, .current_mib = 4096, .available_mib = 4096,
        .usable_mib = 4096 - used, .guest_quality = TRUE, .vcpus = 2,
      };
      g_array_append_val (samples, s);
      const guint intervals[] = { VMEM_STORE_HOUR, VMEM_STORE_DAY };
      for (guint k = 0; k < 2; k++)
        {
          VmemPeak p = {
            .uuid = (char *) uuid, .host = (char *) host_id, .workload = (char *) workload,
            .interval_s = intervals[k], .start_t = t - t % intervals[k], .peak_mib = used,
            .samples = batch + 1, .guest_samples = batch + 1, .vcpus = 2,
          };
          g_array_append_val (peaks, p);
        }
    }
}

static gpointer
writer_run (gpointer data)
{
  Writer *w = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemStore) store = w->sqlite ? vmem_store_open_sqlite (w->target, &error)
                                         : vmem_store_open_pg (w->target, &error);
  if (store == NULL)
    {
      w->error = g_strdup (error->message);
      return NULL;
    }
  GStringChunk *strings = g_string_chunk_new (4096);
  g_autoptr(GArray) samples = g_array_new (FALSE, TRUE, sizeof (VmemSample));
  g_autoptr(GArray) peaks = g_array_new (FALSE, TRUE, sizeof (VmemPeak));
  for (guint b = 0; b < w->batches; b++)
    for (guint h = 0; h < w->n_hosts; h++)
      {
        guint host = w->first_host + h;
        if (w->paced)
          {
            /* Each host writes once an interval, the hosts spread over it. */
            double due = w->start + b * (double) opt_interval +
                         (double) opt_interval * host / opt_hosts;
            double wait = due - now_s ();
            if (wait > 0)
              g_usleep ((gulong) (wait * G_USEC_PER_SEC));
            else
              w->max_lag = MAX (w->max_lag, -wait);
          }
        batch_fill (host, b, strings, samples, peaks);
        double t = now_s ();
        if (!vmem_store_samples_add (store, (VmemSample *) samples->data, samples->len,
                                     (VmemPeak *) peaks->data, peaks->len, &error))
          {
            w->error = g_strdup (error->message);
            g_string_chunk_free (strings);
            return NULL;
          }
        double dt = now_s () - t;
        g_array_append_val (w->latency, dt);
        w->samples += samples->len;
      }
  g_string_chunk_free (strings);
  return NULL;
}

typedef struct {
  double seconds, samples_per_s, p50_ms, p99_ms, max_lag_s;
  guint64 samples;
} WriteResult;

static WriteResult
run_writers (const char *target, gboolean sqlite, guint hosts, guint threads, guint batches,
             gboolean paced)
{
  Writer *w = g_new0 (Writer, threads);
  GThread **th = g_new0 (GThread *, threads);
  double start = now_s () + 1.0; /* every connection is open by then */
  guint per = hosts / threads, extra = hosts % threads, first = 0;
  for (guint i = 0; i < threads; i++)
    {
      w[i].first_host = first;
      w[i].n_hosts = per + (i < extra);
      first += w[i].n_hosts;
      w[i].target = g_strdup (target);
      w[i].sqlite = sqlite;
      w[i].start = start;
      w[i].batches = batches;
      w[i].paced = paced;
      w[i].latency = g_array_new (FALSE, FALSE, sizeof (double));
      th[i] = g_thread_new ("writer", writer_run, &w[i]);
    }
  g_autoptr(GArray) all = g_array_new (FALSE, FALSE, sizeof (double));
  WriteResult r = { 0 };
  for (guint i = 0; i < threads; i++)
    {
      g_thread_join (th[i]);
      if (w[i].error != NULL)
        die ("writer %u: %s", i, w[i].error);
      g_array_append_vals (all, w[i].latency->data, w[i].latency->len);
      r.samples += w[i].samples;
      r.max_lag_s = MAX (r.max_lag_s, w[i].max_lag);
      g_array_unref (w[i].latency);
      g_free (w[i].target);
    }
  r.seconds = now_s () - (paced ? start : start - 1.0);
  r.samples_per_s = r.samples / r.seconds;
  r.p50_ms = quantile (all, 0.50) * 1000;
  r.p99_ms = quantile (all, 0.99) * 1000;
  g_free (w);
  g_free (th);
  return r;
}

/* ---- estimate with many peers ------------------------------------------------ */

/* The ways an estimate is asked for, timed in turn. */
enum { EST_NEW, EST_RESTART, EST_LISTED, EST_DIRECT, N_EST };
static const char *const est_names[N_EST] = {
  "estimate, a new domain",
  "estimate, a restart (itself left out)",
  "  with the list of peers (explain)",
  "  direct: every peer's histogram",
};

typedef struct {
  guint n;
  double p50, p95, p99;   /* ms */
} Timing;

typedef struct {
  Timing way[N_EST];
  double load_before, load_after;   /* the 1-minute load average */
} Phase;

typedef struct {
  double read_s, load_s;
  guint rows, peers;
  Phase busy, quiet;
} EstimateResult;

static double
loadavg (void)
{
  double l[1] = { 0 };
  return getloadavg (l, 1) == 1 ? l[0] : -1;
}

/* The workload's peaks read as the daemon reads them at start, and loaded
 * into its aggregate. */
static VmemDemand *
load_peers (VmemStore *store, gint64 now, EstimateResult *r)
{
  g_autoptr(GError) error = NULL;
  double t = now_s ();
  g_autoptr(GPtrArray) peaks = vmem_store_peaks_for_workload (
    store, "peers", VMEM_STORE_HOUR, now - (gint64) opt_days * 86400, &error);
  if (peaks == NULL)
    die ("read peaks: %s", error->message);
  r->read_s = now_s () - t;
  r->rows = peaks->len;

  VmemEstimatorConfig ec;
  vmem_estimator_config_init (&ec);
  VmemDemand *demand = vmem_demand_new (&ec, &error);
  t = now_s ();
  for (guint i = 0; i < peaks->len; i++)
    {
      const VmemPeak *p = g_ptr_array_index (peaks, i);
      const VmemPeakObs obs = {
        .uuid = p->uuid, .domain = p->domain, .host = p->host, .start_t = p->start_t,
        .interval_s = VMEM_STORE_HOUR, .peak_mib = (double) p->peak_mib, .samples = p->samples,
        .guest_samples = p->guest_samples, .vcpus = p->vcpus,
      };
      if (!vmem_demand_load_peak (demand, "peers", &obs, &error))
        die ("load peak: %s", error->message);
    }
  r->load_s = now_s () - t;
  return demand;
}

/* One estimate of each way; the new domain's three must agree to the last
 * bit. */
static void
estimate_round (VmemDemand *demand, const VmemProfile *profile, gint64 now, guint round,
                GArray **times, guint *peers)
{
  g_autofree char *restart = g_strdup_printf ("peer-%u", 1 + round % opt_peers);
  double value[N_EST];
  for (guint w = 0; w < N_EST; w++)
    {
      g_autoptr(GError) error = NULL;
      VmemEstimateTarget target = {
        .uuid = w == EST_RESTART ? restart : NULL,
        .vcpus = 2,
        .memory_mib = 8192,
        .no_peer_list = w == EST_NEW || w == EST_RESTART,
      };
      double t = now_s ();
      g_autoptr(VmemEstimate) est =
        w == EST_DIRECT ? vmem_demand_estimate_direct (demand, "peers", profile, &target, now,
                                                       &error)
                        : vmem_demand_estimate (demand, "peers", profile, &target, now, &error);
      double dt = (now_s () - t) * 1000;
      if (est == NULL)
        die ("estimate: %s", error->message);
      g_array_append_val (times[w], dt);
      value[w] = est->value_mib;
      if (w == EST_NEW)
        *peers = est->n_peers;
      if (w == EST_RESTART && est->n_peers + 1 != opt_peers)
        die ("a restart of %s counted %u peers", restart, est->n_peers);
    }
  if (memcmp (&value[EST_NEW], &value[EST_DIRECT], sizeof (double)) != 0 ||
      memcmp (&value[EST_LISTED], &value[EST_DIRECT], sizeof (double)) != 0)
    die ("the estimates differ: %.17g, %.17g listed, %.17g direct", value[EST_NEW],
         value[EST_LISTED], value[EST_DIRECT]);
}

static void
phase_finish (Phase *ph, GArray **times)
{
  ph->load_after = loadavg ();
  for (guint w = 0; w < N_EST; w++)
    {
      ph->way[w].n = times[w]->len;
      ph->way[w].p50 = quantile (times[w], 0.50);
      ph->way[w].p95 = quantile (times[w], 0.95);
      ph->way[w].p99 = quantile (times[w], 0.99);
      g_array_set_size (times[w], 0);
    }
}

typedef struct {
  const char *target;
  gboolean sqlite, paced;
  guint hosts, threads, batches;
  WriteResult result;
  gint done;
} WritersRun;

static gpointer
writers_thread (gpointer data)
{
  WritersRun *run = data;
  run->result = run_writers (run->target, run->sqlite, run->hosts, run->threads, run->batches,
                             run->paced);
  g_atomic_int_set (&run->done, 1);
  return NULL;
}

/* The writers run in a thread while the estimate is timed, one round of
 * every way each @pause_ms; then, the writers done, 2,000 rounds more
 * with nothing else of this process running. */
static WriteResult
run_writers_and_estimates (WritersRun *run, VmemDemand *demand, gint64 now, double pause_ms,
                           EstimateResult *r)
{
  g_autoptr(VmemProfile) profile = vmem_profile_new ("peers");
  GArray *times[N_EST];
  for (guint w = 0; w < N_EST; w++)
    times[w] = g_array_new (FALSE, FALSE, sizeof (double));
  guint round = 0;

  r->busy.load_before = loadavg ();
  GThread *th = g_thread_new ("writers", writers_thread, run);
  while (!g_atomic_int_get (&run->done))
    {
      estimate_round (demand, profile, now, round++, times, &r->peers);
      if (pause_ms > 0)
        g_usleep ((gulong) (pause_ms * 1000));
    }
  g_thread_join (th);
  phase_finish (&r->busy, times);

  r->quiet.load_before = loadavg ();
  for (guint i = 0; i < 2000; i++)
    estimate_round (demand, profile, now, round++, times, &r->peers);
  phase_finish (&r->quiet, times);
  for (guint w = 0; w < N_EST; w++)
    g_array_unref (times[w]);
  return run->result;
}

/* 1,000 peers on 10 hosts, an hourly peak each for 90 days, written as
 * the store would hold them (in bulk: writing 2 M rows a batch at a time
 * is not what is measured here). */
static const char peers_sql_pg[] =
  "INSERT INTO domains (uuid, name, host, workload, first_seen, last_seen)"
  "  SELECT 'peer-' || i, 'peer-' || i, 'bench-peer-host-' || (i %% 10), 'peers', %1$lld, %2$lld"
  "  FROM generate_series(1, %3$u) i;"
  "INSERT INTO domain_ids (uuid) SELECT 'peer-' || i FROM generate_series(1, %3$u) i;"
  "INSERT INTO host_ids (host) SELECT 'bench-peer-host-' || i FROM generate_series(0, 9) i;"
  "INSERT INTO workload_ids (name) VALUES ('peers');"
  "INSERT INTO peaks (domain_id, host_id, workload_id, interval_s, start_t, peak_mib, samples,"
  "  guest_samples, vcpus)"
  "  SELECT d.id, (SELECT id FROM host_ids WHERE host = 'bench-peer-host-' || (i %% 10)),"
  "    (SELECT id FROM workload_ids WHERE name = 'peers'), 3600, %1$lld + h * 3600,"
  "    1024 + (i * 37 + h * 11) %% 3072, 360, 360, 2"
  "  FROM generate_series(1, %3$u) i JOIN domain_ids d ON d.uuid = 'peer-' || i,"
  "    generate_series(0, %4$u - 1) h;"
  "ANALYZE";

static const char peers_sql_sqlite[] =
  "WITH RECURSIVE i(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM i WHERE i < %3$u)"
  "INSERT INTO domains (uuid, name, host, workload, first_seen, last_seen)"
  "  SELECT 'peer-' || i, 'peer-' || i, 'bench-peer-host-' || (i %% 10), 'peers', %1$lld, %2$lld"
  "  FROM i;"
  "WITH RECURSIVE i(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM i WHERE i < %3$u)"
  "INSERT INTO domain_ids (uuid) SELECT 'peer-' || i FROM i;"
  "WITH RECURSIVE i(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM i WHERE i < 9)"
  "INSERT INTO host_ids (host) SELECT 'bench-peer-host-' || i FROM i;"
  "INSERT INTO workload_ids (name) VALUES ('peers');"
  "WITH RECURSIVE i(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM i WHERE i < %3$u),"
  "  h(h) AS (SELECT 0 UNION ALL SELECT h + 1 FROM h WHERE h < %4$u - 1)"
  "INSERT INTO peaks (domain_id, host_id, workload_id, interval_s, start_t, peak_mib, samples,"
  "  guest_samples, vcpus)"
  "  SELECT d.id, (SELECT id FROM host_ids WHERE host = 'bench-peer-host-' || (i %% 10)),"
  "    (SELECT id FROM workload_ids WHERE name = 'peers'), 3600, %1$lld + h * 3600,"
  "    1024 + (i * 37 + h * 11) %% 3072, 360, 360, 2"
  "  FROM i JOIN domain_ids d ON d.uuid = 'peer-' || i, h;"
  "ANALYZE";

/* ---- main -------------------------------------------------------------------- */

static void
print_phase (const char *what, const Phase *ph)
{
  printf ("             %s (load average %.1f -> %.1f):\n", what, ph->load_before,
          ph->load_after);
  printf ("               %-40s %6s %9s %9s %9s\n", "", "n", "p50 ms", "p95 ms", "p99 ms");
  for (guint w = 0; w < N_EST; w++)
    printf ("               %-40s %6u %9.4f %9.4f %9.4f\n", est_names[w], ph->way[w].n,
            ph->way[w].p50, ph->way[w].p95, ph->way[w].p99);
  printf ("               estimate / direct: p50 %.4f, p99 %.4f\n",
          ph->way[EST_NEW].p50 / ph->way[EST_DIRECT].p50,
          ph->way[EST_NEW].p99 / ph->way[EST_DIRECT].p99);
}

static void
print_result (const char *what, guint hosts, const WriteResult *w, double target,
              const EstimateResult *e, double bytes_per_kdd, double peak_bytes_per_kdd)
{
  printf ("%s\n", what);
  printf ("  writes:    %u hosts x %u domains: %.0f samples/s sustained over %.1f s",
          hosts, opt_domains, w->samples_per_s, w->seconds);
  if (target > 0)
    printf (" (asked %.0f/s: %.2f of it; worst lag %.2f s)", target, w->samples_per_s / target,
            w->max_lag_s);
  printf ("\n             batch of %u samples: p50 %.1f ms, p99 %.1f ms\n", opt_domains,
          w->p50_ms, w->p99_ms);
  printf ("  estimate:  %u peers, %u hourly peaks: read %.2f s, loaded %.2f s once\n",
          e->peers, e->rows, e->read_s, e->load_s);
  print_phase ("while the writers run", &e->busy);
  print_phase ("quiet, the writers done", &e->quiet);
  printf ("             target < 5 ms at p99: %s while writing, %s quiet\n",
          e->busy.way[EST_NEW].p99 < 5 && e->busy.way[EST_RESTART].p99 < 5 ? "met" : "NOT met",
          e->quiet.way[EST_NEW].p99 < 5 && e->quiet.way[EST_RESTART].p99 < 5 ? "met" : "NOT met");
  printf ("  size:      %.1f MiB per 1,000 domain-days at a %u s interval (raw samples and "
          "peaks); of which peaks, kept past raw_retention_hours: %.1f MiB\n",
          bytes_per_kdd / 1048576.0, opt_interval, peak_bytes_per_kdd / 1048576.0);
}

int
main (int argc, char **argv)
{
  GOptionEntry entries[] = {
    { "hosts", 0, 0, G_OPTION_ARG_INT, &opt_hosts, "simulated hosts (200)", "N" },
    { "domains", 0, 0, G_OPTION_ARG_INT, &opt_domains, "domains per host (50)", "N" },
    { "interval", 0, 0, G_OPTION_ARG_INT, &opt_interval, "seconds between a host's batches (10)",
      "S" },
    { "seconds", 0, 0, G_OPTION_ARG_INT, &opt_seconds, "how long to write (60)", "S" },
    { "threads", 0, 0, G_OPTION_ARG_INT, &opt_threads, "writer connections (8)", "N" },
    { "peers", 0, 0, G_OPTION_ARG_INT, &opt_peers, "peers of the estimated workload (1000)",
      "N" },
    { "days", 0, 0, G_OPTION_ARG_INT, &opt_days, "days of their hourly peaks (90)", "N" },
    { "test-postgres", 0, 0, G_OPTION_ARG_FILENAME, &opt_test_postgres,
      "tools/test-postgres, to start a private server", "PATH" },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- several hosts on one store");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    die ("%s", error->message);
  if (opt_hosts == 0 || opt_domains == 0 || opt_interval == 0 || opt_seconds == 0 ||
      opt_threads == 0 || opt_peers == 0 || opt_days == 0)
    die ("every number must be positive");
  opt_threads = MIN (opt_threads, opt_hosts);
  guint batches = MAX (1u, opt_seconds / opt_interval);
  gint64 now = T0 + (gint64) opt_days * 86400;
  double target = (double) opt_hosts * opt_domains / opt_interval;
  /* One domain-day at this interval: its raw samples, 24 hourly peaks and
   * one daily. */
  double samples_per_dd = 86400.0 / opt_interval;

  /* PostgreSQL. */
  g_autofree char *admin = admin_conninfo ();
  g_autofree char *db = g_strdup_printf ("vmem_bench_%d", (int) getpid ());
  g_autofree char *create = g_strdup_printf ("CREATE DATABASE %s", db);
  pg_exec (admin, create);
  g_autofree char *target_pg = with_dbname (admin, db);
  {
    g_autoptr(VmemStore) s = vmem_store_open_pg (target_pg, &error);
    if (s == NULL)
      die ("%s", error->message);
  }
  printf ("bench-cluster: %u hosts x %u domains every %u s for %u s (%u batches per host), "
          "%u writer connections; estimate: %u peers x %u days\n\n",
          opt_hosts, opt_domains, opt_interval, batches * opt_interval, batches, opt_threads,
          opt_peers, opt_days);
  /* The estimated workload's peers in a database of their own, so that
   * the sizes below are the writers' alone. */
  g_autofree char *peers_db = g_strdup_printf ("vmem_bench_%d_peers", (int) getpid ());
  g_autofree char *create_peers = g_strdup_printf ("CREATE DATABASE %s", peers_db);
  pg_exec (admin, create_peers);
  g_autofree char *peers_target = with_dbname (admin, peers_db);
  EstimateResult epg = { 0 };
  g_autoptr(VmemDemand) demand_pg = NULL;
  {
    g_autoptr(VmemStore) s = vmem_store_open_pg (peers_target, &error);
    if (s == NULL)
      die ("%s", error->message);
    g_autofree char *peers_pg = g_strdup_printf (peers_sql_pg, (long long) T0, (long long) now,
                                                 opt_peers, opt_days * 24);
    pg_exec (peers_target, peers_pg);
    demand_pg = load_peers (s, now, &epg);
  }
  WritersRun run_pg = {
    .target = target_pg, .sqlite = FALSE, .paced = TRUE, .hosts = opt_hosts,
    .threads = opt_threads, .batches = batches,
  };
  WriteResult wpg = run_writers_and_estimates (&run_pg, demand_pg, now, 10, &epg);
  g_clear_pointer (&demand_pg, vmem_demand_free);
  gint64 size_samples = pg_int (target_pg, "SELECT pg_total_relation_size('samples')");
  gint64 size_peaks = pg_int (target_pg, "SELECT pg_total_relation_size('peaks')");
  gint64 n_samples = pg_int (target_pg, "SELECT count(*) FROM samples");
  gint64 n_peaks = pg_int (target_pg, "SELECT count(*) FROM peaks");
  if ((guint64) n_samples != wpg.samples)
    die ("%" G_GINT64_FORMAT " samples stored, %" G_GUINT64_FORMAT " written", n_samples,
         wpg.samples);
  double pg_kdd = 1000.0 * (samples_per_dd * size_samples / n_samples +
                            25.0 * size_peaks / n_peaks);
  print_result ("PostgreSQL (one server, every host)", opt_hosts, &wpg, target, &epg, pg_kdd,
                1000.0 * 25.0 * size_peaks / n_peaks);

  /* SQLite: one host, as fast as it goes. */
  g_autofree char *dir = g_dir_make_tmp ("vmem-bench-XXXXXX", &error);
  g_autofree char *path = g_build_filename (dir, "vmemd.db", NULL);
  /* An empty store's file, taken off the sizes below: its pages are
   * there whatever is written. */
  g_autofree char *empty = g_build_filename (dir, "empty.db", NULL);
  double size0;
  {
    g_autoptr(VmemStore) s0 = vmem_store_open_sqlite (empty, &error);
    if (s0 == NULL)
      die ("%s", error->message);
  }
  {
    const char *argv0[] = { "sqlite3", empty, "PRAGMA wal_checkpoint(TRUNCATE)", NULL };
    g_spawn_sync (NULL, (char **) argv0, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                  NULL, NULL, NULL, NULL, NULL, NULL);
    struct stat st0;
    g_stat (empty, &st0);
    size0 = (double) st0.st_size;
  }
  /* The estimated workload's peers in a file of their own. */
  g_autofree char *peers_path = g_build_filename (dir, "peers.db", NULL);
  EstimateResult esq = { 0 };
  g_autoptr(VmemDemand) demand_sq = NULL;
  {
    g_autoptr(VmemStore) s = vmem_store_open_sqlite (peers_path, &error);
    if (s == NULL)
      die ("%s", error->message);
    g_autofree char *sql = g_strdup_printf (peers_sql_sqlite, (long long) T0, (long long) now,
                                            opt_peers, opt_days * 24);
    g_autoptr(GError) e2 = NULL;
    const char *argv2[] = { "sqlite3", peers_path, sql, NULL };
    int status = 0;
    if (!g_spawn_sync (NULL, (char **) argv2, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL,
                       &status, &e2) ||
        !g_spawn_check_wait_status (status, &e2))
      die ("sqlite3: %s", e2->message);
    demand_sq = load_peers (s, now, &esq);
  }
  /* One host writes as many samples as the PostgreSQL hosts did, flat out. */
  WritersRun run_sq = {
    .target = path, .sqlite = TRUE, .paced = FALSE, .hosts = 1, .threads = 1,
    .batches = batches * opt_hosts,
  };
  WriteResult wsq = run_writers_and_estimates (&run_sq, demand_sq, now, 10, &esq);
  g_clear_pointer (&demand_sq, vmem_demand_free);
  double sq_kdd, sq_peak_kdd;
  {
    g_autoptr(VmemStore) s = vmem_store_open_sqlite (path, &error);
    if (s == NULL)
      die ("%s", error->message);
    /* The file (after a checkpoint) per domain-day written. */
    g_autofree char *ckpt = g_strdup_printf ("PRAGMA wal_checkpoint(TRUNCATE)");
    const char *argv1[] = { "sqlite3", path, ckpt, NULL };
    g_spawn_sync (NULL, (char **) argv1, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                  NULL, NULL, NULL, NULL, NULL, NULL);
    struct stat st;
    g_stat (path, &st);
    /* Bytes per row, measured: the samples' share is what deleting them
     * frees, the peaks' what is left over an empty store. */
    g_autofree char *npeaks = NULL;
    const char *argvn[] = { "sqlite3", path, "SELECT count(*) FROM peaks", NULL };
    if (!g_spawn_sync (NULL, (char **) argvn, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &npeaks,
                       NULL, NULL, NULL) || npeaks == NULL)
      die ("sqlite3: cannot count the peaks");
    double n_sq_peaks = g_ascii_strtod (npeaks, NULL);
    /* The peaks' share: the file again once the raw samples are gone. */
    const char *argv0[] = { "sqlite3", path,
                            "DELETE FROM samples; VACUUM; PRAGMA wal_checkpoint(TRUNCATE)", NULL };
    g_spawn_sync (NULL, (char **) argv0, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                  NULL, NULL, NULL, NULL, NULL, NULL);
    struct stat st2;
    g_stat (path, &st2);
    double per_sample = ((double) st.st_size - (double) st2.st_size) / (double) wsq.samples;
    double per_peak = ((double) st2.st_size - size0) / MAX (n_sq_peaks, 1.0);
    sq_peak_kdd = 1000.0 * 25.0 * per_peak;
    sq_kdd = 1000.0 * samples_per_dd * per_sample + sq_peak_kdd;
  }
  print_result ("SQLite (one host, its own file: the single-host baseline)", 1, &wsq, 0, &esq,
                sq_kdd, sq_peak_kdd);
  printf ("\nratios PostgreSQL / SQLite: batch p50 %.2f, p99 %.2f; size %.2f\n"
          "  estimate while writing p50 %.2f, p99 %.2f; quiet p50 %.2f, p99 %.2f "
          "(the same code on the same peaks: only the load differs)\n",
          wpg.p50_ms / wsq.p50_ms, wpg.p99_ms / wsq.p99_ms, pg_kdd / sq_kdd,
          epg.busy.way[EST_NEW].p50 / esq.busy.way[EST_NEW].p50,
          epg.busy.way[EST_NEW].p99 / esq.busy.way[EST_NEW].p99,
          epg.quiet.way[EST_NEW].p50 / esq.quiet.way[EST_NEW].p50,
          epg.quiet.way[EST_NEW].p99 / esq.quiet.way[EST_NEW].p99);

  g_autofree char *drop = g_strdup_printf ("DROP DATABASE %s", db);
  pg_exec (admin, drop);
  g_autofree char *drop_peers = g_strdup_printf ("DROP DATABASE %s", peers_db);
  pg_exec (admin, drop_peers);
  for (const char *const *sfx = (const char *const[]) { "", "-wal", "-shm", NULL }; *sfx; sfx++)
    {
      g_autofree char *f = g_strconcat (peers_path, *sfx, NULL);
      g_unlink (f);
    }
  g_unlink (path);
  g_unlink (empty);
  g_autofree char *ewal = g_strconcat (empty, "-wal", NULL);
  g_autofree char *eshm = g_strconcat (empty, "-shm", NULL);
  g_unlink (ewal);
  g_unlink (eshm);
  g_autofree char *wal = g_strconcat (path, "-wal", NULL);
  g_autofree char *shm = g_strconcat (path, "-shm", NULL);
  g_unlink (wal);
  g_unlink (shm);
  g_rmdir (dir);
  stop_private_server ();
  return 0;
}
