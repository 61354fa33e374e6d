/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The collector: its two pure rules, and real cycles against libvirt's
 * test driver (test:///default, in process: one running domain "test"). */
#include "vmem-collector.h"
#include "vmem-error.h"

#include <dlfcn.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "virt-helpers.h"

#define DEFAULT_URI  "test:///default"
#define TEST_UUID    "6695eb01-f6a4-8304-79aa-97f2502e193f" /* "test" in test:///default */
#define UNKNOWN_UUID "99999999-9999-4999-8999-999999999999"
#define NOW          G_GINT64_CONSTANT (1700006400)
#define GIB_KIB      (G_GUINT64_CONSTANT (1024) * 1024)

/* ---- the statistics call, made to fail on demand ---------------------- */

/* The test driver cannot lose its connection, and reports no balloon
 * statistics.  This test defines virConnectGetAllDomainStats itself (the
 * collector links against it), calling libvirt's and then, as stats_mode
 * says, failing as on a connection that is gone, or adding to each record
 * the balloon fields QEMU reports for a guest with a balloon driver. */
enum { STATS_REAL, STATS_FAIL, STATS_BALLOON };
static gint stats_mode;

#define LAST_UPDATE G_GUINT64_CONSTANT (1700000000)

static void
add_balloon_fields (virDomainStatsRecordPtr r)
{
  int max = r->nparams;
  const char *name = virDomainGetName (r->dom);
  /* Numbered by the domain, so that records cannot be mixed up. */
  guint64 k = g_str_equal (name, "test") ? 1 : 2;

  virTypedParamsAddULLong (&r->params, &r->nparams, &max, "balloon.current", k * 2 * 1048576);
  virTypedParamsAddULLong (&r->params, &r->nparams, &max, "balloon.maximum", k * 8 * 1048576);
  virTypedParamsAddULLong (&r->params, &r->nparams, &max, "balloon.swap_in", k * 11);
  virTypedParamsAddULLong (&r->params, &r->nparams, &max, "balloon.swap_out", 999);
  virTypedParamsAddULLong (&r->params, &r->nparams, &max, "balloon.major_fault", k * 12);
  virTypedParamsAddULLong (&r->params, &r->nparams, &max, "balloon.minor_fault", 999);
  virTypedParamsAddULLong (&r->params, &r->nparams, &max, "balloon.unused", k * 13);
  virTypedParamsAddULLong (&r->params, &r->nparams, &max, "balloon.available", k * 1900000);
  /* "extra" has a guest that never reported MemAvailable. */
  if (k == 1)
    virTypedParamsAddULLong (&r->params, &r->nparams, &max, "balloon.usable", 524288);
  virTypedParamsAddULLong (&r->params, &r->nparams, &max, "balloon.last-update", LAST_UPDATE);
  virTypedParamsAddULLong (&r->params, &r->nparams, &max, "balloon.disk_caches", 999);
  virTypedParamsAddULLong (&r->params, &r->nparams, &max, "balloon.rss", k * 3 * 1048576);
  virTypedParamsAddUInt (&r->params, &r->nparams, &max, "vcpu.current", (unsigned int) k * 3);
  virTypedParamsAddUInt (&r->params, &r->nparams, &max, "vcpu.maximum", 999);
}

int
virConnectGetAllDomainStats (virConnectPtr conn, unsigned int stats,
                             virDomainStatsRecordPtr **retStats, unsigned int flags)
{
  typedef int (*StatsFunc) (virConnectPtr, unsigned int, virDomainStatsRecordPtr **,
                            unsigned int);
  static StatsFunc real;

  /* The worker thread: no cmocka assertions here. */
  if (g_atomic_int_get (&stats_mode) == STATS_FAIL)
    return -1;
  if (real == NULL)
    real = (StatsFunc) dlsym (RTLD_NEXT, "virConnectGetAllDomainStats");
  g_assert_nonnull (real);
  int n = real (conn, stats, retStats, flags);
  if (n > 0 && g_atomic_int_get (&stats_mode) == STATS_BALLOON)
    for (int i = 0; i < n; i++)
      add_balloon_fields ((*retStats)[i]);
  return n;
}

/* ---- used memory ------------------------------------------------------- */

static VmemBalloonStats
guest_stats (gint64 last_update)
{
  return (VmemBalloonStats){
    .current_kib = 4 * GIB_KIB,
    .maximum_kib = 8 * GIB_KIB,
    .rss_kib = 6 * GIB_KIB,
    .available_kib = 4 * GIB_KIB,
    .usable_kib = 1 * GIB_KIB + 512, /* MiB are whole: the half KiB goes */
    .last_update = last_update,
    .has_guest = TRUE,
  };
}

static void
test_used_guest_fresh (void **state)
{
  VmemBalloonStats s = guest_stats (NOW - 3);
  gboolean guest = FALSE;

  assert_int_equal (vmem_collector_used_mib (&s, NOW, 10, &guest), 3 * 1024 - 1);
  assert_true (guest);
}

static void
test_used_host_side (void **state)
{
  gboolean guest = TRUE;

  /* The guest stopped reporting. */
  VmemBalloonStats stale = guest_stats (NOW - 600);
  assert_int_equal (vmem_collector_used_mib (&stale, NOW, 10, &guest), 6 * 1024);
  assert_false (guest);

  /* It never did. */
  guest = TRUE;
  VmemBalloonStats never = guest_stats (0);
  assert_int_equal (vmem_collector_used_mib (&never, NOW, 10, &guest), 6 * 1024);
  assert_false (guest);

  /* No MemAvailable (balloon.usable missing), whatever the rest says. */
  guest = TRUE;
  VmemBalloonStats no_usable = guest_stats (NOW - 1);
  no_usable.has_guest = FALSE;
  assert_int_equal (vmem_collector_used_mib (&no_usable, NOW, 10, &guest), 6 * 1024);
  assert_false (guest);

  /* A guest figure that makes no sense (more available than the balloon
   * holds) is not used. */
  guest = TRUE;
  VmemBalloonStats odd = guest_stats (NOW - 1);
  odd.usable_kib = odd.current_kib + 1;
  assert_int_equal (vmem_collector_used_mib (&odd, NOW, 10, &guest), 6 * 1024);
  assert_false (guest);
}

/* Fresh is within two periods, the longer of the collector's interval and
 * the guests' stats period, with a second's grace for rounding:
 * last-update and now are whole seconds read at different times. */
static void
test_used_two_periods (void **state)
{
  const guint intervals[] = { 10, 60, 1, 5 };
  for (guint i = 0; i < G_N_ELEMENTS (intervals); i++)
    {
      gint64 two = 2 * (gint64) MAX (intervals[i], VMEM_COLLECTOR_STATS_PERIOD_S);
      gboolean guest;
      VmemBalloonStats s = guest_stats (NOW - two);
      vmem_collector_used_mib (&s, NOW, intervals[i], &guest);
      assert_true (guest);
      s.last_update = NOW - two - 1;
      vmem_collector_used_mib (&s, NOW, intervals[i], &guest);
      assert_true (guest);
      s.last_update = NOW - two - 2;
      vmem_collector_used_mib (&s, NOW, intervals[i], &guest);
      assert_false (guest);
    }

  /* No interval: the stats period alone. */
  gboolean guest;
  VmemBalloonStats s = guest_stats (NOW - 2 * VMEM_COLLECTOR_STATS_PERIOD_S - 1);
  vmem_collector_used_mib (&s, NOW, 0, &guest);
  assert_true (guest);
  s.last_update = NOW - 2 * VMEM_COLLECTOR_STATS_PERIOD_S - 2;
  vmem_collector_used_mib (&s, NOW, 0, &guest);
  assert_false (guest);
}

/* ---- which samples are kept --------------------------------------------- */

static void
test_keep_sample (void **state)
{
  const gint64 grace = VMEM_COLLECTOR_STARTUP_GRACE_S * G_USEC_PER_SEC;
  const gint64 since = 1000 * G_USEC_PER_SEC;

  /* The guest's own figure, always, even from a domain not known running. */
  assert_true (vmem_collector_keep_sample (TRUE, since, since));
  assert_true (vmem_collector_keep_sample (TRUE, 0, since));

  /* Host-side: only after the grace period (QEMU's RSS right after a
   * preallocated boot is the whole <memory>). */
  assert_false (vmem_collector_keep_sample (FALSE, since, since));
  assert_false (vmem_collector_keep_sample (FALSE, since, since + grace - 1));
  assert_true (vmem_collector_keep_sample (FALSE, since, since + grace));
  assert_true (vmem_collector_keep_sample (FALSE, since, since + 10 * grace));
  /* Never when the start time is unknown. */
  assert_false (vmem_collector_keep_sample (FALSE, 0, since + 10 * grace));
  assert_false (vmem_collector_keep_sample (FALSE, 0, G_MAXINT64));
}

/* ---- cycles -------------------------------------------------------------- */

typedef VmemBalloonStats Seen;

typedef struct {
  VmemVirt      *virt;
  VmemCollector *collector;
  Gate           gate;
  guint          calls;          /* every callback, in order */
  guint          n_want;
  guint          want_call;      /* the number of the first want_period call */
  GPtrArray     *want_next;      /* returned by the next want_period; NULL = none */
  guint          n_collected;
  guint          collected_call; /* the number of the first collected call */
  GPtrArray     *last;           /* Seen: the last cycle's statistics */
  gint64         last_now;
  guint          n_failed;
  char          *failure;
  gboolean       handling;       /* what the handling callback answers */
  guint          n_handling;
} Fixture;

static GPtrArray *
want_period_cb (gpointer user_data)
{
  Fixture *f = user_data;
  if (f->n_want++ == 0)
    f->want_call = ++f->calls;
  else
    ++f->calls;
  return g_steal_pointer (&f->want_next);
}

static void
collected_cb (GPtrArray *stats, gint64 now, gpointer user_data)
{
  Fixture *f = user_data;
  if (f->n_collected++ == 0)
    f->collected_call = ++f->calls;
  else
    ++f->calls;
  g_ptr_array_set_size (f->last, 0);
  for (guint i = 0; i < stats->len; i++)
    {
      const VmemBalloonStats *s = g_ptr_array_index (stats, i);
      Seen *seen = g_memdup2 (s, sizeof *s);
      seen->uuid = g_strdup (s->uuid);
      seen->name = g_strdup (s->name);
      g_ptr_array_add (f->last, seen);
    }
  f->last_now = now;
}

static void
failed_cb (const GError *error, gpointer user_data)
{
  Fixture *f = user_data;
  ++f->calls;
  f->n_failed++;
  g_free (f->failure);
  f->failure = g_strdup (error->message);
}

static gboolean
handling_cb (gpointer user_data)
{
  Fixture *f = user_data;
  f->n_handling++;
  return f->handling;
}

static const VmemCollectorCallbacks callbacks = {
  .want_period = want_period_cb,
  .collected = collected_cb,
  .failed = failed_cb,
  .handling = handling_cb,
};

static int
setup (void **state)
{
  Fixture *f = g_new0 (Fixture, 1);
  gate_init (&f->gate);
  f->last = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_balloon_stats_free);
  f->virt = virt_connect (DEFAULT_URI, NULL);
  g_atomic_int_set (&stats_mode, STATS_REAL);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  Fixture *f = *state;
  gate_open (&f->gate);
  /* The last cycle's result reaches the collector: free it after. */
  g_clear_pointer (&f->virt, vmem_virt_free);
  g_clear_pointer (&f->collector, vmem_collector_free);
  gate_clear (&f->gate);
  g_clear_pointer (&f->want_next, g_ptr_array_unref);
  g_ptr_array_unref (f->last);
  g_free (f->failure);
  g_free (f);
  g_atomic_int_set (&stats_mode, STATS_REAL);
  return 0;
}

