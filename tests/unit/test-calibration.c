/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-calibration.h"
#include "vmem-cleanup.h"
#include "vmem-error.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

static void
assert_close (double got, double want)
{
  if (fabs (got - want) > 1e-9 * MAX (1.0, fabs (want)))
    fail_msg ("got %.12g, want %.12g", got, want);
}

static void
add (VmemCalibration *cal, const char *workload, double score, gboolean under)
{
  g_autoptr(GError) error = NULL;
  if (!vmem_calibration_add (cal, workload, VMEM_START_OWN, score, under, 0.05, &error))
    fail_msg ("add failed: %s", error->message);
}

/* The rank is the least k with P(Binomial(n, 1 - risk) >= k) <= delta.
 * The expected ranks were computed apart, in exact rational arithmetic
 * (sum of C(n, j) p^j (1 - p)^(n - j) over j >= k). */
static void
test_pac_rank (void **state)
{
  static const struct { guint n; double risk, delta; guint k; } cases[] = {
    { 44, 0.05, 0.1, 45 },  /* none: 0.95^44 > 0.1 */
    { 45, 0.05, 0.1, 45 },
    { 46, 0.05, 0.1, 46 },
    { 100, 0.05, 0.1, 99 },  /* the marginal rank ceil(101 * 0.95) is 96 */
    { 101, 0.05, 0.1, 100 },
    { 200, 0.05, 0.1, 195 }, /* marginal 191 */
    { 1600, 0.05, 0.1, 1532 }, /* marginal 1521 */
    { 21, 0.10, 0.1, 22 },
    { 22, 0.10, 0.1, 22 },
    { 100, 0.10, 0.1, 95 },
    { 200, 0.10, 0.1, 186 },
    { 101, 0.0405, 0.1, 100 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      guint k = vmem_calibration_pac_rank (cases[i].n, cases[i].risk, cases[i].delta);
      if (k != cases[i].k)
        fail_msg ("n %u, risk %g, delta %g: rank %u, want %u", cases[i].n, cases[i].risk,
                  cases[i].delta, k, cases[i].k);
    }
  /* At a level of 0 there is no rank; with no scores neither. */
  assert_int_equal (vmem_calibration_pac_rank (50, 0, 0.1), 51);
  assert_int_equal (vmem_calibration_pac_rank (0, 0.05, 0.1), 1);
  /* Outcomes needed: the least n with (1 - risk)^n <= delta. */
  assert_int_equal (vmem_calibration_needed (0.05, 0.1), 45);
  assert_int_equal (vmem_calibration_needed (0.10, 0.1), 22);
  assert_int_equal (vmem_calibration_needed (0.05, 0.05), 59);
  assert_int_equal (vmem_calibration_needed (0.01, 0.1), 230);
  /* More than can ever be kept: none. */
  assert_int_equal (vmem_calibration_needed (1e-12, 0.1), G_MAXUINT);
  assert_int_equal (vmem_calibration_needed (0, 0.1), G_MAXUINT);
}

/* The factor is the PAC rank's score; pooled while the workload has too
 * few outcomes of its own for the rank or for min_outcomes. */
static void
test_conformal_rank (void **state)
{
  g_autoptr(VmemCalibration) cal = vmem_calibration_new (100, 30, 0, 0.1);
  VmemCalibrationResult r;

  /* 44 outcomes are too few for 5 % (45 needed): no calibration. */
  for (int i = 1; i <= 44; i++)
    add (cal, "w", i, FALSE);
  assert_false (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.05, &r));
  assert_int_equal (r.scope, VMEM_CALIBRATION_NONE);
  assert_int_equal (r.outcomes, 44);
  assert_int_equal (r.needed, 45);
  assert_close (r.confidence, 0.9);
  /* ... but enough for 10 % (22 needed), and for min_outcomes (30): the
   * workload's own, rank 43 of 44 (exact). */
  assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.10, &r));
  assert_int_equal (r.scope, VMEM_CALIBRATION_WORKLOAD);
  assert_int_equal (r.rank, 43);
  assert_close (r.factor, 43);

  /* 45 at 5 %: rank 45, the highest. */
  add (cal, "w", 45, TRUE);
  assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.05, &r));
  assert_int_equal (r.scope, VMEM_CALIBRATION_WORKLOAD);
  assert_int_equal (r.rank, 45);
  assert_close (r.factor, 45);
  assert_close (r.level, 0.05);
  assert_int_equal (r.under, 1);
  assert_close (r.observed_pct, 100.0 / 45);
  assert_false (vmem_calibration_margin (cal, "w", VMEM_START_FIRST, 0.05, &r));

  /* 46: sorted 0.5, 1 .. 45: rank 46 -> 45. */
  add (cal, "w", 0.5, FALSE);
  assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.05, &r));
  assert_int_equal (r.workload_outcomes, 46);
  assert_int_equal (r.rank, 46);
  assert_close (r.factor, 45);

  /* Another workload with few outcomes is calibrated on the pool:
   * 0.5, 1 .. 45, 100: rank 47 (exact) -> 100. */
  add (cal, "v", 100, FALSE);
  assert_true (vmem_calibration_margin (cal, "v", VMEM_START_OWN, 0.05, &r));
  assert_int_equal (r.scope, VMEM_CALIBRATION_POOLED);
  assert_int_equal (r.workload_outcomes, 1);
  assert_int_equal (r.outcomes, 47);
  assert_int_equal (r.rank, 47);
  assert_close (r.factor, 100);
  assert_true (vmem_calibration_margin (cal, NULL, VMEM_START_OWN, 0.05, &r));
  assert_int_equal (r.scope, VMEM_CALIBRATION_POOLED);
}

