/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-controller.h"
#include "vmem-error.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#define GIB 1024
#define T0  1700000000

/* One domain with 8G of <memory>, its target at 4G, the default profile,
 * and a controller whose buffer is simply 20 % of used, at least 256M. */
typedef struct {
  VmemControllerConfig config;
  VmemProfile         *profile;
  VmemControllerDomain dom;
  VmemControllerSample s[2];
  gsize                n;
  VmemControllerHost   host;
  VmemControllerState  state;
} Case;

static void
case_init (Case *c)
{
  memset (c, 0, sizeof *c);
  vmem_controller_config_init (&c->config);
  c->config.min_buffer_mib = 256;
  c->config.min_buffer_pct = 0;
  c->profile = vmem_profile_new ("web");
  c->dom = (VmemControllerDomain){
    .name = "web-1", .memory_mib = 8 * GIB, .target_mib = 4 * GIB, .actual_mib = 4 * GIB,
  };
  /* A host with plenty of room. */
  c->host = (VmemControllerHost){
    .capacity_mib = 64 * GIB,
    .committed_mib = 16 * GIB,
    .has_available = TRUE,
    .mem_available_mib = 48 * GIB,
  };
  vmem_controller_state_init (&c->state);
}

static void
case_clear (Case *c)
{
  vmem_profile_free (c->profile);
}

/* The guest's report at @t: @used of its current target, counters as
 * given. */
static VmemControllerSample
sample_at (const Case *c, gint64 t, guint64 used, guint64 swap_in_kib, guint64 major_fault)
{
  guint64 actual = c->dom.actual_mib;
  return (VmemControllerSample){
    .t = t,
    .fresh = TRUE,
    .used_mib = used,
    .available_mib = actual > used ? actual - used : 0,
    .total_mib = actual,
    .actual_mib = actual,
    .swap_in_kib = swap_in_kib,
    .major_fault = major_fault,
  };
}

/* One sample only (no rates). */
static void
report (Case *c, gint64 t, guint64 used)
{
  c->s[0] = sample_at (c, t, used, 0, 0);
  c->n = 1;
}

static void
assert_contains (const char *haystack, const char *needle)
{
  assert_non_null (haystack);
  if (strstr (haystack, needle) == NULL)
    fail_msg ("\"%s\" does not contain \"%s\"", haystack, needle);
}

/* Decides at @now; every decision has one line of reason, a target that
 * is the one in force unless it moves, and sends only to move. */
static void
decide (Case *c, gint64 now, VmemControllerDecision *d)
{
  vmem_controller_decide (&c->config, c->profile, &c->dom, c->s, c->n, &c->host, &c->state, now,
                          d);
  assert_non_null (d->reason);
  assert_null (strchr (d->reason, '\n'));
  assert_int_equal (d->wish_mib, d->target_mib);
  assert_int_equal (d->from_mib, c->dom.target_mib);
  switch (d->action)
    {
    case VMEM_CONTROLLER_GROW:
      assert_true (d->send);
      assert_true (d->target_mib > d->from_mib);
      assert_true (d->target_mib <= d->max_mib);
      break;
    case VMEM_CONTROLLER_SHRINK:
      assert_true (d->send);
      assert_true (d->target_mib < d->from_mib);
      break;
    case VMEM_CONTROLLER_STUCK:
      break;
    default:
      assert_false (d->send);
      assert_int_equal (d->target_mib, d->from_mib);
      break;
    }
}

/* The caller's side: set the target, the balloon follows. */
static void
apply (Case *c, const VmemControllerDecision *d, gint64 now)
{
  if (!d->send)
    return;
  c->dom.target_mib = d->target_mib;
  c->dom.actual_mib = d->target_mib;
  vmem_controller_sent (&c->state, d->target_mib, now);
}

/* ---- config ---- */

static void
assert_invalid (const VmemControllerConfig *config, const char *field)
{
  g_autoptr(GError) error = NULL;
  assert_false (vmem_controller_config_validate (config, &error));
  assert_non_null (error);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  if (!g_str_has_prefix (error->message, field))
    fail_msg ("\"%s\" does not name %s", error->message, field);
}

static void
test_config_defaults_valid (void **state)
{
  VmemControllerConfig c;
  g_autoptr(GError) error = NULL;

  vmem_controller_config_init (&c);
  assert_true (vmem_controller_config_validate (&c, &error));
  assert_null (error);
  assert_int_equal (c.surplus_hold_s, 3600);
  assert_true (c.min_step_mib > 0);
}

static void
test_config_names_field (void **state)
{
  VmemControllerConfig c;

  vmem_controller_config_init (&c);
  c.min_buffer_pct = 101;
  assert_invalid (&c, "min_buffer_pct");

  vmem_controller_config_init (&c);
  c.hysteresis_pct = NAN;
  assert_invalid (&c, "hysteresis_pct");

  vmem_controller_config_init (&c);
  c.grow_max_step_pct = 0;
  assert_invalid (&c, "grow_max_step_pct");

  vmem_controller_config_init (&c);
  c.swap_in_kib_s = 0;
  assert_invalid (&c, "swap_in_kib_s");

  vmem_controller_config_init (&c);
  c.shrink_half_life_s = 0;
  assert_invalid (&c, "shrink_half_life_s");

  vmem_controller_config_init (&c);
  c.pressure_shrink_factor = 0.5;
  assert_invalid (&c, "pressure_shrink_factor");

  vmem_controller_config_init (&c);
  c.host_psi_full = -1;
  assert_invalid (&c, "host_psi_full");

  vmem_controller_config_init (&c);
  c.pressure_hold_s = c.surplus_hold_s + 1;
  assert_invalid (&c, "pressure_hold_s");

  vmem_controller_config_init (&c);
  c.stuck_retry_s = c.stuck_after_s - 1;
  assert_invalid (&c, "stuck_retry_s");
}

