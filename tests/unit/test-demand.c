/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-cleanup.h"
#include "vmem-demand.h"
#include "vmem-error.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#define HOUR VMEM_PEAK_HOUR
#define DAY  VMEM_PEAK_DAY
/* A day boundary well away from zero. */
#define T0   (G_GINT64_CONSTANT (1700000000) / DAY * DAY)

/* What a store keeps: the peaks handed out by vmem_demand_observe(),
 * written as they are, one row per (uuid, interval, start). */
typedef struct {
  VmemPeakObs obs;
  char       *uuid;
  char       *domain;
  char       *host;
  char       *workload;
} Row;

static void
row_free (gpointer data)
{
  Row *r = data;
  g_free (r->uuid);
  g_free (r->domain);
  g_free (r->host);
  g_free (r->workload);
  g_free (r);
}

static GHashTable *
store_new (void)
{
  return g_hash_table_new_full (g_str_hash, g_str_equal, g_free, row_free);
}

static void
store_write (GHashTable *store, const char *workload, const VmemPeakObs *obs)
{
  Row *r = g_new0 (Row, 1);
  r->obs = *obs;
  r->obs.uuid = r->uuid = g_strdup (obs->uuid);
  r->obs.domain = r->domain = g_strdup (obs->domain);
  r->obs.host = r->host = g_strdup (obs->host);
  r->workload = g_strdup (workload);
  g_hash_table_insert (store,
                       g_strdup_printf ("%s/%u/%" G_GINT64_FORMAT, obs->uuid, obs->interval_s,
                                        obs->start_t),
                       r);
}

static const Row *
store_get (GHashTable *store, const char *uuid, guint interval_s, gint64 start_t)
{
  g_autofree char *key = g_strdup_printf ("%s/%u/%" G_GINT64_FORMAT, uuid, interval_s, start_t);
  const Row *r = g_hash_table_lookup (store, key);
  if (r == NULL)
    fail_msg ("no stored peak %s", key);
  return r;
}

/* The stored peaks of one interval length, in no particular order. */
static GArray *
store_peaks (GHashTable *store, guint interval_s)
{
  GArray *a = g_array_new (FALSE, FALSE, sizeof (VmemPeakObs));
  GHashTableIter iter;
  gpointer value;
  g_hash_table_iter_init (&iter, store);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      const Row *r = value;
      if (r->obs.interval_s == interval_s)
        g_array_append_val (a, r->obs);
    }
  return a;
}

static void
load_all (VmemDemand *d, GHashTable *store)
{
  GHashTableIter iter;
  gpointer value;
  g_hash_table_iter_init (&iter, store);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      const Row *r = value;
      g_autoptr(GError) error = NULL;
      if (!vmem_demand_load_peak (d, r->workload, &r->obs, &error))
        fail_msg ("load failed: %s", error->message);
    }
}

static VmemPeakSample
sample (const char *uuid, gint64 t, double used_mib)
{
  VmemPeakSample s = {
    .uuid = uuid,
    .domain = uuid,
    .host = "h1",
    .t = t,
    .used_mib = used_mib,
    .guest = TRUE,
    .vcpus = 2,
  };
  return s;
}

/* Observes a sample and writes both peaks to @store (may be NULL). */
static void
observe (VmemDemand *d, GHashTable *store, const char *workload, VmemPeakSample s,
         VmemPeakObs out[2])
{
  g_autoptr(GError) error = NULL;
  if (!vmem_demand_observe (d, workload, &s, out, &error))
    fail_msg ("observe failed: %s", error->message);
  if (store != NULL)
    {
      store_write (store, workload, &out[0]);
      store_write (store, workload, &out[1]);
    }
}

static VmemEstimatorConfig
config_no_min_history (void)
{
  VmemEstimatorConfig c;
  vmem_estimator_config_init (&c);
  c.min_history_hours = 0;
  return c;
}

