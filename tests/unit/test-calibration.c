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

/* The factor is the ceil((n + 1)(1 - risk))-th smallest score. */
static void
test_conformal_rank (void **state)
{
  g_autoptr(VmemCalibration) cal = vmem_calibration_new (100, 20, 0);
  VmemCalibrationResult r;

  /* 18 outcomes are too few for 5 % (19 needed): no calibration. */
  for (int i = 1; i <= 18; i++)
    add (cal, "w", i, FALSE);
  assert_false (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.05, &r));
  assert_int_equal (r.scope, VMEM_CALIBRATION_NONE);
  assert_int_equal (r.outcomes, 18);
  /* ... but enough for 10 %: 9 needed; the pool answers while the
   * workload has fewer than 20: rank ceil(19 * 0.9) = 18. */
  assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.10, &r));
  assert_int_equal (r.scope, VMEM_CALIBRATION_POOLED);
  assert_close (r.factor, 18);

  /* 19 at 5 %: rank ceil(20 * 0.95) = 19, the highest. */
  add (cal, "w", 19, TRUE);
  assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.05, &r));
  assert_int_equal (r.scope, VMEM_CALIBRATION_POOLED);
  assert_close (r.factor, 19);
  assert_int_equal (r.under, 1);
  assert_close (r.observed_pct, 100.0 / 19);

  /* 20: the workload's own; the other kind has none. */
  add (cal, "w", 0.5, FALSE);
  assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.05, &r));
  assert_int_equal (r.scope, VMEM_CALIBRATION_WORKLOAD);
  assert_int_equal (r.workload_outcomes, 20);
  /* sorted 0.5, 1 .. 19: rank ceil(21 * 0.95) = 20 -> 19 */
  assert_close (r.factor, 19);
  assert_false (vmem_calibration_margin (cal, "w", VMEM_START_FIRST, 0.05, &r));

  /* Another workload with few outcomes is calibrated on the pool. */
  add (cal, "v", 100, FALSE);
  assert_true (vmem_calibration_margin (cal, "v", VMEM_START_OWN, 0.05, &r));
  assert_int_equal (r.scope, VMEM_CALIBRATION_POOLED);
  assert_int_equal (r.workload_outcomes, 1);
  assert_int_equal (r.outcomes, 21);
  /* 0.5, 1 .. 19, 100: rank ceil(22 * 0.95) = 21 -> 100 */
  assert_close (r.factor, 100);
  assert_true (vmem_calibration_margin (cal, NULL, VMEM_START_OWN, 0.05, &r));
  assert_int_equal (r.scope, VMEM_CALIBRATION_POOLED);
}

/* Outcomes from a known distribution: the start rate above the chosen
 * factor converges to the risk, with and without the adaptation. */
static void
test_rate_converges (void **state)
{
  static const double steps[] = { 0, 0.005 };
  static const double risks[] = { 0.05, 0.10 };
  for (guint s = 0; s < G_N_ELEMENTS (steps); s++)
    for (guint k = 0; k < G_N_ELEMENTS (risks); k++)
      {
        g_autoptr(VmemCalibration) cal = vmem_calibration_new (200, 20, steps[s]);
        g_autoptr(GRand) rand = g_rand_new_with_seed (11 + s * 7 + k);
        guint n = 0, under = 0;
        for (int i = 0; i < 20000; i++)
          {
            /* Log-normal scores: what used over estimated looks like. */
            double u1 = g_rand_double_range (rand, 1e-12, 1), u2 = g_rand_double (rand);
            double score = exp (0.3 * sqrt (-2 * log (u1)) * cos (2 * G_PI * u2));
            VmemCalibrationResult r;
            if (vmem_calibration_margin (cal, "w", VMEM_START_OWN, risks[k], &r))
              {
                n++;
                under += score > r.factor;
              }
            g_autoptr(GError) error = NULL;
            gboolean miss = score > (r.scope != VMEM_CALIBRATION_NONE ? r.factor : 1.15);
            assert_true (vmem_calibration_add (cal, "w", VMEM_START_OWN, score, miss, risks[k],
                                               &error));
          }
        double rate = (double) under / n;
        if (fabs (rate - risks[k]) > 0.005)
          fail_msg ("step %g, risk %g: rate %g", steps[s], risks[k], rate);
      }
}

/* A step change in usage is followed: once the window holds only
 * outcomes after it, the factor is theirs alone. */
static void
test_step_change (void **state)
{
  g_autoptr(VmemCalibration) cal = vmem_calibration_new (100, 20, 0);
  VmemCalibrationResult r;

  for (int i = 0; i < 300; i++)
    add (cal, "w", (i % 100 + 1) / 100.0, FALSE);
  assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.05, &r));
  /* 0.01 .. 1.00: rank ceil(101 * 0.95) = 96 */
  assert_close (r.factor, 0.96);

  /* Usage doubles: the factor rises as the new outcomes come in ... */
  for (int i = 0; i < 50; i++)
    add (cal, "w", 2 + (i % 100 + 1) / 100.0, TRUE);
  assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.05, &r));
  assert_true (r.factor > 2);
  assert_int_equal (r.under, 50);
  /* ... and after a window of them it is theirs: 2.01 .. 3.00 -> 2.96. */
  for (int i = 50; i < 100; i++)
    add (cal, "w", 2 + (i % 100 + 1) / 100.0, FALSE);
  assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.05, &r));
  assert_close (r.factor, 2.96);
  assert_int_equal (r.outcomes, 100);
}

/* The adaptation moves the level by step * (risk - under) per outcome. */
static void
test_adaptation (void **state)
{
  g_autoptr(VmemCalibration) cal = vmem_calibration_new (100, 20, 0.01);
  VmemCalibrationResult r;
  for (int i = 1; i <= 100; i++)
    assert_true (vmem_calibration_add (cal, "w", VMEM_START_OWN, i / 100.0, FALSE, 0.05, NULL));
  /* 100 hits: level = 0.05 + 100 * 0.01 * 0.05 = 0.10 -> rank ceil(101 * 0.9) = 91 */
  assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.05, &r));
  assert_close (r.level, 0.10);
  assert_close (r.factor, 0.91);
  /* One miss: level = 0.10 + 0.01 * (0.05 - 1) = 0.0905 -> rank ceil(101 * 0.9095) = 92 */
  assert_true (vmem_calibration_add (cal, "w", VMEM_START_OWN, 0.5, TRUE, 0.05, NULL));
  assert_true (vmem_calibration_margin (cal, "w", VMEM_START_OWN, 0.05, &r));
  assert_close (r.level, 0.0905);
}

static void
test_bad_input (void **state)
{
  g_autoptr(VmemCalibration) cal = vmem_calibration_new (10, 0, 0);
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

  vmem_calibration_add (cal, "w", VMEM_START_OWN, 1, FALSE, 0.5, NULL);
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
    cmocka_unit_test (test_conformal_rank),
    cmocka_unit_test (test_rate_converges),
    cmocka_unit_test (test_step_change),
    cmocka_unit_test (test_adaptation),
    cmocka_unit_test (test_bad_input),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
