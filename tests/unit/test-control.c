/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VmemControl's cycle in steps: the same decisions and moves as the whole
 * cycle at once, and a domain that stopped, went or started again between
 * its sample and its move gets no move from a decision of the run that is
 * over.  Moves go through a real VmemStager to libvirt's test driver. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "virt-helpers.h"
#include "vmem-control.h"

#define N_DOMAINS 8

typedef struct {
  char    *uuid;
  char    *action;
  guint64  from_mib, to_mib;
  gboolean applied;
} Move;

typedef struct {
  VmemVirt    *virt;
  VmemStager  *stager;
  VmemCache   *cache;
  VmemProfile *profile;
  GPtrArray   *moves; /* Move */
  gint64       mono;  /* the cache's clock, monotonic µs */
} Fixture;

static void
move_free (Move *m)
{
  g_free (m->uuid);
  g_free (m->action);
  g_free (m);
}

static void
moved_cb (const VmemControlMove *m, gpointer user_data)
{
  Fixture *f = user_data;
  Move *r = g_new0 (Move, 1);
  r->uuid = g_strdup (m->uuid);
  r->action = g_strdup (m->action);
  r->from_mib = m->from_mib;
  r->to_mib = m->to_mib;
  r->applied = m->applied;
  g_ptr_array_add (f->moves, r);
}

static const VmemControlCallbacks callbacks = { .moved = moved_cb };

static char *
uuid_of (guint i)
{
  return g_strdup_printf ("c0c0c0c0-0000-4000-8000-00000000000%u", i);
}

/* Domain c-@i as the cache holds it: running (or not) at @now. */
static void
put_domain (Fixture *f, guint i, gboolean active)
{
  g_autofree char *uuid = uuid_of (i);
  g_autofree char *xml = g_strdup_printf (
    "<domain type='test'><name>c-%u</name><uuid>%s</uuid>"
    "<memory unit='MiB'>2048</memory><currentMemory unit='MiB'>1024</currentMemory>"
    "<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os>"
    "<devices><memballoon model='virtio'/></devices></domain>",
    i, uuid);
  g_autoptr(GError) error = NULL;
  VmemDomain *d = vmem_domain_new_from_xml (xml, &error);
  assert_non_null (d);
  d->active = active;
  d->state = active ? VMEM_DOMAIN_RUNNING : VMEM_DOMAIN_SHUTOFF;
  d->persistent = TRUE;
  d->current_mib = 1024;
  f->mono += G_USEC_PER_SEC;
  vmem_cache_update (f->cache, d, f->mono);
}

static int
setup (void **state)
{
  Fixture *f = g_new0 (Fixture, 1);
  g_autofree char *uri = node_uri ("control-host.xml");
  f->virt = virt_connect (uri, NULL);
  f->stager = vmem_stager_new (f->virt, NULL, NULL);
  f->cache = vmem_cache_new ();
  f->profile = vmem_profile_new ("c");
  f->profile->mode = VMEM_MODE_BALLOON;
  f->moves = g_ptr_array_new_with_free_func ((GDestroyNotify) move_free);
  f->mono = 1000 * G_USEC_PER_SEC;
  for (guint i = 0; i < N_DOMAINS; i++)
    put_domain (f, i, TRUE);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  Fixture *f = *state;
  /* The balloon jobs still queued end before the stager goes. */
  g_clear_pointer (&f->virt, vmem_virt_free);
  g_clear_pointer (&f->stager, vmem_stager_free);
  vmem_cache_free (f->cache);
  vmem_profile_free (f->profile);
  g_ptr_array_unref (f->moves);
  g_free (f);
  return 0;
}

/* A cycle's inputs at @now: domain i uses 300 + 150 i MiB of its 1 GiB
 * balloon (the last ones short of their buffer: they grow), every guest
 * reporting. */
static GArray *
inputs_at (Fixture *f, gint64 now, guint cycle)
{
  GArray *in = g_array_new (FALSE, TRUE, sizeof (VmemControlInput));
  for (guint i = 0; i < N_DOMAINS; i++)
    {
      g_autofree char *uuid = uuid_of (i);
      VmemCacheEntry *e = vmem_cache_lookup (f->cache, uuid);
      assert_non_null (e);
      guint64 used = MIN (300 + 150 * i + 20 * cycle, 1000);
      VmemControlInput x = {
        .uuid = e->domain->uuid,
        .active_since = e->active_since,
        .profile = f->profile,
        .sample = {
          .t = now,
          .fresh = TRUE,
          .used_mib = used,
          .available_mib = 1024 - used,
          .total_mib = 1024,
          .actual_mib = 1024,
        },
        .reported_t = now,
      };
      g_array_append_val (in, x);
    }
  return in;
}