/* The guarantee itself: for i.i.d. uniform scores the coverage of a
 * factor t is t, so over many independent windows of n outcomes the share
 * of windows whose coverage is below 1 - risk must be at most delta.  The
 * marginal rank ceil((n + 1)(1 - risk)) fails this (about 0.4 of windows
 * at n = 100). */
static void
test_pac_guarantee (void **state)
{
  static const struct { guint n; double risk; } cases[] = {
    { 100, 0.05 }, { 200, 0.05 }, { 60, 0.10 },
  };
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++)
    {
      g_autoptr(GRand) rand = g_rand_new_with_seed (2012 + c);
      const guint trials = 4000;
      guint bad = 0;
      for (guint t = 0; t < trials; t++)
        {
          g_autoptr(VmemCalibration) cal = vmem_calibration_new (cases[c].n, 0, 0, 0.1);
          for (guint i = 0; i < cases[c].n; i++)
            assert_true (vmem_calibration_add (cal, "w", VMEM_START_OWN, g_rand_double (rand),
                                               FALSE, cases[c].risk, NULL));
          VmemCalibrationResult r;
          assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, cases[c].risk, &r));
          assert_int_equal (r.outcomes, cases[c].n);
          bad += r.factor < 1 - cases[c].risk;
        }
      /* P(bad) <= 0.1 exactly; the count's standard deviation at 0.1 is
       * 19 of 4000, so 0.1 + 0.015 is over three of them. */
      double share = (double) bad / trials;
      if (share > 0.1 + 0.015)
        fail_msg ("n %u, risk %g: %.3f of windows cover less than %g", cases[c].n,
                  cases[c].risk, share, 1 - cases[c].risk);
    }
}

static double
lognormal (GRand *rand, double sigma)
{
  double u1 = g_rand_double_range (rand, 1e-12, 1), u2 = g_rand_double (rand);
  return exp (sigma * sqrt (-2 * log (u1)) * cos (2 * G_PI * u2));
}

/* Outcomes from a known distribution, online: the rate of starts above
 * the chosen factor stays under the risk, at the rate the PAC rank gives
 * (1 - k / (n + 1) for a full window: 2.99 % for k = 195 of 200 at 5 %,
 * 7.46 % for 186 of 200 at 10 %), with and without the adaptation (which
 * has nothing to correct here). */
