/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmemd at scale: the real daemon (VmemDaemon: collector, store, estimator,
 * controller, stager, varlink server) with many managed domains, fed a
 * usage trace instead of libvirt's statistics, in simulated time as fast
 * as it goes.  Prints the CPU of each collector + controller cycle, the
 * process's memory, the database's size, the estimate's latency for a
 * workload with many peers and long history, and the hook's answer
 * latency while cycles run.  See bench/README.md. */
#include "vmem-cleanup.h"
#include "vmem-collector.h"
#include "vmem-config.h"
#include "vmem-daemon.h"
#include "vmem-demand.h"
#include "vmem-estimator.h"
#include "vmem-log.h"
#include "vmem-profile.h"
#include "vmem-store.h"
#include "vmem-trace.h"
#include "vmem-varlink.h"

#include <glib/gstdio.h>
#include <malloc.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#define TRACE_STEP_S 300 /* the trace's step: a value holds until the next */

typedef struct {
  char uuid[37];
  char name[32];
  guint64 ceiling_mib;
  guint vcpus;
  guint32 *used;       /* MiB, one per trace step */
  guint64 balloon_mib; /* the target the controller last set */
  guint64 swap_in_kib;
  guint64 faults;
} Guest;

typedef struct {
  Guest *guests;
  guint n;
  guint steps;
  gint64 t0; /* simulated start, unix seconds */
  guint interval;
  guint cycle;
  GHashTable *by_uuid;  /* uuid -> Guest */
  gint in_cycle;        /* atomic: the daemon handles a cycle's statistics */
} Fleet;

static double
thread_cpu_us (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double) ts.tv_sec * 1e6 + (double) ts.tv_nsec / 1e3;
}

static double
process_cpu_s (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return (double) ru.ru_utime.tv_sec + (double) ru.ru_stime.tv_sec +
         ((double) ru.ru_utime.tv_usec + (double) ru.ru_stime.tv_usec) / 1e6;
}

static guint64
status_kib (const char *field)
{
  g_autofree char *s = NULL;
  if (!g_file_get_contents ("/proc/self/status", &s, NULL, NULL))
    return 0;
  const char *p = strstr (s, field);
  return p ? g_ascii_strtoull (p + strlen (field), NULL, 10) : 0;
}

static int
cmp_double (gconstpointer a, gconstpointer b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

/* Nearest rank. */
static double
pct (GArray *v, double q)
{
  if (v->len == 0)
    return 0;
  g_array_sort (v, cmp_double);
  gsize k = (gsize) (q / 100.0 * v->len + 0.999999);
  k = CLAMP (k, 1, v->len);
  return g_array_index (v, double, k - 1);
}

/* ---- the trace --------------------------------------------------------- */

typedef struct {
  gint32 dt; /* seconds after the trace's first sample */
  guint32 mib;
} Point;

typedef struct {
  GArray *points;
  guint64 ceiling_mib;
  guint vcpus;
} Series;

static void
series_free (Series *s)
{
  g_array_unref (s->points);
  g_free (s);
}

/* Guest k replays trace domain k mod D, shifted by k div D days, so that
 * no two guests replay the same day of the same domain. */
static gboolean
fleet_load (Fleet *f, const char *path, guint n, guint hours, GError **error)
{
  g_autoptr(VmemTraceReader) r = vmem_trace_reader_open (path, error);
  if (r == NULL)
    return FALSE;
  g_autoptr(GHashTable) index = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GPtrArray) series = g_ptr_array_new_with_free_func ((GDestroyNotify) series_free);
  VmemTraceRow row;
  gint64 t0 = -1, window = 0;
  gboolean more;

  while ((more = vmem_trace_reader_next (r, &row, error)))
    {
      if (t0 < 0)
        t0 = row.t;
      gpointer idx;
      if (!g_hash_table_lookup_extended (index, row.domain, NULL, &idx))
        {
          Series *s = g_new0 (Series, 1);
          s->points = g_array_new (FALSE, FALSE, sizeof (Point));
          idx = GUINT_TO_POINTER (series->len);
          g_ptr_array_add (series, s);
          g_hash_table_insert (index, g_strdup (row.domain), idx);
        }
      Series *s = g_ptr_array_index (series, GPOINTER_TO_UINT (idx));
      /* The days the fleet needs, known once the domains are: the trace
       * lists every domain in its first hours. */
      if (window == 0 && row.t - t0 > 6 * 3600)
        window = (gint64) ((n + series->len - 1) / series->len) * 86400 + hours * 3600;
      if (window > 0 && row.t - t0 >= window)
        break;
      Point pt = { .dt = (gint32) (row.t - t0), .mib = (guint32) (row.used_kib / 1024) };
      g_array_append_val (s->points, pt);
      s->ceiling_mib = MAX (s->ceiling_mib, row.ceiling_kib / 1024);
      s->vcpus = MAX (s->vcpus, row.vcpus);
    }
  if (error != NULL && *error != NULL)
    return FALSE;
  if (series->len == 0)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s holds no sample", path);
      return FALSE;
    }
  if (window == 0 || (more == FALSE && window > 0 && row.t - t0 < window))
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                   "%s is too short for %u domains over %u h (%u domains in it)", path, n, hours,
                   series->len);
      return FALSE;
    }

  f->n = n;
  f->steps = hours * 3600 / TRACE_STEP_S;
  f->guests = g_new0 (Guest, n);
  f->by_uuid = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint k = 0; k < n; k++)
    {
      Guest *g = &f->guests[k];
      const Series *s = g_ptr_array_index (series, k % series->len);
      gint64 off = (gint64) (k / series->len) * 86400;
      g_snprintf (g->uuid, sizeof g->uuid, "5ca1ab1e-0000-4000-8000-%012x", k);
      g->ceiling_mib = MAX (s->ceiling_mib, 256);
      g->vcpus = MAX (s->vcpus, 1);
      g->balloon_mib = g->ceiling_mib;
      g->used = g_new0 (guint32, f->steps);
      guint p = 0;
      for (guint j = 0; j < f->steps; j++)
        {
          gint64 at = off + (gint64) j * TRACE_STEP_S;
          while (p + 1 < s->points->len && g_array_index (s->points, Point, p + 1).dt <= at)
            p++;
          g->used[j] = MIN (g_array_index (s->points, Point, p).mib, (guint32) g->ceiling_mib);
        }
      g_hash_table_insert (f->by_uuid, g->uuid, g);
    }
  return TRUE;
}

