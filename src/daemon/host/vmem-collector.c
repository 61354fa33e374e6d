/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-collector.h"
#include "vmem-demand.h"
#include "vmem-error.h"
#include "vmem-log.h"

#include <string.h>

/* Seconds after a start during which host-side samples are not recorded. */
#define STARTUP_GRACE_S 120

struct _VmemCollector {
  VmemDaemon *daemon;
  guint       interval;
  guint       timer_id;
  gboolean    busy;
  guint       cycles;
};

void
vmem_balloon_stats_free (VmemBalloonStats *s)
{
  if (s == NULL)
    return;
  g_free (s->uuid);
  g_free (s->name);
  g_free (s);
}

guint64
vmem_collector_used_mib (const VmemBalloonStats *s, gint64 now, guint interval,
                         gboolean *guest_quality)
{
  gboolean fresh = s->has_guest && s->last_update > 0 &&
                   now - s->last_update <= 2 * (gint64) MAX (interval, 1) + 1;
  if (fresh && s->current_kib >= s->usable_kib)
    {
      *guest_quality = TRUE;
      return (s->current_kib - s->usable_kib) / 1024;
    }
  *guest_quality = FALSE;
  return s->rss_kib / 1024;
}

typedef struct {
  VmemCollector *c;
  GPtrArray *stats;       /* VmemBalloonStats */
  GPtrArray *want_period; /* uuids of managed domains to give a stats period */
} CollectJob;

static void
collect_job_free (CollectJob *j)
{
  g_clear_pointer (&j->stats, g_ptr_array_unref);
  g_clear_pointer (&j->want_period, g_ptr_array_unref);
  g_free (j);
}

static gpointer
collect_work (virConnectPtr conn, gpointer data, GError **error)
{
  CollectJob *j = data;
  virDomainStatsRecordPtr *records = NULL;

  int n = virConnectGetAllDomainStats (conn, VIR_DOMAIN_STATS_BALLOON | VIR_DOMAIN_STATS_VCPU,
                                       &records, VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE);
  if (n < 0)
    {
      vmem_virt_set_error (error, VMEM_ERROR_UNAVAILABLE, "cannot read domain statistics");
      return NULL;
    }
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_balloon_stats_free);
  for (int i = 0; i < n; i++)
    {
      VmemBalloonStats *s = g_new0 (VmemBalloonStats, 1);
      char uuid[VIR_UUID_STRING_BUFLEN];
      virDomainGetUUIDString (records[i]->dom, uuid);
      s->uuid = g_strdup (uuid);
      s->name = g_strdup (virDomainGetName (records[i]->dom));
      gboolean have_avail = FALSE, have_usable = FALSE;
      for (int k = 0; k < records[i]->nparams; k++)
        {
          virTypedParameterPtr p = &records[i]->params[k];
          guint64 v = p->type == VIR_TYPED_PARAM_ULLONG ? p->value.ul
                    : p->type == VIR_TYPED_PARAM_UINT   ? p->value.ui
                    : p->type == VIR_TYPED_PARAM_LLONG  ? (guint64) p->value.l
                                                        : 0;
          if (g_str_equal (p->field, "balloon.current"))
            s->current_kib = v;
          else if (g_str_equal (p->field, "balloon.maximum"))
            s->maximum_kib = v;
          else if (g_str_equal (p->field, "balloon.rss"))
            s->rss_kib = v;
          else if (g_str_equal (p->field, "balloon.available"))
            s->available_kib = v, have_avail = TRUE;
          else if (g_str_equal (p->field, "balloon.usable"))
            s->usable_kib = v, have_usable = TRUE;
          else if (g_str_equal (p->field, "balloon.unused"))
            s->unused_kib = v;
          else if (g_str_equal (p->field, "balloon.swap_in"))
            s->swap_in_kib = v;
          else if (g_str_equal (p->field, "balloon.major_fault"))
            s->major_fault = v;
          else if (g_str_equal (p->field, "balloon.last-update"))
            s->last_update = (gint64) v;
          else if (g_str_equal (p->field, "vcpu.current"))
            s->vcpus = (guint) v;
        }
      s->has_guest = have_avail && have_usable;
      g_ptr_array_add (out, s);
    }
  virDomainStatsRecordListFree (records);

  /* Guests report nothing until a stats period is set; set it where a
   * managed domain lacks one. */
  for (guint i = 0; j->want_period != NULL && i < j->want_period->len; i++)
    {
      g_autoptr(GError) local = NULL;
      g_autoptr(virDomain) dom = vmem_virt_lookup (conn, g_ptr_array_index (j->want_period, i), &local);
      if (dom != NULL && virDomainSetMemoryStatsPeriod (dom, 5, VIR_DOMAIN_AFFECT_LIVE) < 0)
        virResetLastError ();
    }
  return out;
}