static void
test_rate_bounded (void **state)
{
  static const double steps[] = { 0, 0.005 };
  static const struct { double risk; double expect; } risks[] = {
    { 0.05, 1 - 195.0 / 201 }, { 0.10, 1 - 186.0 / 201 },
  };
  for (guint s = 0; s < G_N_ELEMENTS (steps); s++)
    for (guint k = 0; k < G_N_ELEMENTS (risks); k++)
      {
        g_autoptr(VmemCalibration) cal = vmem_calibration_new (200, 20, steps[s], 0.1);
        g_autoptr(GRand) rand = g_rand_new_with_seed (11 + s * 7 + k);
        guint n = 0, under = 0;
        for (int i = 0; i < 20000; i++)
          {
            double score = lognormal (rand, 0.3);
            VmemCalibrationResult r;
            if (vmem_calibration_margin (cal, "w", VMEM_START_OWN, risks[k].risk, &r))
              {
                n++;
                under += score > r.factor;
              }
            g_autoptr(GError) error = NULL;
            gboolean miss = score > (r.scope != VMEM_CALIBRATION_NONE ? r.factor : 1.15);
            assert_true (vmem_calibration_add (cal, "w", VMEM_START_OWN, score, miss,
                                               risks[k].risk, &error));
          }
        double rate = (double) under / n;
        if (rate > risks[k].risk || fabs (rate - risks[k].expect) > 0.005)
          fail_msg ("step %g, risk %g: rate %g, want %g", steps[s], risks[k].risk, rate,
                    risks[k].expect);
      }
}

/* Scores that drift (usage growing faster than the estimates follow) are
 * not exchangeable, and the rank alone lets the rate run above the risk;
 * the one-sided adaptation holds it: the rate over T outcomes is at most
 * risk + (risk - level) / (step * T), whatever the sequence. */
static void
test_drift_held (void **state)
{
  const double risk = 0.05, step = 0.005;
  double rates[2];
  for (guint a = 0; a < 2; a++)
    {
      g_autoptr(VmemCalibration) cal = vmem_calibration_new (200, 20, a ? step : 0, 0.1);
      g_autoptr(GRand) rand = g_rand_new_with_seed (77);
      guint n = 0, under = 0;
      VmemCalibrationResult r;
      for (int i = 0; i < 20000; i++)
        {
          /* Usage that keeps growing, sixfold over 1000 outcomes, then
           * falls back and grows again. */
          double drift = 1 + (i % 1000) / 200.0;
          double score = lognormal (rand, 0.2) * drift;
          gboolean miss = score > 1.15;
          if (vmem_calibration_margin (cal, "w", VMEM_START_OWN, risk, &r))
            {
              n++;
              miss = score > r.factor;
              under += miss;
            }
          assert_true (vmem_calibration_add (cal, "w", VMEM_START_OWN, score, miss, risk, NULL));
        }
      rates[a] = (double) under / n;
      if (a == 1)
        {
          assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, risk, &r));
          double bound = risk + (risk - r.level) / (step * n);
          if (rates[a] > bound + 1e-12)
            fail_msg ("rate %g above the bound %g", rates[a], bound);
        }
    }
  if (!(rates[0] > risk) || !(rates[1] <= risk))
    fail_msg ("without adaptation %g (want above %g), with %g (want at most)", rates[0], risk,
              rates[1]);
}

/* A step change in usage is followed: once the window holds only
 * outcomes after it, the factor is theirs alone. */
static void
test_step_change (void **state)
{
  g_autoptr(VmemCalibration) cal = vmem_calibration_new (100, 20, 0, 0.1);
  VmemCalibrationResult r;

  for (int i = 0; i < 300; i++)
    add (cal, "w", (i % 100 + 1) / 100.0, FALSE);
  assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.05, &r));
  /* 0.01 .. 1.00: rank 99 of 100 */
  assert_int_equal (r.rank, 99);
  assert_close (r.factor, 0.99);

  /* Usage doubles: the factor rises as the new outcomes come in ... */
  for (int i = 0; i < 50; i++)
    add (cal, "w", 2 + (i % 100 + 1) / 100.0, TRUE);
  assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.05, &r));
  assert_true (r.factor > 2);
  assert_int_equal (r.under, 50);
  /* ... and after a window of them it is theirs: 2.01 .. 3.00 -> 2.99. */
  for (int i = 50; i < 100; i++)
    add (cal, "w", 2 + (i % 100 + 1) / 100.0, FALSE);
  assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.05, &r));
  assert_close (r.factor, 2.99);
  assert_int_equal (r.outcomes, 100);
}

