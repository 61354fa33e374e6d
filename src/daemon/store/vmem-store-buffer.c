/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-store-buffer.h"
#include "vmem-error.h"

typedef enum {
  ENTRY_SAMPLES,
  ENTRY_DOMAIN,
  ENTRY_RUN_OPEN,
  ENTRY_RUN_CLOSE,
  ENTRY_PLAN,
  ENTRY_MOVE,
  ENTRY_OUTCOME,
} EntryKind;

static const char *const entry_names[] = {
  "a batch of samples", "a domain", "the start of", "the stop of", "the plan of", "a move of",
  "the outcome of a start of",
};

/* One write.  Made on the caller's stack, pointing at its strings; kept as
 * a copy owning them in @strings. */
typedef struct {
  EntryKind kind;
  GStringChunk *strings;
  const VmemSample *samples;
  guint n_samples;
  const VmemPeak *peaks;
  guint n_peaks;
  GArray *own_samples; /* VmemSample, of a copy */
  GArray *own_peaks;   /* VmemPeak, of a copy */
  VmemDomainRow domain;
  VmemPlanRow plan;
  VmemMoveRow move;
  VmemOutcomeRow outcome;
  const char *uuid, *host, *workload, *reason; /* runs */
  gint64 t;
  guint64 mib;
} Entry;

struct _VmemStoreBuffer {
  GQueue entries; /* Entry, oldest first */
  guint max_samples, max_writes;
  GMutex lock; /* the counters below, read from other threads */
  guint pending;        /* samples in entries */
  guint pending_writes; /* other entries */
  guint64 dropped, dropped_writes;
};

static void
entry_free (Entry *e)
{
  if (e->strings != NULL)
    g_string_chunk_free (e->strings);
  g_clear_pointer (&e->own_samples, g_array_unref);
  g_clear_pointer (&e->own_peaks, g_array_unref);
  g_free (e);
}

static Entry *
entry_copy (const Entry *src)
{
  Entry *e = g_new (Entry, 1);
  *e = *src;
  e->strings = g_string_chunk_new (256);
#define COPY(s) ((s) ? g_string_chunk_insert_const (e->strings, (s)) : NULL)
#define COPYW(s) ((char *) COPY (s))
  switch (e->kind)
    {
    case ENTRY_SAMPLES:
      e->own_samples = g_array_sized_new (FALSE, TRUE, sizeof (VmemSample), src->n_samples);
      e->own_peaks = g_array_sized_new (FALSE, TRUE, sizeof (VmemPeak), src->n_peaks);
      for (guint i = 0; i < src->n_samples; i++)
        {
          VmemSample x = src->samples[i];
          x.uuid = COPY (x.uuid);
          x.host = COPY (x.host);
          x.workload = COPY (x.workload);
          g_array_append_val (e->own_samples, x);
        }
      for (guint i = 0; i < src->n_peaks; i++)
        {
          VmemPeak p = src->peaks[i];
          p.uuid = COPYW (p.uuid);
          p.domain = COPYW (p.domain);
          p.host = COPYW (p.host);
          p.workload = COPYW (p.workload);
          g_array_append_val (e->own_peaks, p);
        }
      e->samples = (const VmemSample *) e->own_samples->data;
      e->peaks = (const VmemPeak *) e->own_peaks->data;
      break;
    case ENTRY_DOMAIN:
      e->domain.uuid = COPYW (src->domain.uuid);
      e->domain.name = COPYW (src->domain.name);
      e->domain.host = COPYW (src->domain.host);
      e->domain.workload = COPYW (src->domain.workload);
      break;
    case ENTRY_RUN_OPEN:
    case ENTRY_RUN_CLOSE:
      e->uuid = COPY (src->uuid);
      e->host = COPY (src->host);
      e->workload = COPY (src->workload);
      e->reason = COPY (src->reason);
      break;
    case ENTRY_PLAN:
      e->plan.uuid = COPYW (src->plan.uuid);
      e->plan.host = COPYW (src->plan.host);
      e->plan.workload = COPYW (src->plan.workload);
      e->plan.source = COPYW (src->plan.source);
      e->plan.reasons_json = COPYW (src->plan.reasons_json);
      break;
    case ENTRY_MOVE:
      e->move.uuid = COPYW (src->move.uuid);
      e->move.host = COPYW (src->move.host);
      e->move.workload = COPYW (src->move.workload);
      e->move.action = COPYW (src->move.action);
      e->move.mode = COPYW (src->move.mode);
      e->move.reason = COPYW (src->move.reason);
      break;
    case ENTRY_OUTCOME:
      e->outcome.uuid = COPYW (src->outcome.uuid);
      e->outcome.host = COPYW (src->outcome.host);
      e->outcome.workload = COPYW (src->outcome.workload);
      e->outcome.kind = COPYW (src->outcome.kind);
      break;
    }
#undef COPYW
#undef COPY
  return e;
}