/* ---- growing ---- */

static void
test_grows_when_available_under_buffer (void **state)
{
  Case c;
  g_auto(VmemControllerDecision) d = { 0 };

  case_init (&c);
  /* 3900M used of 4G: 196M available, the buffer is 780M. */
  report (&c, T0, 3900);
  decide (&c, T0, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_GROW);
  assert_int_equal (d.buffer_mib, 780);
  assert_int_equal (d.target_mib, 3900 + 780);
  assert_true (d.pressure & VMEM_CONTROLLER_LOW_AVAILABLE);
  assert_contains (d.reason, "MemAvailable 196M is under the buffer 780M");
  assert_contains (d.reason, "grow 4G -> 4680M");
  case_clear (&c);
}

static void
test_no_grow_with_buffer_kept (void **state)
{
  Case c;
  g_auto(VmemControllerDecision) d = { 0 };

  case_init (&c);
  /* 3400M used: 696M available, above the buffer of 680M, and the
   * surplus is within the hysteresis. */
  report (&c, T0, 3400);
  decide (&c, T0, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_HOLD);
  assert_int_equal (d.pressure, 0);
  assert_int_equal (c.state.surplus_since, 0);
  assert_contains (d.reason, "keeps the buffer 680M");
  case_clear (&c);
}

static void
test_grows_on_swap_in (void **state)
{
  Case c;
  g_auto(VmemControllerDecision) d = { 0 };

  case_init (&c);
  /* 2G used, 2G available -- but the guest swapped in 300M in 10 s: it
   * lacks what used no longer shows. */
  c.s[0] = sample_at (&c, T0, 2 * GIB, 1000, 0);
  c.s[1] = sample_at (&c, T0 + 10, 2 * GIB, 1000 + 300 * 1024, 0);
  c.n = 2;
  decide (&c, T0 + 10, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_GROW);
  assert_true (d.pressure & VMEM_CONTROLLER_SWAP_IN);
  assert_false (d.pressure & VMEM_CONTROLLER_LOW_AVAILABLE);
  /* What was swapped in comes back on top of the buffer (410M), and at
   * least 25 % of the target (1G). */
  assert_int_equal (d.target_mib, 4 * GIB + 1024);
  assert_contains (d.reason, "swapped in 300M in 10 s");
  case_clear (&c);

  /* A big swap-in: its size wins over the percentage. */
  case_init (&c);
  c.s[0] = sample_at (&c, T0, 2 * GIB, 0, 0);
  c.s[1] = sample_at (&c, T0 + 10, 2 * GIB, 1500 * 1024, 0);
  c.n = 2;
  vmem_controller_decision_clear (&d);
  decide (&c, T0 + 10, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_GROW);
  assert_int_equal (d.target_mib, 4 * GIB + 1500 + 410);
  case_clear (&c);
}

static void
test_slow_swap_in_is_no_pressure (void **state)
{
  Case c;
  g_auto(VmemControllerDecision) d = { 0 };

  case_init (&c);
  /* 6000 KiB in 300 s is 20 KiB/s, under the 64 KiB/s threshold. */
  c.s[0] = sample_at (&c, T0, 3400, 0, 0);
  c.s[1] = sample_at (&c, T0 + 300, 3400, 6000, 0);
  c.n = 2;
  decide (&c, T0 + 300, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_HOLD);
  assert_int_equal (d.pressure, 0);
  case_clear (&c);
}

static void
test_grows_on_major_faults (void **state)
{
  Case c;
  g_auto(VmemControllerDecision) d = { 0 };

  case_init (&c);
  /* 5000 major faults in 10 s. */
  c.s[0] = sample_at (&c, T0, 3400, 0, 100000);
  c.s[1] = sample_at (&c, T0 + 10, 3400, 0, 105000);
  c.n = 2;
  decide (&c, T0 + 10, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_GROW);
  assert_int_equal (d.pressure, VMEM_CONTROLLER_MAJOR_FAULTS);
  assert_int_equal (d.target_mib, 5 * GIB);
  assert_contains (d.reason, "500 major faults/s");
  case_clear (&c);

  /* 1000 in 10 s is under the threshold. */
  case_init (&c);
  c.s[0] = sample_at (&c, T0, 3400, 0, 100000);
  c.s[1] = sample_at (&c, T0 + 10, 3400, 0, 101000);
  c.n = 2;
  vmem_controller_decision_clear (&d);
  decide (&c, T0 + 10, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_HOLD);
  case_clear (&c);
}

static void
test_counters_reset_are_no_pressure (void **state)
{
  Case c;
  g_auto(VmemControllerDecision) d = { 0 };

  case_init (&c);
  /* The guest rebooted: its counters start again from zero. */
  c.s[0] = sample_at (&c, T0, 3400, 900000, 900000);
  c.s[1] = sample_at (&c, T0 + 10, 3400, 10, 10);
  c.n = 2;
  decide (&c, T0 + 10, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_HOLD);
  assert_int_equal (d.pressure, 0);
  case_clear (&c);
}

static void
test_grows_on_guest_psi (void **state)
{
  Case c;
  g_auto(VmemControllerDecision) d = { 0 };

  case_init (&c);
  report (&c, T0, 3400);
  c.s[0].has_psi = TRUE;
  c.s[0].psi_some_avg10 = 25.0;
  decide (&c, T0, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_GROW);
  assert_int_equal (d.pressure, VMEM_CONTROLLER_GUEST_PSI);
  assert_contains (d.reason, "guest memory pressure 25.0 %");
  case_clear (&c);
}