static VmemEstimate *
demand_estimate (VmemDemand *d, const char *workload, const VmemProfile *profile,
                 const VmemEstimateTarget *target, gint64 now)
{
  g_autoptr(GError) error = NULL;
  VmemEstimate *e = vmem_demand_estimate (d, workload, profile, target, now, &error);
  if (e == NULL)
    fail_msg ("estimate failed: %s", error->message);
  return e;
}

static void
assert_close (double got, double want)
{
  if (fabs (got - want) > 1e-9 * MAX (1.0, fabs (want)))
    fail_msg ("got %.12g, want %.12g", got, want);
}

static void
assert_same_estimate (const VmemEstimate *a, const VmemEstimate *b)
{
  assert_int_equal (a->source, b->source);
  assert_int_equal (a->demand_mib, b->demand_mib);
  assert_close (a->raw_mib, b->raw_mib);
  assert_close (a->quantile_mib, b->quantile_mib);
  assert_close (a->base_mib, b->base_mib);
  assert_close (a->history_hours, b->history_hours);
  assert_int_equal (a->peers->len, b->peers->len);
  for (guint i = 0; i < a->peers->len; i++)
    {
      const VmemEstimatePeer *pa = g_ptr_array_index (a->peers, i);
      const VmemEstimatePeer *pb = g_ptr_array_index (b->peers, i);
      assert_string_equal (pa->uuid, pb->uuid);
      assert_close (pa->peak_mib, pb->peak_mib);
      assert_close (pa->weight, pb->weight);
      assert_int_equal (pa->samples, pb->samples);
      assert_int_equal (pa->intervals, pb->intervals);
      assert_int_equal (pa->vcpus, pb->vcpus);
    }
}

/* Each sample updates the hourly and the daily peak of its domain; both
 * are handed back, for their own intervals. */
static void
test_hourly_and_daily_outputs (void **state)
{
  VmemEstimatorConfig config = config_no_min_history ();
  g_autoptr(VmemDemand) d = vmem_demand_new (&config, NULL);
  VmemPeakObs out[2];

  observe (d, NULL, "web", sample ("a", T0 + 10, 300), out);
  assert_int_equal (out[0].interval_s, HOUR);
  assert_int_equal (out[0].start_t, T0);
  assert_int_equal (out[1].interval_s, DAY);
  assert_int_equal (out[1].start_t, T0);
  assert_true (out[0].peak_mib == 300 && out[1].peak_mib == 300);
  assert_string_equal (out[0].uuid, "a");
  assert_string_equal (out[1].host, "h1");

  VmemPeakSample rss = sample ("a", T0 + HOUR - 1, 500);
  rss.guest = FALSE;
  observe (d, NULL, "web", rss, out);
  assert_true (out[0].peak_mib == 500);
  assert_int_equal (out[0].samples, 2);
  assert_int_equal (out[0].guest_samples, 1);
  assert_int_equal (out[1].samples, 2);
  assert_int_equal (out[1].guest_samples, 1);

  /* The next hour: a new hourly peak, the same daily one. */
  observe (d, NULL, "web", sample ("a", T0 + HOUR, 200), out);
  assert_int_equal (out[0].start_t, T0 + HOUR);
  assert_true (out[0].peak_mib == 200);
  assert_int_equal (out[0].samples, 1);
  assert_int_equal (out[1].start_t, T0);
  assert_true (out[1].peak_mib == 500);
  assert_int_equal (out[1].samples, 3);

  /* The next day: both new. */
  observe (d, NULL, "web", sample ("a", T0 + DAY + 5, 100), out);
  assert_int_equal (out[0].start_t, T0 + DAY);
  assert_int_equal (out[1].start_t, T0 + DAY);
  assert_true (out[1].peak_mib == 100);
  assert_int_equal (out[1].samples, 1);
  assert_int_equal (vmem_demand_n_workloads (d), 1);
}

/* The hourly peaks of many samples are the maxima of their hours, the
 * daily ones of their days, and the estimate is the estimator's on those
 * same hourly peaks, whatever the order they are given to it. */
