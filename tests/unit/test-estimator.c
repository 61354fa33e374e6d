/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-cleanup.h"
#include "vmem-error.h"
#include "vmem-estimator.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#define HOUR 3600
#define DAY  86400
/* A fixed "now" well away from zero, so that ages are not start times. */
#define NOW  (G_GINT64_CONSTANT (1700000000) / DAY * DAY)

/* A daily peak of @uuid that ended @age_days before NOW. */
static VmemPeakObs
day_peak (const char *uuid, double age_days, double peak_mib)
{
  VmemPeakObs o = {
    .uuid = uuid,
    .domain = uuid,
    .host = "h1",
    .start_t = NOW - (gint64) ((age_days + 1) * DAY),
    .interval_s = DAY,
    .peak_mib = peak_mib,
    .samples = 10,
    .guest_samples = 10,
    .vcpus = 1,
  };
  return o;
}

static VmemEstimatorConfig
default_config (void)
{
  VmemEstimatorConfig c;
  vmem_estimator_config_init (&c);
  return c;
}

static VmemEstimate *
estimate (const VmemPeakObs *peaks, gsize n, const VmemEstimatorConfig *config,
          const VmemProfile *profile, const VmemEstimateTarget *target)
{
  g_autoptr(GError) error = NULL;
  VmemEstimate *e = vmem_estimator_estimate_peaks (peaks, n, config, profile, target, NOW,
                                                   &error);
  if (e == NULL)
    fail_msg ("estimate failed: %s", error->message);
  return e;
}

static const VmemEstimatePeer *
find_peer (const VmemEstimate *e, const char *uuid)
{
  for (guint i = 0; i < e->peers->len; i++)
    {
      const VmemEstimatePeer *p = g_ptr_array_index (e->peers, i);
      if (g_str_equal (p->uuid, uuid))
        return p;
    }
  fail_msg ("peer %s missing", uuid);
  return NULL;
}

static void
assert_close (double got, double want)
{
  if (fabs (got - want) > 1e-9 * MAX (1.0, fabs (want)))
    fail_msg ("got %.12g, want %.12g", got, want);
}

/* Weights halve every half-life; host-side samples count rss_weight. */
static void
test_decay_weights (void **state)
{
  VmemPeakObs peaks[] = {
    day_peak ("a", 0, 100),
    day_peak ("a", 1, 100),
    day_peak ("a", 2, 100),
    day_peak ("b", 0, 100),
  };
  /* b: 4 samples, 2 from the guest: weight (2 + 0.5 * 2) / 4. */
  peaks[3].samples = 4;
  peaks[3].guest_samples = 2;
  VmemEstimatorConfig config = default_config ();
  VmemEstimateTarget target = { .memory_mib = 4096 };
  g_autoptr(VmemEstimate) e = estimate (peaks, G_N_ELEMENTS (peaks), &config, NULL, &target);

  assert_close (find_peer (e, "a")->weight, 1.0 + 0.5 + 0.25);
  assert_close (find_peer (e, "b")->weight, 0.75);
  assert_int_equal (find_peer (e, "a")->intervals, 3);
  assert_int_equal (find_peer (e, "a")->samples, 30);

  /* A 12 h half-life: one day is two half-lives. */
  config.half_life_hours = 12;
  g_autoptr(VmemEstimate) e12 = estimate (peaks, 3, &config, NULL, &target);
  assert_close (find_peer (e12, "a")->weight, 1.0 + 0.25 + 0.0625);
}

/* A peer's level is the decayed quantile of its own peaks. */
static void
test_peer_quantile (void **state)
{
  /* weights: 100 -> 1, 200 -> 0.5, 400 -> 0.25; total 1.75 */
  VmemPeakObs peaks[] = {
    day_peak ("a", 0, 100),
    day_peak ("a", 1, 200),
    day_peak ("a", 2, 400),
  };
  VmemEstimatorConfig config = default_config ();
  VmemEstimateTarget target = { 0 };

  /* 0.99 * 1.75 = 1.7325 is reached only with the 400. */
  g_autoptr(VmemEstimate) e = estimate (peaks, 3, &config, NULL, &target);
  assert_close (find_peer (e, "a")->peak_mib, 400);

  /* 0.8 * 1.75 = 1.4 is reached at the 200 (1 + 0.5). */
  config.peer_quantile = 0.8;
  g_autoptr(VmemEstimate) e2 = estimate (peaks, 3, &config, NULL, &target);
  assert_close (find_peer (e2, "a")->peak_mib, 200);

  /* 0.5 * 1.75 = 0.875: the newest, 100, alone. */
  config.peer_quantile = 0.5;
  g_autoptr(VmemEstimate) e3 = estimate (peaks, 3, &config, NULL, &target);
  assert_close (find_peer (e3, "a")->peak_mib, 100);
}