static void
test_grow_capped_at_memory (void **state)
{
  Case c;
  g_auto(VmemControllerDecision) d = { 0 };

  case_init (&c);
  c.dom.target_mib = c.dom.actual_mib = 7 * GIB;
  c.s[0] = sample_at (&c, T0, 7 * GIB - 10, 0, 0);
  c.s[1] = sample_at (&c, T0 + 10, 7 * GIB - 10, 3000 * 1024, 0);
  c.n = 2;
  decide (&c, T0 + 10, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_GROW);
  assert_int_equal (d.target_mib, 8 * GIB);
  assert_contains (d.reason, "capped at <memory>");
  case_clear (&c);

  /* Already there: nothing more to give, and it says why. */
  case_init (&c);
  c.dom.target_mib = c.dom.actual_mib = 8 * GIB;
  report (&c, T0, 8 * GIB - 10);
  vmem_controller_decision_clear (&d);
  decide (&c, T0, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_HOLD);
  assert_contains (d.reason, "8G is <memory>");
  case_clear (&c);
}

static void
test_grow_capped_at_ceiling (void **state)
{
  Case c;
  g_auto(VmemControllerDecision) d = { 0 };

  case_init (&c);
  c.profile->ceiling_mib = 5 * GIB;
  c.dom.target_mib = c.dom.actual_mib = 4608;
  report (&c, T0, 4600);
  decide (&c, T0, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_GROW);
  assert_int_equal (d.max_mib, 5 * GIB);
  assert_int_equal (d.target_mib, 5 * GIB);
  assert_contains (d.reason, "capped at the profile's ceiling");
  case_clear (&c);

  /* A target above a lowered ceiling comes down to it at once. */
  case_init (&c);
  c.profile->ceiling_mib = 3 * GIB;
  report (&c, T0, 1 * GIB);
  vmem_controller_decision_clear (&d);
  decide (&c, T0, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_SHRINK);
  assert_int_equal (d.target_mib, 3 * GIB);
  assert_contains (d.reason, "above the profile's ceiling");
  case_clear (&c);
}

static void
test_grow_bounded_per_step (void **state)
{
  Case c;
  g_auto(VmemControllerDecision) d = { 0 };

  case_init (&c);
  c.config.grow_max_step_pct = 10; /* 819M of 8G */
  c.dom.target_mib = c.dom.actual_mib = 1 * GIB;
  c.s[0] = sample_at (&c, T0, GIB - 10, 0, 0);
  c.s[1] = sample_at (&c, T0 + 10, GIB - 10, 4000 * 1024, 0);
  c.n = 2;
  decide (&c, T0 + 10, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_GROW);
  assert_int_equal (d.target_mib, GIB + 820);
  case_clear (&c);
}

/* ---- shrinking ---- */

/* 1G used of 4G: the need is 1G + 256M, the surplus 2816M. */
#define SURPLUS_MIB (4 * GIB - GIB - 256)

static void
test_shrink_waits_for_hold (void **state)
{
  Case c;

  case_init (&c);
  for (gint64 t = T0; t <= T0 + 3600; t += 600)
    {
      g_auto(VmemControllerDecision) d = { 0 };
      report (&c, t, GIB);
      decide (&c, t, &d);
      /* At exactly the hold nothing has been shrunk yet. */
      assert_int_equal (d.action, VMEM_CONTROLLER_HOLD);
      assert_int_equal (c.state.surplus_since, T0);
      assert_int_equal (d.need_mib, GIB + 256);
      if (t == T0 + 1200)
        assert_contains (d.reason, "2816M beyond the buffer 256M for 20 min; a shrink waits "
                                   "until it has lasted 60 min");
    }

  /* Ten minutes after the hold: the surplus has lost 1 - 2^(-600/3600)
   * of itself. */
  g_auto(VmemControllerDecision) d = { 0 };
  report (&c, T0 + 4200, GIB);
  decide (&c, T0 + 4200, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_SHRINK);
  guint64 step = (guint64) floor (SURPLUS_MIB * (1.0 - exp2 (-600.0 / 3600.0)));
  assert_int_equal (d.target_mib, 4 * GIB - step);
  assert_contains (d.reason, "shrink 4G -> ");
  assert_contains (d.reason, "beyond the buffer 256M (used 1G) for 70 min");
  case_clear (&c);
}

static void
test_surplus_interrupted_restarts_hold (void **state)
{
  Case c;
  g_auto(VmemControllerDecision) d1 = { 0 };
  g_auto(VmemControllerDecision) d2 = { 0 };
  g_auto(VmemControllerDecision) d3 = { 0 };

  case_init (&c);
  report (&c, T0, GIB);
  decide (&c, T0, &d1);
  assert_int_equal (c.state.surplus_since, T0);
  /* A burst uses the target up to within the buffer: no surplus. */
  report (&c, T0 + 3000, 3400);
  decide (&c, T0 + 3000, &d2);
  assert_int_equal (d2.action, VMEM_CONTROLLER_HOLD);
  assert_int_equal (c.state.surplus_since, 0);
  /* Back down: the hold starts again, so no shrink an hour after T0. */
  report (&c, T0 + 3600 + 600, GIB);
  decide (&c, T0 + 3600 + 600, &d3);
  assert_int_equal (d3.action, VMEM_CONTROLLER_HOLD);
  assert_int_equal (c.state.surplus_since, T0 + 4200);
  case_clear (&c);
}

