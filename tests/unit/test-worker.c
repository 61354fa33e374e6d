/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VmemWorker: order, threads, coalescing, errors, the synchronous call and
 * shutdown.  The worker is made on the main thread with the global default
 * main context, as the daemon makes it; a gate the test controls holds a
 * job running while the queue behind it is arranged. */
#include "vmem-error.h"
#include "vmem-worker.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <sys/resource.h>
#include <unistd.h>
#include <cmocka.h>

static GThread *main_thread;

#define assert_no_error(err)                               \
  do                                                       \
    {                                                      \
      if ((err) != NULL)                                   \
        fail_msg ("unexpected error: %s", (err)->message); \
    }                                                      \
  while (0)

/* What the jobs did, as the test reads it afterwards.  Work functions
 * write from the worker thread, done callbacks from the main thread. */
typedef struct {
  GMutex lock;
  GCond cond;
  gboolean started; /* the blocking job is running */
  gboolean open;    /* and may finish */

  GArray *ran;   /* job ids, in the order their work ran */
  GArray *done;  /* job ids, in the order their done ran */
  GArray *freed; /* job ids, in the order their data was freed */
  guint results_freed;
  guint work_on_main;  /* work functions that ran on the main thread */
  guint done_off_main; /* done callbacks that ran on another */
  GError *last_error;  /* as the last done callback got it */
} Log;

typedef struct {
  Log *log;
  guint id;
  gboolean block; /* wait at the gate */
  gboolean fail;  /* set an error instead of returning a result */
} Item;

typedef struct {
  Log *log;
  guint id;
} Result;

static Log *
log_new (void)
{
  Log *log = g_new0 (Log, 1);
  g_mutex_init (&log->lock);
  g_cond_init (&log->cond);
  log->ran = g_array_new (FALSE, FALSE, sizeof (guint));
  log->done = g_array_new (FALSE, FALSE, sizeof (guint));
  log->freed = g_array_new (FALSE, FALSE, sizeof (guint));
  return log;
}

static void
log_free (Log *log)
{
  g_array_unref (log->ran);
  g_array_unref (log->done);
  g_array_unref (log->freed);
  g_clear_error (&log->last_error);
  g_mutex_clear (&log->lock);
  g_cond_clear (&log->cond);
  g_free (log);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Log, log_free)

static guint
log_len (Log *log, GArray *which)
{
  g_mutex_lock (&log->lock);
  guint n = which->len;
  g_mutex_unlock (&log->lock);
  return n;
}

/* Checks that @which holds exactly the ids given, in order (-1 ends). */
static void
assert_ids (Log *log, GArray *which, ...)
{
  va_list ap;
  guint i = 0;
  int id;

  g_mutex_lock (&log->lock);
  va_start (ap, which);
  while ((id = va_arg (ap, int)) >= 0)
    {
      if (i >= which->len)
        fail_msg ("only %u ids, expected id %d at %u", which->len, id, i);
      if (g_array_index (which, guint, i) != (guint) id)
        fail_msg ("id %u at %u, expected %d", g_array_index (which, guint, i), i, id);
      i++;
    }
  va_end (ap);
  if (i != which->len)
    fail_msg ("%u ids, expected %u", which->len, i);
  g_mutex_unlock (&log->lock);
}

static void
gate_wait_started (Log *log)
{
  g_mutex_lock (&log->lock);
  while (!log->started)
    g_cond_wait (&log->cond, &log->lock);
  g_mutex_unlock (&log->lock);
}

static void
gate_open (Log *log)
{
  g_mutex_lock (&log->lock);
  log->open = TRUE;
  g_cond_broadcast (&log->cond);
  g_mutex_unlock (&log->lock);
}

static void
item_free (gpointer data)
{
  Item *item = data;
  g_mutex_lock (&item->log->lock);
  g_array_append_val (item->log->freed, item->id);
  g_mutex_unlock (&item->log->lock);
  g_free (item);
}

static void
result_free (gpointer data)
{
  Result *r = data;
  g_mutex_lock (&r->log->lock);
  r->log->results_freed++;
  g_mutex_unlock (&r->log->lock);
  g_free (r);
}

static gpointer
item_work (gpointer state, gpointer data, GError **error)
{
  Log *log = state;
  Item *item = data;

  g_assert (item->log == log);
  g_mutex_lock (&log->lock);
  if (g_thread_self () == main_thread)
    log->work_on_main++;
  g_array_append_val (log->ran, item->id);
  if (item->block)
    {
      log->started = TRUE;
      g_cond_broadcast (&log->cond);
      while (!log->open)
        g_cond_wait (&log->cond, &log->lock);
    }
  g_mutex_unlock (&log->lock);

  if (item->fail)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_STORE, "job %u failed", item->id);
      return NULL;
    }
  Result *r = g_new0 (Result, 1);
  r->log = log;
  r->id = item->id;
  return r;
}