/* The quantile of peer levels and, without outcomes to calibrate on, the
 * configured margin. */
static void
test_quantile_margin (void **state)
{
  VmemPeakObs peaks[] = {
    day_peak ("a", 0, 100),
    day_peak ("b", 0, 200),
    day_peak ("c", 0, 300),
    day_peak ("d", 0, 400),
  };
  VmemEstimatorConfig config = default_config ();
  VmemEstimateTarget target = { .memory_mib = 8192 };
  g_autoptr(VmemProfile) profile = vmem_profile_new ("w");
  profile->quantile = 0.95;

  /* Four equal weights: p95 needs 3.8 of 4, the 400; p70 needs 2.8, the 300. */
  g_autoptr(VmemEstimate) e = estimate (peaks, 4, &config, profile, &target);
  assert_int_equal (e->source, VMEM_SOURCE_PEERS);
  assert_int_equal (e->kind, VMEM_START_FIRST);
  assert_close (e->quantile, 0.95);
  assert_close (e->quantile_mib, 400);
  assert_close (e->base_mib, 400);
  assert_close (e->history_hours, 24);
  assert_int_equal (e->calibration.scope, VMEM_CALIBRATION_NONE);
  assert_close (e->effective_margin_pct, 15);
  assert_close (e->raw_mib, 400 * 1.15);
  assert_int_equal (e->demand_mib, (guint64) ceil (e->raw_mib));
  assert_int_equal (e->clamps, 0);
  assert_int_equal (e->peers->len, 4);
  /* highest level first */
  assert_string_equal (((VmemEstimatePeer *) g_ptr_array_index (e->peers, 0))->uuid, "d");

  profile->quantile = 0.7;
  profile->margin_pct = 0;
  g_autoptr(VmemEstimate) e2 = estimate (peaks, 4, &config, profile, &target);
  assert_close (e2->quantile_mib, 300);
  assert_close (e2->raw_mib, 300);
  assert_int_equal (e2->demand_mib, 300);

  /* Without a profile the config's quantile and margin apply. */
  config.quantile = 0.7;
  config.margin_pct = 0;
  g_autoptr(VmemEstimate) e4 = estimate (peaks, 4, &config, NULL, &target);
  assert_close (e4->raw_mib, 300);
}

/* Stale peers weigh less in the quantile over peers. */
static void
test_peer_weights_in_quantile (void **state)
{
  /* a: level 1000, one peak 3 days old (weight 1/8);
   * b, c: level 100, fresh (weight 1 each).  p90 needs 0.9 * 2.125 =
   * 1.9125: reached by b and c alone. */
  VmemPeakObs peaks[] = {
    day_peak ("a", 3, 1000),
    day_peak ("b", 0, 100),
    day_peak ("c", 0, 100),
  };
  VmemEstimatorConfig config = default_config ();
  config.quantile = 0.9;
  VmemEstimateTarget target = { 0 };
  g_autoptr(VmemEstimate) e = estimate (peaks, 3, &config, NULL, &target);
  assert_close (e->quantile_mib, 100);

  /* p95 needs 2.01875: a is needed. */
  config.quantile = 0.95;
  g_autoptr(VmemEstimate) e2 = estimate (peaks, 3, &config, NULL, &target);
  assert_close (e2->quantile_mib, 1000);
}