static void
test_shrink_bounded_per_step (void **state)
{
  Case c;
  g_auto(VmemControllerDecision) d = { 0 };

  case_init (&c);
  c.dom.target_mib = c.dom.actual_mib = 8 * GIB;
  report (&c, T0, GIB);
  decide (&c, T0, &d);
  vmem_controller_decision_clear (&d);
  /* A day later (the daemon was away), the whole surplus would go: one
   * step takes at most 10 % of <memory>. */
  report (&c, T0 + 86400, GIB);
  decide (&c, T0 + 86400, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_SHRINK);
  assert_int_equal (d.target_mib, 8 * GIB - (guint64) floor (0.10 * 8 * GIB));
  case_clear (&c);
}

/* The same surplus, an hour and ten minutes on, with and without host
 * pressure: the shrink is larger under pressure. */
static guint64
shrink_after (Case *c, gint64 seconds)
{
  g_auto(VmemControllerDecision) d0 = { 0 };
  g_auto(VmemControllerDecision) d = { 0 };

  report (c, T0, GIB);
  decide (c, T0, &d0);
  report (c, T0 + seconds, GIB);
  decide (c, T0 + seconds, &d);
  if (d.action != VMEM_CONTROLLER_SHRINK)
    return 0;
  if (d.host_pressure)
    assert_contains (d.reason, "faster: the host is under pressure");
  return d.from_mib - d.target_mib;
}

static void
test_shrink_faster_under_host_pressure (void **state)
{
  Case c;

  case_init (&c);
  guint64 calm = shrink_after (&c, 4200);
  case_clear (&c);
  assert_true (calm > 0);

  /* MemAvailable under 10 % of capacity. */
  case_init (&c);
  c.host.mem_available_mib = 4 * GIB;
  guint64 pressed = shrink_after (&c, 4200);
  case_clear (&c);
  assert_true (pressed > calm);

  /* Pressure also comes from PSI, or committed over capacity. */
  case_init (&c);
  c.host.has_psi = TRUE;
  c.host.psi_full_avg10 = 6;
  assert_true (shrink_after (&c, 4200) > calm);
  case_clear (&c);
  case_init (&c);
  c.host.committed_mib = c.host.capacity_mib + 1;
  assert_true (shrink_after (&c, 4200) > calm);
  case_clear (&c);

  /* Under pressure the hold is short: 10 minutes are enough. */
  case_init (&c);
  assert_int_equal (shrink_after (&c, 600), 0);
  case_clear (&c);
  case_init (&c);
  c.host.mem_available_mib = GIB;
  assert_true (shrink_after (&c, 900) > 0);
  case_clear (&c);
}

static void
test_host_pressure_thresholds (void **state)
{
  VmemControllerConfig config;
  vmem_controller_config_init (&config);
  VmemControllerHost h = { .capacity_mib = 100 * GIB, .committed_mib = 50 * GIB };

  assert_false (vmem_controller_host_pressure (&config, &h));
  h.has_available = TRUE;
  h.mem_available_mib = 10 * GIB;
  assert_false (vmem_controller_host_pressure (&config, &h));
  h.mem_available_mib = 10 * GIB - 1;
  assert_true (vmem_controller_host_pressure (&config, &h));
  h.has_available = FALSE;
  h.has_psi = TRUE;
  h.psi_some_avg10 = 19.9;
  assert_false (vmem_controller_host_pressure (&config, &h));
  h.psi_some_avg10 = 20;
  assert_true (vmem_controller_host_pressure (&config, &h));
}

static void
test_never_below_floor (void **state)
{
  Case c;

  case_init (&c);
  c.profile->floor_mib = 3 * GIB;
  gint64 t = T0;
  for (int i = 0; i < 200; i++, t += 600)
    {
      g_auto(VmemControllerDecision) d = { 0 };
      report (&c, t, 100);
      decide (&c, t, &d);
      assert_int_equal (d.need_mib, 3 * GIB);
      assert_true (d.target_mib >= 3 * GIB);
      apply (&c, &d, t);
    }
  /* It did come down toward the floor. */
  assert_true (c.dom.target_mib < 4 * GIB);
  case_clear (&c);

  /* Under the floor (a new floor): up at once. */
  case_init (&c);
  c.profile->floor_mib = 5 * GIB;
  g_auto(VmemControllerDecision) d = { 0 };
  report (&c, T0, 100);
  decide (&c, T0, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_GROW);
  assert_int_equal (d.target_mib, 5 * GIB);
  assert_contains (d.reason, "under the profile's floor 5G");
  case_clear (&c);
}

static void
test_never_below_used_plus_buffer (void **state)
{
  Case c;

  case_init (&c);
  c.dom.target_mib = c.dom.actual_mib = 8 * GIB;
  gint64 t = T0;
  guint shrinks = 0;
  for (int i = 0; i < 300; i++, t += 300)
    {
      g_auto(VmemControllerDecision) d = { 0 };
      report (&c, t, 2000);
      decide (&c, t, &d);
      assert_true (d.target_mib >= 2000 + 400);
      shrinks += d.action == VMEM_CONTROLLER_SHRINK;
      apply (&c, &d, t);
    }
  assert_true (shrinks > 3);
  /* It stops within the hysteresis band above the need. */
  assert_true (c.dom.target_mib <= 2400 + MAX (c.dom.target_mib / 10, 64));
  case_clear (&c);
}

/* ---- small moves ---- */

static void
test_grow_rounded_up_to_min_step (void **state)
{
  Case c;
  g_auto(VmemControllerDecision) d = { 0 };

  case_init (&c);
  /* 3418M used: the buffer (684M) is 6M more than is available. */
  report (&c, T0, 3418);
  decide (&c, T0, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_GROW);
  /* Not by 6M: by the minimum step, 2 % of 4G. */
  assert_int_equal (d.target_mib, 4 * GIB + 82);
  case_clear (&c);
}

