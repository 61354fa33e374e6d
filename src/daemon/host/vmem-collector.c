/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-collector.h"
#include "vmem-error.h"

#include <string.h>

struct _VmemCollector {
  VmemVirt              *virt;
  VmemCollectorCallbacks callbacks;
  gpointer               user_data;
  guint                  interval;
  guint                  timer_id;
  gboolean               busy;
  gint64                 cycle_started; /* monotonic µs */
  VmemStatsSourceFunc    source;        /* NULL: libvirt */
  gpointer               source_data;
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
                   now - s->last_update <=
                     2 * (gint64) MAX (interval, VMEM_COLLECTOR_STATS_PERIOD_S) + 1;
  if (fresh && s->current_kib >= s->usable_kib)
    {
      *guest_quality = TRUE;
      return (s->current_kib - s->usable_kib) / 1024;
    }
  *guest_quality = FALSE;
  return s->rss_kib / 1024;
}

gboolean
vmem_collector_keep_sample (gboolean guest_quality, gint64 active_since, gint64 now)
{
  if (guest_quality)
    return TRUE;
  return active_since > 0 && now - active_since >= VMEM_COLLECTOR_STARTUP_GRACE_S * G_USEC_PER_SEC;
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
      if (dom != NULL && virDomainSetMemoryStatsPeriod (dom, VMEM_COLLECTOR_STATS_PERIOD_S, VIR_DOMAIN_AFFECT_LIVE) < 0)
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

  c->busy = FALSE;
  if (error != NULL)
    {
      if (c->callbacks.failed != NULL)
        c->callbacks.failed (error, c->user_data);
      return;
    }
  if (c->callbacks.collected != NULL)
    c->callbacks.collected (stats, g_get_real_time () / G_USEC_PER_SEC, c->user_data);
}

/* A cycle from the source set in place of libvirt: read and handed up at
 * once, on the main context. */
static void
cycle_from_source (VmemCollector *c)
{
  g_autoptr(GError) error = NULL;
  gint64 now = 0;

  c->busy = TRUE;
  c->cycle_started = g_get_monotonic_time ();
  g_autoptr(GPtrArray) stats = c->source (&now, c->source_data, &error);
  c->busy = FALSE;
  if (stats == NULL)
    {
      if (error == NULL)
        g_set_error (&error, VMEM_ERROR, VMEM_ERROR_FAILED, "the statistics source gave nothing");
      if (c->callbacks.failed != NULL)
        c->callbacks.failed (error, c->user_data);
      return;
    }
  if (c->callbacks.collected != NULL)
    c->callbacks.collected (stats, now, c->user_data);
}

gboolean
vmem_collector_cycle_now (VmemCollector *c)
{
  if (c->busy || !vmem_virt_is_connected (c->virt))
    return FALSE;
  if (c->source != NULL)
    {
      cycle_from_source (c);
      return TRUE;
    }
  CollectJob *j = g_new0 (CollectJob, 1);
  j->c = c;
  if (c->callbacks.want_period != NULL)
    j->want_period = c->callbacks.want_period (c->user_data);
  c->busy = TRUE;
  c->cycle_started = g_get_monotonic_time ();
  vmem_virt_submit (c->virt, "collect", "collect", collect_work, collect_done, j,
                    (GDestroyNotify) collect_job_free, (GDestroyNotify) g_ptr_array_unref);
  return TRUE;
}

static gboolean
tick (gpointer user_data)
{
  vmem_collector_cycle_now (user_data);
  return G_SOURCE_CONTINUE;
}

void
vmem_collector_set_source (VmemCollector *c, VmemStatsSourceFunc source, gpointer data)
{
  c->source = source;
  c->source_data = data;
}

VmemCollector *
vmem_collector_new (VmemVirt *virt, guint interval, const VmemCollectorCallbacks *callbacks,
                    gpointer user_data)
{
  VmemCollector *c = g_new0 (VmemCollector, 1);
  c->virt = virt;
  if (callbacks != NULL)
    c->callbacks = *callbacks;
  c->user_data = user_data;
  vmem_collector_set_interval (c, interval);
  return c;
}

guint
vmem_collector_get_interval (VmemCollector *c)
{
  return c->interval;
}

gint64
vmem_collector_cycle_started (VmemCollector *c)
{
  return c->cycle_started;
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