static void
test_clamps (void **state)
{
  VmemPeakObs peaks[] = {
    day_peak ("a", 4, 1000),
    day_peak ("b", 4, 1000),
    day_peak ("c", 4, 1000),
  };
  VmemEstimatorConfig config = default_config ();
  g_autoptr(VmemProfile) profile = vmem_profile_new ("w");
  profile->margin_pct = 0;
  VmemEstimateTarget target = { .memory_mib = 0 };

  g_autoptr(VmemEstimate) plain = estimate (peaks, 3, &config, profile, &target);
  assert_close (plain->raw_mib, 1000);
  assert_int_equal (plain->clamps, 0);

  profile->floor_mib = 1500;
  g_autoptr(VmemEstimate) f = estimate (peaks, 3, &config, profile, &target);
  assert_int_equal (f->demand_mib, 1500);
  assert_close (f->raw_mib, 1000);
  assert_int_equal (f->clamps, VMEM_CLAMP_FLOOR);

  profile->floor_mib = 0;
  profile->ceiling_mib = 800;
  g_autoptr(VmemEstimate) c = estimate (peaks, 3, &config, profile, &target);
  assert_int_equal (c->demand_mib, 800);
  assert_int_equal (c->clamps, VMEM_CLAMP_CEILING);

  target.memory_mib = 600;
  g_autoptr(VmemEstimate) m = estimate (peaks, 3, &config, profile, &target);
  assert_int_equal (m->demand_mib, 600);
  assert_int_equal (m->clamps, VMEM_CLAMP_CEILING | VMEM_CLAMP_DOMAIN_MEMORY);

  /* The domain's <memory> wins over the floor. */
  profile->ceiling_mib = 0;
  profile->floor_mib = 2000;
  g_autoptr(VmemEstimate) fm = estimate (peaks, 3, &config, profile, &target);
  assert_int_equal (fm->demand_mib, 600);
  assert_int_equal (fm->clamps, VMEM_CLAMP_FLOOR | VMEM_CLAMP_DOMAIN_MEMORY);

  g_autoptr(json_object) json = vmem_estimate_to_json (fm);
  json_object *clamps = json_object_object_get (json, "clamps");
  assert_int_equal (json_object_array_length (clamps), 2);
  assert_string_equal (json_object_get_string (json_object_array_get_idx (clamps, 0)), "floor");
  assert_string_equal (json_object_get_string (json_object_array_get_idx (clamps, 1)),
                       "domain-memory");
  assert_int_equal (json_object_get_int64 (json_object_object_get (json, "demand_mib")), 600);
}

static void
test_fallback (void **state)
{
  VmemEstimatorConfig config = default_config ();
  g_autoptr(VmemProfile) profile = vmem_profile_new ("w");
  profile->demand_mib = 512;
  VmemEstimateTarget target = { .uuid = "self", .exclude_self = TRUE, .memory_mib = 2048 };

  /* No peers at all. */
  g_autoptr(VmemEstimate) e = estimate (NULL, 0, &config, profile, &target);
  assert_int_equal (e->source, VMEM_SOURCE_PROFILE);
  assert_int_equal (e->demand_mib, 512);
  assert_non_null (strstr (e->reason, "0 peers with history, 1 needed"));
  assert_non_null (strstr (e->reason, "profile's demand"));

  /* Only the domain itself: excluded, still no peers. */
  VmemPeakObs own[] = { day_peak ("self", 2, 100) };
  g_autoptr(VmemEstimate) e_own = estimate (own, 1, &config, profile, &target);
  assert_int_equal (e_own->source, VMEM_SOURCE_PROFILE);

  /* Too few peers for min_peers = 3. */
  VmemPeakObs two[] = { day_peak ("a", 2, 100), day_peak ("b", 2, 100) };
  config.min_peers = 3;
  g_autoptr(VmemEstimate) e_few = estimate (two, 2, &config, profile, &target);
  assert_int_equal (e_few->source, VMEM_SOURCE_PROFILE);
  assert_non_null (strstr (e_few->reason, "2 peers with history, 3 needed"));
  config.min_peers = 1;

  /* Too young: an hourly peak that ended at NOW gives 1 h of history. */
  VmemPeakObs young = day_peak ("a", 0, 100);
  young.start_t = NOW - HOUR;
  young.interval_s = HOUR;
  g_autoptr(VmemEstimate) e_young = estimate (&young, 1, &config, profile, &target);
  assert_int_equal (e_young->source, VMEM_SOURCE_PROFILE);
  assert_non_null (strstr (e_young->reason, "1.0 h, 6.0 h needed"));

  /* No manual demand: the domain's <memory>. */
  profile->demand_mib = 0;
  g_autoptr(VmemEstimate) e_mem = estimate (&young, 1, &config, profile, &target);
  assert_int_equal (e_mem->source, VMEM_SOURCE_FALLBACK_DOMAIN_MEMORY);
  assert_int_equal (e_mem->demand_mib, 2048);
  assert_non_null (strstr (e_mem->reason, "domain's memory"));

  /* Nothing known at all. */
  target.memory_mib = 0;
  g_autoptr(VmemEstimate) e_none = estimate (&young, 1, &config, profile, &target);
  assert_int_equal (e_none->source, VMEM_SOURCE_NONE);
  assert_int_equal (e_none->demand_mib, 0);

  /* The manual demand is clamped to the domain's <memory> too. */
  profile->demand_mib = 4096;
  target.memory_mib = 1024;
  g_autoptr(VmemEstimate) e_clamp = estimate (NULL, 0, &config, profile, &target);
  assert_int_equal (e_clamp->demand_mib, 1024);
  assert_int_equal (e_clamp->clamps, VMEM_CLAMP_DOMAIN_MEMORY);
}

