/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The one job model: one thread, one queue, done callbacks on the owner's
 * main context. */
#include "vmem-worker.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#define WAIT_S 20

static GThread *main_thread;

typedef struct {
  GMutex   lock;
  GCond    cond;
  gboolean running; /* the gate job is running */
  gboolean open;
} Gate;

typedef struct {
  const char *name;
  GPtrArray  *log;        /* "done:NAME" (on the main thread), "done-elsewhere:NAME", "free:NAME" */
  Gate       *gate;       /* work waits here when set */
} Job;

static gpointer
job_work (gpointer state, gpointer data, GError **error)
{
  Job *j = data;
  if (j->gate != NULL)
    {
      g_mutex_lock (&j->gate->lock);
      j->gate->running = TRUE;
      g_cond_broadcast (&j->gate->cond);
      while (!j->gate->open)
        g_cond_wait (&j->gate->cond, &j->gate->lock);
      g_mutex_unlock (&j->gate->lock);
    }
  return g_strdup (j->name);
}

static void
job_done (gpointer result, const GError *error, gpointer data)
{
  Job *j = data;
  g_autofree char *name = result;
  g_ptr_array_add (j->log, g_strconcat (g_thread_self () == main_thread ? "done:" : "done-elsewhere:",
                                         name, NULL));
}

static void
job_free (Job *j)
{
  g_ptr_array_add (j->log, g_strconcat ("free:", j->name, NULL));
  g_free (j);
}

static Job *
submit (VmemWorker *w, GPtrArray *log, const char *name, const char *key, Gate *gate)
{
  Job *j = g_new0 (Job, 1);
  j->name = name;
  j->log = log;
  j->gate = gate;
  const VmemWorkerJob spec = {
    .what = name,
    .key = key,
    .work = job_work,
    .done = job_done,
    .data = j,
    .data_free = (GDestroyNotify) job_free,
    .result_free = g_free,
  };
  vmem_worker_submit (w, &spec);
  return j;
}

/* Waits, without iterating the main context, until the gate job runs. */
static void
wait_running (Gate *g)
{
  gint64 deadline = g_get_monotonic_time () + WAIT_S * G_USEC_PER_SEC;
  g_mutex_lock (&g->lock);
  while (!g->running && g_cond_wait_until (&g->cond, &g->lock, deadline))
    ;
  gboolean running = g->running;
  g_mutex_unlock (&g->lock);
  if (!running)
    fail_msg ("the worker did not reach the gate");
}

static void
open_gate (Gate *g)
{
  g_mutex_lock (&g->lock);
  g->open = TRUE;
  g_cond_broadcast (&g->cond);
  g_mutex_unlock (&g->lock);
}

static gboolean
timed_out_cb (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

static void
iterate_until_logged (GPtrArray *log, guint n)
{
  gboolean timed_out = FALSE;
  guint id = g_timeout_add_seconds (WAIT_S, timed_out_cb, &timed_out);
  while (log->len < n && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  if (!timed_out)
    g_source_remove (id);
  if (log->len < n)
    fail_msg ("timed out: %u entries logged, %u expected", log->len, n);
}

static void
assert_log (GPtrArray *log, const char *const *want, guint n)
{
  for (guint i = 0; i < MIN (log->len, n); i++)
    assert_string_equal (g_ptr_array_index (log, i), want[i]);
  assert_int_equal (log->len, n);
}

/* A done callback runs on the thread that created the worker, when that
 * thread iterates its main context, even when the job ends while that
 * thread is busy with something else. */
static void
test_done_on_owner_thread (void **state)
{
  g_autoptr(GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  Gate gate = { 0 };
  g_mutex_init (&gate.lock);
  g_cond_init (&gate.cond);
  VmemWorker *w = vmem_worker_new ("test-worker", NULL);

  submit (w, log, "first", NULL, NULL);
  submit (w, log, "gate", NULL, &gate);
  /* The first job has ended; this thread has not iterated since. */
  wait_running (&gate);
  assert_int_equal (log->len, 0);

  iterate_until_logged (log, 2);
  const char *want[] = { "done:first", "free:first" };
  assert_log (log, want, 2);

  open_gate (&gate);
  vmem_worker_free (w);
  const char *all[] = { "done:first", "free:first", "done:gate", "free:gate" };
  assert_log (log, all, 4);
  g_mutex_clear (&gate.lock);
  g_cond_clear (&gate.cond);
}

/* A queued job with the same key is replaced: freed, never run, never
 * called back; the newer one takes its place in the queue. */
static void
test_coalesce_by_key (void **state)
{
  g_autoptr(GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  Gate gate = { 0 };
  g_mutex_init (&gate.lock);
  g_cond_init (&gate.cond);
  VmemWorker *w = vmem_worker_new ("test-worker", NULL);

  submit (w, log, "gate", NULL, &gate);
  wait_running (&gate);
  submit (w, log, "a1", "a", NULL);
  submit (w, log, "b", "b", NULL);
  submit (w, log, "a2", "a", NULL);
  assert_int_equal (vmem_worker_pending (w), 2);
  assert_int_equal (vmem_worker_n_coalesced (w), 1);
  const char *dropped[] = { "free:a1" };
  assert_log (log, dropped, 1);

  open_gate (&gate);
  iterate_until_logged (log, 7);
  const char *want[] = { "free:a1", "done:gate", "free:gate", "done:a2",
                         "free:a2", "done:b",    "free:b" };
  assert_log (log, want, 7);
  vmem_worker_free (w);
  g_mutex_clear (&gate.lock);
  g_cond_clear (&gate.cond);
}

/* Freeing the worker runs what is queued, and their callbacks, first. */
static void
test_free_runs_queued (void **state)
{
  g_autoptr(GPtrArray) log = g_ptr_array_new_with_free_func (g_free);
  VmemWorker *w = vmem_worker_new ("test-worker", NULL);
  submit (w, log, "a", NULL, NULL);
  submit (w, log, "b", "b", NULL);
  vmem_worker_free (w);
  const char *want[] = { "done:a", "free:a", "done:b", "free:b" };
  assert_log (log, want, 4);
}

#define TEST_ERROR g_quark_from_static_string ("test-worker")

static gpointer
call_work (gpointer state, gpointer data, GError **error)
{
  if (data == NULL)
    {
      g_set_error (error, TEST_ERROR, 1, "no data");
      return NULL;
    }
  return g_strdup_printf ("%s/%s", (char *) state, (char *) data);
}

static void
test_call (void **state)
{
  VmemWorker *w = vmem_worker_new ("test-worker", "state");
  g_autoptr(GError) error = NULL;
  g_autofree char *r = vmem_worker_call (w, call_work, "data", &error);
  assert_null (error);
  assert_string_equal (r, "state/data");
  assert_null (vmem_worker_call (w, call_work, NULL, &error));
  assert_true (g_error_matches (error, TEST_ERROR, 1));
  vmem_worker_free (w);
}

int
main (void)
{
  main_thread = g_thread_self ();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_done_on_owner_thread),
    cmocka_unit_test (test_coalesce_by_key),
    cmocka_unit_test (test_free_runs_queued),
    cmocka_unit_test (test_call),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