static void
test_estimate_equals_estimator (void **state)
{
  static const char *const uuids[] = { "a", "b", "c", "d" };
  VmemEstimatorConfig config = config_no_min_history ();
  g_autoptr(VmemDemand) d = vmem_demand_new (&config, NULL);
  g_autoptr(GHashTable) store = store_new ();
  g_autoptr(GHashTable) hour_max = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr(GHashTable) day_max = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  g_autoptr(GRand) rand = g_rand_new_with_seed (7);
  VmemPeakObs out[2];
  gint64 t;

  for (t = T0 + 300; t < T0 + 40 * HOUR; t += 600)
    for (guint i = 0; i < G_N_ELEMENTS (uuids); i++)
      {
        double used = 100 * (i + 1) + g_rand_int_range (rand, 0, 500);
        VmemPeakSample s = sample (uuids[i], t + i, used);
        s.guest = g_rand_boolean (rand);
        s.vcpus = 1 + i;
        observe (d, store, "web", s, out);

        char *hk = g_strdup_printf ("%s/%" G_GINT64_FORMAT, s.uuid, (s.t / HOUR) * HOUR);
        char *dk = g_strdup_printf ("%s/%" G_GINT64_FORMAT, s.uuid, (s.t / DAY) * DAY);
        double *hm = g_hash_table_lookup (hour_max, hk);
        double *dm = g_hash_table_lookup (day_max, dk);
        if (hm == NULL)
          g_hash_table_insert (hour_max, g_strdup (hk), hm = g_new0 (double, 1));
        if (dm == NULL)
          g_hash_table_insert (day_max, g_strdup (dk), dm = g_new0 (double, 1));
        *hm = MAX (*hm, s.used_mib);
        *dm = MAX (*dm, s.used_mib);
        g_free (hk);
        g_free (dk);
      }

  g_autoptr(GArray) hours = store_peaks (store, HOUR);
  g_autoptr(GArray) days = store_peaks (store, DAY);
  assert_int_equal (hours->len, 40 * G_N_ELEMENTS (uuids));
  assert_int_equal (days->len, 2 * G_N_ELEMENTS (uuids));
  for (guint i = 0; i < hours->len; i++)
    {
      const VmemPeakObs *o = &g_array_index (hours, VmemPeakObs, i);
      g_autofree char *k = g_strdup_printf ("%s/%" G_GINT64_FORMAT, o->uuid, o->start_t);
      assert_close (o->peak_mib, *(double *) g_hash_table_lookup (hour_max, k));
      assert_int_equal (o->samples, 6);
      assert_true (o->guest_samples <= o->samples);
    }
  for (guint i = 0; i < days->len; i++)
    {
      const VmemPeakObs *o = &g_array_index (days, VmemPeakObs, i);
      g_autofree char *k = g_strdup_printf ("%s/%" G_GINT64_FORMAT, o->uuid, o->start_t);
      assert_close (o->peak_mib, *(double *) g_hash_table_lookup (day_max, k));
      assert_int_equal (o->samples, o->start_t == T0 ? 24 * 6 : 16 * 6);
    }

  g_autoptr(VmemProfile) profile = vmem_profile_new ("web");
  profile->quantile = 0.9;
  profile->margin_pct = 20;
  VmemEstimateTarget targets[] = {
    { .uuid = "a", .exclude_self = TRUE, .vcpus = 2, .memory_mib = 4096 },
    { .uuid = "b", .exclude_self = FALSE, .vcpus = 2, .memory_mib = 4096 },
    { .uuid = "new", .vcpus = 1, .memory_mib = 300 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (targets); i++)
    for (guint p = 0; p < 2; p++)
      {
        const VmemProfile *prof = p ? profile : NULL;
        g_autoptr(GError) error = NULL;
        g_autoptr(VmemEstimate) want =
          vmem_estimator_estimate_peaks ((const VmemPeakObs *) hours->data, hours->len, &config,
                                         prof, &targets[i], t + HOUR, &error);
        assert_non_null (want);
        g_autoptr(VmemEstimate) got = demand_estimate (d, "web", prof, &targets[i], t + HOUR);
        assert_int_equal (got->source, i == 1 ? VMEM_SOURCE_OWN : VMEM_SOURCE_PEERS);
        assert_same_estimate (got, want);
      }

  /* A workload with no peaks: the fallback, as from an empty aggregate. */
  g_autoptr(VmemEstimate) none = demand_estimate (d, "db", NULL, &targets[0], t);
  assert_int_equal (none->source, VMEM_SOURCE_FALLBACK_DOMAIN_MEMORY);
  assert_int_equal (none->demand_mib, 4096);
  assert_int_equal (vmem_demand_n_workloads (d), 1);
}

/* The daemon restarts in the middle of an hour: the stored peaks are
 * loaded, and a smaller sample of the same hour keeps the stored peak, in
 * what is written back and in the aggregate, exactly as if the daemon had
 * not restarted. */
static void
test_restart_mid_hour (void **state)
{
  VmemEstimatorConfig config = config_no_min_history ();
  g_autoptr(VmemDemand) before = vmem_demand_new (&config, NULL);
  g_autoptr(VmemDemand) stayed = vmem_demand_new (&config, NULL);
  g_autoptr(GHashTable) store = store_new ();
  VmemPeakObs out[2];

  static const struct {
    const char *uuid;
    gint64      t;
    double      used;
  } seen[] = {
    { "a", T0 + 60, 500 },
    { "b", T0 + 70, 600 },
    { "a", T0 + HOUR + 60, 700 },
    { "b", T0 + HOUR + 70, 650 },
    { "a", T0 + HOUR + 600, 900 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (seen); i++)
    {
      observe (before, store, "web", sample (seen[i].uuid, seen[i].t, seen[i].used), out);
      observe (stayed, NULL, "web", sample (seen[i].uuid, seen[i].t, seen[i].used), out);
    }
  assert_int_equal (store_get (store, "a", HOUR, T0 + HOUR)->obs.peak_mib, 900);

  /* Restart: a new VmemDemand from the store alone. */
  g_autoptr(VmemDemand) after = vmem_demand_new (&config, NULL);
  load_all (after, store);
  assert_int_equal (vmem_demand_n_workloads (after), 1);

  observe (after, store, "web", sample ("a", T0 + HOUR + 1800, 400), out);
  assert_int_equal (out[0].start_t, T0 + HOUR);
  assert_true (out[0].peak_mib == 900);
  assert_int_equal (out[0].samples, 3);
  assert_true (out[1].peak_mib == 900);
  assert_int_equal (out[1].samples, 4);
  assert_true (store_get (store, "a", HOUR, T0 + HOUR)->obs.peak_mib == 900);
  assert_true (store_get (store, "a", DAY, T0)->obs.peak_mib == 900);
  observe (stayed, NULL, "web", sample ("a", T0 + HOUR + 1800, 400), out);

  gint64 now = T0 + HOUR + 1800;
  VmemEstimateTarget target = { .uuid = "b", .vcpus = 2, .memory_mib = 4096 };
  g_autoptr(VmemEstimate) e_after = demand_estimate (after, "web", NULL, &target, now);
  g_autoptr(VmemEstimate) e_stayed = demand_estimate (stayed, "web", NULL, &target, now);
  assert_same_estimate (e_after, e_stayed);
  g_autoptr(GArray) hours = store_peaks (store, HOUR);
  g_autoptr(VmemEstimate) e_store =
    vmem_estimator_estimate_peaks ((const VmemPeakObs *) hours->data, hours->len, &config, NULL,
                                   &target, now, NULL);
  assert_same_estimate (e_after, e_store);
  for (guint i = 0; i < e_after->peers->len; i++)
    {
      const VmemEstimatePeer *p = g_ptr_array_index (e_after->peers, i);
      if (g_str_equal (p->uuid, "a"))
        assert_close (p->peak_mib, 900);
    }

  /* A larger sample still raises it. */
  observe (after, store, "web", sample ("a", T0 + HOUR + 1900, 1000), out);
  assert_true (out[0].peak_mib == 1000);
}

/* A sample of an earlier hour, or of an earlier day than the one a stored
 * daily peak was loaded for, is refused and changes nothing. */
static void
test_out_of_order_refused (void **state)
{
  VmemEstimatorConfig config = config_no_min_history ();
  g_autoptr(VmemDemand) d = vmem_demand_new (&config, NULL);
  VmemPeakObs out[2];

  observe (d, NULL, "web", sample ("a", T0 + 2 * HOUR, 300), out);
  VmemPeakSample s = sample ("a", T0 + HOUR + 10, 5000);
  g_autoptr(GError) error = NULL;
  assert_false (vmem_demand_observe (d, "web", &s, out, &error));
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));

  VmemPeakObs tomorrow = {
    .uuid = "b",
    .start_t = T0 + DAY,
    .interval_s = DAY,
    .peak_mib = 10,
    .samples = 1,
    .guest_samples = 1,
  };
  assert_true (vmem_demand_load_peak (d, "web", &tomorrow, NULL));
  g_autoptr(GError) e2 = NULL;
  s = sample ("b", T0 + 5, 7000);
  assert_false (vmem_demand_observe (d, "web", &s, out, &e2));
  assert_true (g_error_matches (e2, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  /* Had its hour kept the refused sample, this stored peak of the same
   * hour would join the aggregate raised to it. */
  VmemPeakObs stored = tomorrow;
  stored.start_t = T0;
  stored.interval_s = HOUR;
  assert_true (vmem_demand_load_peak (d, "web", &stored, NULL));

  g_autoptr(GError) e3 = NULL;
  s = sample ("a", T0 + 2 * HOUR + 20, NAN);
  assert_false (vmem_demand_observe (d, "web", &s, out, &e3));
  g_autoptr(GError) e4 = NULL;
  s = sample ("a", T0 + 2 * HOUR + 20, 1);
  assert_false (vmem_demand_observe (d, NULL, &s, out, &e4));
  assert_true (g_str_has_prefix (e4->message, "workload:"));

  /* Nothing of the refused samples stayed: not in the peaks ... */
  observe (d, NULL, "web", sample ("a", T0 + 2 * HOUR + 30, 100), out);
  assert_true (out[0].peak_mib == 300);
  assert_int_equal (out[0].samples, 2);
  assert_int_equal (out[1].samples, 2);
  observe (d, NULL, "web", sample ("b", T0 + DAY + 5, 20), out);
  assert_int_equal (out[0].samples, 1);
  assert_true (out[1].peak_mib == 20);
  assert_int_equal (out[1].samples, 2);
  /* ... nor in the aggregate. */
  VmemEstimateTarget target = { .uuid = "x", .memory_mib = 1 << 20 };
  g_autoptr(VmemEstimate) e = demand_estimate (d, "web", NULL, &target, T0 + DAY + HOUR);
  for (guint i = 0; i < e->peers->len; i++)
    assert_true (((const VmemEstimatePeer *) g_ptr_array_index (e->peers, i))->peak_mib < 400);
}

/* The hourly peak carries the vcpus of the sample that set it. */
static void
test_vcpus_at_peak (void **state)
{
  VmemEstimatorConfig config = config_no_min_history ();
  g_autoptr(VmemDemand) d = vmem_demand_new (&config, NULL);
  VmemPeakObs out[2];
  VmemPeakSample s = sample ("a", T0, 800);
  s.vcpus = 8;
  observe (d, NULL, "web", s, out);
  s = sample ("a", T0 + 10, 200);
  s.vcpus = 2;
  observe (d, NULL, "web", s, out);
  assert_int_equal (out[0].vcpus, 8);
  assert_int_equal (out[1].vcpus, 8);

  VmemEstimateTarget target = { .memory_mib = 1 << 20 };
  g_autoptr(VmemEstimate) e = demand_estimate (d, "web", NULL, &target, T0 + HOUR);
  assert_int_equal (e->peers->len, 1);
  assert_int_equal (((const VmemEstimatePeer *) g_ptr_array_index (e->peers, 0))->vcpus, 8);
}

/* Forgetting a domain removes it from every workload and drops its peaks;
 * forgetting a workload drops its aggregate only. */
static void
test_forget (void **state)
{
  VmemEstimatorConfig config = config_no_min_history ();
  g_autoptr(VmemDemand) d = vmem_demand_new (&config, NULL);
  VmemPeakObs out[2];
  observe (d, NULL, "web", sample ("a", T0, 800), out);
  observe (d, NULL, "web", sample ("b", T0, 300), out);
  observe (d, NULL, "db", sample ("a", T0 + HOUR, 900), out);
  observe (d, NULL, "db", sample ("c", T0 + HOUR, 100), out);
  assert_int_equal (vmem_demand_n_workloads (d), 2);

  vmem_demand_forget_domain (d, "a");
  VmemEstimateTarget target = { .memory_mib = 1 << 20 };
  g_autoptr(VmemEstimate) web = demand_estimate (d, "web", NULL, &target, T0 + 2 * HOUR);
  g_autoptr(VmemEstimate) db = demand_estimate (d, "db", NULL, &target, T0 + 2 * HOUR);
  assert_int_equal (web->peers->len, 1);
  assert_int_equal (db->peers->len, 1);
  assert_string_equal (((const VmemEstimatePeer *) g_ptr_array_index (web->peers, 0))->uuid, "b");
  assert_string_equal (((const VmemEstimatePeer *) g_ptr_array_index (db->peers, 0))->uuid, "c");

  /* Its peaks start afresh, even for an hour seen before. */
  observe (d, NULL, "web", sample ("a", T0 + 10, 50), out);
  assert_true (out[0].peak_mib == 50);
  assert_int_equal (out[0].samples, 1);
  assert_int_equal (out[1].samples, 1);

  vmem_demand_forget_workload (d, "db");
  vmem_demand_forget_workload (d, "nothing");
  assert_int_equal (vmem_demand_n_workloads (d), 1);
  /* c's peaks are its own: the next sample of its hour still counts them. */
  observe (d, NULL, "db", sample ("c", T0 + HOUR + 5, 10), out);
  assert_true (out[0].peak_mib == 100);
  assert_int_equal (out[0].samples, 2);
  assert_int_equal (vmem_demand_n_workloads (d), 2);
}

/* Reset drops everything and takes the new config; a bad config changes
 * nothing. */
static void
test_reset (void **state)
{
  VmemEstimatorConfig config = config_no_min_history ();
  g_autoptr(VmemDemand) d = vmem_demand_new (&config, NULL);
  VmemPeakObs out[2];
  observe (d, NULL, "web", sample ("a", T0, 800), out);
  observe (d, NULL, "web", sample ("b", T0, 400), out);

  VmemEstimatorConfig bad = config;
  bad.quantile = 2;
  g_autoptr(GError) error = NULL;
  assert_false (vmem_demand_reset (d, &bad, &error));
  assert_true (g_str_has_prefix (error->message, "quantile:"));
  assert_int_equal (vmem_demand_n_workloads (d), 1);
  g_autoptr(GError) e_new = NULL;
  assert_null (vmem_demand_new (&bad, &e_new));
  assert_non_null (e_new);

  VmemEstimatorConfig other = config;
  other.margin_pct = 50;
  other.min_history_hours = 6;
  assert_true (vmem_demand_reset (d, &other, NULL));
  assert_int_equal (vmem_demand_n_workloads (d), 0);
  VmemEstimateTarget target = { .memory_mib = 4096 };
  g_autoptr(VmemEstimate) e = demand_estimate (d, "web", NULL, &target, T0 + HOUR);
  assert_int_equal (e->peers->len, 0);
  assert_int_equal (e->source, VMEM_SOURCE_FALLBACK_DOMAIN_MEMORY);

  /* The trackers were dropped too, and the new config is used. */
  observe (d, NULL, "web", sample ("a", T0 + 20, 100), out);
  assert_true (out[0].peak_mib == 100);
  assert_int_equal (out[0].samples, 1);
  observe (d, NULL, "web", sample ("b", T0 + 20, 100), out);
  g_autoptr(VmemEstimate) young = demand_estimate (d, "web", NULL, &target, T0 + HOUR);
  assert_int_equal (young->source, VMEM_SOURCE_FALLBACK_DOMAIN_MEMORY);
  g_autoptr(VmemEstimate) later = demand_estimate (d, "web", NULL, &target, T0 + 7 * HOUR);
  assert_int_equal (later->source, VMEM_SOURCE_PEERS);
  assert_close (later->margin_pct, 50);
}

static void
test_load_peak_bad (void **state)
{
  VmemEstimatorConfig config = config_no_min_history ();
  g_autoptr(VmemDemand) d = vmem_demand_new (&config, NULL);
  const VmemPeakObs good = {
    .uuid = "a",
    .start_t = T0,
    .interval_s = HOUR,
    .peak_mib = 100,
    .samples = 2,
    .guest_samples = 1,
  };
  static const struct {
    const char *prefix;
  } cases[] = { { "interval_s:" }, { "start_t:" }, { "uuid:" }, { "peak_mib:" },
                { "guest_samples:" }, { "workload:" } };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      VmemPeakObs p = good;
      const char *workload = "web";
      switch (i)
        {
        case 0: p.interval_s = 600; break;
        case 1: p.start_t = T0 + 1; break;
        case 2: p.uuid = ""; break;
        case 3: p.peak_mib = -5; break;
        case 4: p.guest_samples = 3; break;
        default: workload = NULL; break;
        }
      g_autoptr(GError) error = NULL;
      assert_false (vmem_demand_load_peak (d, workload, &p, &error));
      assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
      if (!g_str_has_prefix (error->message, cases[i].prefix))
        fail_msg ("case %u: %s", i, error->message);
    }
  assert_int_equal (vmem_demand_n_workloads (d), 0);

  /* A daily peak seeds only: no aggregate. */
  VmemPeakObs day = good;
  day.interval_s = DAY;
  assert_true (vmem_demand_load_peak (d, "web", &day, NULL));
  assert_int_equal (vmem_demand_n_workloads (d), 0);
  assert_true (vmem_demand_load_peak (d, "web", &good, NULL));
  assert_int_equal (vmem_demand_n_workloads (d), 1);
}

static void
observe_at (VmemDemand *d, const char *uuid, gint64 t, double used, gboolean squeezed)
{
  VmemPeakSample s = {
    .uuid = uuid, .domain = uuid, .t = t, .used_mib = used, .guest = TRUE, .vcpus = 1,
    .squeezed = squeezed,
  };
  VmemPeakObs out[2];
  g_autoptr(GError) error = NULL;
  if (!vmem_demand_observe (d, "w", &s, out, &error))
    fail_msg ("observe failed: %s", error->message);
}

/* A start's outcome is its peak over the next 24 h, or until it stops;
 * complete only then; a squeezed sample makes it under-provisioned. */
static void
test_outcomes (void **state)
{
  VmemEstimatorConfig config;
  vmem_estimator_config_init (&config);
  config.min_history_hours = 1;
  g_autoptr(VmemDemand) d = vmem_demand_new (&config, NULL);
  /* Two domains with 2 h of history each: levels 100 and 200 MiB. */
  for (gint64 t = T0; t < T0 + 2 * HOUR; t += 600)
    {
      observe_at (d, "a", t, 100, FALSE);
      observe_at (d, "b", t, 200, FALSE);
    }
  gint64 start = T0 + 2 * HOUR;
  VmemEstimateTarget ta = { .uuid = "a", .memory_mib = 1024 };
  g_autoptr(VmemEstimate) ea = vmem_demand_estimate (d, "w", NULL, &ta, start, NULL);
  assert_int_equal (ea->source, VMEM_SOURCE_OWN);
  assert_true (vmem_demand_start (d, "w", "a", ea, start, NULL));
  VmemEstimateTarget tb = { .uuid = "b", .memory_mib = 1024 };
  g_autoptr(VmemEstimate) eb = vmem_demand_estimate (d, "w", NULL, &tb, start, NULL);
  assert_true (vmem_demand_start (d, "w", "b", eb, start, NULL));
  /* A fallback (no history at all) is not checked. */
  VmemEstimateTarget tn = { .uuid = "n", .memory_mib = 1024 };
  g_autoptr(VmemEstimate) en = vmem_demand_estimate (d, "v", NULL, &tn, start, NULL);
  assert_int_equal (en->source, VMEM_SOURCE_FALLBACK_DOMAIN_MEMORY);
  assert_true (vmem_demand_start (d, "v", "n", en, start, NULL));

  /* a uses up to 150; b is squeezed at 180; a sample of a past the span
   * does not count. */
  observe_at (d, "a", start + HOUR, 150, FALSE);
  observe_at (d, "a", start + 2 * HOUR, 120, FALSE);
  observe_at (d, "b", start + HOUR, 180, TRUE);
  assert_int_equal (vmem_demand_settle (d, start + DAY - 1), 0);
  g_autoptr(GArray) none = vmem_demand_take_outcomes (d);
  assert_int_equal (none->len, 0);
  /* b stops after 3 h: its outcome is complete then. */
  vmem_demand_stop (d, "b", start + 3 * HOUR);
  observe_at (d, "a", start + DAY + 60, 900, FALSE);
  assert_int_equal (vmem_demand_settle (d, start + DAY), 1);
  g_autoptr(GArray) out = vmem_demand_take_outcomes (d);
  assert_int_equal (out->len, 2);
  const VmemOutcome *ob = &g_array_index (out, VmemOutcome, 0);
  const VmemOutcome *oa = &g_array_index (out, VmemOutcome, 1);
  assert_string_equal (ob->uuid, "b");
  assert_int_equal (ob->end_t, start + 3 * HOUR);
  assert_true (ob->censored);
  /* Censored: at least what it was given. */
  assert_true (ob->peak_mib > ob->given_mib);
  assert_string_equal (oa->uuid, "a");
  assert_string_equal (oa->workload, "w");
  assert_int_equal (oa->kind, VMEM_START_OWN);
  assert_int_equal (oa->start_t, start);
  assert_int_equal (oa->end_t, start + DAY);
  assert_close (oa->peak_mib, 150);
  assert_close (oa->base_mib, ea->base_mib);
  assert_close (oa->given_mib, ea->value_mib);
  assert_close (oa->risk, 0.05);
  assert_false (oa->censored);

  /* The calibration learnt both, the censored one as under-provisioned
   * (at 70 % risk two outcomes give a rank: 0.3^2 <= 0.1). */
  VmemCalibrationResult r;
  assert_true (vmem_calibration_margin (vmem_demand_calibration (d), "w", VMEM_START_OWN, 0.7, &r));
  assert_int_equal (r.outcomes, 2);
  assert_int_equal (r.under, 1);

  /* Stored outcomes load back; bad ones change nothing. */
  VmemOutcome bad = *oa;
  bad.base_mib = 0;
  g_autoptr(GError) error = NULL;
  assert_false (vmem_demand_load_outcome (d, &bad, &error));
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  bad = *oa;
  bad.workload = "";
  assert_false (vmem_demand_load_outcome (d, &bad, NULL));
  assert_true (vmem_demand_load_outcome (d, oa, NULL));
  assert_true (vmem_calibration_margin (vmem_demand_calibration (d), "w", VMEM_START_OWN, 0.7, &r));
  assert_int_equal (r.outcomes, 3);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_hourly_and_daily_outputs),
    cmocka_unit_test (test_estimate_equals_estimator),
    cmocka_unit_test (test_restart_mid_hour),
    cmocka_unit_test (test_out_of_order_refused),
    cmocka_unit_test (test_vcpus_at_peak),
    cmocka_unit_test (test_forget),
    cmocka_unit_test (test_reset),
    cmocka_unit_test (test_load_peak_bad),
    cmocka_unit_test (test_outcomes),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