/* The domain a write is about, for messages. */
static const char *
entry_about (const Entry *e)
{
  switch (e->kind)
    {
    case ENTRY_SAMPLES:
      return "";
    case ENTRY_DOMAIN:
      return e->domain.name;
    case ENTRY_PLAN:
      return e->plan.uuid;
    case ENTRY_MOVE:
      return e->move.uuid;
    case ENTRY_OUTCOME:
      return e->outcome.uuid;
    default:
      return e->uuid;
    }
}

static gboolean
entry_write (const Entry *e, VmemStore *store, GError **error)
{
  switch (e->kind)
    {
    case ENTRY_SAMPLES:
      return vmem_store_samples_add (store, e->samples, e->n_samples, e->peaks, e->n_peaks, error);
    case ENTRY_DOMAIN:
      return vmem_store_domain_upsert (store, &e->domain, error);
    case ENTRY_RUN_OPEN:
      return vmem_store_run_open (store, e->uuid, e->host, e->workload, e->t, e->mib, error) >= 0;
    case ENTRY_RUN_CLOSE:
      return vmem_store_run_close (store, e->uuid, e->host, e->t, e->reason, error);
    case ENTRY_PLAN:
      return vmem_store_plan_add (store, &e->plan, error);
    case ENTRY_MOVE:
      return vmem_store_move_add (store, &e->move, error);
    case ENTRY_OUTCOME:
      return vmem_store_outcome_add (store, &e->outcome, error);
    }
  g_return_val_if_reached (FALSE);
}

VmemStoreBuffer *
vmem_store_buffer_new (guint max_samples, guint max_writes)
{
  VmemStoreBuffer *b = g_new0 (VmemStoreBuffer, 1);
  g_queue_init (&b->entries);
  g_mutex_init (&b->lock);
  b->max_samples = max_samples;
  b->max_writes = max_writes;
  return b;
}

void
vmem_store_buffer_free (VmemStoreBuffer *b)
{
  if (b == NULL)
    return;
  g_queue_clear_full (&b->entries, (GDestroyNotify) entry_free);
  g_mutex_clear (&b->lock);
  g_free (b);
}

/* Counts @e as kept (+1), no longer kept (-1), or dropped. */
static void
count (VmemStoreBuffer *b, const Entry *e, gint kept, gboolean dropped)
{
  g_mutex_lock (&b->lock);
  if (e->kind == ENTRY_SAMPLES)
    {
      b->pending = (guint) ((gint) b->pending + kept * (gint) e->n_samples);
      b->dropped += dropped ? e->n_samples : 0;
    }
  else
    {
      b->pending_writes = (guint) ((gint) b->pending_writes + kept);
      b->dropped_writes += dropped ? 1 : 0;
    }
  g_mutex_unlock (&b->lock);
}

/* Drops the oldest entry of the kind (samples or not) until no more than
 * @max of it are kept. */
static void
trim_kind (VmemStoreBuffer *b, gboolean samples, guint max)
{
  GList *l = b->entries.head;
  while (l != NULL &&
         (samples ? vmem_store_buffer_pending (b) : vmem_store_buffer_pending_writes (b)) > max)
    {
      GList *next = l->next;
      Entry *e = l->data;
      if ((e->kind == ENTRY_SAMPLES) == samples)
        {
          count (b, e, -1, TRUE);
          g_queue_delete_link (&b->entries, l);
          entry_free (e);
        }
      l = next;
    }
}

static void
trim (VmemStoreBuffer *b)
{
  trim_kind (b, TRUE, b->max_samples);
  trim_kind (b, FALSE, b->max_writes);
}

void
vmem_store_buffer_set_max (VmemStoreBuffer *b, guint max_samples, guint max_writes)
{
  b->max_samples = max_samples;
  b->max_writes = max_writes;
  trim (b);
}

/* Whether @error says the same write may succeed later. */
static gboolean
unavailable (const GError *error)
{
  return g_error_matches (error, VMEM_ERROR, VMEM_ERROR_STORE_UNAVAILABLE);
}