static const Seen *
find_seen (Fixture *f, const char *name)
{
  for (guint i = 0; i < f->last->len; i++)
    if (g_str_equal (((Seen *) g_ptr_array_index (f->last, i))->name, name))
      return g_ptr_array_index (f->last, i);
  return NULL;
}

static GPtrArray *
uuids (const char *first, ...)
{
  GPtrArray *out = g_ptr_array_new_with_free_func (g_free);
  va_list ap;
  va_start (ap, first);
  for (const char *u = first; u != NULL; u = va_arg (ap, const char *))
    g_ptr_array_add (out, g_strdup (u));
  va_end (ap);
  return out;
}

static void
test_cycle (void **state)
{
  Fixture *f = *state;

  g_autofree char *before = live_xml (f->virt, TEST_UUID);
  assert_null (strstr (before, "<stats period"));

  /* "test" lacks a stats period; so does a domain that is gone by now. */
  f->want_next = uuids (TEST_UUID, UNKNOWN_UUID, NULL);
  f->collector = vmem_collector_new (f->virt, 1, &callbacks, f);
  assert_int_equal (vmem_collector_get_interval (f->collector), 1);
  WAIT_FOR_S (f->n_collected >= 1, 10);

  assert_int_equal (f->n_failed, 0);
  /* Asked first, in the same cycle. */
  assert_int_equal (f->want_call, 1);
  assert_int_equal (f->collected_call, 2);
  assert_null (f->want_next);
  /* One record per running domain. */
  assert_int_equal (f->last->len, 1);
  const Seen *test = g_ptr_array_index (f->last, 0);
  assert_string_equal (test->uuid, TEST_UUID);
  assert_string_equal (test->name, "test");
  gint64 wall = g_get_real_time () / G_USEC_PER_SEC;
  assert_true (f->last_now <= wall && f->last_now >= wall - 5);

  /* The period was given (in the same cycle, on the worker). */
  g_autofree char *after = live_xml (f->virt, TEST_UUID);
  if (strstr (after, "<stats period='5'/>") == NULL)
    fail_msg ("no stats period set:\n%s", after);
}

