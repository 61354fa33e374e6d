/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-store-buffer.h"
#include "vmem-error.h"

/* One batch as the collector gave it, its strings copied. */
typedef struct {
  GStringChunk *strings;
  GArray *samples; /* VmemSample */
  GArray *peaks;   /* VmemPeak */
} Batch;

struct _VmemStoreBuffer {
  GQueue batches; /* Batch, oldest first */
  guint max_samples;
  GMutex lock;    /* the counters below, read from other threads */
  guint pending;  /* samples in batches */
  guint64 dropped;
};

static void
batch_free (Batch *b)
{
  g_string_chunk_free (b->strings);
  g_array_unref (b->samples);
  g_array_unref (b->peaks);
  g_free (b);
}

static Batch *
batch_copy (const VmemSample *samples, guint n, const VmemPeak *peaks, guint n_peaks)
{
  Batch *b = g_new0 (Batch, 1);
  b->strings = g_string_chunk_new (256);
  b->samples = g_array_sized_new (FALSE, TRUE, sizeof (VmemSample), n);
  b->peaks = g_array_sized_new (FALSE, TRUE, sizeof (VmemPeak), n_peaks);
#define COPY(s) ((s) ? g_string_chunk_insert_const (b->strings, (s)) : NULL)
  for (guint i = 0; i < n; i++)
    {
      VmemSample x = samples[i];
      x.uuid = COPY (x.uuid);
      x.host = COPY (x.host);
      x.workload = COPY (x.workload);
      g_array_append_val (b->samples, x);
    }
  for (guint i = 0; i < n_peaks; i++)
    {
      VmemPeak p = peaks[i];
      p.uuid = COPY (p.uuid);
      p.domain = COPY (p.domain);
      p.host = COPY (p.host);
      p.workload = COPY (p.workload);
      g_array_append_val (b->peaks, p);
    }
#undef COPY
  return b;
}

VmemStoreBuffer *
vmem_store_buffer_new (guint max_samples)
{
  VmemStoreBuffer *b = g_new0 (VmemStoreBuffer, 1);
  g_queue_init (&b->batches);
  g_mutex_init (&b->lock);
  b->max_samples = max_samples;
  return b;
}

void
vmem_store_buffer_free (VmemStoreBuffer *b)
{
  if (b == NULL)
    return;
  g_queue_clear_full (&b->batches, (GDestroyNotify) batch_free);
  g_mutex_clear (&b->lock);
  g_free (b);
}

static void
count (VmemStoreBuffer *b, gint pending, guint64 dropped)
{
  g_mutex_lock (&b->lock);
  b->pending = (guint) ((gint) b->pending + pending);
  b->dropped += dropped;
  g_mutex_unlock (&b->lock);
}

/* Drops the oldest batches until no more than the bound are kept. */
static void
trim (VmemStoreBuffer *b)
{
  Batch *oldest;
  while (vmem_store_buffer_pending (b) > b->max_samples &&
         (oldest = g_queue_pop_head (&b->batches)) != NULL)
    {
      count (b, -(gint) oldest->samples->len, oldest->samples->len);
      batch_free (oldest);
    }
}

void
vmem_store_buffer_set_max (VmemStoreBuffer *b, guint max_samples)
{
  b->max_samples = max_samples;
  trim (b);
}

gboolean
vmem_store_buffer_flush (VmemStoreBuffer *b, VmemStore *store, GError **error)
{
  Batch *head;
  while ((head = g_queue_peek_head (&b->batches)) != NULL)
    {
      g_autoptr(GError) local = NULL;
      if (!vmem_store_samples_add (store, (const VmemSample *) head->samples->data,
                                   head->samples->len, (const VmemPeak *) head->peaks->data,
                                   head->peaks->len, &local))
        {
          if (!g_error_matches (local, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT))
            {
              g_propagate_error (error, g_steal_pointer (&local));
              return FALSE;
            }
          /* It will never be written: keeping it would hold up the rest. */
          count (b, 0, head->samples->len);
          g_warning ("dropped a batch of %u samples the store refuses: %s", head->samples->len,
                     local->message);
        }
      g_queue_pop_head (&b->batches);
      count (b, -(gint) head->samples->len, 0);
      batch_free (head);
    }
  return TRUE;
}

gboolean
vmem_store_buffer_write (VmemStoreBuffer *b, VmemStore *store, const VmemSample *samples,
                         guint n, const VmemPeak *peaks, guint n_peaks, GError **error)
{
  g_autoptr(GError) local = NULL;
  /* Batches kept go first: a later batch's peaks replace theirs. */
  if (vmem_store_buffer_flush (b, store, &local) &&
      vmem_store_samples_add (store, samples, n, peaks, n_peaks, &local))
    return TRUE;
  if (g_error_matches (local, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT))
    {
      count (b, 0, n);
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (n > 0 || n_peaks > 0)
    {
      g_queue_push_tail (&b->batches, batch_copy (samples, n, peaks, n_peaks));
      count (b, (gint) n, 0);
      trim (b);
    }
  g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

guint
vmem_store_buffer_pending (VmemStoreBuffer *b)
{
  g_mutex_lock (&b->lock);
  guint n = b->pending;
  g_mutex_unlock (&b->lock);
  return n;
}

guint64
vmem_store_buffer_dropped (VmemStoreBuffer *b)
{
  g_mutex_lock (&b->lock);
  guint64 n = b->dropped;
  g_mutex_unlock (&b->lock);
  return n;
}