/* 50 workloads: guest k is "wNN-KKKK", NN = k mod W, and profile wNN
 * takes it by its name (match "wNN-*"). */
static void
fleet_name (Fleet *f, guint workloads)
{
  for (guint k = 0; k < f->n; k++)
    g_snprintf (f->guests[k].name, sizeof f->guests[k].name, "w%02u-%04u", k % workloads, k);
}

static char *
domain_xml (const Guest *g)
{
  return g_strdup_printf ("<domain type='qemu'>\n"
                          "  <name>%s</name>\n"
                          "  <uuid>%s</uuid>\n"
                          "  <memory unit='MiB'>%" G_GUINT64_FORMAT "</memory>\n"
                          "  <currentMemory unit='MiB'>%" G_GUINT64_FORMAT "</currentMemory>\n"
                          "  <vcpu>%u</vcpu>\n"
                          "  <os><type arch='x86_64' machine='pc'>hvm</type></os>\n"
                          "  <devices>\n"
                          "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
                          "    <memballoon model='virtio'><stats period='5'/></memballoon>\n"
                          "  </devices>\n"
                          "</domain>\n",
                          g->name, g->uuid, g->ceiling_mib, g->ceiling_mib, g->vcpus);
}

/* libvirt's test driver reads the domains from a file: all running. */
static gboolean
write_node (Fleet *f, const char *path, GError **error)
{
  g_autoptr(GString) s = g_string_new ("<node>\n");
  for (guint k = 0; k < f->n; k++)
    {
      g_autofree char *x = domain_xml (&f->guests[k]);
      g_string_append (s, x);
    }
  g_string_append (s, "</node>\n");
  return g_file_set_contents (path, s->str, (gssize) s->len, error);
}

/* ---- the statistics source ---------------------------------------------- */

/* The guests as the collector would read them from libvirt: the balloon at
 * the controller's last target; a guest using more than it is given swaps
 * the rest in (its swap-in counter and major faults grow by it) and
 * reports no memory available. */