/* A second running domain is read too; a defined, shut-off one is not. */
static gpointer
add_domains_work (virConnectPtr conn, gpointer data, GError **error)
{
  const char *running = "<domain type='test'><name>extra</name>"
                        "<memory unit='MiB'>1024</memory><vcpu>1</vcpu>"
                        "<os><type arch='i686'>hvm</type></os>"
                        "<devices><memballoon model='virtio'/></devices></domain>";
  const char *idle = "<domain type='test'><name>idle</name>"
                     "<memory unit='MiB'>1024</memory><vcpu>1</vcpu>"
                     "<os><type arch='i686'>hvm</type></os></domain>";
  virDomainPtr a = virDomainCreateXML (conn, running, 0);
  if (a == NULL)
    return libvirt_failed (error, "virDomainCreateXML");
  virDomainFree (a);
  virDomainPtr b = virDomainDefineXML (conn, idle);
  if (b == NULL)
    return libvirt_failed (error, "virDomainDefineXML");
  virDomainFree (b);
  return GINT_TO_POINTER (1);
}

static void
test_cycle_every_running_domain (void **state)
{
  Fixture *f = *state;

  virt_call_ok (f->virt, add_domains_work, NULL);
  f->collector = vmem_collector_new (f->virt, 1, &callbacks, f);
  WAIT_FOR_S (f->n_collected >= 1, 10);
  assert_int_equal (f->last->len, 2);
  assert_non_null (find_seen (f, "test"));
  const Seen *extra = find_seen (f, "extra");
  assert_non_null (extra);
  assert_null (find_seen (f, "idle"));

  /* Nothing asked for a period: none is wanted. */
  assert_true (f->n_want >= 1);
  g_autofree char *xml = live_xml (f->virt, "extra");
  assert_null (strstr (xml, "<stats period"));

  /* And again, every interval. */
  guint n = f->n_collected;
  WAIT_FOR_S (f->n_collected > n, 10);
  assert_int_equal (f->n_failed, 0);
}