static void
collect_done (gpointer result, const GError *error, gpointer data)
{
  CollectJob *j = data;
  VmemCollector *c = j->c;
  g_autoptr(GPtrArray) stats = result;
  VmemDaemon *daemon = c->daemon;

  c->busy = FALSE;
  if (error != NULL)
    {
      g_debug ("collector: %s", error->message);
      return;
    }

  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  g_autoptr(GArray) samples = g_array_new (FALSE, TRUE, sizeof (VmemSample));
  for (guint i = 0; i < stats->len; i++)
    {
      VmemBalloonStats *s = g_ptr_array_index (stats, i);
      VmemDomainEntry *e = g_hash_table_lookup (daemon->domains, s->uuid);
      if (e == NULL)
        continue;
      /* The cache's balloon size is what admission control counts. */
      if (s->current_kib > 0)
        e->info->current_mib = s->current_kib / 1024;
      const VmemProfile *p = vmem_daemon_profile_for (daemon, e->info);
      if (p == NULL)
        continue;
      gboolean guest = FALSE;
      guint64 used = vmem_collector_used_mib (s, now, c->interval, &guest);
      /* Until the guest's balloon driver reports, the host only sees QEMU's
       * RSS, which right after a preallocated boot is the whole <memory>,
       * not what the workload uses: give the guest a grace period. */
      if (!guest && (e->active_since == 0 ||
                     g_get_monotonic_time () - e->active_since < STARTUP_GRACE_S * G_USEC_PER_SEC))
        continue;
      VmemSample smp = {
        .uuid = e->info->uuid,
        .host = daemon->config->host_name,
        .workload = p->name,
        .t = now,
        .used_mib = used,
        .rss_mib = s->rss_kib / 1024,
        .current_mib = s->current_kib / 1024,
        .available_mib = s->available_kib / 1024,
        .usable_mib = s->usable_kib / 1024,
        .guest_quality = guest,
        .swap_in = s->swap_in_kib,
        .major_fault = s->major_fault,
        .vcpus = s->vcpus ? s->vcpus : e->info->vcpus,
      };
      g_array_append_val (samples, smp);
    }
  if (samples->len > 0)
    {
      g_autoptr(GError) local = NULL;
      if (!vmem_store_samples_add (daemon->store, (VmemSample *) samples->data, samples->len,
                                   &local))
        g_warning ("cannot record %u samples: %s", samples->len, local->message);
      else
        {
          /* Peers' new peaks may move the estimate of domains staged earlier. */
          g_autoptr(GHashTable) moved = g_hash_table_new (g_str_hash, g_str_equal);
          for (guint i = 0; i < samples->len; i++)
            {
              VmemSample *smp = &g_array_index (samples, VmemSample, i);
              VmemDomainEntry *e = g_hash_table_lookup (daemon->domains, smp->uuid);
              if (e == NULL)
                continue;
              vmem_demand_observe (daemon, e, smp);
              g_hash_table_add (moved, (gpointer) smp->workload);
            }
          GHashTableIter it;
          const char *w;
          g_hash_table_iter_init (&it, moved);
          while (g_hash_table_iter_next (&it, (gpointer *) &w, NULL))
            vmem_demand_restage_moved (daemon, w);
        }
    }

  /* Retention, once an hour's worth of cycles. */
  if (++c->cycles % MAX (1u, 3600 / MAX (c->interval, 1u)) == 1)
    {
      g_autoptr(GError) local = NULL;
      if (!vmem_store_prune (daemon->store, now, daemon->config->raw_retention_hours,
                             daemon->config->peak_retention_days, &local))
        g_warning ("cannot prune old samples: %s", local->message);
    }
}

static gboolean
tick (gpointer user_data)
{
  VmemCollector *c = user_data;
  VmemDaemon *daemon = c->daemon;

  if (c->busy || !vmem_virt_is_connected (daemon->virt))
    return G_SOURCE_CONTINUE;
  CollectJob *j = g_new0 (CollectJob, 1);
  j->c = c;
  j->want_period = g_ptr_array_new_with_free_func (g_free);
  GHashTableIter it;
  VmemDomainEntry *e;
  g_hash_table_iter_init (&it, daemon->domains);
  while (g_hash_table_iter_next (&it, NULL, (gpointer *) &e))
    if (e->info->active && !e->period_set && vmem_daemon_profile_for (daemon, e->info) != NULL)
      {
        g_ptr_array_add (j->want_period, g_strdup (e->info->uuid));
        e->period_set = TRUE;
      }
  c->busy = TRUE;
  vmem_virt_submit (daemon->virt, "collect", collect_work, collect_done, j,
                    (GDestroyNotify) collect_job_free, (GDestroyNotify) g_ptr_array_unref);
  return G_SOURCE_CONTINUE;
}

VmemCollector *
vmem_collector_new (VmemDaemon *daemon)
{
  VmemCollector *c = g_new0 (VmemCollector, 1);
  c->daemon = daemon;
  vmem_collector_set_interval (c, daemon->config->stats_interval);
  return c;
}

void
vmem_collector_set_interval (VmemCollector *c, guint seconds)
{
  if (c->interval == seconds && c->timer_id != 0)
    return;
  c->interval = MAX (seconds, 1u);
  g_clear_handle_id (&c->timer_id, g_source_remove);
  c->timer_id = g_timeout_add_seconds (c->interval, tick, c);
}

void
vmem_collector_free (VmemCollector *c)
{
  if (c == NULL)
    return;
  g_clear_handle_id (&c->timer_id, g_source_remove);
  g_free (c);
}