static GPtrArray *
source (gint64 *now, gpointer data, GError **error)
{
  Fleet *f = data;
  *now = f->t0 + (gint64) f->cycle * f->interval;
  guint step = MIN ((guint) ((*now - f->t0) / TRACE_STEP_S), f->steps - 1);
  f->cycle++;
  GPtrArray *out = g_ptr_array_new_full (f->n, (GDestroyNotify) vmem_balloon_stats_free);
  for (guint k = 0; k < f->n; k++)
    {
      Guest *g = &f->guests[k];
      VmemBalloonStats *s = g_new0 (VmemBalloonStats, 1);
      guint64 used = g->used[step];
      s->uuid = g_strdup (g->uuid);
      s->name = g_strdup (g->name);
      s->maximum_kib = g->ceiling_mib * 1024;
      s->current_kib = g->balloon_mib * 1024;
      s->available_kib = g->balloon_mib * 1024;
      if (used > g->balloon_mib)
        {
          guint64 lack_kib = (used - g->balloon_mib) * 1024;
          g->swap_in_kib += lack_kib;
          g->faults += lack_kib / 4;
          used = g->balloon_mib;
        }
      s->usable_kib = (g->balloon_mib - used) * 1024;
      s->unused_kib = s->usable_kib;
      s->rss_kib = used * 1024 + 64 * 1024;
      s->swap_in_kib = g->swap_in_kib;
      s->major_fault = g->faults;
      s->last_update = *now;
      s->vcpus = g->vcpus;
      s->has_guest = TRUE;
      g_ptr_array_add (out, s);
    }
  /* The statistics are read: the daemon handles them from now until the
   * cycle ends. */
  g_atomic_int_set (&f->in_cycle, 1);
  return out;
}

static void
moved (const char *uuid, guint64 to_mib, gpointer data)
{
  Fleet *f = data;
  Guest *g = g_hash_table_lookup (f->by_uuid, uuid);
  if (g != NULL && to_mib > 0)
    g->balloon_mib = MIN (to_mib, g->ceiling_mib);
}

/* ---- the hook's calls, from another thread -------------------------------- */

typedef struct {
  Fleet *fleet;
  const char *socket;
  gint stop;
  GArray *all_ms;     /* every call */
  GArray *cycle_ms;   /* calls sent or answered while a cycle's statistics were handled */
  GArray *outside_ms; /* the others: the baseline */
  guint failed;
  char *first_error;
  /* The daemon's own figures for the prepare calls, receipt to reply
   * (vmemd_hook_request_duration_seconds{op="prepare"}), read at the end. */
  double served_count, served_sum, served_fast; /* fast: within its 0.5 ms bucket */
  gint done;
} Hooker;

/* The sample of @family named @name (the family's name and a suffix) with
 * op="prepare" and, if not NULL, le=@le, in a Metrics reply. */
static double
metric (json_object *reply, const char *family, const char *name, const char *le)
{
  json_object *families = NULL, *samples = NULL;
  if (!json_object_object_get_ex (reply, "families", &families))
    return -1;
  for (size_t i = 0; i < json_object_array_length (families); i++)
    {
      json_object *f = json_object_array_get_idx (families, i), *n = NULL;
      if (!json_object_object_get_ex (f, "name", &n) ||
          g_strcmp0 (json_object_get_string (n), family) != 0 ||
          !json_object_object_get_ex (f, "samples", &samples))
        continue;
      for (size_t k = 0; k < json_object_array_length (samples); k++)
        {
          json_object *smp = json_object_array_get_idx (samples, k), *sn = NULL, *labels = NULL,
                      *op = NULL, *l = NULL, *v = NULL;
          if (!json_object_object_get_ex (smp, "name", &sn) ||
              g_strcmp0 (json_object_get_string (sn), name) != 0 ||
              !json_object_object_get_ex (smp, "labels", &labels) ||
              !json_object_object_get_ex (labels, "op", &op) ||
              g_strcmp0 (json_object_get_string (op), "prepare") != 0)
            continue;
          if (le != NULL && (!json_object_object_get_ex (labels, "le", &l) ||
                             g_strcmp0 (json_object_get_string (l), le) != 0))
            continue;
          if (json_object_object_get_ex (smp, "value", &v))
            return json_object_get_double (v);
        }
    }
  return -1;
}

static double
load_average (void)
{
  double l[1] = { -1 };
  return getloadavg (l, 1) == 1 ? l[0] : -1;
}