/* Room for part of what the grows ask: arbitration has work. */
static const VmemControllerHost short_host = {
  .capacity_mib = N_DOMAINS * 1024 + 600,
  .committed_mib = N_DOMAINS * 1024,
};

static GPtrArray *
take_moves (Fixture *f)
{
  GPtrArray *out = g_steal_pointer (&f->moves);
  f->moves = g_ptr_array_new_with_free_func ((GDestroyNotify) move_free);
  return out;
}

static void
assert_same_moves (GPtrArray *a, GPtrArray *b)
{
  assert_int_equal (a->len, b->len);
  for (guint i = 0; i < a->len; i++)
    {
      const Move *x = g_ptr_array_index (a, i), *y = g_ptr_array_index (b, i);
      assert_string_equal (x->uuid, y->uuid);
      assert_string_equal (x->action, y->action);
      assert_int_equal (x->from_mib, y->from_mib);
      assert_int_equal (x->to_mib, y->to_mib);
      assert_int_equal (x->applied, y->applied);
    }
}

/* Run one step per call (a deadline already past), over several cycles,
 * the decisions and moves are those of the same cycles run whole by a
 * second controller: arbitration sees every domain's decision. */
static void
test_steps_same_as_whole (void **state)
{
  Fixture *f = *state;
  g_autoptr(VmemControl) whole = vmem_control_new (f->stager, f->cache, &callbacks, f);
  g_autoptr(VmemControl) stepped = vmem_control_new (f->stager, f->cache, &callbacks, f);
  guint limited_grows = 0;

  for (guint cycle = 0; cycle < 4; cycle++)
    {
      gint64 now = 1700000000 + 10 * (gint64) cycle;
      g_autoptr(GArray) in = inputs_at (f, now, cycle);
      vmem_control_cycle (whole, (VmemControlInput *) in->data, in->len, &short_host, now);
      g_autoptr(GPtrArray) a = take_moves (f);

      g_autoptr(VmemControlCycle) cy =
        vmem_control_cycle_new (stepped, (VmemControlInput *) in->data, in->len, &short_host, now);
      guint calls = 0;
      while (!vmem_control_cycle_run (cy, 1))
        {
          calls++;
          /* Nothing moves before every domain is decided and arbitrated. */
          if (calls <= N_DOMAINS)
            assert_int_equal (f->moves->len, 0);
        }
      calls++;
      /* A decision per domain, the arbitration, a move step per domain. */
      assert_int_equal (vmem_control_cycle_steps (cy), 2 * N_DOMAINS + 1);
      assert_int_equal (calls, 2 * N_DOMAINS + 1);
      /* Done is done. */
      assert_true (vmem_control_cycle_run (cy, 1));
      g_autoptr(GPtrArray) b = take_moves (f);
      assert_same_moves (a, b);
      for (guint i = 0; i < b->len; i++)
        if (g_str_equal (((Move *) g_ptr_array_index (b, i))->action, "grow"))
          limited_grows++;
    }
  /* The trace is one that moves. */
  assert_true (limited_grows >= 2);
}

/* Decided, then stopped (c-1), undefined (c-2) or stopped and started
 * again (c-3) before its move: no move for them; the others move as the
 * whole cycle would have moved them. */