/* What libvirt reports, field by field; what it does not, zero. */
static void
test_cycle_reads_balloon_fields (void **state)
{
  Fixture *f = *state;

  g_atomic_int_set (&stats_mode, STATS_BALLOON);
  virt_call_ok (f->virt, add_domains_work, NULL);
  f->collector = vmem_collector_new (f->virt, 1, &callbacks, f);
  WAIT_FOR_S (f->n_collected >= 1, 10);
  assert_int_equal (f->last->len, 2);

  const Seen *t = find_seen (f, "test");
  assert_non_null (t);
  assert_string_equal (t->uuid, TEST_UUID);
  assert_int_equal (t->current_kib, 2 * 1048576);
  assert_int_equal (t->maximum_kib, 8 * 1048576);
  assert_int_equal (t->rss_kib, 3 * 1048576);
  assert_int_equal (t->available_kib, 1900000);
  assert_int_equal (t->usable_kib, 524288);
  assert_int_equal (t->unused_kib, 13);
  assert_int_equal (t->swap_in_kib, 11);
  assert_int_equal (t->major_fault, 12);
  assert_int_equal (t->last_update, (gint64) LAST_UPDATE);
  assert_int_equal (t->vcpus, 3);
  assert_true (t->has_guest);

  const Seen *x = find_seen (f, "extra");
  assert_non_null (x);
  assert_int_equal (x->current_kib, 4 * 1048576);
  assert_int_equal (x->rss_kib, 6 * 1048576);
  assert_int_equal (x->available_kib, 2 * 1900000);
  assert_int_equal (x->usable_kib, 0);
  assert_int_equal (x->vcpus, 6);
  assert_false (x->has_guest);
}