/* Takes the result: a done callback owns it. */
static void
item_done (gpointer result, const GError *error, gpointer data)
{
  Item *item = data;
  Log *log = item->log;
  Result *r = result;

  g_mutex_lock (&log->lock);
  if (g_thread_self () != main_thread)
    log->done_off_main++;
  g_array_append_val (log->done, item->id);
  g_clear_error (&log->last_error);
  if (error != NULL)
    log->last_error = g_error_copy (error);
  g_mutex_unlock (&log->lock);

  if (error != NULL)
    assert_null (r);
  else
    {
      assert_non_null (r);
      assert_int_equal (r->id, item->id);
    }
  g_free (r);
}

/* Submits job @id, with @key, to @worker. */
static void
submit (VmemWorker *worker, Log *log, guint id, const char *key, gboolean block, gboolean fail,
        VmemWorkerDone done)
{
  Item *item = g_new0 (Item, 1);
  item->log = log;
  item->id = id;
  item->block = block;
  item->fail = fail;
  VmemWorkerJob job = {
    .what = "test job",
    .key = key,
    .work = item_work,
    .done = done,
    .data = item,
    .data_free = item_free,
    .result_free = result_free,
  };
  vmem_worker_submit (worker, &job);
}

static gboolean
timed_out (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Runs the main context until @n done callbacks have run. */
static void
run_until_done (Log *log, guint n)
{
  gboolean late = FALSE;
  guint timeout = g_timeout_add_seconds (10, timed_out, &late);

  while (log_len (log, log->done) < n && !late)
    g_main_context_iteration (NULL, TRUE);
  if (late)
    fail_msg ("only %u of %u done callbacks ran within 10 s", log_len (log, log->done), n);
  g_source_remove (timeout);
}

/* ---- tests --------------------------------------------------------------- */

static gpointer
count_ran (gpointer state, gpointer data, GError **error)
{
  Log *log = state;
  g_mutex_lock (&log->lock);
  if (g_thread_self () == main_thread)
    log->work_on_main++;
  guint n = log->ran->len;
  g_mutex_unlock (&log->lock);
  return GUINT_TO_POINTER (n + 1);
}

static void
test_order_and_threads (void **state)
{
  g_autoptr(Log) log = log_new ();
  VmemWorker *worker = vmem_worker_new ("test-worker", log);

  for (guint i = 0; i < 5; i++)
    submit (worker, log, i, NULL, FALSE, FALSE, item_done);

  /* Queued behind the five: when it returns, their work has run and
   * their done callbacks wait for this thread's main context, which has
   * not been iterated since. */
  g_autoptr(GError) error = NULL;
  gpointer n = vmem_worker_call (worker, count_ran, NULL, &error);
  assert_no_error (error);
  assert_int_equal (GPOINTER_TO_UINT (n), 6);
  assert_ids (log, log->ran, 0, 1, 2, 3, 4, -1);
  assert_int_equal (log_len (log, log->done), 0);
  assert_int_equal (vmem_worker_pending (worker), 0);

  run_until_done (log, 5);
  assert_ids (log, log->done, 0, 1, 2, 3, 4, -1);
  assert_int_equal (log->work_on_main, 0);
  assert_int_equal (log->done_off_main, 0);
  /* Each job's data is freed after its done callback; done took the
   * results. */
  assert_ids (log, log->freed, 0, 1, 2, 3, 4, -1);
  assert_int_equal (log->results_freed, 0);
  assert_int_equal (vmem_worker_n_coalesced (worker), 0);
  vmem_worker_free (worker);
}

static void
test_coalesce_queued_not_running (void **state)
{
  g_autoptr(Log) log = log_new ();
  VmemWorker *worker = vmem_worker_new ("test-worker", log);

  submit (worker, log, 1, "dom", TRUE, FALSE, item_done);
  gate_wait_started (log);
  /* 1 runs: 2 queues behind it rather than replacing it; 3 replaces 2. */
  submit (worker, log, 2, "dom", FALSE, FALSE, item_done);
  assert_int_equal (vmem_worker_n_coalesced (worker), 0);
  assert_int_equal (vmem_worker_pending (worker), 1);
  submit (worker, log, 3, "dom", FALSE, FALSE, item_done);
  assert_int_equal (vmem_worker_n_coalesced (worker), 1);
  assert_int_equal (vmem_worker_pending (worker), 1);
  assert_ids (log, log->freed, 2, -1);

  /* A key that was replaced keeps coalescing. */
  submit (worker, log, 4, "dom", FALSE, FALSE, item_done);
  assert_int_equal (vmem_worker_n_coalesced (worker), 2);
  assert_ids (log, log->freed, 2, 3, -1);

  gate_open (log);
  run_until_done (log, 2);
  assert_ids (log, log->ran, 1, 4, -1);
  assert_ids (log, log->done, 1, 4, -1);
  assert_ids (log, log->freed, 2, 3, 1, 4, -1);
  assert_int_equal (log->results_freed, 0);

  /* Once the queue is empty the key is free again: nothing to replace. */
  submit (worker, log, 5, "dom", FALSE, FALSE, item_done);
  run_until_done (log, 3);
  assert_int_equal (vmem_worker_n_coalesced (worker), 2);
  vmem_worker_free (worker);
  assert_ids (log, log->done, 1, 4, 5, -1);
}

static void
test_different_keys (void **state)
{
  g_autoptr(Log) log = log_new ();
  VmemWorker *worker = vmem_worker_new ("test-worker", log);

  submit (worker, log, 0, "a", TRUE, FALSE, item_done);
  gate_wait_started (log);
  submit (worker, log, 1, "a", FALSE, FALSE, item_done);
  submit (worker, log, 2, "b", FALSE, FALSE, item_done);
  submit (worker, log, 3, NULL, FALSE, FALSE, item_done);
  submit (worker, log, 4, NULL, FALSE, FALSE, item_done);
  submit (worker, log, 5, "ab", FALSE, FALSE, item_done);
  assert_int_equal (vmem_worker_pending (worker), 5);
  assert_int_equal (vmem_worker_n_coalesced (worker), 0);

  gate_open (log);
  run_until_done (log, 6);
  assert_ids (log, log->ran, 0, 1, 2, 3, 4, 5, -1);
  assert_ids (log, log->done, 0, 1, 2, 3, 4, 5, -1);
  assert_int_equal (vmem_worker_n_coalesced (worker), 0);
  vmem_worker_free (worker);
}

static void
test_error_reaches_done (void **state)
{
  g_autoptr(Log) log = log_new ();
  VmemWorker *worker = vmem_worker_new ("test-worker", log);

  submit (worker, log, 7, NULL, FALSE, TRUE, item_done);
  run_until_done (log, 1);
  assert_non_null (log->last_error);
  assert_true (g_error_matches (log->last_error, VMEM_ERROR, VMEM_ERROR_STORE));
  assert_string_equal (log->last_error->message, "job 7 failed");

  /* The next job's success is not coloured by the last one's error. */
  submit (worker, log, 8, NULL, FALSE, FALSE, item_done);
  run_until_done (log, 2);
  assert_null (log->last_error);
  assert_ids (log, log->freed, 7, 8, -1);
  vmem_worker_free (worker);
}

static gpointer
call_work (gpointer state, gpointer data, GError **error)
{
  Log *log = state;
  if (g_thread_self () == main_thread)
    {
      g_mutex_lock (&log->lock);
      log->work_on_main++;
      g_mutex_unlock (&log->lock);
    }
  if (data == NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE, "no data");
      return NULL;
    }
  return g_strdup_printf ("got %s", (const char *) data);
}