static void
test_per_vcpu (void **state)
{
  /* 400 MiB on 2 vCPUs and 900 MiB on 3: 200 and 300 per vCPU. */
  VmemPeakObs peaks[] = { day_peak ("a", 4, 400), day_peak ("b", 4, 900) };
  peaks[0].vcpus = 2;
  peaks[1].vcpus = 3;
  VmemEstimatorConfig config = default_config ();
  g_autoptr(VmemProfile) profile = vmem_profile_new ("w");
  profile->scale = VMEM_SCALE_PER_VCPU;
  profile->margin_pct = 0;
  VmemEstimateTarget target = { .vcpus = 4, .memory_mib = 8192 };

  g_autoptr(VmemEstimate) e = estimate (peaks, 2, &config, profile, &target);
  /* 300 per vCPU, scaled to the target's 4. */
  assert_close (e->quantile_mib, 1200);
  assert_close (e->raw_mib, 1200);
  assert_int_equal (e->vcpus, 4);
  /* Peers still report their absolute level, and the scaled one. */
  assert_close (find_peer (e, "b")->peak_mib, 900);
  assert_close (find_peer (e, "b")->scaled_mib, 1200);

  profile->scale = VMEM_SCALE_ABSOLUTE;
  g_autoptr(VmemEstimate) abs = estimate (peaks, 2, &config, profile, &target);
  assert_close (abs->raw_mib, 900);
}

/* A first start leaves the domain's own history out; a restart leads
 * with it, the peers as the prior, weighted by hours of history:
 *   own: level 5000 over 120 h (its peak started 5 days before NOW);
 *   prior: p90 of {100, 200} = 200, the peers' 120 h counting as 24 h;
 *   base = 120/144 * 5000 + 24/144 * 200 = 4200. */
static void
test_exclude_self (void **state)
{
  VmemPeakObs peaks[] = {
    day_peak ("self", 4, 5000),
    day_peak ("a", 4, 100),
    day_peak ("b", 4, 200),
  };
  VmemEstimatorConfig config = default_config ();
  config.margin_pct = 0;
  VmemEstimateTarget target = { .uuid = "self", .exclude_self = TRUE };

  g_autoptr(VmemEstimate) out = estimate (peaks, 3, &config, NULL, &target);
  assert_int_equal (out->source, VMEM_SOURCE_PEERS);
  assert_int_equal (out->kind, VMEM_START_FIRST);
  assert_int_equal (out->peers->len, 2);
  assert_close (out->own_level_mib, 0);
  assert_close (out->raw_mib, 200);

  target.exclude_self = FALSE;
  g_autoptr(VmemEstimate) in = estimate (peaks, 3, &config, NULL, &target);
  assert_int_equal (in->source, VMEM_SOURCE_OWN);
  assert_int_equal (in->kind, VMEM_START_OWN);
  /* The domain is never its own peer. */
  assert_int_equal (in->peers->len, 2);
  assert_close (in->own_level_mib, 5000);
  assert_close (in->own_hours, 120);
  assert_close (in->quantile_mib, 200);
  assert_close (in->own_weight, 120.0 / 144.0);
  assert_close (in->base_mib, 4200);
  assert_close (in->raw_mib, 4200);
  assert_non_null (strstr (in->reason, "own history"));

  /* The prior weighs at most prior_hours: with 48 h, 120/168. */
  config.prior_hours = 48;
  g_autoptr(VmemEstimate) in48 = estimate (peaks, 3, &config, NULL, &target);
  assert_close (in48->own_weight, 120.0 / 168.0);
  assert_close (in48->base_mib, (120.0 * 5000 + 48.0 * 200) / 168.0);

  /* No peers: the own level alone. */
  g_autoptr(VmemEstimate) alone = estimate (peaks, 1, &config, NULL, &target);
  assert_int_equal (alone->source, VMEM_SOURCE_OWN);
  assert_close (alone->own_weight, 1);
  assert_close (alone->raw_mib, 5000);
}