/* A cycle whose statistics call fails (as on a connection that is gone)
 * reports it, and the next cycles go on. */
static void
test_cycle_failed (void **state)
{
  Fixture *f = *state;

  g_atomic_int_set (&stats_mode, STATS_FAIL);
  f->collector = vmem_collector_new (f->virt, 1, &callbacks, f);
  WAIT_FOR_S (f->n_failed >= 1, 10);
  assert_int_equal (f->n_collected, 0);
  assert_non_null (strstr (f->failure, "cannot read domain statistics"));

  g_atomic_int_set (&stats_mode, STATS_REAL);
  WAIT_FOR_S (f->n_collected >= 1, 10);
  assert_int_equal (f->last->len, 1);
}

/* One cycle at a time: while one is still on the worker, ticks start no
 * other. */
static void
test_one_cycle_at_a_time (void **state)
{
  Fixture *f = *state;

  f->collector = vmem_collector_new (f->virt, 1, &callbacks, f);
  gate_close (&f->gate, f->virt);
  /* The first tick queues a cycle behind the gate; later ones add none. */
  spin_ms (3500);
  assert_int_equal (f->n_want, 1);
  assert_int_equal (f->n_collected, 0);
  gate_open (&f->gate);
  WAIT_FOR_S (f->n_collected == 1, 10);
  assert_int_equal (f->n_failed, 0);
}

/* Without a connection no cycle is taken: want_period is not asked (its
 * answer would be lost) and nothing fails every interval. */
static void
test_no_cycle_disconnected (void **state)
{
  Fixture *f = *state;
  Fixture quiet = { 0 };
  quiet.last = f->last;

  VmemVirt *nowhere = vmem_virt_new ("test:///nonexistent/vmemd-unit-test.xml", NULL, NULL);
  vmem_virt_start (nowhere);
  VmemCollector *c = vmem_collector_new (nowhere, 1, &callbacks, &quiet);
  spin_ms (2500);
  assert_false (vmem_virt_is_connected (nowhere));
  assert_int_equal (quiet.calls, 0);
  vmem_virt_free (nowhere);
  vmem_collector_free (c);
}

static gpointer
open_gate_later (gpointer data)
{
  g_usleep (1500 * 1000);
  gate_open (data);
  return NULL;
}

/* The daemon frees the connection before the collector, so that the last
 * cycle's result still finds it; freeing waits for the worker, then runs
 * the last callbacks on the main context.  A tick that falls due meanwhile
 * takes no cycle. */
