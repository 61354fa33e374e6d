/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-cleanup.h"
#include "vmem-error.h"
#include "vmem-peaks.h"

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

static VmemPeakSample
sample (const char *uuid, gint64 t, double used_mib, gboolean guest, guint vcpus)
{
  VmemPeakSample s = {
    .uuid = uuid,
    .domain = uuid,
    .host = "h1",
    .t = t,
    .used_mib = used_mib,
    .guest = guest,
    .vcpus = vcpus,
  };
  return s;
}

static VmemPeakObs
add (VmemPeakTracker *t, VmemPeakSample s)
{
  g_autoptr(GError) error = NULL;
  VmemPeakObs out;
  if (!vmem_peak_tracker_add (t, &s, &out, &error))
    fail_msg ("add failed: %s", error->message);
  return out;
}

static void
test_start (void **state)
{
  assert_int_equal (vmem_peak_start (T0, HOUR), T0);
  assert_int_equal (vmem_peak_start (T0 + HOUR - 1, HOUR), T0);
  assert_int_equal (vmem_peak_start (T0 + HOUR, HOUR), T0 + HOUR);
  assert_int_equal (vmem_peak_start (T0 + DAY - 1, DAY), T0);
  assert_int_equal (vmem_peak_start (-1, HOUR), -(gint64) HOUR);
  assert_int_equal (vmem_peak_start (-(gint64) HOUR, HOUR), -(gint64) HOUR);
}

/* Samples of one interval fold into one peak; the first sample of the next
 * interval starts a new one. */
static void
test_interval_boundaries (void **state)
{
  g_autoptr(VmemPeakTracker) t = vmem_peak_tracker_new (HOUR);

  VmemPeakObs o = add (t, sample ("a", T0, 100, TRUE, 1));
  assert_int_equal (o.start_t, T0);
  assert_int_equal (o.interval_s, HOUR);
  assert_true (o.peak_mib == 100);
  assert_int_equal (o.samples, 1);
  assert_int_equal (o.guest_samples, 1);
  assert_string_equal (o.uuid, "a");
  assert_string_equal (o.domain, "a");
  assert_string_equal (o.host, "h1");

  o = add (t, sample ("a", T0 + HOUR - 1, 300, FALSE, 1));
  assert_int_equal (o.start_t, T0);
  assert_true (o.peak_mib == 300);
  assert_int_equal (o.samples, 2);
  assert_int_equal (o.guest_samples, 1);

  o = add (t, sample ("a", T0 + HOUR - 1, 200, TRUE, 1));
  assert_true (o.peak_mib == 300);
  assert_int_equal (o.samples, 3);
  assert_int_equal (o.guest_samples, 2);

  /* The next hour starts afresh, lower than the one before. */
  o = add (t, sample ("a", T0 + HOUR, 50, TRUE, 1));
  assert_int_equal (o.start_t, T0 + HOUR);
  assert_true (o.peak_mib == 50);
  assert_int_equal (o.samples, 1);
  assert_int_equal (o.guest_samples, 1);

  /* A later interval after a gap, too. */
  o = add (t, sample ("a", T0 + 5 * HOUR + 7, 60, FALSE, 1));
  assert_int_equal (o.start_t, T0 + 5 * HOUR);
  assert_int_equal (o.samples, 1);
  assert_int_equal (o.guest_samples, 0);

  /* Domains are tracked apart. */
  o = add (t, sample ("b", T0, 10, TRUE, 1));
  assert_int_equal (o.start_t, T0);
  assert_true (o.peak_mib == 10);

  /* A daily tracker puts the same samples in one interval. */
  g_autoptr(VmemPeakTracker) d = vmem_peak_tracker_new (DAY);
  add (d, sample ("a", T0, 100, TRUE, 1));
  add (d, sample ("a", T0 + HOUR, 300, TRUE, 1));
  o = add (d, sample ("a", T0 + DAY - 1, 200, TRUE, 1));
  assert_int_equal (o.start_t, T0);
  assert_int_equal (o.interval_s, DAY);
  assert_true (o.peak_mib == 300);
  assert_int_equal (o.samples, 3);
  o = add (d, sample ("a", T0 + DAY, 20, TRUE, 1));
  assert_int_equal (o.start_t, T0 + DAY);
  assert_true (o.peak_mib == 20);
}