static gpointer
hook_thread (gpointer data)
{
  Hooker *h = data;
  guint k = 0;
  while (!g_atomic_int_get (&h->stop))
    {
      const Guest *g = &h->fleet->guests[k++ % h->fleet->n];
      g_autofree char *xml = domain_xml (g);
      g_autoptr(json_object) params = json_object_new_object ();
      json_object_object_add (params, "op", json_object_new_string ("prepare"));
      json_object_object_add (params, "subop", json_object_new_string ("begin"));
      json_object_object_add (params, "domain", json_object_new_string (g->name));
      json_object_object_add (params, "uuid", json_object_new_string (g->uuid));
      json_object_object_add (params, "xml", json_object_new_string (xml));
      gboolean during = g_atomic_int_get (&h->fleet->in_cycle);
      g_autoptr(GError) error = NULL;
      gint64 t0 = g_get_monotonic_time ();
      g_autoptr(json_object) reply = vmem_varlink_call_sized (
        h->socket, "io.vmemd.HookEvent", params, 2000, VMEM_VARLINK_MAX_ROOT_MESSAGE, &error);
      double ms = (double) (g_get_monotonic_time () - t0) / 1000.0;
      during = during || g_atomic_int_get (&h->fleet->in_cycle);
      if (reply == NULL)
        {
          if (h->failed++ == 0)
            h->first_error = g_strdup (error->message);
        }
      else
        {
          g_array_append_val (h->all_ms, ms);
          g_array_append_val (during ? h->cycle_ms : h->outside_ms, ms);
        }
      g_usleep (2000);
    }
  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) params = json_object_new_object ();
  json_object_object_add (params, "format", json_object_new_string ("json"));
  g_autoptr(json_object) reply = vmem_varlink_call_sized (
    h->socket, "io.vmemd.Metrics", params, 10000, VMEM_VARLINK_MAX_ROOT_MESSAGE, &error);
  if (reply != NULL)
    {
      const char *fam = "vmemd_hook_request_duration_seconds";
      h->served_count = metric (reply, fam, "vmemd_hook_request_duration_seconds_count", NULL);
      h->served_sum = metric (reply, fam, "vmemd_hook_request_duration_seconds_sum", NULL);
      h->served_fast =
        metric (reply, fam, "vmemd_hook_request_duration_seconds_bucket", "0.0005");
    }
  else
    g_printerr ("bench-scale: cannot read the daemon's metrics: %s\n", error->message);
  g_atomic_int_set (&h->done, 1);
  g_main_context_wakeup (NULL);
  return NULL;
}

/* ---- the estimate of a workload with many peers and long history -------- */

/* The workload's peaks loaded as the daemon loads them at start (one
 * hourly peak per peer and hour, from the trace), then estimates for
 * domains of the workload, as a prepare hook asks. */
static void
bench_estimate (const Fleet *f, guint peers, guint days)
{
  VmemEstimatorConfig ec;
  vmem_estimator_config_init (&ec);
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemDemand) d = vmem_demand_new (&ec, &error);
  g_assert_no_error (error);
  gint64 start = vmem_peak_start (f->t0, VMEM_PEAK_HOUR);
  gint64 end = start + (gint64) days * 86400;
  guint loaded = 0;
  for (guint p = 0; p < peers; p++)
    {
      const Guest *g = &f->guests[p % f->n];
      char uuid[37];
      g_snprintf (uuid, sizeof uuid, "5ca1ab1e-0000-4000-9000-%012x", p);
      for (gint64 t = start; t < end; t += VMEM_PEAK_HOUR)
        {
          guint step = (guint) (((t - start) / TRACE_STEP_S) % f->steps);
          guint32 peak = 0;
          for (guint j = 0; j < VMEM_PEAK_HOUR / TRACE_STEP_S; j++)
            peak = MAX (peak, g->used[(step + j) % f->steps]);
          const VmemPeakObs o = {
            .uuid = uuid,
            .domain = g->name,
            .host = "bench",
            .start_t = t,
            .interval_s = VMEM_PEAK_HOUR,
            .peak_mib = (double) peak,
            .samples = 360,
            .guest_samples = 360,
            .vcpus = g->vcpus,
          };
          if (!vmem_demand_load_peak (d, "w00", &o, &error))
            g_error ("loading a peak: %s", error->message);
          loaded++;
        }
    }
  g_autoptr(VmemProfile) profile = vmem_profile_new ("w00");
  g_autoptr(GArray) us = g_array_new (FALSE, FALSE, sizeof (double));
  for (guint i = 0; i < 1000; i++)
    {
      const Guest *g = &f->guests[i % f->n];
      const VmemEstimateTarget target = {
        .uuid = g->uuid,
        .vcpus = g->vcpus,
        .memory_mib = (double) g->ceiling_mib,
      };
      double c0 = thread_cpu_us ();
      g_autoptr(VmemEstimate) e = vmem_demand_estimate (d, "w00", profile, &target, end, &error);
      double c = thread_cpu_us () - c0;
      if (e == NULL)
        g_error ("estimate: %s", error->message);
      g_array_append_val (us, c);
    }
  printf ("\nEstimate for a workload with %u peers and %u days of hourly peaks (%u peaks; "
          "vmem_demand_estimate, thread CPU, n = %u):\n",
          peers, days, loaded, us->len);
  printf ("  p50 %.1f µs   p99 %.1f µs   max %.1f µs   (target: under 1 ms)\n", pct (us, 50),
          pct (us, 99), pct (us, 100));
}

