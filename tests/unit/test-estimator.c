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

/* ---- the cached path against the direct computation ---------------------- */

static void
assert_bits (double got, double want, const char *what, guint seed)
{
  if (memcmp (&got, &want, sizeof got) != 0)
    fail_msg ("%s: cached %.17g, direct %.17g (seed %u)", what, got, want, seed);
}

/* Every figure of @cached is @direct's to the last bit; its list of peers
 * too, unless it was asked for none. */
static void
assert_identical (const VmemEstimate *cached, const VmemEstimate *direct, gboolean listed,
                  guint seed)
{
  assert_int_equal (cached->source, direct->source);
  assert_int_equal (cached->demand_mib, direct->demand_mib);
  assert_string_equal (cached->reason, direct->reason);
  assert_int_equal (cached->kind, direct->kind);
  assert_int_equal (cached->scale, direct->scale);
  assert_int_equal (cached->vcpus, direct->vcpus);
  assert_int_equal (cached->clamps, direct->clamps);
  assert_int_equal (cached->n_peers, direct->n_peers);
  assert_int_equal (direct->n_peers, direct->peers->len);
  assert_bits (cached->value_mib, direct->value_mib, "value_mib", seed);
  assert_bits (cached->quantile, direct->quantile, "quantile", seed);
  assert_bits (cached->quantile_mib, direct->quantile_mib, "quantile_mib", seed);
  assert_bits (cached->margin_pct, direct->margin_pct, "margin_pct", seed);
  assert_bits (cached->effective_margin_pct, direct->effective_margin_pct, "effective margin",
               seed);
  assert_bits (cached->history_hours, direct->history_hours, "history_hours", seed);
  assert_bits (cached->own_level_mib, direct->own_level_mib, "own_level_mib", seed);
  assert_bits (cached->own_hours, direct->own_hours, "own_hours", seed);
  assert_bits (cached->own_weight, direct->own_weight, "own_weight", seed);
  assert_bits (cached->base_mib, direct->base_mib, "base_mib", seed);
  assert_bits (cached->raw_mib, direct->raw_mib, "raw_mib", seed);
  if (!listed)
    {
      assert_int_equal (cached->peers->len, 0);
      return;
    }
  assert_int_equal (cached->peers->len, direct->peers->len);
  for (guint i = 0; i < cached->peers->len; i++)
    {
      const VmemEstimatePeer *a = g_ptr_array_index (cached->peers, i);
      const VmemEstimatePeer *b = g_ptr_array_index (direct->peers, i);
      assert_string_equal (a->uuid, b->uuid);
      assert_string_equal (a->name, b->name);
      assert_string_equal (a->host, b->host);
      assert_int_equal (a->samples, b->samples);
      assert_int_equal (a->intervals, b->intervals);
      assert_int_equal (a->vcpus, b->vcpus);
      assert_bits (a->memory_mib, b->memory_mib, "peer memory_mib", seed);
      assert_bits (a->peak_mib, b->peak_mib, "peer peak_mib", seed);
      assert_bits (a->scaled_mib, b->scaled_mib, "peer scaled_mib", seed);
      assert_bits (a->weight, b->weight, "peer weight", seed);
    }
  g_autoptr(json_object) ja = vmem_estimate_to_json (cached);
  g_autoptr(json_object) jb = vmem_estimate_to_json (direct);
  assert_string_equal (json_object_to_json_string (ja), json_object_to_json_string (jb));
}

static void
check_both (VmemWorkloadAgg *agg, const VmemEstimatorConfig *config, const VmemProfile *profile,
            const VmemEstimateTarget *target, gint64 now, guint seed)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemEstimate) direct = vmem_estimator_estimate_direct (agg, NULL, config, profile,
                                                                   target, now, &error);
  assert_non_null (direct);
  g_autoptr(VmemEstimate) cached = vmem_estimator_estimate (agg, NULL, config, profile, target,
                                                            now, &error);
  assert_non_null (cached);
  assert_identical (cached, direct, !target->no_peer_list, seed);
}

static VmemPeakObs
hour_peak (const char *uuid, gint64 start_t, double peak_mib, guint vcpus)
{
  VmemPeakObs o = {
    .uuid = uuid, .domain = uuid, .host = "h1", .start_t = start_t, .interval_s = HOUR,
    .peak_mib = peak_mib, .samples = 360, .guest_samples = 360, .vcpus = vcpus,
  };
  return o;
}

/* Constructed cases: ties in levels and in weights, the quantile right on
 * the edge between two levels, the oldest peer being the domain itself,
 * sizes per vCPU, a peer removed, and peers of known and unknown
 * <memory> mixed (which walks every peer). */