/* After a restart in the middle of an hour the stored peak is seeded: a
 * smaller sample of the same hour keeps it, a larger one raises it. */
static void
test_seed_keeps_peak (void **state)
{
  g_autoptr(VmemPeakTracker) t = vmem_peak_tracker_new (HOUR);
  VmemPeakObs stored = {
    .uuid = "a",
    .domain = "vm-a",
    .host = "h1",
    .start_t = T0,
    .interval_s = HOUR,
    .peak_mib = 800,
    .samples = 30,
    .guest_samples = 20,
    .vcpus = 4,
  };
  vmem_peak_tracker_seed (t, &stored);

  VmemPeakSample s = sample ("a", T0 + 1800, 500, TRUE, 2);
  s.domain = NULL;
  s.host = NULL;
  VmemPeakObs o = add (t, s);
  assert_int_equal (o.start_t, T0);
  assert_true (o.peak_mib == 800);
  assert_int_equal (o.vcpus, 4);
  assert_int_equal (o.samples, 31);
  assert_int_equal (o.guest_samples, 21);
  assert_string_equal (o.domain, "vm-a");
  assert_string_equal (o.host, "h1");

  o = add (t, sample ("a", T0 + 1900, 900, FALSE, 2));
  assert_true (o.peak_mib == 900);
  assert_int_equal (o.vcpus, 2);
  assert_int_equal (o.samples, 32);
  assert_int_equal (o.guest_samples, 21);
  assert_string_equal (o.domain, "a");

  /* An older stored interval changes nothing; a newer one replaces. */
  VmemPeakObs older = stored;
  older.start_t = T0 - HOUR;
  older.peak_mib = 5000;
  vmem_peak_tracker_seed (t, &older);
  assert_true (vmem_peak_tracker_lookup (t, "a", &o));
  assert_int_equal (o.start_t, T0);
  assert_true (o.peak_mib == 900);

  /* The tracked interval again: merges, the higher peak and the larger
   * counts win. */
  VmemPeakObs same = stored;
  same.peak_mib = 850;
  same.samples = 20;
  same.guest_samples = 20;
  vmem_peak_tracker_seed (t, &same);
  assert_true (vmem_peak_tracker_lookup (t, "a", &o));
  assert_true (o.peak_mib == 900);
  assert_int_equal (o.vcpus, 2);
  assert_int_equal (o.samples, 32);
  assert_int_equal (o.guest_samples, 21);
  same.peak_mib = 950;
  same.samples = 40;
  same.guest_samples = 40;
  vmem_peak_tracker_seed (t, &same);
  assert_true (vmem_peak_tracker_lookup (t, "a", &o));
  assert_true (o.peak_mib == 950);
  assert_int_equal (o.vcpus, 4);
  assert_int_equal (o.samples, 40);
  assert_int_equal (o.guest_samples, 40);

  /* A daily peak is not for an hourly tracker. */
  VmemPeakObs day = stored;
  day.interval_s = DAY;
  day.start_t = T0 + DAY;
  vmem_peak_tracker_seed (t, &day);
  assert_true (vmem_peak_tracker_lookup (t, "a", &o));
  assert_int_equal (o.start_t, T0);

  VmemPeakObs newer = stored;
  newer.start_t = T0 + HOUR;
  newer.peak_mib = 10;
  vmem_peak_tracker_seed (t, &newer);
  o = add (t, sample ("a", T0 + HOUR + 5, 7, TRUE, 1));
  assert_int_equal (o.start_t, T0 + HOUR);
  assert_true (o.peak_mib == 10);
  assert_int_equal (o.samples, 31);
}

/* A sample of an earlier interval than the tracked one is refused and
 * changes nothing; so are bad samples. */