/* ---- the database ------------------------------------------------------- */

static guint64
file_size (const char *path)
{
  struct stat st;
  return g_stat (path, &st) == 0 ? (guint64) st.st_size : 0;
}

static guint64
db_bytes (const char *db)
{
  g_autofree char *wal = g_strconcat (db, "-wal", NULL);
  return file_size (db) + file_size (wal);
}

/* Bytes of each table with its indexes, from SQLite's dbstat. */
static gboolean
table_bytes (const char *db, GHashTable *out, GError **error)
{
  sqlite3 *h = NULL;
  if (sqlite3_open_v2 (db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "cannot open %s: %s", db,
                   sqlite3_errmsg (h));
      sqlite3_close (h);
      return FALSE;
    }
  sqlite3_stmt *st = NULL;
  const char *sql = "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat d "
                    "LEFT JOIN sqlite_schema m ON m.name = d.name GROUP BY 1";
  if (sqlite3_prepare_v2 (h, sql, -1, &st, NULL) != SQLITE_OK)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "dbstat: %s", sqlite3_errmsg (h));
      sqlite3_close (h);
      return FALSE;
    }
  while (sqlite3_step (st) == SQLITE_ROW)
    g_hash_table_insert (
      out, g_strdup ((const char *) sqlite3_column_text (st, 0)),
      g_memdup2 (&(guint64){ (guint64) sqlite3_column_int64 (st, 1) }, sizeof (guint64)));
  sqlite3_finalize (st);
  sqlite3_close (h);
  return TRUE;
}

/* ---- the run ------------------------------------------------------------- */

static gboolean
add_profiles (const char *db, guint workloads, GError **error)
{
  g_autoptr(VmemStore) store = vmem_store_open_sqlite (db, error);
  if (store == NULL)
    return FALSE;
  for (guint w = 0; w < workloads; w++)
    {
      g_autofree char *name = g_strdup_printf ("w%02u", w);
      g_autoptr(VmemProfile) p = vmem_profile_new (name);
      p->match = g_strdup_printf ("w%02u-*", w);
      if (!vmem_store_profile_put (store, p, VMEM_STORE_PUT_CREATE, error))
        return FALSE;
    }
  return TRUE;
}