/* History counts from the first sample seen, not from the start of its
 * interval: one sample at 05:59 and one at 06:00 are a minute, not an hour. */
static void
test_history_from_first_sample (void **state)
{
  VmemPeakObs peaks[] = { day_peak ("self", 0, 300), day_peak ("a", 4, 100) };
  peaks[0].start_t = NOW - HOUR;
  peaks[0].interval_s = HOUR;
  peaks[0].first_t = NOW - 60;
  VmemEstimatorConfig config = default_config ();
  config.min_history_hours = 0.5;
  VmemEstimateTarget target = { .uuid = "self" };

  g_autoptr(VmemEstimate) e = estimate (peaks, 2, &config, NULL, &target);
  assert_close (e->own_hours, 1.0 / 60);
  /* Less than min_history_hours of its own: a first start. */
  assert_int_equal (e->source, VMEM_SOURCE_PEERS);
  peaks[0].first_t = 0;
  g_autoptr(VmemEstimate) e2 = estimate (peaks, 2, &config, NULL, &target);
  assert_close (e2->own_hours, 1);
  assert_int_equal (e2->source, VMEM_SOURCE_OWN);
}

/* Peers of another size are compared by usage relative to their <memory>
 * and scaled to the target's: a large VM is not sized from small ones. */
static void
test_relative_to_memory (void **state)
{
  VmemPeakObs peaks[] = { day_peak ("a", 4, 100), day_peak ("b", 4, 300) };
  VmemEstimatorConfig config = default_config ();
  config.margin_pct = 0;
  g_autoptr(VmemWorkloadAgg) agg = vmem_workload_agg_new (&config, NULL);
  for (guint i = 0; i < 2; i++)
    assert_true (vmem_workload_agg_add (agg, &peaks[i], NULL));
  /* a uses 100 of 512 MiB, b 300 of 1024. */
  vmem_workload_agg_set_memory (agg, "a", 512);
  vmem_workload_agg_set_memory (agg, "b", 1024);
  VmemEstimateTarget target = { .uuid = "big", .memory_mib = 8192 };
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemEstimate) e = vmem_estimator_estimate (agg, NULL, &config, NULL, &target, NOW,
                                                       &error);
  assert_non_null (e);
  assert_close (find_peer (e, "a")->scaled_mib, 100.0 / 512 * 8192);
  assert_close (find_peer (e, "b")->scaled_mib, 300.0 / 1024 * 8192);
  /* p90 of {1600, 2400} = 2400 */
  assert_close (e->quantile_mib, 2400);
  assert_close (e->raw_mib, 2400);

  /* A peer of unknown size counts as it is. */
  vmem_workload_agg_set_memory (agg, "b", 0);
  g_autoptr(VmemEstimate) e2 = vmem_estimator_estimate (agg, NULL, &config, NULL, &target, NOW,
                                                        &error);
  assert_close (find_peer (e2, "b")->scaled_mib, 300);
  assert_close (e2->quantile_mib, 1600);
}