static void
test_tick_while_virt_freed (void **state)
{
  Fixture *f = *state;

  f->collector = vmem_collector_new (f->virt, 1, &callbacks, f);
  /* The worker is busy past the next tick, and freeing waits for it. */
  gate_close (&f->gate, f->virt);
  GThread *opener = g_thread_new ("opener", open_gate_later, &f->gate);
  g_clear_pointer (&f->virt, vmem_virt_free);
  g_thread_join (opener);
  assert_int_equal (f->n_want, 0);
  assert_int_equal (f->n_collected + f->n_failed, 0);
}

static void
test_interval (void **state)
{
  Fixture *f = *state;

  f->collector = vmem_collector_new (f->virt, 30, &callbacks, f);
  assert_int_equal (vmem_collector_get_interval (f->collector), 30);
  vmem_collector_set_interval (f->collector, 0);
  assert_int_equal (vmem_collector_get_interval (f->collector), 1);
  /* The new interval applies at once, not after the old one. */
  WAIT_FOR_S (f->n_collected >= 1, 10);
}

/* A source set in place of libvirt: it runs on a thread of its own, as
 * libvirt's call runs on the libvirt worker; its statistics and its time
 * reach the collected callback on the main context, and nothing is asked
 * of libvirt (no stats periods to set); a source that fails is a failed
 * cycle; a cycle running takes no other. */
typedef struct {
  Fixture *f;
  GThread *main_thread;
  gint     calls;
  gint     fail;
  gint     on_main;  /* the source ran on the main thread */
} Source;

static GPtrArray *
source_cb (gint64 *now, gpointer data, GError **error)
{
  Source *src = data;
  gint calls = g_atomic_int_add (&src->calls, 1) + 1;
  if (g_thread_self () == src->main_thread)
    g_atomic_int_set (&src->on_main, 1);
  if (g_atomic_int_get (&src->fail))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "the trace ended");
      return NULL;
    }
  *now = 1700000000 + 10 * (gint64) calls;
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_balloon_stats_free);
  for (guint i = 0; i < 2; i++)
    {
      VmemBalloonStats *st = g_new0 (VmemBalloonStats, 1);
      st->uuid = g_strdup_printf ("5ca1ab1e-0000-4000-8000-00000000000%u", i);
      st->name = g_strdup_printf ("replayed%u", i);
      st->current_kib = 1024 * 1024;
      st->usable_kib = 256 * 1024 * (i + 1);
      st->last_update = *now;
      st->has_guest = TRUE;
      g_ptr_array_add (out, st);
    }
  return out;
}

static void
test_source (void **state)
{
  Fixture *f = *state;
  Source src = { .f = f, .main_thread = g_thread_self () };

  WAIT_FOR_S (vmem_virt_is_connected (f->virt), 10);
  f->want_next = uuids (TEST_UUID, NULL);
  /* No tick within the test: every cycle is asked for. */
  f->collector = vmem_collector_new (f->virt, 3600, &callbacks, f);
  vmem_collector_set_source (f->collector, source_cb, &src);

  assert_true (vmem_collector_cycle_now (f->collector));
  /* One at a time: the read is out. */
  assert_true (vmem_collector_is_busy (f->collector));
  assert_false (vmem_collector_cycle_now (f->collector));
  WAIT_FOR_S (f->n_collected == 1, 10);
  assert_false (vmem_collector_is_busy (f->collector));
  assert_int_equal (g_atomic_int_get (&src.calls), 1);
  assert_int_equal (g_atomic_int_get (&src.on_main), 0);
  assert_int_equal (f->n_want, 0);
  assert_int_equal (f->last_now, 1700000010);
  assert_int_equal (f->last->len, 2);
  const Seen *r1 = find_seen (f, "replayed1");
  assert_non_null (r1);
  assert_int_equal (r1->usable_kib, 512 * 1024);
  assert_null (find_seen (f, "test"));

  assert_true (vmem_collector_cycle_now (f->collector));
  WAIT_FOR_S (f->n_collected == 2, 10);
  assert_int_equal (f->last_now, 1700000020);

  g_atomic_int_set (&src.fail, 1);
  assert_true (vmem_collector_cycle_now (f->collector));
  WAIT_FOR_S (f->n_failed == 1, 10);
  assert_int_equal (f->n_collected, 2);
  assert_string_equal (f->failure, "the trace ended");

  /* libvirt's statistics again once the source is unset. */
  vmem_collector_set_source (f->collector, NULL, NULL);
  assert_true (vmem_collector_cycle_now (f->collector));
  WAIT_FOR_S (f->n_collected == 3, 10);
  assert_int_equal (g_atomic_int_get (&src.calls), 3);
  assert_non_null (find_seen (f, "test"));
  assert_int_equal (vmem_collector_skipped (f->collector), 0);
}