static void
test_shrink_under_min_step_waits (void **state)
{
  Case c;

  case_init (&c);
  c.config.shrink_half_life_s = 86400;
  /* Half an hour past the hold the surplus (2816M) has lost 40M: too
   * small a move (the minimum is 82M), so it waits... */
  g_auto(VmemControllerDecision) d0 = { 0 };
  g_auto(VmemControllerDecision) d1 = { 0 };
  g_auto(VmemControllerDecision) d2 = { 0 };
  report (&c, T0, GIB);
  decide (&c, T0, &d0);
  report (&c, T0 + 3600 + 1800, GIB);
  decide (&c, T0 + 3600 + 1800, &d1);
  assert_int_equal (d1.action, VMEM_CONTROLLER_HOLD);
  assert_contains (d1.reason, "the shrink so far (40M) is under the minimum step 82M");
  /* ... and the shrink builds up until it is worth making. */
  report (&c, T0 + 3600 + 7200, GIB);
  decide (&c, T0 + 3600 + 7200, &d2);
  assert_int_equal (d2.action, VMEM_CONTROLLER_SHRINK);
  assert_true (d2.from_mib - d2.target_mib >= 82);
  case_clear (&c);
}

static void
test_no_move_within_hysteresis (void **state)
{
  Case c;

  case_init (&c);
  /* 3100M used: the need is 3720M, 376M under the target: within the
   * band of 10 % of 4G (410M), so no surplus, however long it lasts. */
  for (gint64 t = T0; t < T0 + 86400; t += 3600)
    {
      g_auto(VmemControllerDecision) d = { 0 };
      report (&c, t, 3100);
      decide (&c, t, &d);
      assert_int_equal (d.action, VMEM_CONTROLLER_HOLD);
      assert_int_equal (c.state.surplus_since, 0);
    }
  case_clear (&c);
}

/* ---- guests that do not report, balloons that do not follow ---- */

static void
test_no_driver_left_alone (void **state)
{
  Case c;
  g_auto(VmemControllerDecision) d = { 0 };

  case_init (&c);
  c.n = 0;
  decide (&c, T0, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_NO_DRIVER);
  assert_false (d.send);
  assert_contains (d.reason, "never reported balloon statistics");
  vmem_controller_decision_clear (&d);

  /* Host-side samples only: the same. */
  report (&c, T0, 100);
  c.s[0].fresh = FALSE;
  decide (&c, T0 + 10, &d);
  assert_int_equal (d.action, VMEM_CONTROLLER_NO_DRIVER);
  assert_false (c.state.reported);
  assert_string_equal (vmem_controller_action_to_string (d.action), "no-driver");
  case_clear (&c);
}

static void
test_stopped_reporting_holds (void **state)
{
  Case c;
  g_auto(VmemControllerDecision) d1 = { 0 };
  g_auto(VmemControllerDecision) d2 = { 0 };

  case_init (&c);
  report (&c, T0, GIB);
  decide (&c, T0, &d1);
  assert_true (c.state.reported);
  assert_int_equal (c.state.surplus_since, T0);
  c.s[1] = sample_at (&c, T0 + 600, GIB, 0, 0);
  c.s[1].fresh = FALSE;
  c.n = 2;
  decide (&c, T0 + 600, &d2);
  assert_int_equal (d2.action, VMEM_CONTROLLER_NO_STATS);
  assert_false (d2.send);
  assert_contains (d2.reason, "latest statistics are 10 min old");
  assert_int_equal (c.state.surplus_since, 0);
  case_clear (&c);
}

static void
test_stuck_reported_not_hammered (void **state)
{
  Case c;

  case_init (&c);
  /* vmemd set 4G; the balloon stays at 6G. */
  vmem_controller_sent (&c.state, 4 * GIB, T0);
  c.dom.actual_mib = 6 * GIB;

  /* On its way for a minute: no verdict yet. */
  {
    g_auto(VmemControllerDecision) d = { 0 };
    report (&c, T0 + 60, 3400);
    decide (&c, T0 + 60, &d);
    assert_int_not_equal (d.action, VMEM_CONTROLLER_STUCK);
    assert_int_equal (c.state.stuck_since, 0);
  }

  guint sends = 0;
  for (gint64 t = T0 + 120; t < T0 + 1800; t += 10)
    {
      g_auto(VmemControllerDecision) d = { 0 };
      report (&c, t, 3400);
      decide (&c, t, &d);
      assert_int_equal (d.action, VMEM_CONTROLLER_STUCK);
      assert_int_equal (d.target_mib, 4 * GIB);
      sends += d.send;
      if (t == T0 + 120)
        assert_contains (d.reason, "balloon stuck at 6G: the target 4G set 2 min ago is not "
                                   "reached");
    }
  assert_int_equal (sends, 0);
  assert_int_equal (c.state.stuck_since, T0 + 120);
  assert_int_equal (c.state.stuck_reports, (1800 - 120) / 10);

  /* Once per stuck_retry_s the target is sent again, and only once. */
  {
    g_auto(VmemControllerDecision) d = { 0 };
    report (&c, T0 + 1800, 3400);
    decide (&c, T0 + 1800, &d);
    assert_int_equal (d.action, VMEM_CONTROLLER_STUCK);
    assert_true (d.send);
    assert_int_equal (d.target_mib, 4 * GIB);
    assert_contains (d.reason, "sending its target 4G once more");
    vmem_controller_sent (&c.state, d.target_mib, T0 + 1800);
  }
  {
    g_auto(VmemControllerDecision) d = { 0 };
    report (&c, T0 + 1810, 3400);
    decide (&c, T0 + 1810, &d);
    assert_int_equal (d.action, VMEM_CONTROLLER_STUCK);
    assert_false (d.send);
  }

  /* The balloon gets there: back to normal. */
  c.dom.actual_mib = 4 * GIB;
  {
    g_auto(VmemControllerDecision) d = { 0 };
    report (&c, T0 + 1820, 3400);
    decide (&c, T0 + 1820, &d);
    assert_int_equal (d.action, VMEM_CONTROLLER_HOLD);
    assert_int_equal (c.state.stuck_since, 0);
    assert_int_equal (c.state.stuck_reports, 0);
  }
  case_clear (&c);
}