static void
test_out_of_order_refused (void **state)
{
  g_autoptr(VmemPeakTracker) t = vmem_peak_tracker_new (HOUR);
  add (t, sample ("a", T0 + HOUR, 100, TRUE, 1));

  VmemPeakSample s = sample ("a", T0 + HOUR - 1, 999, TRUE, 1);
  VmemPeakObs o;
  g_autoptr(GError) error = NULL;
  assert_false (vmem_peak_tracker_add (t, &s, &o, &error));
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  assert_true (g_str_has_prefix (error->message, "t:"));

  /* Earlier within the same interval is fine. */
  o = add (t, sample ("a", T0 + HOUR, 50, TRUE, 1));
  assert_true (o.peak_mib == 100);
  assert_int_equal (o.samples, 2);

  g_autoptr(GError) e2 = NULL;
  s = sample (NULL, T0 + HOUR, 1, TRUE, 1);
  assert_false (vmem_peak_tracker_add (t, &s, &o, &e2));
  assert_true (g_str_has_prefix (e2->message, "uuid:"));

  g_autoptr(GError) e3 = NULL;
  s = sample ("a", T0 + HOUR, NAN, TRUE, 1);
  assert_false (vmem_peak_tracker_add (t, &s, &o, &e3));
  assert_true (g_str_has_prefix (e3->message, "used_mib:"));

  g_autoptr(GError) e4 = NULL;
  s = sample ("a", T0 + HOUR, -1, TRUE, 1);
  assert_false (vmem_peak_tracker_add (t, &s, &o, &e4));
  assert_true (g_str_has_prefix (e4->message, "used_mib:"));

  assert_true (vmem_peak_tracker_lookup (t, "a", &o));
  assert_true (o.peak_mib == 100);
  assert_int_equal (o.samples, 2);
}

/* vcpus are those of the sample that set the peak; on a tie, the newer. */
static void
test_vcpus_at_peak (void **state)
{
  g_autoptr(VmemPeakTracker) t = vmem_peak_tracker_new (HOUR);
  VmemPeakObs o = add (t, sample ("a", T0, 100, TRUE, 2));
  assert_int_equal (o.vcpus, 2);
  o = add (t, sample ("a", T0 + 10, 400, TRUE, 8));
  assert_int_equal (o.vcpus, 8);
  o = add (t, sample ("a", T0 + 20, 300, TRUE, 4));
  assert_int_equal (o.vcpus, 8);
  o = add (t, sample ("a", T0 + 30, 400, TRUE, 6));
  assert_int_equal (o.vcpus, 6);
  o = add (t, sample ("a", T0 + HOUR, 1, TRUE, 3));
  assert_int_equal (o.vcpus, 3);
}

/* Forgetting a domain drops its peak: the next sample starts a new one,
 * even of the same interval, and even an earlier interval is accepted. */
static void
test_forget (void **state)
{
  g_autoptr(VmemPeakTracker) t = vmem_peak_tracker_new (HOUR);
  add (t, sample ("a", T0 + HOUR, 500, TRUE, 1));
  add (t, sample ("b", T0 + HOUR, 700, TRUE, 1));
  vmem_peak_tracker_forget (t, "a");
  vmem_peak_tracker_forget (t, "nobody");

  VmemPeakObs o;
  assert_false (vmem_peak_tracker_lookup (t, "a", &o));
  o = add (t, sample ("a", T0 + HOUR, 100, TRUE, 1));
  assert_true (o.peak_mib == 100);
  assert_int_equal (o.samples, 1);
  vmem_peak_tracker_forget (t, "a");
  o = add (t, sample ("a", T0, 90, TRUE, 1));
  assert_int_equal (o.start_t, T0);

  assert_true (vmem_peak_tracker_lookup (t, "b", &o));
  assert_true (o.peak_mib == 700);
}

/* The strings handed out follow the latest names. */
static void
test_names (void **state)
{
  g_autoptr(VmemPeakTracker) t = vmem_peak_tracker_new (HOUR);
  VmemPeakObs o = add (t, sample ("a", T0, 1, TRUE, 1));
  /* The caller may hand back the tracker's own strings. */
  VmemPeakSample s = sample (o.uuid, T0 + 1, 2, TRUE, 1);
  s.domain = o.domain;
  s.host = o.host;
  o = add (t, s);
  assert_string_equal (o.domain, "a");
  s = sample ("a", T0 + 2, 3, TRUE, 1);
  s.domain = "renamed";
  s.host = "h2";
  o = add (t, s);
  assert_string_equal (o.domain, "renamed");
  assert_string_equal (o.host, "h2");
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_start),
    cmocka_unit_test (test_interval_boundaries),
    cmocka_unit_test (test_seed_keeps_peak),
    cmocka_unit_test (test_out_of_order_refused),
    cmocka_unit_test (test_vcpus_at_peak),
    cmocka_unit_test (test_forget),
    cmocka_unit_test (test_names),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
