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
#include <libvirt/libvirt.h>
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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

/* ---- the process's memory ------------------------------------------------ */

/* What the process holds at one point: RSS, and the heap as glibc's
 * allocator counts it over all its arenas. */
typedef struct {
  double rss_mib;
  double in_use_mib; /* allocated and not freed */
  double held_mib;   /* freed, kept in the arenas */
  double mmap_mib;   /* large blocks, mapped on their own */
} Mem;

static Mem
mem_now (void)
{
  struct mallinfo2 mi = mallinfo2 ();
  return (Mem){
    .rss_mib = (double) status_kib ("VmRSS:") / 1024.0,
    .in_use_mib = (double) (mi.uordblks + mi.hblkhd) / 1048576.0,
    .held_mib = (double) mi.fordblks / 1048576.0,
    .mmap_mib = (double) mi.hblkhd / 1048576.0,
  };
}

/* Starts the high-water mark (VmHWM) again from the RSS of now. */
static void
reset_hwm (void)
{
  FILE *f = fopen ("/proc/self/clear_refs", "w");
  if (f == NULL || fputs ("5", f) < 0 || fclose (f) != 0)
    g_error ("cannot reset the high-water mark through /proc/self/clear_refs");
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

/* libvirt's test driver, shared by every connection of the process to
 * test:///default: the benchmark defines and starts the fleet in it, and
 * keeps its connection open to the end, so that the driver and its
 * domains are there, the same, before the daemon starts and after it has
 * gone: the process's memory then is the baseline the daemon's is
 * measured against.  (Any other test:/// URI gives each connection a
 * driver of its own.)  The driver's own "test" domain stays unmanaged. */
static virConnectPtr
fill_test_driver (Fleet *f, GError **error)
{
  virConnectPtr conn = virConnectOpen ("test:///default");
  if (conn == NULL)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "libvirt's test driver: %s",
                   virGetLastErrorMessage ());
      return NULL;
    }
  for (guint k = 0; k < f->n; k++)
    {
      g_autofree char *x = domain_xml (&f->guests[k]);
      virDomainPtr dom = virDomainDefineXML (conn, x);
      if (dom == NULL || virDomainCreate (dom) < 0)
        {
          g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "defining %s in the test driver: %s",
                       f->guests[k].name, virGetLastErrorMessage ());
          if (dom != NULL)
            virDomainFree (dom);
          virConnectClose (conn);
          return NULL;
        }
      virDomainFree (dom);
    }
  return conn;
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

/* A minimal server: a thread of the same process that answers every call
 * at once without parsing it.  The hook thread calls it right after each
 * call to vmemd, so that both see the same machine at the same moment: it
 * is the baseline of what any server's answer waits for here (a thread
 * woken from poll(), where vmemd's main loop may be running already). */
typedef struct {
  int fd;
  gint stop;
} Floor;

static gpointer
floor_thread (gpointer data)
{
  Floor *fl = data;
  static const char reply[] = "{\"parameters\":{\"allow\":true}}"; /* its NUL ends it */
  while (!g_atomic_int_get (&fl->stop))
    {
      struct pollfd p = { .fd = fl->fd, .events = POLLIN };
      if (poll (&p, 1, 100) <= 0)
        continue;
      vmem_autofd int c = accept4 (fl->fd, NULL, NULL, SOCK_CLOEXEC);
      if (c < 0)
        continue;
      /* The call, to its NUL; then the answer. */
      gboolean whole = FALSE;
      while (!whole)
        {
          char buf[65536];
          ssize_t n = read (c, buf, sizeof buf);
          if (n <= 0)
            break;
          whole = memchr (buf, '\0', (size_t) n) != NULL;
        }
      if (whole)
        {
          ssize_t w = write (c, reply, sizeof reply);
          (void) w;
        }
    }
  return NULL;
}

static int
floor_listen (const char *path, GError **error)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if (strlen (path) >= sizeof addr.sun_path)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "socket path too long: %s", path);
      return -1;
    }
  strcpy (addr.sun_path, path);
  vmem_autofd int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind (fd, (struct sockaddr *) &addr, sizeof addr) != 0 || listen (fd, 64) != 0)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "cannot listen on %s: %s", path,
                   g_strerror (errno));
      return -1;
    }
  return g_steal_fd (&fd);
}