/* ---- modes ---- */

static void
test_observe_decides_the_same (void **state)
{
  Case a, b;
  g_auto(VmemControllerDecision) da = { 0 };
  g_auto(VmemControllerDecision) db = { 0 };

  case_init (&a);
  case_init (&b);
  b.profile->mode = VMEM_MODE_OBSERVE;
  report (&a, T0, 3900);
  report (&b, T0, 3900);
  decide (&a, T0, &da);
  decide (&b, T0, &db);
  assert_false (da.observe);
  assert_true (db.observe);
  assert_int_equal (da.action, db.action);
  assert_int_equal (da.target_mib, db.target_mib);
  assert_true (db.send);
  assert_string_equal (da.reason, db.reason);
  case_clear (&a);
  case_clear (&b);
}

/* ---- arbitration ---- */

/* A decision as decide() leaves it. */
static VmemControllerDecision
wish (VmemControllerAction action, guint64 from, guint64 target, guint64 need, int priority)
{
  return (VmemControllerDecision){
    .action = action,
    .send = action == VMEM_CONTROLLER_GROW || action == VMEM_CONTROLLER_SHRINK,
    .from_mib = from,
    .target_mib = target,
    .wish_mib = target,
    .need_mib = need,
    .max_mib = 64 * GIB,
    .priority = priority,
    .reason = g_strdup ("wish"),
  };
}

static void
clear_all (VmemControllerDecision *d, gsize n)
{
  for (gsize i = 0; i < n; i++)
    vmem_controller_decision_clear (&d[i]);
}

static void
test_arbitrate_room_changes_nothing (void **state)
{
  VmemControllerConfig config;
  vmem_controller_config_init (&config);
  VmemControllerHost host = { .capacity_mib = 20 * GIB, .committed_mib = 16 * GIB };
  VmemControllerDecision d[2] = {
    wish (VMEM_CONTROLLER_GROW, 4 * GIB, 6 * GIB, 5 * GIB, 50),
    wish (VMEM_CONTROLLER_GROW, 4 * GIB, 6 * GIB, 5 * GIB, 50),
  };

  vmem_controller_arbitrate (&config, &host, d, 2);
  assert_int_equal (d[0].target_mib, 6 * GIB);
  assert_int_equal (d[1].target_mib, 6 * GIB);
  assert_false (d[0].limited || d[1].limited);
  assert_string_equal (d[0].reason, "wish");
  clear_all (d, 2);
}

static void
test_arbitrate_equal_priority_proportional (void **state)
{
  VmemControllerConfig config;
  vmem_controller_config_init (&config);
  /* 1G of room, 2G and 1G asked. */
  VmemControllerHost host = { .capacity_mib = 10 * GIB, .committed_mib = 9 * GIB };
  VmemControllerDecision d[2] = {
    wish (VMEM_CONTROLLER_GROW, 4 * GIB, 6 * GIB, 6 * GIB, 50),
    wish (VMEM_CONTROLLER_GROW, 4 * GIB, 5 * GIB, 5 * GIB, 50),
  };

  vmem_controller_arbitrate (&config, &host, d, 2);
  guint64 g0 = d[0].target_mib - 4 * GIB, g1 = d[1].target_mib - 4 * GIB;
  assert_true (g0 + g1 <= GIB && g0 + g1 >= GIB - 2);
  /* Each gets a third of what it asked. */
  assert_true (g0 >= 682 && g0 <= 683);
  assert_true (g1 >= 341 && g1 <= 342);
  assert_true (d[0].limited && d[1].limited);
  assert_int_equal (d[0].action, VMEM_CONTROLLER_GROW);
  assert_int_equal (d[0].wish_mib, 6 * GIB);
  assert_contains (d[0].reason, "wish; the host is short by 2G: 682M of the 2G asked granted "
                                "(priority 50)");
  clear_all (d, 2);
}

static void
test_arbitrate_higher_priority_gets_more (void **state)
{
  VmemControllerConfig config;
  vmem_controller_config_init (&config);
  VmemControllerHost host = { .capacity_mib = 10 * GIB, .committed_mib = 9 * GIB };
  VmemControllerDecision d[2] = {
    wish (VMEM_CONTROLLER_GROW, 4 * GIB, 5 * GIB, 5 * GIB, 10),
    wish (VMEM_CONTROLLER_GROW, 4 * GIB, 5 * GIB, 5 * GIB, 90),
  };

  vmem_controller_arbitrate (&config, &host, d, 2);
  guint64 low = d[0].target_mib - 4 * GIB, high = d[1].target_mib - 4 * GIB;
  /* Weights 11 and 91 of 1G. */
  assert_true (high > low);
  assert_true (high >= 913 && high <= 915);
  assert_true (low >= 109 && low <= 111);
  clear_all (d, 2);

  /* With room for the high one's whole ask, it gets all of it. */
  host.committed_mib = 9 * GIB - 300;
  VmemControllerDecision e[2] = {
    wish (VMEM_CONTROLLER_GROW, 4 * GIB, 5 * GIB, 5 * GIB, 10),
    wish (VMEM_CONTROLLER_GROW, 4 * GIB, 5 * GIB, 5 * GIB, 100),
  };
  vmem_controller_arbitrate (&config, &host, e, 2);
  assert_int_equal (e[1].target_mib, 5 * GIB);
  assert_false (e[1].limited);
  assert_int_equal (e[0].target_mib, 4 * GIB + 300);
  clear_all (e, 2);
}

