/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-cache.h"

#include <string.h>

/* A sum of guint64 terms that cannot overflow: 128 bits. */
typedef struct {
  guint64 hi, lo;
} Sum;

struct _VmemCache {
  GHashTable *domains;      /* uuid -> VmemCacheEntry */
  GHashTable *reservations; /* uuid -> VmemReservation */
  gboolean    ready;
  /* What admission counts (vmem_cache_commitments()), kept as the cache
   * changes: per uuid, MAX (its running balloon, its reservation). */
  Sum         committed;
};

static void
sum_add (Sum *s, guint64 v)
{
  s->lo += v;
  if (s->lo < v)
    s->hi++;
}

static void
sum_sub (Sum *s, guint64 v)
{
  if (s->lo < v)
    s->hi--;
  s->lo -= v;
}

/* What the domain and reservation of @uuid commit, as
 * vmem_admission_committed() counts their VmemCommitment. */
static guint64
committed_by (VmemCache *cache, const char *uuid)
{
  const VmemCacheEntry *e = g_hash_table_lookup (cache->domains, uuid);
  const VmemReservation *r = g_hash_table_lookup (cache->reservations, uuid);
  guint64 running = e != NULL && e->domain->active ? e->domain->current_mib : 0;
  return MAX (running, r != NULL ? r->mib : 0);
}

/* Around every change of @uuid's domain or reservation: takes its share
 * out of the sum before, and puts the new one in after. */
static void
uncommit (VmemCache *cache, const char *uuid)
{
  sum_sub (&cache->committed, committed_by (cache, uuid));
}

static void
recommit (VmemCache *cache, const char *uuid)
{
  sum_add (&cache->committed, committed_by (cache, uuid));
}

static void
entry_free (VmemCacheEntry *e)
{
  vmem_domain_free (e->domain);
  g_free (e->reason);
  g_free (e);
}

void
vmem_reservation_free (VmemReservation *r)
{
  if (r == NULL)
    return;
  g_free (r->uuid);
  g_free (r->name);
  g_free (r);
}

VmemCache *
vmem_cache_new (void)
{
  VmemCache *cache = g_new0 (VmemCache, 1);
  cache->domains = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                          (GDestroyNotify) entry_free);
  cache->reservations = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                               (GDestroyNotify) vmem_reservation_free);
  return cache;
}

void
vmem_cache_free (VmemCache *cache)
{
  if (cache == NULL)
    return;
  g_hash_table_unref (cache->domains);
  g_hash_table_unref (cache->reservations);
  g_free (cache);
}

VmemCacheEntry *
vmem_cache_update (VmemCache *cache, VmemDomain *domain, gint64 now)
{
  g_return_val_if_fail (domain != NULL && domain->uuid != NULL, NULL);

  uncommit (cache, domain->uuid);
  VmemCacheEntry *e = g_hash_table_lookup (cache->domains, domain->uuid);
  if (e == NULL)
    {
      e = g_new0 (VmemCacheEntry, 1);
      g_hash_table_insert (cache->domains, g_strdup (domain->uuid), e);
    }
  else
    vmem_domain_free (e->domain);
  e->domain = domain;
  if (!domain->active)
    {
      e->active_since = 0;
      e->period_set = FALSE;
      e->seen_t = 0;
      e->action = NULL;
      g_clear_pointer (&e->reason, g_free);
      e->target_mib = 0;
      e->action_t = 0;
    }
  else if (e->active_since == 0)
    e->active_since = now;
  recommit (cache, domain->uuid);
  return e;
}