static void
test_call (void **state)
{
  g_autoptr(Log) log = log_new ();
  VmemWorker *worker = vmem_worker_new ("test-worker", log);
  g_autoptr(GError) error = NULL;

  g_autofree char *got = vmem_worker_call (worker, call_work, (gpointer) "x", &error);
  assert_no_error (error);
  assert_string_equal (got, "got x");

  char *none = vmem_worker_call (worker, call_work, NULL, &error);
  assert_null (none);
  assert_non_null (error);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE));
  assert_string_equal (error->message, "no data");
  g_clear_error (&error);

  /* A caller that does not want the error still gets NULL. */
  assert_null (vmem_worker_call (worker, call_work, NULL, NULL));
  assert_int_equal (log->work_on_main, 0);
  vmem_worker_free (worker);
}

typedef struct {
  Log *log;
  guint delay_ms;
} Opener;

static gpointer
open_later (gpointer data)
{
  Opener *o = data;
  g_usleep (o->delay_ms * 1000);
  gate_open (o->log);
  return NULL;
}

static void
test_free_runs_queued (void **state)
{
  g_autoptr(Log) log = log_new ();
  VmemWorker *worker = vmem_worker_new ("test-worker", log);

  submit (worker, log, 0, NULL, TRUE, FALSE, item_done);
  gate_wait_started (log);
  submit (worker, log, 1, NULL, FALSE, FALSE, item_done);
  submit (worker, log, 2, "k", FALSE, TRUE, item_done);
  submit (worker, log, 3, NULL, FALSE, FALSE, NULL);
  assert_int_equal (vmem_worker_pending (worker), 3);

  /* Freed while job 0 still runs and three wait: free returns once all
   * four ran and the done callbacks of those that have one ran, here on
   * this thread. */
  Opener o = { log, 100 };
  GThread *opener = g_thread_new ("opener", open_later, &o);
  vmem_worker_free (worker);
  g_thread_join (opener);

  assert_ids (log, log->ran, 0, 1, 2, 3, -1);
  assert_ids (log, log->done, 0, 1, 2, -1);
  assert_ids (log, log->freed, 0, 1, 2, 3, -1);
  assert_int_equal (log->done_off_main, 0);
  assert_non_null (log->last_error);
  /* Job 3 had no done callback: its result was freed for it. */
  assert_int_equal (log->results_freed, 1);
  /* Nothing of the worker is left on the main context. */
  assert_false (g_main_context_pending (NULL));
}