static void
test_cached_equals_direct (void **state)
{
  VmemEstimatorConfig config = default_config ();
  config.min_history_hours = 1;
  g_autoptr(VmemWorkloadAgg) agg = vmem_workload_agg_new (&config, NULL);
  g_autoptr(VmemProfile) profile = vmem_profile_new ("w");
  static const char *const uuids[] = { "p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8",
                                       "p9" };
  /* Ten peers of one peak each at the same time: equal weights, so that
   * the 90 % quantile falls exactly on the edge of the ninth level; two
   * pairs of equal levels.  p0 started first. */
  for (guint i = 0; i < G_N_ELEMENTS (uuids); i++)
    {
      double level = 1000 + 100 * (i / 2 == 1 || i / 2 == 3 ? (i / 2) * 2 : i);
      VmemPeakObs o = hour_peak (uuids[i], NOW - 2 * DAY, level, 1 + i % 4);
      assert_true (vmem_workload_agg_add (agg, &o, NULL));
      if (i == 0)
        {
          VmemPeakObs older = hour_peak ("p0", NOW - 3 * DAY, level, 1);
          assert_true (vmem_workload_agg_add (agg, &older, NULL));
        }
    }
  static const double quantiles[] = { 0.5, 0.8, 0.9, 0.95, 1.0 };
  for (guint qi = 0; qi < G_N_ELEMENTS (quantiles); qi++)
    for (int scale = 0; scale < 2; scale++)
      for (int who = 0; who < 3; who++)
        for (int listed = 0; listed < 2; listed++)
          {
            profile->quantile = quantiles[qi];
            profile->scale = scale ? VMEM_SCALE_PER_VCPU : VMEM_SCALE_ABSOLUTE;
            VmemEstimateTarget t = {
              .uuid = who == 0 ? NULL : "p0",    /* p0: the oldest, its own */
              .exclude_self = who == 2,          /* a first start of p0 */
              .vcpus = 3,
              .memory_mib = 4096,
              .no_peer_list = !listed,
            };
            check_both (agg, &config, profile, &t, NOW, 0);
          }
  /* Every <memory> known: relative levels. */
  for (guint i = 0; i < G_N_ELEMENTS (uuids); i++)
    vmem_workload_agg_set_memory (agg, uuids[i], 1024.0 * (1 + i % 3));
  profile->scale = VMEM_SCALE_ABSOLUTE;
  for (guint qi = 0; qi < G_N_ELEMENTS (quantiles); qi++)
    {
      profile->quantile = quantiles[qi];
      VmemEstimateTarget t = { .uuid = "p3", .vcpus = 2, .memory_mib = 3000 };
      check_both (agg, &config, profile, &t, NOW, 0);
      t.memory_mib = 0;   /* unknown: absolute levels */
      check_both (agg, &config, profile, &t, NOW, 0);
    }
  assert_int_equal (vmem_workload_agg_walks (agg), 0);

  /* The oldest peer removed; one peak replaced by a higher one. */
  assert_true (vmem_workload_agg_remove_peer (agg, "p0"));
  VmemPeakObs grown = hour_peak ("p5", NOW - 2 * DAY, 9000, 2);
  assert_true (vmem_workload_agg_add (agg, &grown, NULL));
  VmemEstimateTarget t = { .uuid = "p9", .vcpus = 2, .memory_mib = 3000 };
  check_both (agg, &config, profile, &t, NOW, 0);
  assert_int_equal (vmem_workload_agg_walks (agg), 0);

  /* One peer's <memory> unknown: a mix, walked (the domain itself does
   * not count). */
  vmem_workload_agg_set_memory (agg, "p9", 0);
  check_both (agg, &config, profile, &t, NOW, 0);
  assert_int_equal (vmem_workload_agg_walks (agg), 0);
  t.uuid = "p8";
  check_both (agg, &config, profile, &t, NOW, 0);
  assert_int_equal (vmem_workload_agg_walks (agg), 1);
  /* Another peer quantile in the config: every level again. */
  config.peer_quantile = 0.5;
  t.uuid = "p7";
  vmem_workload_agg_set_memory (agg, "p9", 512);
  check_both (agg, &config, profile, &t, NOW, 0);
  assert_int_equal (vmem_workload_agg_walks (agg), 1);
}

/* Random histories: peaks added in any order (replacing the current
 * interval's now and then), <memory> set and changed, peers removed, the
 * weights rebased over many half-lives, and estimates of both kinds of
 * start in between, each compared with the direct computation. */