gboolean
vmem_store_buffer_flush (VmemStoreBuffer *b, VmemStore *store, GError **error)
{
  Entry *head;
  while ((head = g_queue_peek_head (&b->entries)) != NULL)
    {
      g_autoptr(GError) local = NULL;
      gboolean dropped = FALSE;
      if (!entry_write (head, store, &local))
        {
          if (unavailable (local))
            {
              g_propagate_error (error, g_steal_pointer (&local));
              return FALSE;
            }
          /* Closed by the try whose commit was hidden, or never opened:
           * nothing is missing. */
          if (!(head->kind == ENTRY_RUN_CLOSE &&
                g_error_matches (local, VMEM_ERROR, VMEM_ERROR_NOT_FOUND)))
            {
              /* It will never be written: keeping it would hold up the rest. */
              dropped = TRUE;
              if (head->kind == ENTRY_SAMPLES)
                g_warning ("dropped a batch of %u samples the store refuses: %s",
                           head->n_samples, local->message);
              else
                g_warning ("dropped the record of %s %s, which the store refuses: %s",
                           entry_names[head->kind], entry_about (head), local->message);
            }
        }
      g_queue_pop_head (&b->entries);
      count (b, head, -1, dropped);
      entry_free (head);
    }
  return TRUE;
}

/* Writes what is kept, then @e; keeps a copy of @e when the store cannot
 * be reached. */
static gboolean
submit (VmemStoreBuffer *b, VmemStore *store, const Entry *e, GError **error)
{
  g_autoptr(GError) local = NULL;
  if (vmem_store_buffer_flush (b, store, &local) && entry_write (e, store, &local))
    return TRUE;
  if (!unavailable (local))
    {
      if (!(e->kind == ENTRY_RUN_CLOSE && g_error_matches (local, VMEM_ERROR, VMEM_ERROR_NOT_FOUND)))
        count (b, e, 0, TRUE);
      g_propagate_error (error, g_steal_pointer (&local));
      return FALSE;
    }
  if (e->kind != ENTRY_SAMPLES || e->n_samples > 0 || e->n_peaks > 0)
    {
      Entry *kept = entry_copy (e);
      g_queue_push_tail (&b->entries, kept);
      count (b, kept, +1, FALSE);
      trim (b);
    }
  g_propagate_error (error, g_steal_pointer (&local));
  return FALSE;
}

gboolean
vmem_store_buffer_write (VmemStoreBuffer *b, VmemStore *store, const VmemSample *samples,
                         guint n, const VmemPeak *peaks, guint n_peaks, GError **error)
{
  /* Batches kept go first: a later batch's peaks replace theirs. */
  const Entry e = { .kind = ENTRY_SAMPLES, .samples = samples, .n_samples = n, .peaks = peaks,
                    .n_peaks = n_peaks };
  return submit (b, store, &e, error);
}

gboolean
vmem_store_buffer_domain_upsert (VmemStoreBuffer *b, VmemStore *store, const VmemDomainRow *row,
                                 GError **error)
{
  const Entry e = { .kind = ENTRY_DOMAIN, .domain = *row };
  return submit (b, store, &e, error);
}

gboolean
vmem_store_buffer_run_open (VmemStoreBuffer *b, VmemStore *store, const char *uuid,
                            const char *host, const char *workload, gint64 started,
                            guint64 demand_mib, GError **error)
{
  const Entry e = { .kind = ENTRY_RUN_OPEN, .uuid = uuid, .host = host, .workload = workload,
                    .t = started, .mib = demand_mib };
  return submit (b, store, &e, error);
}

gboolean
vmem_store_buffer_run_close (VmemStoreBuffer *b, VmemStore *store, const char *uuid,
                             const char *host, gint64 stopped, const char *reason,
                             GError **error)
{
  const Entry e = { .kind = ENTRY_RUN_CLOSE, .uuid = uuid, .host = host, .reason = reason,
                    .t = stopped };
  return submit (b, store, &e, error);
}

gboolean
vmem_store_buffer_plan_add (VmemStoreBuffer *b, VmemStore *store, const VmemPlanRow *row,
                            GError **error)
{
  const Entry e = { .kind = ENTRY_PLAN, .plan = *row };
  return submit (b, store, &e, error);
}

gboolean
vmem_store_buffer_move_add (VmemStoreBuffer *b, VmemStore *store, const VmemMoveRow *row,
                            GError **error)
{
  const Entry e = { .kind = ENTRY_MOVE, .move = *row };
  return submit (b, store, &e, error);
}

gboolean
vmem_store_buffer_outcome_add (VmemStoreBuffer *b, VmemStore *store, const VmemOutcomeRow *row,
                               GError **error)
{
  const Entry e = { .kind = ENTRY_OUTCOME, .outcome = *row };
  return submit (b, store, &e, error);
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

guint
vmem_store_buffer_pending_writes (VmemStoreBuffer *b)
{
  g_mutex_lock (&b->lock);
  guint n = b->pending_writes;
  g_mutex_unlock (&b->lock);
  return n;
}

guint64
vmem_store_buffer_dropped_writes (VmemStoreBuffer *b)
{
  g_mutex_lock (&b->lock);
  guint64 n = b->dropped_writes;
  g_mutex_unlock (&b->lock);
  return n;
}
