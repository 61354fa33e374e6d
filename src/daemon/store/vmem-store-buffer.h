/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Writes that could not be made yet.  When the database cannot be reached
 * or written for now (VMEM_ERROR_STORE_UNAVAILABLE: a PostgreSQL server
 * down or failing over, a SQLite file locked by another process or on a
 * full disk) the collector's sample batches and the daemon's other writes
 * (domain rows, runs opened and closed, plans, moves, outcomes) are kept
 * here, in the order they were made, and written in that order before any
 * later write once it can be reached again: a run is opened before it is
 * closed and before the samples taken while it ran, a plan is there before
 * the run staged from it.  A write made while some are kept waits behind
 * them.
 *
 * Writing again is harmless: the store skips a sample it already holds
 * (same host, domain and time), a run it has open (same host, domain and
 * start), and a plan, move or outcome equal in every column to one it
 * holds, so a write whose commit was lost with the connection adds nothing
 * the second time.
 *
 * A write the store refuses for good (VMEM_ERROR_INVALID_ARGUMENT, or
 * VMEM_ERROR_STORE: a constraint violated, bad data) is never kept: it is
 * dropped, counted, and the call fails with that error; kept, it would
 * hold up every later write.  Bounded: beyond @max_samples kept samples the
 * oldest batches are dropped, beyond @max_writes kept other writes the
 * oldest of them, and counted.  A stop whose run the store does not hold
 * open (it was closed by the first try, or never opened) is not an error
 * once kept.
 *
 * Heartbeats and prunes are not kept: a newer one replaces what an older
 * one would have written.
 *
 * Used from the store's worker thread only; the counters may be read from
 * any thread. */

#include "vmem-store.h"

G_BEGIN_DECLS

typedef struct _VmemStoreBuffer VmemStoreBuffer;

VmemStoreBuffer *vmem_store_buffer_new (guint max_samples, guint max_writes);
void             vmem_store_buffer_free (VmemStoreBuffer *b);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemStoreBuffer, vmem_store_buffer_free)
void             vmem_store_buffer_set_max (VmemStoreBuffer *b, guint max_samples,
                                            guint max_writes);

/* Each writes what is kept, oldest first, then its own write (as the
 * vmem_store_ call of the same name does).  TRUE when it is written and
 * nothing is left kept.  When the store cannot be reached the write is
 * kept, copied, for a later call, and the call fails with
 * VMEM_ERROR_STORE_UNAVAILABLE; when it refuses the write for good, the
 * call fails with that error and nothing is kept. */
gboolean vmem_store_buffer_write (VmemStoreBuffer *b, VmemStore *store,
                                  const VmemSample *samples, guint n,
                                  const VmemPeak *peaks, guint n_peaks, GError **error);
gboolean vmem_store_buffer_domain_upsert (VmemStoreBuffer *b, VmemStore *store,
                                          const VmemDomainRow *row, GError **error);
gboolean vmem_store_buffer_run_open (VmemStoreBuffer *b, VmemStore *store, const char *uuid,
                                     const char *host, const char *workload, gint64 started,
                                     guint64 demand_mib, GError **error);
/* Without an open run of @host for @uuid: VMEM_ERROR_NOT_FOUND, as
 * vmem_store_run_close(). */
gboolean vmem_store_buffer_run_close (VmemStoreBuffer *b, VmemStore *store, const char *uuid,
                                      const char *host, gint64 stopped, const char *reason,
                                      GError **error);
gboolean vmem_store_buffer_plan_add (VmemStoreBuffer *b, VmemStore *store,
                                     const VmemPlanRow *row, GError **error);
gboolean vmem_store_buffer_move_add (VmemStoreBuffer *b, VmemStore *store,
                                     const VmemMoveRow *row, GError **error);
gboolean vmem_store_buffer_outcome_add (VmemStoreBuffer *b, VmemStore *store,
                                        const VmemOutcomeRow *row, GError **error);
/* Writes what is kept, oldest first; TRUE when nothing is left. */
gboolean vmem_store_buffer_flush (VmemStoreBuffer *b, VmemStore *store, GError **error);

/* Samples kept now, and dropped since the buffer was made. */
guint    vmem_store_buffer_pending (VmemStoreBuffer *b);
guint64  vmem_store_buffer_dropped (VmemStoreBuffer *b);
/* The same for the other writes. */
guint    vmem_store_buffer_pending_writes (VmemStoreBuffer *b);
guint64  vmem_store_buffer_dropped_writes (VmemStoreBuffer *b);

G_END_DECLS