typedef struct {
  Fleet *fleet;
  const char *socket;
  const char *floor_socket;
  gint stop;
  gint calls_done;   /* the thread made its last call (atomic) */
  gint read_metrics; /* go on to read the daemon's metrics (atomic) */
  GArray *all_ms;     /* every call */
  GArray *cycle_ms;   /* calls sent or answered while a cycle's statistics were handled */
  GArray *outside_ms; /* the others: the baseline */
  GArray *floor_cycle_ms;   /* the minimal server's answers, the same way */
  GArray *floor_outside_ms;
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

      /* The same call to the minimal server. */
      g_autoptr(GError) floor_error = NULL;
      during = g_atomic_int_get (&h->fleet->in_cycle);
      t0 = g_get_monotonic_time ();
      g_autoptr(json_object) floor_reply =
        vmem_varlink_call_sized (h->floor_socket, "io.vmemd.HookEvent", params, 2000,
                                 VMEM_VARLINK_MAX_ROOT_MESSAGE, &floor_error);
      ms = (double) (g_get_monotonic_time () - t0) / 1000.0;
      during = during || g_atomic_int_get (&h->fleet->in_cycle);
      if (floor_reply != NULL)
        g_array_append_val (during ? h->floor_cycle_ms : h->floor_outside_ms, ms);
      g_usleep (2000);
    }
  /* The daemon's memory is measured now; only then the metrics, whose
   * reply (several MB of JSON) is the benchmark's, not the daemon's. */
  g_atomic_int_set (&h->calls_done, 1);
  while (!g_atomic_int_get (&h->read_metrics))
    g_usleep (1000);
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

/* Hourly peaks of @peers peers from @from to @to into @d, one per peer and
 * hour, from the trace as the fleet replays it. */
static void
load_peaks (VmemDemand *d, const Fleet *f, guint peers, gint64 start, gint64 from, gint64 to,
            guint *loaded)
{
  g_autoptr(GError) error = NULL;
  for (guint p = 0; p < peers; p++)
    {
      const Guest *g = &f->guests[p % f->n];
      char uuid[37];
      g_snprintf (uuid, sizeof uuid, "5ca1ab1e-0000-4000-9000-%012x", p);
      for (gint64 t = from; t < to; t += VMEM_PEAK_HOUR)
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
          (*loaded)++;
        }
    }
}

/* The workload's peaks loaded as the daemon loads them at start (one
 * hourly peak per peer and hour, from the trace), then estimates for
 * domains of the workload, as a prepare hook asks. */
static void
bench_estimate (const Fleet *f, guint peers, guint days)
{
  VmemEstimatorConfig ec;
  vmem_estimator_config_init (&ec);
  g_autoptr(GError) error = NULL;
  malloc_trim (0);
  Mem m0 = mem_now ();
  g_autoptr(VmemDemand) d = vmem_demand_new (&ec, &error);
  g_assert_no_error (error);
  gint64 start = vmem_peak_start (f->t0, VMEM_PEAK_HOUR);
  gint64 end = start + (gint64) days * 86400;
  /* The first day of every peer, then the other days: what the peaks
   * held in memory take after a day and after all of them. */
  guint loaded = 0;
  load_peaks (d, f, peers, start, start, MIN (start + 86400, end), &loaded);
  Mem m_day = mem_now ();
  load_peaks (d, f, peers, start, start + 86400, end, &loaded);
  Mem m1 = mem_now ();
  g_autoptr(VmemProfile) profile = vmem_profile_new ("w00");
  g_autoptr(GArray) us = g_array_new (FALSE, FALSE, sizeof (double));
  g_autoptr(GArray) direct_us = g_array_new (FALSE, FALSE, sizeof (double));
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
      /* The baseline of the same run: every peer's histogram walked. */
      c0 = thread_cpu_us ();
      g_autoptr(VmemEstimate) direct = vmem_demand_estimate_direct (d, "w00", profile, &target,
                                                                    end, &error);
      c = thread_cpu_us () - c0;
      if (direct == NULL)
        g_error ("estimate: %s", error->message);
      if (direct->value_mib != e->value_mib)
        g_error ("estimate: %.17g, direct %.17g", e->value_mib, direct->value_mib);
      g_array_append_val (direct_us, c);
    }
  printf ("\nEstimate for a workload with %u peers and %u days of hourly peaks (%u peaks; "
          "vmem_demand_estimate, thread CPU, n = %u):\n",
          peers, days, loaded, us->len);
  printf ("  p50 %.1f µs   p99 %.1f µs   max %.1f µs   (target: under 1 ms)\n", pct (us, 50),
          pct (us, 99), pct (us, 100));
  printf ("  direct, every peer's histogram (the same estimates): p50 %.1f µs   p99 %.1f µs   "
          "max %.1f µs; estimate / direct: p50 %.3f, p99 %.3f\n",
          pct (direct_us, 50), pct (direct_us, 99), pct (direct_us, 100),
          pct (us, 50) / pct (direct_us, 50), pct (us, 99) / pct (direct_us, 99));
  /* The aggregate keeps a decaying histogram per peer, not each peak. */
  double day_kib = (m_day.in_use_mib - m0.in_use_mib) * 1024.0;
  double all_kib = (m1.in_use_mib - m0.in_use_mib) * 1024.0;
  printf ("  the peaks held in memory (heap of the VmemDemand): %.0f KiB after the first day of the "
          "%u peers (%.0f bytes a peer), %.0f KiB after all %u days; for %u domains, %.2f MiB "
          "after a day, %.2f MiB after %u days\n",
          day_kib, peers, day_kib * 1024 / peers, all_kib, days, f->n,
          day_kib / 1024 * f->n / peers, all_kib / 1024 * f->n / peers, days);
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