void
vmem_cache_replace_all (VmemCache *cache, GPtrArray *domains, gint64 now)
{
  g_autoptr(GPtrArray) list = domains;
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);

  for (guint i = 0; i < list->len; i++)
    g_hash_table_add (seen, ((VmemDomain *) g_ptr_array_index (list, i))->uuid);
  GHashTableIter it;
  const char *uuid;
  g_hash_table_iter_init (&it, cache->domains);
  while (g_hash_table_iter_next (&it, (gpointer *) &uuid, NULL))
    if (!g_hash_table_contains (seen, uuid))
      {
        uncommit (cache, uuid);
        /* Its reservation, if any, stays charged (after the key is gone). */
        const VmemReservation *r = g_hash_table_lookup (cache->reservations, uuid);
        if (r != NULL)
          sum_add (&cache->committed, r->mib);
        g_hash_table_iter_remove (&it);
      }
  g_hash_table_remove_all (seen);

  g_ptr_array_set_free_func (list, NULL);
  for (guint i = 0; i < list->len; i++)
    vmem_cache_update (cache, g_ptr_array_index (list, i), now);
  cache->ready = TRUE;
}

gboolean
vmem_cache_remove (VmemCache *cache, const char *uuid)
{
  if (uuid == NULL || !g_hash_table_contains (cache->domains, uuid))
    return FALSE;
  /* @uuid may be the entry's own string: not read once it is gone.  Its
   * reservation, if any, stays charged. */
  const VmemReservation *r = g_hash_table_lookup (cache->reservations, uuid);
  uncommit (cache, uuid);
  if (r != NULL)
    sum_add (&cache->committed, r->mib);
  g_hash_table_remove (cache->domains, uuid);
  return TRUE;
}

gboolean
vmem_cache_is_ready (VmemCache *cache)
{
  return cache->ready;
}

VmemCacheEntry *
vmem_cache_lookup (VmemCache *cache, const char *uuid)
{
  return uuid != NULL ? g_hash_table_lookup (cache->domains, uuid) : NULL;
}

VmemCacheEntry *
vmem_cache_find (VmemCache *cache, const char *name_or_uuid)
{
  if (name_or_uuid == NULL)
    return NULL;
  VmemCacheEntry *e = g_hash_table_lookup (cache->domains, name_or_uuid);
  if (e != NULL)
    return e;
  GHashTableIter it;
  g_hash_table_iter_init (&it, cache->domains);
  while (g_hash_table_iter_next (&it, NULL, (gpointer *) &e))
    if (g_strcmp0 (e->domain->name, name_or_uuid) == 0)
      return e;
  return NULL;
}

guint
vmem_cache_size (VmemCache *cache)
{
  return g_hash_table_size (cache->domains);
}

static gint
compare_entries (gconstpointer a, gconstpointer b)
{
  const VmemCacheEntry *ea = *(VmemCacheEntry *const *) a;
  const VmemCacheEntry *eb = *(VmemCacheEntry *const *) b;
  int c = g_strcmp0 (ea->domain->name, eb->domain->name);
  return c != 0 ? c : g_strcmp0 (ea->domain->uuid, eb->domain->uuid);
}

GPtrArray *
vmem_cache_list (VmemCache *cache)
{
  GPtrArray *out = g_ptr_array_new ();
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, cache->domains);
  while (g_hash_table_iter_next (&it, NULL, &value))
    g_ptr_array_add (out, value);
  g_ptr_array_sort (out, compare_entries);
  return out;
}

void
vmem_cache_set_balloon (VmemCache *cache, const char *uuid, guint64 current_mib)
{
  VmemCacheEntry *e = vmem_cache_lookup (cache, uuid);
  if (e == NULL || current_mib == 0 || e->domain->current_mib == current_mib)
    return;
  if (!e->domain->active)
    {
      /* A shut-off domain's balloon counts for nothing. */
      e->domain->current_mib = current_mib;
      return;
    }
  uncommit (cache, uuid);
  e->domain->current_mib = current_mib;
  recommit (cache, uuid);
}

void
vmem_cache_reserve (VmemCache *cache, const char *uuid, const char *name, guint64 mib, gint64 now)
{
  g_return_if_fail (uuid != NULL);
  VmemReservation *r = g_new0 (VmemReservation, 1);
  r->uuid = g_strdup (uuid);
  r->name = g_strdup (name ? name : uuid);
  r->mib = mib;
  r->since = now;
  uncommit (cache, uuid);
  g_hash_table_replace (cache->reservations, r->uuid, r);
  recommit (cache, uuid);
}