/* Freed while its source's read is out: the read ends without it. */
static void
test_source_freed_while_reading (void **state)
{
  Fixture *f = *state;
  Source src = { .f = f, .main_thread = g_thread_self () };

  WAIT_FOR_S (vmem_virt_is_connected (f->virt), 10);
  f->collector = vmem_collector_new (f->virt, 3600, &callbacks, f);
  vmem_collector_set_source (f->collector, source_cb, &src);
  assert_true (vmem_collector_cycle_now (f->collector));
  g_clear_pointer (&f->collector, vmem_collector_free);
  WAIT_FOR_S (g_atomic_int_get (&src.calls) == 1, 10);
  spin_ms (200);
  assert_int_equal (f->n_collected + f->n_failed, 0);
}

/* While the owner still handles the last cycle's statistics no cycle
 * starts: one that falls due is skipped and counted; once it is done the
 * next tick takes one. */
static void
test_skipped_while_handling (void **state)
{
  Fixture *f = *state;

  WAIT_FOR_S (vmem_virt_is_connected (f->virt), 10);
  f->handling = TRUE;
  f->collector = vmem_collector_new (f->virt, 1, &callbacks, f);
  assert_true (vmem_collector_is_busy (f->collector));
  assert_false (vmem_collector_cycle_now (f->collector));
  /* Ticks come every second (at whole seconds: the first within two). */
  WAIT_FOR_S (vmem_collector_skipped (f->collector) >= 2, 10);
  assert_int_equal (f->n_collected + f->n_failed, 0);
  assert_int_equal (f->n_want, 0);
  guint64 skipped = vmem_collector_skipped (f->collector);

  f->handling = FALSE;
  WAIT_FOR_S (f->n_collected >= 1, 10);
  assert_int_equal (vmem_collector_skipped (f->collector), skipped);
}

/* Without a connection no cycle is taken, from a source either. */
static void
test_source_disconnected (void **state)
{
  Fixture quiet = { 0 };
  Source src = { .f = &quiet, .main_thread = g_thread_self () };
  quiet.last = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_balloon_stats_free);

  VmemVirt *nowhere = vmem_virt_new ("test:///nonexistent/vmemd-unit-test.xml", NULL, NULL);
  vmem_virt_start (nowhere);
  quiet.collector = vmem_collector_new (nowhere, 3600, &callbacks, &quiet);
  vmem_collector_set_source (quiet.collector, source_cb, &src);
  spin_ms (500);
  assert_false (vmem_collector_cycle_now (quiet.collector));
  assert_int_equal (g_atomic_int_get (&src.calls), 0);
  assert_int_equal (quiet.calls, 0);
  vmem_virt_free (nowhere);
  vmem_collector_free (quiet.collector);
  g_ptr_array_unref (quiet.last);
}

#define T(fn) cmocka_unit_test_setup_teardown (fn, setup, teardown)

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_used_guest_fresh),
    cmocka_unit_test (test_used_host_side),
    cmocka_unit_test (test_used_two_periods),
    cmocka_unit_test (test_keep_sample),
    T (test_cycle),
    T (test_cycle_every_running_domain),
    T (test_cycle_reads_balloon_fields),
    T (test_cycle_failed),
    T (test_one_cycle_at_a_time),
    T (test_no_cycle_disconnected),
    T (test_tick_while_virt_freed),
    T (test_interval),
    T (test_source),
    T (test_source_freed_while_reading),
    T (test_skipped_while_handling),
    cmocka_unit_test (test_source_disconnected),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