/* ---- a restart ---------------------------------------------------------- */

typedef struct {
  const char *socket;
  guint64 stages; /* stage jobs done, by the daemon's metrics */
  char *error;
  gint done;
} StagesCall;

/* Another thread: the main thread runs the daemon's loop meanwhile. */
static gpointer
stages_thread (gpointer data)
{
  StagesCall *c = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) params = json_object_new_object ();
  g_autoptr(json_object) reply =
    vmem_varlink_call_sized (c->socket, "io.vmemd.Metrics", params, 10000,
                             VMEM_VARLINK_MAX_ROOT_MESSAGE, &error);
  json_object *text = NULL;
  if (reply == NULL)
    c->error = g_strdup (error->message);
  else if (!json_object_object_get_ex (reply, "text", &text))
    c->error = g_strdup ("Metrics replied without text");
  else
    {
      g_auto(GStrv) lines = g_strsplit (json_object_get_string (text), "\n", -1);
      for (guint i = 0; lines[i] != NULL; i++)
        if (g_str_has_prefix (lines[i], "vmemd_stages_total{"))
          {
            const char *v = strrchr (lines[i], ' ');
            c->stages += v ? g_ascii_strtoull (v + 1, NULL, 10) : 0;
          }
    }
  g_atomic_int_set (&c->done, 1);
  return NULL;
}

/* The stage jobs the daemon has done since it started. */
static guint64
stages_done (const char *socket, GError **error)
{
  StagesCall c = { .socket = socket };
  GThread *t = g_thread_new ("metrics", stages_thread, &c);
  while (!g_atomic_int_get (&c.done))
    g_main_context_iteration (NULL, TRUE);
  g_thread_join (t);
  if (c.error != NULL)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s", c.error);
      g_free (c.error);
      return 0;
    }
  return c.stages;
}

/* The daemon started again on the same database and domains, as after a
 * restart of the service: it loads the stored peaks and stages every
 * managed domain at once, each plan listing the peers of its workload.
 * Returns FALSE when it does not come up or stage them all. */
static gboolean
restart (VmemConfig *config, guint n, const char *socket, Mem *top, double *hwm, guint64 *stages,
         GError **error)
{
  g_autoptr(VmemDaemon) daemon = vmem_daemon_new (config, error);
  if (daemon == NULL || !vmem_daemon_start (daemon, -1, error))
    return FALSE;
  gint64 deadline = g_get_monotonic_time () + 300 * G_USEC_PER_SEC;
  *top = mem_now ();
  *stages = 0;
  while (g_get_monotonic_time () < deadline)
    {
      g_main_context_iteration (NULL, TRUE);
      Mem m = mem_now ();
      if (m.in_use_mib > top->in_use_mib)
        *top = m;
      if (vmem_daemon_n_domains (daemon) >= n && (*stages = stages_done (socket, error)) >= n)
        break;
      if (error != NULL && *error != NULL)
        return FALSE;
    }
  *hwm = (double) status_kib ("VmHWM:") / 1024.0;
  if (*stages < n)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                   "the restarted daemon did %" G_GUINT64_FORMAT " stage jobs of %u in 5 minutes",
                   *stages, n);
      return FALSE;
    }
  return TRUE;
}

