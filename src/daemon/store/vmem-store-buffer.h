/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Samples that could not be written yet.  When the database cannot be
 * reached (a PostgreSQL server down or failing over) the collector's
 * batches are kept here, in order, and written before the next batch once
 * it can be reached again; the store skips a sample it already holds (same
 * host, domain and time), so a batch whose commit was lost with the
 * connection and is written again adds nothing.  Bounded: beyond
 * @max_samples the oldest batches are dropped and counted.
 *
 * Used from the store's worker thread only; the counters may be read from
 * any thread. */

#include "vmem-store.h"

G_BEGIN_DECLS

typedef struct _VmemStoreBuffer VmemStoreBuffer;

VmemStoreBuffer *vmem_store_buffer_new (guint max_samples);
void             vmem_store_buffer_free (VmemStoreBuffer *b);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemStoreBuffer, vmem_store_buffer_free)
void             vmem_store_buffer_set_max (VmemStoreBuffer *b, guint max_samples);

/* Writes the batches kept, oldest first, then this one (each as
 * vmem_store_samples_add() does).  When the store fails
 * (VMEM_ERROR_STORE) the batch is kept, copied, for the next call, and the
 * call fails with that error; a batch the store refuses as bad input
 * (VMEM_ERROR_INVALID_ARGUMENT) is never kept: it is dropped, counted, and
 * the call fails with that error.  TRUE when nothing is left kept. */
gboolean vmem_store_buffer_write (VmemStoreBuffer *b, VmemStore *store,
                                  const VmemSample *samples, guint n,
                                  const VmemPeak *peaks, guint n_peaks, GError **error);
/* Writes the batches kept, oldest first; TRUE when none is left. */
gboolean vmem_store_buffer_flush (VmemStoreBuffer *b, VmemStore *store, GError **error);

/* Samples kept now, and dropped since the buffer was made. */
guint    vmem_store_buffer_pending (VmemStoreBuffer *b);
guint64  vmem_store_buffer_dropped (VmemStoreBuffer *b);

G_END_DECLS