gboolean
vmem_cache_release (VmemCache *cache, const char *uuid)
{
  if (uuid == NULL || !g_hash_table_contains (cache->reservations, uuid))
    return FALSE;
  /* @uuid may be the reservation's own string: not read once it is gone.
   * Its domain, if running, stays charged at its balloon. */
  const VmemCacheEntry *e = g_hash_table_lookup (cache->domains, uuid);
  uncommit (cache, uuid);
  if (e != NULL && e->domain->active)
    sum_add (&cache->committed, e->domain->current_mib);
  g_hash_table_remove (cache->reservations, uuid);
  return TRUE;
}

gboolean
vmem_cache_is_starting (VmemCache *cache, const char *uuid)
{
  return uuid != NULL && g_hash_table_contains (cache->reservations, uuid);
}

static gint
compare_reservations (gconstpointer a, gconstpointer b)
{
  const VmemReservation *ra = *(VmemReservation *const *) a;
  const VmemReservation *rb = *(VmemReservation *const *) b;
  if (ra->since != rb->since)
    return ra->since < rb->since ? -1 : 1;
  return strcmp (ra->uuid, rb->uuid);
}

GPtrArray *
vmem_cache_reservations (VmemCache *cache)
{
  GPtrArray *out = g_ptr_array_new ();
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, cache->reservations);
  while (g_hash_table_iter_next (&it, NULL, &value))
    g_ptr_array_add (out, value);
  g_ptr_array_sort (out, compare_reservations);
  return out;
}

GPtrArray *
vmem_cache_expire (VmemCache *cache, gint64 now, gint64 timeout)
{
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_reservation_free);
  GHashTableIter it;
  VmemReservation *r;
  g_hash_table_iter_init (&it, cache->reservations);
  while (g_hash_table_iter_next (&it, NULL, (gpointer *) &r))
    if (now - r->since >= timeout)
      {
        /* Its domain, if any, keeps its running balloon. */
        const VmemCacheEntry *e = g_hash_table_lookup (cache->domains, r->uuid);
        guint64 running = e != NULL && e->domain->active ? e->domain->current_mib : 0;
        sum_sub (&cache->committed, MAX (running, r->mib));
        sum_add (&cache->committed, running);
        g_hash_table_iter_steal (&it);
        g_ptr_array_add (out, r);
      }
  g_ptr_array_sort (out, compare_reservations);
  return out;
}

GArray *
vmem_cache_commitments (VmemCache *cache)
{
  GArray *out = g_array_new (FALSE, TRUE, sizeof (VmemCommitment));
  GHashTableIter it;
  VmemCacheEntry *e;
  VmemReservation *r;

  g_hash_table_iter_init (&it, cache->domains);
  while (g_hash_table_iter_next (&it, NULL, (gpointer *) &e))
    {
      r = g_hash_table_lookup (cache->reservations, e->domain->uuid);
      if (!e->domain->active && r == NULL)
        continue;
      VmemCommitment c = {
        .uuid = e->domain->uuid,
        .name = e->domain->name,
        .running_mib = e->domain->active ? e->domain->current_mib : 0,
        .reserved_mib = r ? r->mib : 0,
      };
      g_array_append_val (out, c);
    }
  /* A start whose domain the cache has not seen yet is charged too. */
  g_hash_table_iter_init (&it, cache->reservations);
  while (g_hash_table_iter_next (&it, NULL, (gpointer *) &r))
    if (!g_hash_table_contains (cache->domains, r->uuid))
      {
        VmemCommitment c = { .uuid = r->uuid, .name = r->name, .reserved_mib = r->mib };
        g_array_append_val (out, c);
      }
  return out;
}

guint64
vmem_cache_committed (VmemCache *cache, const char *except_uuid)
{
  Sum sum = cache->committed;
  if (except_uuid != NULL)
    sum_sub (&sum, committed_by (cache, except_uuid));
  /* Saturated, as vmem_admission_committed() adds. */
  return sum.hi > 0 ? G_MAXUINT64 : sum.lo;
}
