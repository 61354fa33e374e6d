/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-worker.h"

#include <errno.h>
#include <sys/resource.h>
#include <unistd.h>

typedef struct {
  VmemWorker    *worker;
  char          *what;
  char          *key;
  VmemWorkerFunc work;
  VmemWorkerDone done;
  gpointer       data;
  GDestroyNotify data_free;
  GDestroyNotify result_free;
  gpointer       result;
  GError        *error;
  /* vmem_worker_call: the caller waits on the worker's cond for this. */
  gboolean       sync;
  gboolean       finished;
} Job;

struct _VmemWorker {
  gpointer      state;
  gint          nice;     /* added to the thread's nice value when it starts */
  GThread      *thread;
  GMainContext *context;

  GMutex        lock;
  GCond         cond;
  GQueue        queue;    /* Job, oldest first */
  GHashTable   *keyed;    /* key -> GList link in queue */
  gboolean      stopping;
  guint64       coalesced;

  gint          completions; /* done callbacks queued on the context, atomic */
};

static void
job_free (Job *job)
{
  if (job->data_free != NULL && job->data != NULL)
    job->data_free (job->data);
  if (job->result_free != NULL && job->result != NULL)
    job->result_free (job->result);
  g_clear_error (&job->error);
  g_free (job->what);
  g_free (job->key);
  g_free (job);
}

static gboolean
job_complete_cb (gpointer user_data)
{
  Job *job = user_data;
  if (job->done != NULL)
    job->done (g_steal_pointer (&job->result), job->error, job->data);
  return G_SOURCE_REMOVE;
}

static void
job_complete_free (gpointer user_data)
{
  Job *job = user_data;
  VmemWorker *worker = job->worker;
  job_free (job);
  g_atomic_int_dec_and_test (&worker->completions);
}

static gpointer
worker_main (gpointer user_data)
{
  VmemWorker *worker = user_data;

  if (worker->nice > 0)
    {
      /* Linux: a thread's nice value is its own, set by its thread id. */
      id_t tid = (id_t) gettid ();
      errno = 0;
      int now = getpriority (PRIO_PROCESS, tid);
      if ((now == -1 && errno != 0) ||
          setpriority (PRIO_PROCESS, tid, MIN (now + worker->nice, 19)) != 0)
        g_debug ("cannot lower a worker thread's priority: %s", g_strerror (errno));
    }

  for (;;)
    {
      g_mutex_lock (&worker->lock);
      while (g_queue_is_empty (&worker->queue) && !worker->stopping)
        g_cond_wait (&worker->cond, &worker->lock);
      Job *job = g_queue_pop_head (&worker->queue);
      if (job != NULL && job->key != NULL)
        g_hash_table_remove (worker->keyed, job->key);
      g_mutex_unlock (&worker->lock);
      if (job == NULL)
        break; /* stopping, and nothing left */

      job->result = job->work (worker->state, job->data, &job->error);

      if (job->sync)
        {
          g_mutex_lock (&worker->lock);
          job->finished = TRUE;
          g_cond_broadcast (&worker->cond);
          g_mutex_unlock (&worker->lock);
          continue;
        }
      /* Always a source, never g_main_context_invoke(): that calls the
       * function at once, on this thread, whenever it can acquire the
       * context, which for the global default context is whenever the
       * owner is not iterating it (before its loop runs, or while it waits
       * in vmem_worker_call() or vmem_worker_free()). */
      g_atomic_int_inc (&worker->completions);
      g_autoptr(GSource) source = g_idle_source_new ();
      g_source_set_priority (source, G_PRIORITY_DEFAULT);
      g_source_set_callback (source, job_complete_cb, job, job_complete_free);
      g_source_set_static_name (source, "vmem-worker done");
      g_source_attach (source, worker->context);
    }
  return NULL;
}

VmemWorker *
vmem_worker_new (const char *thread_name, gpointer state)
{
  return vmem_worker_new_niced (thread_name, 0, state);
}

VmemWorker *
vmem_worker_new_niced (const char *thread_name, gint nice, gpointer state)
{
  g_return_val_if_fail (nice >= 0, NULL);
  VmemWorker *worker = g_new0 (VmemWorker, 1);
  worker->state = state;
  worker->nice = nice;
  worker->context = g_main_context_ref_thread_default ();
  g_mutex_init (&worker->lock);
  g_cond_init (&worker->cond);
  g_queue_init (&worker->queue);
  worker->keyed = g_hash_table_new (g_str_hash, g_str_equal);
  worker->thread = g_thread_new (thread_name, worker_main, worker);
  return worker;
}

void
vmem_worker_free (VmemWorker *worker)
{
  if (worker == NULL)
    return;
  g_mutex_lock (&worker->lock);
  worker->stopping = TRUE;
  g_cond_broadcast (&worker->cond);
  g_mutex_unlock (&worker->lock);
  g_thread_join (worker->thread);
  /* The last jobs' done callbacks are queued on the context: run them now,
   * before the owner goes away. */
  while (g_atomic_int_get (&worker->completions) > 0)
    g_main_context_iteration (worker->context, TRUE);
  g_hash_table_unref (worker->keyed);
  g_mutex_clear (&worker->lock);
  g_cond_clear (&worker->cond);
  g_main_context_unref (worker->context);
  g_free (worker);
}

void
vmem_worker_submit (VmemWorker *worker, const VmemWorkerJob *spec)
{
  g_return_if_fail (worker != NULL && spec != NULL && spec->work != NULL);

  Job *job = g_new0 (Job, 1);
  job->worker = worker;
  job->what = g_strdup (spec->what);
  job->key = g_strdup (spec->key);
  job->work = spec->work;
  job->done = spec->done;
  job->data = spec->data;
  job->data_free = spec->data_free;
  job->result_free = spec->result_free;

  Job *dropped = NULL;
  g_mutex_lock (&worker->lock);
  GList *link = job->key ? g_hash_table_lookup (worker->keyed, job->key) : NULL;
  if (link != NULL)
    {
      /* Take the queued job's place: the newer request wins, and it runs no
       * later than the one it replaces would have. */
      dropped = link->data;
      link->data = job;
      g_hash_table_replace (worker->keyed, job->key, link);
      worker->coalesced++;
    }
  else
    {
      g_queue_push_tail (&worker->queue, job);
      if (job->key != NULL)
        g_hash_table_replace (worker->keyed, job->key, worker->queue.tail);
    }
  g_cond_broadcast (&worker->cond);
  g_mutex_unlock (&worker->lock);

  if (dropped != NULL)
    job_free (dropped);
}

gpointer
vmem_worker_call (VmemWorker *worker, VmemWorkerFunc work, gpointer data, GError **error)
{
  Job job = {
    .worker = worker,
    .work = work,
    .data = data,
    .sync = TRUE,
  };

  g_mutex_lock (&worker->lock);
  g_queue_push_tail (&worker->queue, &job);
  g_cond_broadcast (&worker->cond);
  while (!job.finished)
    g_cond_wait (&worker->cond, &worker->lock);
  g_mutex_unlock (&worker->lock);
  if (job.error != NULL)
    g_propagate_error (error, job.error);
  return job.result;
}

guint
vmem_worker_pending (VmemWorker *worker)
{
  g_mutex_lock (&worker->lock);
  guint n = g_queue_get_length (&worker->queue);
  g_mutex_unlock (&worker->lock);
  return n;
}

guint64
vmem_worker_n_coalesced (VmemWorker *worker)
{
  g_mutex_lock (&worker->lock);
  guint64 n = worker->coalesced;
  g_mutex_unlock (&worker->lock);
  return n;
}