/* Rows of the samples table, and of them those at or after @since. */
static gboolean
sample_rows (const char *db, gint64 since, guint64 *all, guint64 *recent, GError **error)
{
  sqlite3 *h = NULL;
  sqlite3_stmt *st = NULL;
  gboolean ok = sqlite3_open_v2 (db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
                sqlite3_prepare_v2 (h, "SELECT count(*), count(*) FILTER (WHERE t >= ?) FROM samples",
                                    -1, &st, NULL) == SQLITE_OK;
  if (ok)
    {
      sqlite3_bind_int64 (st, 1, since);
      ok = sqlite3_step (st) == SQLITE_ROW;
    }
  if (ok)
    {
      *all = (guint64) sqlite3_column_int64 (st, 0);
      *recent = (guint64) sqlite3_column_int64 (st, 1);
    }
  else
    g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "counting samples in %s: %s", db,
                 sqlite3_errmsg (h));
  sqlite3_finalize (st);
  sqlite3_close (h);
  return ok;
}

/* Retention as vmemd runs it every hour, with the simulated clock: the
 * daemon's own hourly run goes by the wall clock, which the simulation
 * outruns.  Returns the seconds it took. */
static double
retention (const char *db, const VmemConfig *defaults, gint64 now, GError **error)
{
  gint64 t = g_get_monotonic_time ();
  g_autoptr(VmemStore) store = vmem_store_open_sqlite (db, error);
  if (store == NULL ||
      !vmem_store_prune (store, now, defaults->raw_retention_hours, defaults->raw_full_hours,
                         defaults->raw_thinned_seconds, defaults->peak_retention_days, error))
    return -1;
  return (double) (g_get_monotonic_time () - t) / 1e6;
}

/* The database after the run, by table, and projected to 90 days at
 * retention's steady state.  Samples: the rows retention keeps for good
 * (raw_full_hours of every sample, then one per raw_thinned_seconds up to
 * raw_retention_hours), at the bytes per row measured.  Every other table
 * (peaks, moves, runs, plans, outcomes, ...) grows for the 90 days, the
 * moves' reasons (move_reasons) for raw_retention_hours, at
 * the rate measured over the later half of the run: the first hour's
 * one-off moves, the balloons coming down after the start, are not
 * counted again every day.  The earlier projection, every table's growth
 * over the whole run taken as repeating, is printed beside it. */