/* The margin comes from the calibration once it has outcomes. */
static void
test_calibrated_margin (void **state)
{
  VmemPeakObs peaks[] = { day_peak ("a", 4, 100), day_peak ("b", 4, 200) };
  VmemEstimatorConfig config = default_config ();
  g_autoptr(VmemWorkloadAgg) agg = vmem_workload_agg_new (&config, NULL);
  for (guint i = 0; i < 2; i++)
    assert_true (vmem_workload_agg_add (agg, &peaks[i], NULL));
  g_autoptr(VmemCalibration) cal = vmem_calibration_new (100, 20, 0, 0.1);
  /* Scores 0.01 .. 1.00 for first starts of "w": at 5 % risk and 90 %
   * confidence the rank is 99 (vmem-calibration.h), the score 0.99. */
  for (int i = 1; i <= 100; i++)
    assert_true (vmem_calibration_add (cal, "w", VMEM_START_FIRST, i / 100.0, FALSE, 0.05, NULL));
  VmemEstimateTarget target = { .workload = "w", .memory_mib = 8192 };
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemEstimate) e = vmem_estimator_estimate (agg, cal, &config, NULL, &target, NOW,
                                                       &error);
  assert_non_null (e);
  assert_int_equal (e->calibration.scope, VMEM_CALIBRATION_WORKLOAD);
  assert_int_equal (e->calibration.outcomes, 100);
  assert_int_equal (e->calibration.rank, 99);
  assert_close (e->calibration.factor, 0.99);
  assert_close (e->raw_mib, 200 * 0.99);
  assert_close (e->effective_margin_pct, -1);
  assert_non_null (strstr (e->reason, "calibrated to at most 5 % risk with 90 % confidence"));
  assert_non_null (strstr (e->reason, "rank 99 at level 5 %"));

  /* A profile's risk: 10 % -> rank 95. */
  g_autoptr(VmemProfile) profile = vmem_profile_new ("w");
  profile->risk_pct = 10;
  profile->quantile = 0.9;
  g_autoptr(VmemEstimate) e2 = vmem_estimator_estimate (agg, cal, &config, profile, &target, NOW,
                                                        &error);
  assert_close (e2->calibration.factor, 0.95);
  assert_close (e2->raw_mib, 200 * 0.95);
}

static VmemEstimate *
agg_estimate (VmemWorkloadAgg *agg, const VmemEstimatorConfig *config, gint64 now)
{
  g_autoptr(GError) error = NULL;
  VmemEstimateTarget target = { .memory_mib = 1 << 20 };
  VmemEstimate *e = vmem_estimator_estimate (agg, NULL, config, NULL, &target, now, &error);
  if (e == NULL)
    fail_msg ("estimate failed: %s", error->message);
  return e;
}

static void
assert_same_estimate (const VmemEstimate *a, const VmemEstimate *b)
{
  assert_int_equal (a->source, b->source);
  assert_int_equal (a->demand_mib, b->demand_mib);
  assert_close (a->raw_mib, b->raw_mib);
  assert_close (a->base_mib, b->base_mib);
  assert_int_equal (a->peers->len, b->peers->len);
  for (guint i = 0; i < a->peers->len; i++)
    {
      const VmemEstimatePeer *pa = g_ptr_array_index (a->peers, i);
      const VmemEstimatePeer *pb = g_ptr_array_index (b->peers, i);
      assert_string_equal (pa->uuid, pb->uuid);
      assert_close (pa->peak_mib, pb->peak_mib);
      assert_close (pa->weight, pb->weight);
      assert_int_equal (pa->samples, pb->samples);
    }
}

/* Peaks added one by one, with estimates in between, across many
 * half-lives (so that stored weights are rebased), give the same estimate
 * as the same peaks added at once in another order. */
static void
test_incremental_equals_batch (void **state)
{
  VmemEstimatorConfig config = default_config ();
  config.half_life_hours = 1;   /* a day is 24 half-lives: rebasing happens */
  g_autoptr(GRand) rand = g_rand_new_with_seed (42);
  g_autoptr(GArray) peaks = g_array_new (FALSE, FALSE, sizeof (VmemPeakObs));
  static const char *const uuids[] = { "a", "b", "c", "d", "e" };

  for (int day = 0; day < 10; day++)
    for (guint p = 0; p < G_N_ELEMENTS (uuids); p++)
      {
        VmemPeakObs o = day_peak (uuids[p], 9 - day, 100 + g_rand_int_range (rand, 0, 4000));
        o.guest_samples = g_rand_int_range (rand, 0, 11);
        g_array_append_val (peaks, o);
      }

  g_autoptr(VmemWorkloadAgg) inc = vmem_workload_agg_new (&config, NULL);
  for (guint i = 0; i < peaks->len; i++)
    {
      assert_true (vmem_workload_agg_add (inc, &g_array_index (peaks, VmemPeakObs, i), NULL));
      g_autoptr(VmemEstimate) between = agg_estimate (inc, &config, NOW);
      assert_non_null (between);
    }

  /* Newest first: the reference time is set by the newest peak. */
  g_autoptr(VmemWorkloadAgg) batch = vmem_workload_agg_new (&config, NULL);
  for (guint i = peaks->len; i-- > 0;)
    assert_true (vmem_workload_agg_add (batch, &g_array_index (peaks, VmemPeakObs, i), NULL));

  assert_int_equal (vmem_workload_agg_n_peers (inc), 5);
  g_autoptr(VmemEstimate) a = agg_estimate (inc, &config, NOW);
  g_autoptr(VmemEstimate) b = agg_estimate (batch, &config, NOW);
  assert_same_estimate (a, b);

  double qa = 0, qb = 0;
  guint na = 0;
  assert_true (vmem_workload_agg_pooled_quantile (inc, "a", 0.9, NOW, &qa, &na));
  assert_true (vmem_workload_agg_pooled_quantile (batch, "a", 0.9, NOW, &qb, NULL));
  assert_int_equal (na, 4);
  assert_close (qa, qb);

  /* Removing a peer is the same as never having added it. */
  g_autoptr(VmemWorkloadAgg) without = vmem_workload_agg_new (&config, NULL);
  for (guint i = 0; i < peaks->len; i++)
    {
      const VmemPeakObs *o = &g_array_index (peaks, VmemPeakObs, i);
      if (!g_str_equal (o->uuid, "e"))
        assert_true (vmem_workload_agg_add (without, o, NULL));
    }
  assert_true (vmem_workload_agg_remove_peer (inc, "e"));
  g_autoptr(VmemEstimate) c = agg_estimate (inc, &config, NOW);
  g_autoptr(VmemEstimate) d = agg_estimate (without, &config, NOW);
  assert_same_estimate (c, d);
}

