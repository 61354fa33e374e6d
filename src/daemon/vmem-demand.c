/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-demand.h"
#include "vmem-error.h"
#include "vmem-stager.h"

#include <math.h>

static void
estimator_config (const VmemConfig *c, VmemEstimatorConfig *ec)
{
  vmem_estimator_config_init (ec);
  ec->half_life_hours = c->half_life_hours;
  ec->quantile = c->quantile;
  ec->margin_pct = c->margin_pct;
  ec->min_peers = c->min_peers;
  ec->min_history_hours = c->min_history_hours;
}

void
vmem_demand_init (VmemDaemon *daemon)
{
  daemon->aggs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                        (GDestroyNotify) vmem_workload_agg_free);
}

void
vmem_demand_clear (VmemDaemon *daemon)
{
  g_clear_pointer (&daemon->aggs, g_hash_table_unref);
}

static VmemWorkloadAgg *
agg_for (VmemDaemon *daemon, const char *workload)
{
  VmemWorkloadAgg *agg = g_hash_table_lookup (daemon->aggs, workload);
  if (agg == NULL)
    {
      VmemEstimatorConfig ec;
      estimator_config (daemon->config, &ec);
      agg = vmem_workload_agg_new (&ec, NULL);
      if (agg == NULL)
        return NULL;
      g_hash_table_insert (daemon->aggs, g_strdup (workload), agg);
    }
  return agg;
}

void
vmem_demand_load (VmemDaemon *daemon)
{
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  gint64 since = now - (gint64) daemon->config->peak_retention_days * 86400;
  GHashTableIter it;
  const char *name;
  guint total = 0;

  g_hash_table_remove_all (daemon->aggs);
  g_hash_table_iter_init (&it, daemon->profiles);
  while (g_hash_table_iter_next (&it, (gpointer *) &name, NULL))
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GPtrArray) peaks = vmem_store_peaks_for_workload (daemon->store, name, VMEM_STORE_HOUR,
                                                                  since, &error);
      if (peaks == NULL)
        {
          g_warning ("cannot load the peaks of workload %s: %s", name, error->message);
          continue;
        }
      VmemWorkloadAgg *agg = agg_for (daemon, name);
      for (guint i = 0; agg != NULL && i < peaks->len; i++)
        {
          VmemPeak *p = g_ptr_array_index (peaks, i);
          VmemPeakObs obs = {
            .uuid = p->uuid,
            .domain = p->domain,
            .host = p->host,
            .start_t = p->start_t,
            .interval_s = VMEM_STORE_HOUR,
            .peak_mib = (double) p->peak_mib,
            .samples = p->samples,
            .guest_samples = p->guest_samples,
            .vcpus = p->vcpus,
          };
          if (vmem_workload_agg_add (agg, &obs, NULL))
            total++;
        }
    }
  g_info ("estimator: %u hourly peaks loaded for %u workloads", total,
          g_hash_table_size (daemon->aggs));
}

void
vmem_demand_observe (VmemDaemon *daemon, VmemDomainEntry *e, const VmemSample *s)
{
  gint64 start = s->t - s->t % VMEM_STORE_HOUR;
  if (e->hour_start != start)
    {
      e->hour_start = start;
      e->hour_peak = 0;
      e->hour_samples = e->hour_guest = 0;
    }
  e->hour_peak = MAX (e->hour_peak, s->used_mib);
  e->hour_samples++;
  e->hour_guest += s->guest_quality ? 1 : 0;

  VmemWorkloadAgg *agg = agg_for (daemon, s->workload);
  if (agg == NULL)
    return;
  VmemPeakObs obs = {
    .uuid = e->info->uuid,
    .domain = e->info->name,
    .host = daemon->config->host_name,
    .start_t = start,
    .interval_s = VMEM_STORE_HOUR,
    .peak_mib = (double) e->hour_peak,
    .samples = e->hour_samples,
    .guest_samples = e->hour_guest,
    .vcpus = s->vcpus,
  };
  g_autoptr(GError) error = NULL;
  if (!vmem_workload_agg_add (agg, &obs, &error))
    g_debug ("estimator: %s", error->message);
}

VmemEstimate *
vmem_demand_estimate (VmemDaemon *daemon, const VmemVirtDomain *d, const VmemProfile *profile,
                      GError **error)
{
  VmemEstimatorConfig ec;
  estimator_config (daemon->config, &ec);
  VmemWorkloadAgg *agg = agg_for (daemon, profile->name);
  if (agg == NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_CONFIG, "invalid estimator settings");
      return NULL;
    }
  VmemEstimateTarget target = {
    .uuid = d->uuid,
    .exclude_self = FALSE,
    .vcpus = d->vcpus,
    .memory_mib = (double) d->memory_mib,
  };
  return vmem_estimator_estimate (agg, &ec, profile, &target, g_get_real_time () / G_USEC_PER_SEC,
                                  error);
}

void
vmem_demand_restage_moved (VmemDaemon *daemon, const char *workload)
{
  const VmemConfig *c = daemon->config;
  GHashTableIter it;
  const char *uuid;
  VmemDomainEntry *e;

  g_hash_table_iter_init (&it, daemon->domains);
  while (g_hash_table_iter_next (&it, (gpointer *) &uuid, (gpointer *) &e))
    {
      if (e->info->active || e->starting || e->staged_mib == 0)
        continue;
      const VmemProfile *p = vmem_daemon_profile_for (daemon, e->info);
      if (p == NULL || g_strcmp0 (p->name, workload) != 0)
        continue;
      g_autoptr(VmemStagedPlan) sp = vmem_stager_plan (daemon, e->info);
      if (sp == NULL)
        continue;
      double moved = fabs ((double) sp->plan.demand_mib - (double) e->staged_mib);
      /* Both thresholds: small domains do not flap on a few MiB, large ones
       * not on a few per cent. */
      if (moved > c->hysteresis_mib && moved > (double) e->staged_mib * c->hysteresis_pct / 100.0)
        vmem_stager_stage (daemon, uuid, "estimate moved");
    }
}