static void
test_arbitrate_reclaims_surplus_by_priority (void **state)
{
  VmemControllerConfig config;
  vmem_controller_config_init (&config);
  /* Full host; one domain must grow by 2G; two others each hold 2G more
   * than they need. */
  VmemControllerHost host = { .capacity_mib = 16 * GIB, .committed_mib = 16 * GIB };
  VmemControllerDecision d[3] = {
    wish (VMEM_CONTROLLER_GROW, 4 * GIB, 6 * GIB, 6 * GIB, 50),
    wish (VMEM_CONTROLLER_HOLD, 6 * GIB, 6 * GIB, 4 * GIB, 10),
    wish (VMEM_CONTROLLER_HOLD, 6 * GIB, 6 * GIB, 4 * GIB, 90),
  };

  vmem_controller_arbitrate (&config, &host, d, 3);
  /* The grow is served whole from the surplus... */
  assert_int_equal (d[0].target_mib, 6 * GIB);
  assert_false (d[0].limited);
  /* ... which the lower priority gives more of, nobody below its need. */
  guint64 low = 6 * GIB - d[1].target_mib, high = 6 * GIB - d[2].target_mib;
  assert_true (low + high >= 2 * GIB);
  assert_true (low > high);
  assert_true (d[1].target_mib >= d[1].need_mib && d[2].target_mib >= d[2].need_mib);
  assert_int_equal (d[1].action, VMEM_CONTROLLER_SHRINK);
  assert_true (d[1].send && d[1].limited);
  assert_contains (d[1].reason, "of the surplus reclaimed (priority 10)");
  clear_all (d, 3);
}

static void
test_arbitrate_over_capacity_never_below_need (void **state)
{
  VmemControllerConfig config;
  vmem_controller_config_init (&config);
  /* 8G over capacity, 3G of surplus in all: everyone ends at its need,
   * and the grow gets nothing. */
  VmemControllerHost host = { .capacity_mib = 16 * GIB, .committed_mib = 24 * GIB };
  VmemControllerDecision d[3] = {
    wish (VMEM_CONTROLLER_SHRINK, 8 * GIB, 7 * GIB, 5 * GIB, 50),
    wish (VMEM_CONTROLLER_HOLD, 4 * GIB, 4 * GIB, 3 * GIB, 50),
    wish (VMEM_CONTROLLER_GROW, 4 * GIB, 5 * GIB, 5 * GIB, 50),
  };

  vmem_controller_arbitrate (&config, &host, d, 3);
  assert_int_equal (d[0].target_mib, 5 * GIB);
  assert_int_equal (d[1].target_mib, 3 * GIB);
  assert_int_equal (d[2].target_mib, 4 * GIB);
  assert_int_equal (d[2].action, VMEM_CONTROLLER_HOLD);
  assert_false (d[2].send);
  assert_true (d[2].limited);
  clear_all (d, 3);
}

static void
test_arbitrate_skips_observe_and_idle (void **state)
{
  VmemControllerConfig config;
  vmem_controller_config_init (&config);
  VmemControllerHost host = { .capacity_mib = 10 * GIB, .committed_mib = 10 * GIB };
  VmemControllerDecision d[3] = {
    wish (VMEM_CONTROLLER_GROW, 4 * GIB, 5 * GIB, 5 * GIB, 50),
    wish (VMEM_CONTROLLER_HOLD, 6 * GIB, 6 * GIB, 2 * GIB, 50),
    wish (VMEM_CONTROLLER_NO_DRIVER, 6 * GIB, 6 * GIB, 0, 50),
  };
  d[1].observe = TRUE;

  vmem_controller_arbitrate (&config, &host, d, 3);
  assert_int_equal (d[0].target_mib, 4 * GIB);
  assert_int_equal (d[1].target_mib, 6 * GIB);
  assert_false (d[1].limited);
  assert_int_equal (d[2].target_mib, 6 * GIB);
  assert_false (d[2].limited);
  clear_all (d, 3);
}

static void
test_arbitrate_order_independent (void **state)
{
  VmemControllerConfig config;
  vmem_controller_config_init (&config);
  VmemControllerHost host = { .capacity_mib = 20 * GIB, .committed_mib = 19 * GIB };
  VmemControllerDecision a[4] = {
    wish (VMEM_CONTROLLER_GROW, 4 * GIB, 5 * GIB, 5 * GIB, 30),
    wish (VMEM_CONTROLLER_GROW, 2 * GIB, 4 * GIB, 4 * GIB, 70),
    wish (VMEM_CONTROLLER_HOLD, 6 * GIB, 6 * GIB, 5 * GIB, 20),
    wish (VMEM_CONTROLLER_GROW, 3 * GIB, 3 * GIB + 500, 3 * GIB + 500, 70),
  };
  VmemControllerDecision b[4];
  for (int i = 0; i < 4; i++)
    {
      b[3 - i] = a[i];
      b[3 - i].reason = g_strdup (a[i].reason);
    }

  vmem_controller_arbitrate (&config, &host, a, 4);
  vmem_controller_arbitrate (&config, &host, b, 4);
  for (int i = 0; i < 4; i++)
    assert_int_equal (a[i].target_mib, b[3 - i].target_mib);
  clear_all (a, 4);
  clear_all (b, 4);
}