/* The current interval's peak grows as samples arrive: adding it again
 * replaces it. */
static void
test_current_interval_replaced (void **state)
{
  VmemEstimatorConfig config = default_config ();
  config.margin_pct = 0;
  g_autoptr(VmemWorkloadAgg) grown = vmem_workload_agg_new (&config, NULL);
  g_autoptr(VmemWorkloadAgg) once = vmem_workload_agg_new (&config, NULL);

  VmemPeakObs old = day_peak ("a", 2, 150);
  VmemPeakObs cur = day_peak ("a", 0, 100);
  cur.samples = 3;
  cur.guest_samples = 3;
  assert_true (vmem_workload_agg_add (grown, &old, NULL));
  assert_true (vmem_workload_agg_add (grown, &cur, NULL));
  cur.peak_mib = 300;
  cur.samples = 6;
  cur.guest_samples = 6;
  assert_true (vmem_workload_agg_add (grown, &cur, NULL));

  assert_true (vmem_workload_agg_add (once, &old, NULL));
  assert_true (vmem_workload_agg_add (once, &cur, NULL));

  /* Loaded newest first: the older peak does not become the latest. */
  g_autoptr(VmemWorkloadAgg) unsorted = vmem_workload_agg_new (&config, NULL);
  VmemPeakObs first = cur;
  first.peak_mib = 100;
  first.samples = 3;
  first.guest_samples = 3;
  first.vcpus = 2;
  assert_true (vmem_workload_agg_add (unsorted, &first, NULL));
  old.vcpus = 3;
  assert_true (vmem_workload_agg_add (unsorted, &old, NULL));
  assert_true (vmem_workload_agg_add (unsorted, &cur, NULL));

  g_autoptr(VmemEstimate) a = agg_estimate (grown, &config, NOW);
  g_autoptr(VmemEstimate) b = agg_estimate (once, &config, NOW);
  g_autoptr(VmemEstimate) c = agg_estimate (unsorted, &config, NOW);
  assert_same_estimate (a, b);
  assert_same_estimate (a, c);
  assert_int_equal (find_peer (c, "a")->intervals, 2);
  /* The vcpus are those of the newest interval, not of the older peak. */
  assert_int_equal (find_peer (c, "a")->vcpus, 1);
  assert_int_equal (find_peer (a, "a")->intervals, 2);
  assert_int_equal (find_peer (a, "a")->samples, 16);
  assert_close (find_peer (a, "a")->peak_mib, 300);
}