static void
drain (void)
{
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

int
main (int argc, char **argv)
{
  guint n = 1000, workloads = 50, hours = 24, interval = 10, peers = 100, days = 90;
  g_autofree char *keep = NULL;
  const GOptionEntry entries[] = {
    { "domains", 0, 0, G_OPTION_ARG_INT, &n, "managed domains (default 1000)", "N" },
    { "workloads", 0, 0, G_OPTION_ARG_INT, &workloads, "workloads (default 50)", "N" },
    { "hours", 0, 0, G_OPTION_ARG_INT, &hours, "simulated hours (default 24)", "H" },
    { "interval", 0, 0, G_OPTION_ARG_INT, &interval, "stats interval, s (default 10)", "S" },
    { "peers", 0, 0, G_OPTION_ARG_INT, &peers, "peers of the estimated workload (default 100)",
      "N" },
    { "days", 0, 0, G_OPTION_ARG_INT, &days, "days of its peaks (default 90)", "D" },
    { "keep", 0, 0, G_OPTION_ARG_FILENAME, &keep, "work in DIR and keep it", "DIR" },
    { NULL },
  };
  g_autoptr(GError) error = NULL;
  g_autoptr(GOptionContext) ctx = g_option_context_new ("TRACE.csv[.gz]");
  g_option_context_set_summary (ctx, "vmemd with many managed domains, fed a usage trace in "
                                     "simulated time; prints figures (bench/README.md).");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || argc != 2)
    {
      fprintf (stderr, "bench-scale: %s\n", error ? error->message : "one trace file expected");
      return 2;
    }
  if (n < 1 || n > 100000 || workloads < 1 || workloads > 100 || workloads > n || hours < 1 ||
      hours > 24 * 30 || interval < 1 || interval > 3600 || peers < 1 || days < 1 || days > 3650)
    {
      fprintf (stderr,
               "bench-scale: --domains 1..100000, --workloads 1..100 (at most the "
               "domains), --hours 1..720, --interval 1..3600, --peers ≥ 1, --days 1..3650\n");
      return 2;
    }
  vmem_log_setup ("warning");
  setvbuf (stdout, NULL, _IOLBF, 0);

  Fleet fleet = { .interval = interval };
  double t_load = g_get_monotonic_time ();
  if (!fleet_load (&fleet, argv[1], n, hours, &error))
    {
      fprintf (stderr, "bench-scale: %s\n", error->message);
      return 1;
    }
  fleet_name (&fleet, workloads);
  fleet.t0 = 1700000000; /* any start: the daemon takes the trace's time */
  printf ("%u managed domains in %u workloads, replaying %s (guest k: trace domain k mod D, "
          "k div D days later), %u s interval, %u simulated hours; loaded in %.1f s\n",
          n, workloads, argv[1], interval, hours, (g_get_monotonic_time () - t_load) / 1e6);

  g_autofree char *dir =
    keep ? g_strdup (keep) : g_dir_make_tmp ("vmem-bench-scale-XXXXXX", &error);
  if (dir == NULL || g_mkdir_with_parents (dir, 0700) != 0)
    {
      fprintf (stderr, "bench-scale: no work directory: %s\n", error ? error->message : keep);
      return 1;
    }
  g_autofree char *node = g_build_filename (dir, "node.xml", NULL);
  g_autofree char *db = g_build_filename (dir, "vmemd.db", NULL);
  g_autofree char *sock = g_build_filename (dir, "io.vmemd", NULL);
  /* Nothing of an earlier run is overwritten: --keep takes a new directory. */
  if (g_file_test (db, G_FILE_TEST_EXISTS) || g_file_test (node, G_FILE_TEST_EXISTS))
    {
      fprintf (stderr, "bench-scale: %s already holds a run (vmemd.db or node.xml); give --keep "
                       "a new directory\n", dir);
      return 1;
    }
  if (!write_node (&fleet, node, &error) || !add_profiles (db, workloads, &error))
    {
      fprintf (stderr, "bench-scale: %s\n", error->message);
      return 1;
    }

  VmemConfig *config = vmem_config_new_default ();
  g_free (config->uri);
  config->uri = g_strconcat ("test://", node, NULL);
  g_free (config->socket_path);
  config->socket_path = g_strdup (sock);
  g_free (config->database);
  config->database = g_strdup (db);
  g_free (config->admin_group);
  config->admin_group = g_strdup ("root");
  g_free (config->host_name);
  config->host_name = g_strdup ("bench");
  config->stats_interval = 3600; /* the benchmark takes the cycles itself */
  /* Admission counts every domain's boot size against a host that holds
   * them all: the replayed domains' <memory> add up to terabytes. */
  config->capacity_mib = 64ull * 1024 * 1024;
  config->reserve_mib = 0;
  guint config_raw_hours = config->raw_retention_hours;
  g_autoptr(VmemDaemon) daemon = vmem_daemon_new (config, &error);
  if (daemon == NULL || !vmem_daemon_start (daemon, -1, &error))
    {
      fprintf (stderr, "bench-scale: vmemd: %s\n", error->message);
      return 1;
    }
  gint64 deadline = g_get_monotonic_time () + 120 * G_USEC_PER_SEC;
  while (vmem_daemon_n_domains (daemon) < n && g_get_monotonic_time () < deadline)
    g_main_context_iteration (NULL, TRUE);
  if (vmem_daemon_n_domains (daemon) < n)
    {
      fprintf (stderr, "bench-scale: vmemd knows %u of the %u domains after 2 minutes\n",
               vmem_daemon_n_domains (daemon), n);
      return 1;
    }
  vmem_daemon_set_stats_source (daemon, source, moved, &fleet);

  Hooker hooker = {
    .fleet = &fleet,
    .socket = sock,
    .all_ms = g_array_new (FALSE, FALSE, sizeof (double)),
    .cycle_ms = g_array_new (FALSE, FALSE, sizeof (double)),
    .outside_ms = g_array_new (FALSE, FALSE, sizeof (double)),
  };
  double load0 = load_average ();
  GThread *hook = g_thread_new ("hook", hook_thread, &hooker);

  guint cycles = hours * 3600 / interval;
  g_autoptr(GArray) cpu = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) slices = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) longest = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) trim = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) rss = g_array_new (FALSE, FALSE, sizeof (double));
  double p0 = process_cpu_s ();
  gint64 w0 = g_get_monotonic_time ();
  guint64 db_day1 = 0;
  for (guint c = 0; c < cycles; c++)
    {
      /* The store has the interval to write a cycle: the next waits for it. */
      while (vmem_daemon_store_pending (daemon) > 0)
        g_main_context_iteration (NULL, TRUE);
      if (!vmem_daemon_collect_now (daemon))
        {
          fprintf (stderr, "bench-scale: vmemd took no cycle (libvirt not connected?)\n");
          return 1;
        }
      /* The source reads on its own thread, then the daemon handles the
       * statistics in slices on this one, answering the hook between. */
      while (vmem_daemon_cycle_running (daemon))
        g_main_context_iteration (NULL, TRUE);
      g_atomic_int_set (&fleet.in_cycle, 0);
      VmemDaemonCycleFigures fig;
      vmem_daemon_last_cycle (daemon, &fig);
      double n_slices = fig.slices;
      g_array_append_val (cpu, fig.cpu_us);
      g_array_append_val (slices, n_slices);
      g_array_append_val (longest, fig.longest_slice_us);
      g_array_append_val (trim, fig.trim_us);
      drain ();
      if (c % 360 == 359)
        {
          double r = (double) status_kib ("VmRSS:") / 1024.0;
          g_array_append_val (rss, r);
          fprintf (stderr, "\r%u/%u cycles", c + 1, cycles);
        }
    }
  fprintf (stderr, "\n");
  while (vmem_daemon_store_pending (daemon) > 0)
    g_main_context_iteration (NULL, TRUE);
  double wall = (double) (g_get_monotonic_time () - w0) / 1e6;
  double proc = process_cpu_s () - p0;
  double load1 = load_average ();
  g_atomic_int_set (&hooker.stop, 1);
  /* Its last call reads the daemon's metrics: the main loop answers it. */
  while (!g_atomic_int_get (&hooker.done))
    g_main_context_iteration (NULL, TRUE);
  g_thread_join (hook);
  double rss_end = (double) status_kib ("VmRSS:") / 1024.0;
  double hwm = (double) status_kib ("VmHWM:") / 1024.0;
  double cpu50 = pct (cpu, 50), cpu99 = pct (cpu, 99), cpumax = pct (cpu, 100);
  double rss_max = pct (rss, 100);

  vmem_daemon_free (g_steal_pointer (&daemon));
  db_day1 = db_bytes (db);

  g_autoptr(GHashTable) tables = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  if (!table_bytes (db, tables, &error))
    {
      fprintf (stderr, "bench-scale: %s\n", error->message);
      return 1;
    }

  printf ("\nCollector + controller cycle, main thread CPU of its slices (the hook's calls "
          "between them and the source's own thread left out), n = %u cycles:\n",
          cpu->len);
  printf ("  p50 %.2f ms   p99 %.2f ms   max %.2f ms   (target: p99 under 50 ms)\n", cpu50 / 1000,
          cpu99 / 1000, cpumax / 1000);
  printf ("  slices per cycle p50 %.0f, p99 %.0f; longest slice of a cycle (wall) p50 %.2f ms, "
          "p99 %.2f ms, max %.2f ms; malloc_trim (on its own thread, wall) p50 %.2f ms, "
          "p99 %.2f ms, max %.2f ms\n",
          pct (slices, 50), pct (slices, 99), pct (longest, 50) / 1000, pct (longest, 99) / 1000,
          pct (longest, 100) / 1000, pct (trim, 50) / 1000, pct (trim, 99) / 1000,
          pct (trim, 100) / 1000);
  printf ("  whole process, all threads (store, libvirt worker, hook calls' server side): "
          "%.2f ms CPU per cycle; %.0f s wall for %u simulated hours\n",
          proc * 1000 / cycles, wall, hours);
  printf ("\nMemory of the process: the daemon, libvirt's test driver holding the %u domains "
          "(in a real host libvirtd holds them) and this benchmark's %.2f MiB of replayed usage:\n",
          n, (double) n * fleet.steps * sizeof (guint32) / 1048576.0);
  printf ("  RSS at the end %.1f MiB, highest hourly %.1f MiB, high-water mark %.1f MiB "
          "(target: under 30 MiB)\n",
          rss_end, rss_max, hwm);

  double samples = 0, other = 0;
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init (&it, tables);
  while (g_hash_table_iter_next (&it, &k, &v))
    {
      guint64 b = *(guint64 *) v;
      if (g_str_equal (k, "samples"))
        samples += (double) b;
      else
        other += (double) b;
    }
  printf ("\nDatabase (SQLite) after %u simulated hours: %.1f MiB; by table:", hours,
          (double) db_day1 / 1048576.0);
  g_hash_table_iter_init (&it, tables);
  while (g_hash_table_iter_next (&it, &k, &v))
    printf (" %s %.1f MiB;", (const char *) k, (double) *(guint64 *) v / 1048576.0);
  printf ("\n");
  /* Raw samples are kept [store] raw_retention_hours, peaks
   * peak_retention_days; the rest (moves, plans, runs) is counted as
   * growing for the whole 90 days, an upper bound. */
  double raw_h = MIN ((double) config_raw_hours, 90.0 * 24);
  double projected = samples * (raw_h > hours ? raw_h / hours : 1.0) + other * (90.0 * 24 / hours);
  printf ("  projected to 90 days: %.1f MiB (samples for raw_retention_hours = %u h, everything "
          "else growing for 90 days) (target: under 500 MiB)\n",
          projected / 1048576.0, config_raw_hours);
  printf ("  hook calls answered: %u (%u while a cycle ran), failed: %u%s%s\n", hooker.all_ms->len,
          hooker.cycle_ms->len, hooker.failed, hooker.first_error ? " — " : "",
          hooker.first_error ? hooker.first_error : "");
  double in50 = pct (hooker.cycle_ms, 50), in95 = pct (hooker.cycle_ms, 95),
         in99 = pct (hooker.cycle_ms, 99);
  double out50 = pct (hooker.outside_ms, 50), out95 = pct (hooker.outside_ms, 95),
         out99 = pct (hooker.outside_ms, 99);
  printf ("\nHook answer (HookEvent prepare over the socket, from another thread, one call every "
          "2 ms plus its answer; load average %.2f at the start, %.2f at the end):\n",
          load0, load1);
  printf ("  outside cycles (baseline):          p50 %.2f ms   p95 %.2f ms   p99 %.2f ms   "
          "n = %u\n",
          out50, out95, out99, hooker.outside_ms->len);
  printf ("  while a cycle's statistics were handled: p50 %.2f ms   p95 %.2f ms   p99 %.2f ms   "
          "n = %u   (target: p99 under 2 ms)\n",
          in50, in95, in99, hooker.cycle_ms->len);
  printf ("  during / outside: p50 %.2f×, p95 %.2f×, p99 %.2f× (p99 %+.2f ms)\n",
          out50 > 0 ? in50 / out50 : 0, out95 > 0 ? in95 / out95 : 0,
          out99 > 0 ? in99 / out99 : 0, in99 - out99);
  printf ("  all calls: p50 %.2f ms   p99 %.2f ms   n = %u\n", pct (hooker.all_ms, 50),
          pct (hooker.all_ms, 99), hooker.all_ms->len);
  if (hooker.served_count > 0)
    printf ("  the daemon's own handling (receipt to reply, vmemd_hook_request_duration_seconds"
            "{op=\"prepare\"}): mean %.1f µs, %.2f %% within 0.5 ms, n = %.0f\n",
            hooker.served_sum / hooker.served_count * 1e6,
            100.0 * hooker.served_fast / hooker.served_count, hooker.served_count);

  bench_estimate (&fleet, peers, days);
  if (keep == NULL)
    {
      g_autofree char *wal = g_strconcat (db, "-wal", NULL);
      g_autofree char *shm = g_strconcat (db, "-shm", NULL);
      g_unlink (db), g_unlink (wal), g_unlink (shm), g_unlink (node), g_rmdir (dir);
    }
  return 0;
}
