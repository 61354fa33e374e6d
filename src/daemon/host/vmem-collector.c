/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-collector.h"
#include "vmem-error.h"

#include <gio/gio.h>
#include <string.h>

struct _VmemCollector {
  VmemVirt              *virt;
  VmemCollectorCallbacks callbacks;
  gpointer               user_data;
  guint                  interval;
  guint                  timer_id;
  gboolean               busy;          /* the statistics call is out */
  guint64                skipped;
  gint64                 cycle_started; /* monotonic µs */
  VmemStatsSourceFunc    source;        /* NULL: libvirt */
  gpointer               source_data;
  struct SourceJob      *source_job;    /* the source's read in flight */
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

/* A cycle from the source set in place of libvirt: read on a thread of its
 * own, as libvirt's call is read on the libvirt worker, and handed up on
 * the main context. */
typedef struct SourceJob {
  VmemCollector      *c; /* NULL once the collector is freed */
  VmemStatsSourceFunc source;
  gpointer            data;
  gint64              now;
} SourceJob;

static void
source_thread (GTask *task, gpointer object, gpointer task_data, GCancellable *cancellable)
{
  SourceJob *j = task_data;
  GError *error = NULL;
  GPtrArray *stats = j->source (&j->now, j->data, &error);
  if (stats == NULL)
    {
      if (error == NULL)
        g_set_error (&error, VMEM_ERROR, VMEM_ERROR_FAILED, "the statistics source gave nothing");
      g_task_return_error (task, error);
    }
  else
    g_task_return_pointer (task, stats, (GDestroyNotify) g_ptr_array_unref);
}

static void
source_done (GObject *object, GAsyncResult *result, gpointer user_data)
{
  SourceJob *j = g_task_get_task_data (G_TASK (result));
  VmemCollector *c = j->c;
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) stats = g_task_propagate_pointer (G_TASK (result), &error);

  if (c == NULL)
    return;
  c->source_job = NULL;
  c->busy = FALSE;
  if (stats == NULL)
    {
      if (c->callbacks.failed != NULL)
        c->callbacks.failed (error, c->user_data);
      return;
    }
  if (c->callbacks.collected != NULL)
    c->callbacks.collected (stats, j->now, c->user_data);
}

static void
cycle_from_source (VmemCollector *c)
{
  SourceJob *j = g_new0 (SourceJob, 1);
  j->c = c;
  j->source = c->source;
  j->data = c->source_data;
  c->busy = TRUE;
  c->cycle_started = g_get_monotonic_time ();
  c->source_job = j;
  g_autoptr(GTask) task = g_task_new (NULL, NULL, source_done, NULL);
  g_task_set_task_data (task, j, g_free);
  g_task_run_in_thread (task, source_thread);
}

gboolean
vmem_collector_is_busy (VmemCollector *c)
{
  return c->busy || (c->callbacks.handling != NULL && c->callbacks.handling (c->user_data));
}

guint64
vmem_collector_skipped (VmemCollector *c)
{
  return c->skipped;
}

gboolean
vmem_collector_cycle_now (VmemCollector *c)
{
  if (vmem_collector_is_busy (c) || !vmem_virt_is_connected (c->virt))
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
  VmemCollector *c = user_data;
  if (vmem_collector_is_busy (c))
    c->skipped++;
  else
    vmem_collector_cycle_now (c);
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
  /* A source's read still in flight ends without it. */
  if (c->source_job != NULL)
    c->source_job->c = NULL;
  g_free (c);
}