static void
test_cached_equals_direct_random (void **state)
{
  static const double peer_quantiles[] = { 0.99, 0.9, 0.5, 1.0 };
  static const double quantiles[] = { 0.9, 0.5, 0.95, 0.99, 1.0, 0.73 };
  guint checks = 0, listed_checks = 0, first_starts = 0, own_starts = 0, walks_uniform = 0;

  for (guint seed = 1; seed <= 40; seed++)
    {
      g_autoptr(GRand) r = g_rand_new_with_seed (seed);
      VmemEstimatorConfig config = default_config ();
      config.half_life_hours = g_rand_double_range (r, 0.25, 48);
      config.min_history_hours = g_rand_double_range (r, 0, 12);
      config.rss_weight = g_rand_double (r);
      g_autoptr(VmemWorkloadAgg) agg = vmem_workload_agg_new (&config, NULL);
      g_autoptr(VmemProfile) profile = vmem_profile_new ("w");
      /* 0: every <memory> known, 1: none, 2: mixed. */
      int memory_mode = seed % 3;
      guint n_uuids = 2 + g_rand_int_range (r, 0, seed < 30 ? 40 : 300);
      g_autoptr(GPtrArray) uuids = g_ptr_array_new_with_free_func (g_free);
      for (guint i = 0; i < n_uuids; i++)
        g_ptr_array_add (uuids, g_strdup_printf ("dom-%u", i));
      gint64 t0 = NOW - 90 * DAY;
      gint64 latest = t0;
      guint ops = 300 + g_rand_int_range (r, 0, 900);

      for (guint op = 0; op < ops; op++)
        {
          const char *uuid = g_ptr_array_index (uuids, g_rand_int_range (r, 0, n_uuids));
          double dice = g_rand_double (r);
          if (dice < 0.65)
            {
              gint64 start = t0 + (gint64) g_rand_int_range (r, 0, 90 * 24) * HOUR;
              /* Few distinct sizes now and then: equal levels. */
              double peak = g_rand_boolean (r)
                              ? exp (g_rand_double_range (r, log (50), log (16000)))
                              : 256.0 * g_rand_int_range (r, 1, 5);
              VmemPeakObs o = hour_peak (uuid, start, peak, g_rand_int_range (r, 0, 9));
              o.samples = g_rand_int_range (r, 0, 361);
              o.guest_samples = o.samples > 0 ? g_rand_int_range (r, 0, o.samples + 1) : 0;
              if (g_rand_int_range (r, 0, 4) == 0)
                o.first_t = start + g_rand_int_range (r, 0, HOUR);
              assert_true (vmem_workload_agg_add (agg, &o, NULL));
              /* The current interval grows: the same start again. */
              if (g_rand_int_range (r, 0, 5) == 0)
                {
                  o.peak_mib *= 1.5;
                  o.samples += 10;
                  assert_true (vmem_workload_agg_add (agg, &o, NULL));
                }
              latest = MAX (latest, start + HOUR);
              if (memory_mode == 0)
                vmem_workload_agg_set_memory (agg, uuid, 1024.0 * (1 + g_str_hash (uuid) % 16));
              else if (memory_mode == 2 && g_rand_boolean (r))
                vmem_workload_agg_set_memory (agg, uuid, g_rand_boolean (r)
                                                           ? 0 : g_rand_double_range (r, 512, 65536));
            }
          else if (dice < 0.70)
            {
              vmem_workload_agg_remove_peer (agg, uuid);
              if (memory_mode == 0)
                vmem_workload_agg_set_memory (agg, uuid, 1024.0 * (1 + g_str_hash (uuid) % 16));
            }
          else
            {
              VmemEstimatorConfig c = config;
              /* Mostly the default; now and then another (every level anew). */
              c.peer_quantile = peer_quantiles[g_rand_int_range (r, 0, 8) < 6
                                                 ? 0 : g_rand_int_range (r, 1, 4)];
              profile->quantile = quantiles[g_rand_int_range (r, 0, G_N_ELEMENTS (quantiles))];
              profile->scale = g_rand_boolean (r) ? VMEM_SCALE_PER_VCPU : VMEM_SCALE_ABSOLUTE;
              int who = g_rand_int_range (r, 0, 4);
              VmemEstimateTarget t = {
                .uuid = who == 0 ? NULL : who == 1 ? "new-domain" : uuid,
                .exclude_self = who == 3,
                .vcpus = g_rand_int_range (r, 0, 9),
                .memory_mib = memory_mode == 1 && g_rand_boolean (r)
                                ? 0 : g_rand_double_range (r, 256, 32768),
                .no_peer_list = g_rand_boolean (r),
              };
              gint64 now = latest + g_rand_int_range (r, 0, 30 * DAY);
              check_both (agg, &c, g_rand_int_range (r, 0, 5) == 0 ? NULL : profile, &t, now,
                          seed);
              checks++;
              listed_checks += !t.no_peer_list;
              first_starts += who == 3;
              own_starts += who == 2;
            }
        }
      if (memory_mode != 2)
        walks_uniform += vmem_workload_agg_walks (agg);
    }
  /* The cases were there, and the order answered all but the mixed ones. */
  assert_true (checks > 3000 && listed_checks > 1000 && first_starts > 500 && own_starts > 500);
  assert_int_equal (walks_uniform, 0);
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
    cmocka_unit_test (test_cached_equals_direct),
    cmocka_unit_test (test_cached_equals_direct_random),
    cmocka_unit_test (test_current_interval_replaced),
    cmocka_unit_test (test_bad_input),
    cmocka_unit_test (test_json),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