/* The adaptation moves the level by step * (risk - under) per outcome,
 * never above the risk: hits cannot make the margin less safe than the
 * PAC rank, misses make it safer. */
static void
test_adaptation (void **state)
{
  g_autoptr(VmemCalibration) cal = vmem_calibration_new (200, 20, 0.01, 0.1);
  VmemCalibrationResult r;
  for (int i = 1; i <= 100; i++)
    assert_true (vmem_calibration_add (cal, "w", VMEM_START_OWN, i / 100.0, FALSE, 0.05, NULL));
  /* 100 hits: the level stays at 0.05 -> rank 99 of 100. */
  assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.05, &r));
  assert_close (r.level, 0.05);
  assert_int_equal (r.rank, 99);
  assert_close (r.factor, 0.99);
  /* One miss: level = 0.05 + 0.01 * (0.05 - 1) = 0.0405 -> rank 100 of 101 (exact). */
  assert_true (vmem_calibration_add (cal, "w", VMEM_START_OWN, 0.005, TRUE, 0.05, NULL));
  assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.05, &r));
  assert_close (r.level, 0.0405);
  assert_int_equal (r.rank, 100);
  assert_close (r.factor, 0.99);
  /* Six more: 0.0405 - 6 * 0.0095 < 0: level 0, no rank with the
   * confidence: the highest score. */
  for (int i = 0; i < 6; i++)
    assert_true (vmem_calibration_add (cal, "w", VMEM_START_OWN, 0.005, TRUE, 0.05, NULL));
  assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.05, &r));
  assert_close (r.level, 0);
  assert_int_equal (r.rank, 107);
  assert_close (r.factor, 1.0);
  /* Hits bring it back, by 0.0005 each, up to the risk and no further. */
  for (int i = 0; i < 1000; i++)
    assert_true (vmem_calibration_add (cal, "w", VMEM_START_OWN, 0.5, FALSE, 0.05, NULL));
  assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.05, &r));
  assert_close (r.level, 0.05);
  assert_int_equal (r.rank, 195);
}

static void
test_bad_input (void **state)
{
  g_autoptr(VmemCalibration) cal = vmem_calibration_new (10, 0, 0, 0.1);
  GError *error = NULL;
  assert_false (vmem_calibration_add (cal, "w", VMEM_START_OWN, NAN, FALSE, 0.05, &error));
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  g_clear_error (&error);
  assert_false (vmem_calibration_add (cal, "", VMEM_START_OWN, 1, FALSE, 0.05, &error));
  g_clear_error (&error);
  assert_false (vmem_calibration_add (cal, "w", VMEM_START_OWN, -1, FALSE, 0.05, &error));
  g_clear_error (&error);
  assert_false (vmem_calibration_add (cal, "w", VMEM_START_OWN, 1, FALSE, 1.5, &error));
  g_clear_error (&error);
  /* Nothing was added. */
  VmemCalibrationResult r;
  assert_false (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.5, &r));
  assert_int_equal (r.outcomes, 0);
  assert_false (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0, &r));

  /* At 50 % risk, 4 outcomes are enough (0.5^4 <= 0.1). */
  for (int i = 0; i < 4; i++)
    assert_true (vmem_calibration_add (cal, "w", VMEM_START_OWN, 1, FALSE, 0.5, NULL));
  vmem_calibration_forget_workload (cal, "w");
  assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.5, &r));
  assert_int_equal (r.scope, VMEM_CALIBRATION_POOLED);
  vmem_calibration_clear (cal);
  assert_false (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.5, &r));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_pac_rank),
    cmocka_unit_test (test_conformal_rank),
    cmocka_unit_test (test_pac_guarantee),
    cmocka_unit_test (test_rate_bounded),
    cmocka_unit_test (test_drift_held),
    cmocka_unit_test (test_step_change),
    cmocka_unit_test (test_adaptation),
    cmocka_unit_test (test_bad_input),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