static void
test_arbitrate_counts_grows_on_their_way (void **state)
{
  VmemControllerConfig config;
  vmem_controller_config_init (&config);
  /* The host holds 9G of 10G: what it read of the balloons.  One domain
   * was granted 5G last interval and its balloon is still at 4G: that 1G
   * is granted already, so the other's ask finds no room. */
  VmemControllerHost host = { .capacity_mib = 10 * GIB, .committed_mib = 9 * GIB };
  VmemControllerDecision d[2] = {
    wish (VMEM_CONTROLLER_HOLD, 5 * GIB, 5 * GIB, 5 * GIB, 90),
    wish (VMEM_CONTROLLER_GROW, 4 * GIB, 5 * GIB, 5 * GIB, 10),
  };
  d[0].counted_mib = 4 * GIB;
  d[1].counted_mib = 4 * GIB;

  vmem_controller_arbitrate (&config, &host, d, 2);
  assert_int_equal (d[0].target_mib, 5 * GIB);
  assert_int_equal (d[1].target_mib, 4 * GIB);
  assert_int_equal (d[1].action, VMEM_CONTROLLER_HOLD);
  assert_false (d[1].send);
  assert_contains (d[1].reason, "the host is short by 1G: 0M of the 1G asked granted (priority 10)");
  clear_all (d, 2);

  /* Half of it on its way: the other half is room. */
  VmemControllerDecision e[2] = {
    wish (VMEM_CONTROLLER_HOLD, 5 * GIB, 5 * GIB, 5 * GIB, 90),
    wish (VMEM_CONTROLLER_GROW, 4 * GIB, 5 * GIB, 5 * GIB, 10),
  };
  e[0].counted_mib = 5 * GIB - 512;
  e[1].counted_mib = 4 * GIB;
  vmem_controller_arbitrate (&config, &host, e, 2);
  assert_int_equal (e[1].target_mib, 4 * GIB + 512);
  clear_all (e, 2);

  /* A shrink the balloon has not made yet frees nothing before it is
   * made: the host still holds the larger size. */
  VmemControllerDecision f[2] = {
    wish (VMEM_CONTROLLER_HOLD, 4 * GIB, 4 * GIB, 4 * GIB, 90),
    wish (VMEM_CONTROLLER_GROW, 4 * GIB, 5 * GIB, 5 * GIB, 10),
  };
  f[0].counted_mib = 5 * GIB;
  f[1].counted_mib = 4 * GIB;
  vmem_controller_arbitrate (&config, &host, f, 2);
  assert_int_equal (f[1].target_mib, 5 * GIB);
  clear_all (f, 2);

  /* Unknown (0): committed counts the targets, as before. */
  VmemControllerDecision g[2] = {
    wish (VMEM_CONTROLLER_HOLD, 5 * GIB, 5 * GIB, 5 * GIB, 90),
    wish (VMEM_CONTROLLER_GROW, 4 * GIB, 5 * GIB, 5 * GIB, 10),
  };
  vmem_controller_arbitrate (&config, &host, g, 2);
  assert_int_equal (g[1].target_mib, 5 * GIB);
  clear_all (g, 2);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_config_defaults_valid),
    cmocka_unit_test (test_config_names_field),
    cmocka_unit_test (test_grows_when_available_under_buffer),
    cmocka_unit_test (test_no_grow_with_buffer_kept),
    cmocka_unit_test (test_grows_on_swap_in),
    cmocka_unit_test (test_slow_swap_in_is_no_pressure),
    cmocka_unit_test (test_grows_on_major_faults),
    cmocka_unit_test (test_counters_reset_are_no_pressure),
    cmocka_unit_test (test_grows_on_guest_psi),
    cmocka_unit_test (test_grow_capped_at_memory),
    cmocka_unit_test (test_grow_capped_at_ceiling),
    cmocka_unit_test (test_grow_bounded_per_step),
    cmocka_unit_test (test_shrink_waits_for_hold),
    cmocka_unit_test (test_surplus_interrupted_restarts_hold),
    cmocka_unit_test (test_shrink_bounded_per_step),
    cmocka_unit_test (test_shrink_faster_under_host_pressure),
    cmocka_unit_test (test_host_pressure_thresholds),
    cmocka_unit_test (test_never_below_floor),
    cmocka_unit_test (test_never_below_used_plus_buffer),
    cmocka_unit_test (test_grow_rounded_up_to_min_step),
    cmocka_unit_test (test_shrink_under_min_step_waits),
    cmocka_unit_test (test_no_move_within_hysteresis),
    cmocka_unit_test (test_no_driver_left_alone),
    cmocka_unit_test (test_stopped_reporting_holds),
    cmocka_unit_test (test_stuck_reported_not_hammered),
    cmocka_unit_test (test_observe_decides_the_same),
    cmocka_unit_test (test_arbitrate_room_changes_nothing),
    cmocka_unit_test (test_arbitrate_equal_priority_proportional),
    cmocka_unit_test (test_arbitrate_higher_priority_gets_more),
    cmocka_unit_test (test_arbitrate_reclaims_surplus_by_priority),
    cmocka_unit_test (test_arbitrate_over_capacity_never_below_need),
    cmocka_unit_test (test_arbitrate_skips_observe_and_idle),
    cmocka_unit_test (test_arbitrate_order_independent),
    cmocka_unit_test (test_arbitrate_counts_grows_on_their_way),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