static void
test_bad_input (void **state)
{
  VmemEstimatorConfig config = default_config ();
  g_autoptr(VmemWorkloadAgg) agg = vmem_workload_agg_new (&config, NULL);
  VmemPeakObs o = day_peak ("a", 0, 100);

  g_autoptr(GError) e1 = NULL;
  o.uuid = NULL;
  assert_false (vmem_workload_agg_add (agg, &o, &e1));
  assert_true (g_str_has_prefix (e1->message, "uuid:"));

  g_autoptr(GError) e2 = NULL;
  o = day_peak ("a", 0, -1);
  assert_false (vmem_workload_agg_add (agg, &o, &e2));
  assert_true (g_str_has_prefix (e2->message, "peak_mib:"));

  g_autoptr(GError) e3 = NULL;
  o = day_peak ("a", 0, NAN);
  assert_false (vmem_workload_agg_add (agg, &o, &e3));
  assert_true (g_str_has_prefix (e3->message, "peak_mib:"));

  g_autoptr(GError) e4 = NULL;
  o = day_peak ("a", 0, 1);
  o.guest_samples = 11;
  assert_false (vmem_workload_agg_add (agg, &o, &e4));
  assert_true (g_str_has_prefix (e4->message, "guest_samples:"));

  g_autoptr(GError) e5 = NULL;
  o = day_peak ("a", 0, 1);
  o.interval_s = 0;
  assert_false (vmem_workload_agg_add (agg, &o, &e5));
  assert_true (g_str_has_prefix (e5->message, "interval_s:"));

  /* Nothing was added. */
  assert_int_equal (vmem_workload_agg_n_peers (agg), 0);

  g_autoptr(GError) e6 = NULL;
  config.quantile = 1.5;
  assert_false (vmem_estimator_config_validate (&config, &e6));
  assert_true (g_error_matches (e6, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  assert_true (g_str_has_prefix (e6->message, "quantile:"));

  g_autoptr(GError) e7 = NULL;
  config = default_config ();
  config.half_life_hours = 0;
  assert_null (vmem_workload_agg_new (&config, &e7));
  assert_true (g_str_has_prefix (e7->message, "half_life_hours:"));
}

static void
test_json (void **state)
{
  VmemPeakObs peaks[] = { day_peak ("a", 4, 100), day_peak ("b", 4, 200) };
  VmemEstimatorConfig config = default_config ();
  VmemEstimateTarget target = { .memory_mib = 4096 };
  g_autoptr(VmemEstimate) e = estimate (peaks, 2, &config, NULL, &target);
  g_autoptr(json_object) j = vmem_estimate_to_json (e);

  assert_string_equal (json_object_get_string (json_object_object_get (j, "source")), "peers");
  assert_int_equal (json_object_get_int64 (json_object_object_get (j, "demand_mib")),
                    (gint64) e->demand_mib);
  assert_int_equal (json_object_get_int64 (json_object_object_get (j, "time")), NOW);
  json_object *peers = json_object_object_get (j, "peers");
  assert_int_equal (json_object_array_length (peers), 2);
  json_object *first = json_object_array_get_idx (peers, 0);
  assert_string_equal (json_object_get_string (json_object_object_get (first, "name")), "b");
  assert_string_equal (json_object_get_string (json_object_object_get (first, "host")), "h1");
  assert_int_equal (json_object_get_int64 (json_object_object_get (first, "samples")), 10);
  assert_int_equal (json_object_array_length (json_object_object_get (j, "clamps")), 0);
  json_object *cal = json_object_object_get (j, "calibration");
  assert_non_null (cal);
  assert_string_equal (json_object_get_string (json_object_object_get (cal, "scope")), "none");
  assert_non_null (json_object_object_get (cal, "observed_pct"));
  assert_non_null (json_object_object_get (cal, "confidence"));
  assert_non_null (json_object_object_get (cal, "rank"));
  assert_non_null (json_object_object_get (cal, "needed"));
  assert_non_null (json_object_object_get (cal, "level"));
  assert_non_null (json_object_object_get (j, "base_mib"));
  assert_string_equal (json_object_get_string (json_object_object_get (j, "kind")),
                       "first-start");
  assert_non_null (json_object_object_get (j, "effective_margin_pct"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_decay_weights),
    cmocka_unit_test (test_peer_quantile),
    cmocka_unit_test (test_quantile_margin),
    cmocka_unit_test (test_peer_weights_in_quantile),
    cmocka_unit_test (test_clamps),
    cmocka_unit_test (test_fallback),
    cmocka_unit_test (test_per_vcpu),
    cmocka_unit_test (test_exclude_self),
    cmocka_unit_test (test_history_from_first_sample),
    cmocka_unit_test (test_relative_to_memory),
    cmocka_unit_test (test_calibrated_margin),
    cmocka_unit_test (test_incremental_equals_batch),
    cmocka_unit_test (test_current_interval_replaced),
    cmocka_unit_test (test_bad_input),
    cmocka_unit_test (test_json),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