static void
test_stopped_between_decision_and_move (void **state)
{
  Fixture *f = *state;
  g_autoptr(VmemControl) c = vmem_control_new (f->stager, f->cache, &callbacks, f);
  /* Everyone short of its buffer: all grow; a roomy host. */
  const VmemControllerHost host = { .capacity_mib = 64 * 1024, .committed_mib = N_DOMAINS * 1024 };
  gint64 now = 1700000000;
  g_autoptr(GArray) in = inputs_at (f, now, 0);
  for (guint i = 0; i < in->len; i++)
    {
      VmemControlInput *x = &g_array_index (in, VmemControlInput, i);
      x->sample.used_mib = 1000;
      x->sample.available_mib = 24;
    }
  g_autoptr(VmemControlCycle) cy =
    vmem_control_cycle_new (c, (VmemControlInput *) in->data, in->len, &host, now);
  for (guint i = 0; i < N_DOMAINS; i++)
    assert_false (vmem_control_cycle_run (cy, 1));
  assert_int_equal (vmem_control_cycle_steps (cy), N_DOMAINS);

  g_autofree char *u1 = uuid_of (1), *u2 = uuid_of (2), *u3 = uuid_of (3);
  put_domain (f, 1, FALSE);
  vmem_control_forget (c, u1);
  assert_true (vmem_cache_remove (f->cache, u2));
  vmem_control_forget (c, u2);
  put_domain (f, 3, FALSE);
  vmem_control_forget (c, u3);
  put_domain (f, 3, TRUE);
  vmem_control_started (c, u3, 1024, now);

  assert_true (vmem_control_cycle_run (cy, 0));
  g_autoptr(GPtrArray) moves = take_moves (f);
  assert_int_equal (moves->len, N_DOMAINS - 3);
  for (guint i = 0; i < moves->len; i++)
    {
      const Move *m = g_ptr_array_index (moves, i);
      assert_string_equal (m->action, "grow");
      assert_true (m->applied);
      assert_true (m->to_mib > 1024);
      assert_string_not_equal (m->uuid, u1);
      assert_string_not_equal (m->uuid, u2);
      assert_string_not_equal (m->uuid, u3);
    }
  /* What status shows of them is not the old run's decision. */
  VmemCacheEntry *e3 = vmem_cache_lookup (f->cache, u3);
  assert_null (e3->action);
}

/* Stopped (c-0) before its decision: it takes no part, the rest do. */
static void
test_stopped_before_decision (void **state)
{
  Fixture *f = *state;
  g_autoptr(VmemControl) c = vmem_control_new (f->stager, f->cache, &callbacks, f);
  const VmemControllerHost host = { .capacity_mib = 64 * 1024, .committed_mib = N_DOMAINS * 1024 };
  gint64 now = 1700000000;
  g_autoptr(GArray) in = inputs_at (f, now, 0);
  for (guint i = 0; i < in->len; i++)
    {
      VmemControlInput *x = &g_array_index (in, VmemControlInput, i);
      x->sample.used_mib = 1000;
      x->sample.available_mib = 24;
    }
  g_autoptr(VmemControlCycle) cy =
    vmem_control_cycle_new (c, (VmemControlInput *) in->data, in->len, &host, now);
  g_autofree char *u0 = uuid_of (0);
  put_domain (f, 0, FALSE);
  vmem_control_forget (c, u0);
  assert_true (vmem_control_cycle_run (cy, 0));
  /* Each input looked at, the arbitration, and a move step for each
   * domain decided: none for it. */
  assert_int_equal (vmem_control_cycle_steps (cy), N_DOMAINS + 1 + (N_DOMAINS - 1));
  g_autoptr(GPtrArray) moves = take_moves (f);
  assert_int_equal (moves->len, N_DOMAINS - 1);
  for (guint i = 0; i < moves->len; i++)
    assert_string_not_equal (((Move *) g_ptr_array_index (moves, i))->uuid, u0);
}

/* A cycle freed half way (the daemon stops) makes no further move. */
static void
test_freed_half_way (void **state)
{
  Fixture *f = *state;
  g_autoptr(VmemControl) c = vmem_control_new (f->stager, f->cache, &callbacks, f);
  const VmemControllerHost host = { .capacity_mib = 64 * 1024, .committed_mib = N_DOMAINS * 1024 };
  gint64 now = 1700000000;
  g_autoptr(GArray) in = inputs_at (f, now, 0);
  for (guint i = 0; i < in->len; i++)
    {
      VmemControlInput *x = &g_array_index (in, VmemControlInput, i);
      x->sample.used_mib = 1000;
      x->sample.available_mib = 24;
    }
  VmemControlCycle *cy =
    vmem_control_cycle_new (c, (VmemControlInput *) in->data, in->len, &host, now);
  /* Every decision, the arbitration, two moves. */
  for (guint i = 0; i < N_DOMAINS + 3; i++)
    assert_false (vmem_control_cycle_run (cy, 1));
  assert_int_equal (f->moves->len, 2);
  vmem_control_cycle_free (cy);
  spin_ms (100);
  assert_int_equal (f->moves->len, 2);
}

#define T(fn) cmocka_unit_test_setup_teardown (fn, setup, teardown)

int
main (void)
{
  const struct CMUnitTest tests[] = {
    T (test_steps_same_as_whole),
    T (test_stopped_between_decision_and_move),
    T (test_stopped_before_decision),
    T (test_freed_half_way),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
