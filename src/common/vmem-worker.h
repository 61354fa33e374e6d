/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* One thread and one queue: the daemon's single job model for work that may
 * block (libvirt calls, the store).  Jobs run one at a time, in order, on the
 * worker thread; each one's done callback runs on the main context of the
 * thread that created the worker.
 *
 * A job may carry a key.  While a job with that key waits in the queue, a
 * new job with the same key replaces it (the old one is dropped: its data is
 * freed and its done callback is not called), so at most one job per key is
 * ever pending.  A job that is already running is not affected: the new one
 * queues behind it. */

#include <glib.h>

G_BEGIN_DECLS

typedef struct _VmemWorker VmemWorker;

/* Worker thread.  @state is the worker's thread state (vmem_worker_new).
 * Returns a result or sets @error. */
typedef gpointer (*VmemWorkerFunc) (gpointer state, gpointer data, GError **error);
/* Main context.  @result (transfer full) is NULL on error. */
typedef void (*VmemWorkerDone) (gpointer result, const GError *error, gpointer data);

typedef struct {
  const char    *what;        /* for logs */
  const char    *key;         /* coalescing key; NULL = none */
  VmemWorkerFunc work;
  VmemWorkerDone done;        /* may be NULL */
  gpointer       data;
  GDestroyNotify data_free;   /* frees @data after done, or when dropped */
  GDestroyNotify result_free; /* frees a result nobody took */
} VmemWorkerJob;

/* Starts the thread.  @state is handed to every job's work function. */
VmemWorker *vmem_worker_new (const char *thread_name, gpointer state);
/* The same, its thread at @nice (0 to 19) above the nice value of the
 * thread that starts it, at most 19: for background work that must not
 * take the processor from the main loop when both want it. */
VmemWorker *vmem_worker_new_niced (const char *thread_name, gint nice, gpointer state);
/* Runs the jobs already queued, then stops the thread and runs their done
 * callbacks. */
void        vmem_worker_free (VmemWorker *worker);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemWorker, vmem_worker_free)

/* Copies @job (not its data) into the queue. */
void        vmem_worker_submit (VmemWorker *worker, const VmemWorkerJob *job);
/* Runs @work on the worker and waits for it: for start-up and shut-down
 * only, never from a handler of the main loop. */
gpointer    vmem_worker_call (VmemWorker *worker, VmemWorkerFunc work, gpointer data,
                              GError **error);

/* Jobs queued and not yet started. */
guint       vmem_worker_pending (VmemWorker *worker);
/* Jobs dropped because a newer one with the same key replaced them. */
guint64     vmem_worker_n_coalesced (VmemWorker *worker);

G_END_DECLS