static gboolean
db_figures (const char *db, GHashTable *tables, GPtrArray *hourly, GArray *retention_s,
            const VmemConfig *d, guint n, guint interval, guint hours, gint64 now,
            guint64 file_bytes, GError **error)
{
  guint64 rows = 0, full_rows = 0;
  if (!sample_rows (db, now - (gint64) d->raw_full_hours * 3600, &rows, &full_rows, error))
    return FALSE;
  const double mib = 1048576.0, horizon_h = 90.0 * 24;
  g_autoptr(GList) names = g_list_sort (g_hash_table_get_keys (tables), (GCompareFunc) strcmp);
  /* The later half of the run, from its second hour on. */
  guint from_h = MAX (1u, hours / 2);
  gboolean late = hours >= 2;
  GHashTable *at_from = late ? g_ptr_array_index (hourly, from_h - 1) : NULL;

  double samples = 0;
  for (GList *l = names; l; l = l->next)
    if (g_str_equal (l->data, "samples"))
      samples = (double) *(guint64 *) g_hash_table_lookup (tables, l->data);
  double kept_h = MIN ((double) d->raw_full_hours, (double) d->raw_retention_hours);
  double steady_rows =
    (double) n * (kept_h * 3600 / interval +
                  (d->raw_thinned_seconds > 0 && d->raw_retention_hours > d->raw_full_hours
                     ? (double) (d->raw_retention_hours - d->raw_full_hours) * 3600 /
                         d->raw_thinned_seconds
                     : 0));
  if (d->raw_thinned_seconds == 0 || d->raw_full_hours >= d->raw_retention_hours)
    steady_rows = (double) n * d->raw_retention_hours * 3600 / interval;
  double per_row = rows > 0 ? samples / (double) rows : 0;
  double retention_p50 = pct (retention_s, 50), retention_max = pct (retention_s, 100);

  printf ("\nDatabase (SQLite) after %u simulated hours: %.1f MiB (file and WAL); retention "
          "as vmemd runs it every hour (raw_full_hours = %u, raw_thinned_seconds = %u, "
          "raw_retention_hours = %u, peak_retention_days = %u), p50 %.0f ms, max %.0f ms, "
          "n = %u\n",
          hours, (double) file_bytes / mib, d->raw_full_hours, d->raw_thinned_seconds,
          d->raw_retention_hours, d->peak_retention_days, retention_p50 * 1000,
          retention_max * 1000, retention_s->len);
  printf ("  samples: %" G_GUINT64_FORMAT " rows (%" G_GUINT64_FORMAT " of the last %u h, "
          "every one), %.1f bytes a row with the key\n",
          rows, full_rows, d->raw_full_hours, per_row);
  printf ("  %-14s %10s %14s %14s %14s\n", "table", "now MiB", "late MiB/day", "90 d MiB",
          "90 d (whole-run rate)");
  double total = 0, naive = 0;
  for (GList *l = names; l; l = l->next)
    {
      const char *name = l->data;
      double b = (double) *(guint64 *) g_hash_table_lookup (tables, name);
      double projected, whole;
      char rate[32] = "-";
      if (g_str_equal (name, "samples"))
        {
          projected = per_row * steady_rows;
          whole = b * MAX (1.0, (double) d->raw_retention_hours / hours);
        }
      else
        {
          guint64 *before = at_from ? g_hash_table_lookup (at_from, name) : NULL;
          double per_h = late ? (b - (before ? (double) *before : 0)) / (hours - from_h) : b / hours;
          if (per_h < 0)
            per_h = 0;
          /* The moves' reasons are kept raw_retention_hours: they grow
           * until then, and stay there. */
          double kept = g_str_equal (name, "move_reasons")
                          ? MIN (horizon_h, (double) d->raw_retention_hours)
                          : horizon_h;
          projected = b + per_h * MAX (0.0, kept - hours);
          whole = b * kept / hours;
          g_snprintf (rate, sizeof rate, "%.2f", per_h * 24 / mib);
        }
      total += projected;
      naive += whole;
      printf ("  %-14s %10.1f %14s %14.1f %14.1f\n", name, b / mib, rate, projected / mib,
              whole / mib);
    }
  printf ("  projected to 90 days: %.1f MiB at steady state%s (target: under 500 MiB); "
          "%.1f MiB taking the whole run's growth as repeating\n",
          total / mib, late ? "" : " (one hour: no later half; --hours 2 or more)",
          naive / mib);
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

static VmemConfig *
bench_config (const char *db, const char *sock)
{
  VmemConfig *config = vmem_config_new_default ();
  g_free (config->uri);
  config->uri = g_strdup ("test:///default");
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
  return config;
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
  /* The simulated time ends at the hour before now: the daemon takes the
   * trace's time in its cycles, and its own clock when it starts again
   * and loads the peaks it stored. */
  gint64 wall_now = g_get_real_time () / G_USEC_PER_SEC;
  fleet.t0 = wall_now - wall_now % 3600 - (gint64) hours * 3600;
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
  g_autofree char *db = g_build_filename (dir, "vmemd.db", NULL);
  g_autofree char *sock = g_build_filename (dir, "io.vmemd", NULL);
  /* Nothing of an earlier run is overwritten: --keep takes a new directory. */
  if (g_file_test (db, G_FILE_TEST_EXISTS))
    {
      fprintf (stderr, "bench-scale: %s already holds a run (vmemd.db); give --keep "
                       "a new directory\n", dir);
      return 1;
    }
  virConnectPtr driver = NULL;
  if (!add_profiles (db, workloads, &error) || (driver = fill_test_driver (&fleet, &error)) == NULL)
    {
      fprintf (stderr, "bench-scale: %s\n", error->message);
      return 1;
    }
  /* The baseline: this process with the test driver holding the domains
   * and the replayed usage, before the daemon starts. */
  malloc_trim (0);
  Mem base = mem_now ();
  reset_hwm ();

  VmemConfig *config = bench_config (db, sock);
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
  Mem started = mem_now ();

  Hooker hooker = {
    .fleet = &fleet,
    .socket = sock,
    .all_ms = g_array_new (FALSE, FALSE, sizeof (double)),
    .cycle_ms = g_array_new (FALSE, FALSE, sizeof (double)),
    .outside_ms = g_array_new (FALSE, FALSE, sizeof (double)),
    .floor_cycle_ms = g_array_new (FALSE, FALSE, sizeof (double)),
    .floor_outside_ms = g_array_new (FALSE, FALSE, sizeof (double)),
  };
  g_autofree char *floor_sock = g_build_filename (dir, "floor", NULL);
  Floor floor_server = { .fd = floor_listen (floor_sock, &error) };
  if (floor_server.fd < 0)
    {
      fprintf (stderr, "bench-scale: %s\n", error->message);
      return 1;
    }
  hooker.floor_socket = floor_sock;
  GThread *floor_server_thread = g_thread_new ("floor", floor_thread, &floor_server);
  double load0 = load_average ();
  GThread *hook = g_thread_new ("hook", hook_thread, &hooker);

  guint cycles = hours * 3600 / interval;
  const guint per_hour = 3600 / interval;
  g_autoptr(VmemConfig) defaults = vmem_config_new_default ();
  /* Each simulated hour's tables, after that hour's retention. */
  g_autoptr(GPtrArray) hourly = g_ptr_array_new_with_free_func ((GDestroyNotify) g_hash_table_unref);
  g_autoptr(GArray) retention_s = g_array_new (FALSE, FALSE, sizeof (double));
  double measure_cpu = 0, measure_wall = 0;
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
      if ((c + 1) % per_hour == 0)
        {
          while (vmem_daemon_store_pending (daemon) > 0)
            g_main_context_iteration (NULL, TRUE);
          double rs = retention (db, defaults, fleet.t0 + (gint64) (c + 1) * interval, &error);
          if (rs < 0)
            {
              fprintf (stderr, "bench-scale: retention: %s\n", error->message);
              return 1;
            }
          g_array_append_val (retention_s, rs);
          /* Measuring the tables is the benchmark's, not the daemon's. */
          double m_cpu = process_cpu_s ();
          gint64 m_wall = g_get_monotonic_time ();
          GHashTable *snap = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
          g_ptr_array_add (hourly, snap);
          if (!table_bytes (db, snap, &error))
            {
              fprintf (stderr, "bench-scale: %s\n", error->message);
              return 1;
            }
          measure_cpu += process_cpu_s () - m_cpu;
          measure_wall += (double) (g_get_monotonic_time () - m_wall) / 1e6;
        }
    }
  fprintf (stderr, "\n");
  while (vmem_daemon_store_pending (daemon) > 0)
    g_main_context_iteration (NULL, TRUE);
  double wall = (double) (g_get_monotonic_time () - w0) / 1e6 - measure_wall;
  double proc = process_cpu_s () - p0 - measure_cpu;
  double load1 = load_average ();
  g_atomic_int_set (&hooker.stop, 1);
  while (!g_atomic_int_get (&hooker.calls_done))
    g_main_context_iteration (NULL, FALSE);
  Mem end = mem_now ();
  double hwm = (double) status_kib ("VmHWM:") / 1024.0;
  /* Its last call reads the daemon's metrics: the main loop answers it. */
  g_atomic_int_set (&hooker.read_metrics, 1);
  while (!g_atomic_int_get (&hooker.done))
    g_main_context_iteration (NULL, TRUE);
  g_thread_join (hook);
  g_atomic_int_set (&floor_server.stop, 1);
  g_thread_join (floor_server_thread);
  close (floor_server.fd);
  g_unlink (floor_sock);
  sqlite3_int64 sql_now = 0, sql_high = 0;
  sqlite3_status64 (SQLITE_STATUS_MEMORY_USED, &sql_now, &sql_high, 0);
  double cpu50 = pct (cpu, 50), cpu99 = pct (cpu, 99), cpumax = pct (cpu, 100);
  double rss_max = pct (rss, 100);

  vmem_daemon_free (g_steal_pointer (&daemon));
  /* What is left without the daemon: the test driver, grown by the
   * daemon's defines and balloon moves, and the benchmark's own. */
  drain ();
  malloc_trim (0);
  Mem after = mem_now ();

  /* The daemon started again on what the run stored. */
  reset_hwm ();
  Mem restart_top;
  double restart_hwm;
  guint64 restart_stages;
  if (!restart (bench_config (db, sock), n, sock, &restart_top, &restart_hwm, &restart_stages,
                &error))
    {
      fprintf (stderr, "bench-scale: restart: %s\n", error->message);
      return 1;
    }
  drain ();
  malloc_trim (0);
  db_day1 = db_bytes (db);

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
  /* The daemon's share: the process less the baseline, less what the
   * test driver and the benchmark's records grew by in the run (the heap
   * in use once the daemon is gone, against the baseline's). */
  double grown = MAX (0.0, after.in_use_mib - base.in_use_mib);
  printf ("\nMemory (MiB).  Baseline: this process before the daemon starts, libvirt's test driver "
          "holding the %u domains (in a real host libvirtd holds them) and %.2f MiB of replayed "
          "usage; the test driver (the daemon's defines and balloon moves) and the benchmark's "
          "records (the hook calls' latencies) grew by %.2f MiB of heap in the run (measured once "
          "the daemon is gone):\n",
          n, (double) n * fleet.steps * sizeof (guint32) / 1048576.0, grown);
  printf ("  %-34s %9s %9s %9s %9s\n", "", "RSS", "heap used", "heap free", "mmapped");
  const struct {
    const char *what;
    const Mem *m;
  } rows[] = { { "baseline", &base },
               { "daemon started, domains known", &started },
               { "end of the run", &end },
               { "daemon freed (driver and bench)", &after } };
  for (guint i = 0; i < G_N_ELEMENTS (rows); i++)
    printf ("  %-34s %9.1f %9.1f %9.1f %9.1f\n", rows[i].what, rows[i].m->rss_mib,
            rows[i].m->in_use_mib, rows[i].m->held_mib, rows[i].m->mmap_mib);
  printf ("  process RSS at the end %.1f, highest hourly %.1f, high-water mark since the baseline "
          "%.1f\n",
          end.rss_mib, rss_max, hwm);
  printf ("  the daemon: RSS %.1f MiB at the end, high-water mark %.1f MiB (process − baseline − "
          "the driver's growth) (target: under 30 MiB)\n",
          end.rss_mib - base.rss_mib - grown, hwm - base.rss_mib - grown);
  printf ("  of it: heap in use %.1f, heap freed and kept by the allocator %.1f; SQLite's own "
          "%.1f (high-water mark %.1f)\n",
          end.in_use_mib - base.in_use_mib - grown, end.held_mib - base.held_mib,
          (double) sql_now / 1048576.0, (double) sql_high / 1048576.0);
  printf ("  the daemon started again on the same database and domains (it loads the stored peaks "
          "and stages the %u domains at once, %" G_GUINT64_FORMAT " stage jobs): high-water mark "
          "%.1f MiB over the process without the daemon, heap in use at most %.1f MiB over it\n",
          n, restart_stages, restart_hwm - after.rss_mib, restart_top.in_use_mib - after.in_use_mib);

  /* By table as the last simulated hour left it: the restart above
   * stages every domain again, which is not the run's growth. */
  if (!db_figures (db, g_ptr_array_index (hourly, hourly->len - 1), hourly, retention_s, defaults,
                   n, interval, hours,
                   fleet.t0 + (gint64) cycles * interval, db_day1, &error))
    {
      fprintf (stderr, "bench-scale: %s\n", error->message);
      return 1;
    }
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
  double f_in50 = pct (hooker.floor_cycle_ms, 50), f_in99 = pct (hooker.floor_cycle_ms, 99),
         f_out50 = pct (hooker.floor_outside_ms, 50), f_out99 = pct (hooker.floor_outside_ms, 99);
  printf ("  a minimal server (the same call to a thread of this process that answers at once, "
          "right after each):\n"
          "    outside cycles: p50 %.2f ms   p95 %.2f ms   p99 %.2f ms   n = %u\n"
          "    while a cycle's statistics were handled: p50 %.2f ms   p95 %.2f ms   p99 %.2f ms   "
          "n = %u\n",
          f_out50, pct (hooker.floor_outside_ms, 95), f_out99, hooker.floor_outside_ms->len,
          f_in50, pct (hooker.floor_cycle_ms, 95), f_in99, hooker.floor_cycle_ms->len);
  printf ("  vmemd against the minimal server, while a cycle's statistics were handled: "
          "p50 %+.2f ms (%.2f×), p99 %+.2f ms (%.2f×)%s\n",
          in50 - f_in50, f_in50 > 0 ? in50 / f_in50 : 0, in99 - f_in99,
          f_in99 > 0 ? in99 / f_in99 : 0,
          f_in99 >= 2.0 ? "; the minimal server's own p99 is over 2 ms here" : "");
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
      g_unlink (db), g_unlink (wal), g_unlink (shm), g_rmdir (dir);
    }
  virConnectClose (driver);
  return 0;
}