static void
test_result_free_without_done (void **state)
{
  g_autoptr(Log) log = log_new ();
  VmemWorker *worker = vmem_worker_new ("test-worker", log);

  submit (worker, log, 0, NULL, FALSE, FALSE, NULL);
  submit (worker, log, 1, NULL, FALSE, TRUE, NULL); /* no result to free */
  submit (worker, log, 2, NULL, FALSE, FALSE, NULL);
  submit (worker, log, 3, NULL, FALSE, FALSE, item_done);
  run_until_done (log, 1);
  /* The jobs without done callbacks completed before the one with. */
  assert_ids (log, log->freed, 0, 1, 2, 3, -1);
  assert_int_equal (log->results_freed, 2);
  vmem_worker_free (worker);
  assert_int_equal (log->results_freed, 2);
}

/* The nice value of the thread that runs it, + 100 (0 is not a result). */
static gpointer
own_nice (gpointer state, gpointer data, GError **error)
{
  errno = 0;
  int n = getpriority (PRIO_PROCESS, (id_t) gettid ());
  if (n == -1 && errno != 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "getpriority: %s", g_strerror (errno));
      return NULL;
    }
  return GINT_TO_POINTER (n + 100);
}

/* A niced worker's thread runs that much nicer than the thread that made
 * it, at most 19; the main thread and a plain worker keep theirs. */
static void
test_niced (void **state)
{
  errno = 0;
  int base = getpriority (PRIO_PROCESS, (id_t) gettid ());
  assert_false (base == -1 && errno != 0);
  g_autoptr(GError) error = NULL;

  VmemWorker *plain = vmem_worker_new ("test-plain", NULL);
  gpointer r = vmem_worker_call (plain, own_nice, NULL, &error);
  assert_no_error (error);
  assert_int_equal (GPOINTER_TO_INT (r) - 100, base);
  vmem_worker_free (plain);

  VmemWorker *niced = vmem_worker_new_niced ("test-niced", 5, NULL);
  r = vmem_worker_call (niced, own_nice, NULL, &error);
  assert_no_error (error);
  assert_int_equal (GPOINTER_TO_INT (r) - 100, MIN (base + 5, 19));
  vmem_worker_free (niced);

  VmemWorker *most = vmem_worker_new_niced ("test-most", 40, NULL);
  r = vmem_worker_call (most, own_nice, NULL, &error);
  assert_no_error (error);
  assert_int_equal (GPOINTER_TO_INT (r) - 100, 19);
  vmem_worker_free (most);

  assert_int_equal (getpriority (PRIO_PROCESS, (id_t) gettid ()), base);
}

int
main (void)
{
  main_thread = g_thread_self ();
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_order_and_threads),
    cmocka_unit_test (test_coalesce_queued_not_running),
    cmocka_unit_test (test_different_keys),
    cmocka_unit_test (test_error_reaches_done),
    cmocka_unit_test (test_call),
    cmocka_unit_test (test_free_runs_queued),
    cmocka_unit_test (test_result_free_without_done),
    cmocka_unit_test (test_niced),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
