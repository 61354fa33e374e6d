/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-demand.h"
#include "vmem-error.h"

#include <math.h>

struct _VmemDemand {
  VmemEstimatorConfig config;
  GHashTable         *workloads; /* name -> VmemWorkloadAgg */
  VmemPeakTracker    *hours;
  VmemPeakTracker    *days;
};

VmemDemand *
vmem_demand_new (const VmemEstimatorConfig *config, GError **error)
{
  g_return_val_if_fail (config != NULL, NULL);

  if (!vmem_estimator_config_validate (config, error))
    return NULL;
  VmemDemand *d = g_new0 (VmemDemand, 1);
  d->config = *config;
  d->workloads = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                        (GDestroyNotify) vmem_workload_agg_free);
  d->hours = vmem_peak_tracker_new (VMEM_PEAK_HOUR);
  d->days = vmem_peak_tracker_new (VMEM_PEAK_DAY);
  return d;
}

void
vmem_demand_free (VmemDemand *d)
{
  if (d == NULL)
    return;
  g_hash_table_destroy (d->workloads);
  vmem_peak_tracker_free (d->hours);
  vmem_peak_tracker_free (d->days);
  g_free (d);
}

gboolean
vmem_demand_reset (VmemDemand *d, const VmemEstimatorConfig *config, GError **error)
{
  g_return_val_if_fail (d != NULL && config != NULL, FALSE);

  if (!vmem_estimator_config_validate (config, error))
    return FALSE;
  d->config = *config;
  g_hash_table_remove_all (d->workloads);
  vmem_peak_tracker_free (d->hours);
  vmem_peak_tracker_free (d->days);
  d->hours = vmem_peak_tracker_new (VMEM_PEAK_HOUR);
  d->days = vmem_peak_tracker_new (VMEM_PEAK_DAY);
  return TRUE;
}

static gboolean
check_workload (const char *workload, GError **error)
{
  if (workload == NULL || *workload == '\0')
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "workload: must be set");
      return FALSE;
    }
  return TRUE;
}

/* The config was validated: creating an aggregate cannot fail. */
static VmemWorkloadAgg *
agg_for (VmemDemand *d, const char *workload)
{
  VmemWorkloadAgg *agg = g_hash_table_lookup (d->workloads, workload);
  if (agg == NULL)
    {
      agg = vmem_workload_agg_new (&d->config, NULL);
      g_hash_table_insert (d->workloads, g_strdup (workload), agg);
    }
  return agg;
}

gboolean
vmem_demand_load_peak (VmemDemand *d, const char *workload, const VmemPeakObs *peak,
                       GError **error)
{
  g_return_val_if_fail (d != NULL && peak != NULL, FALSE);

  if (!check_workload (workload, error))
    return FALSE;
  if (peak->interval_s != VMEM_PEAK_HOUR && peak->interval_s != VMEM_PEAK_DAY)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "interval_s: %u is neither an hour (%u) nor a day (%u)", peak->interval_s,
                   VMEM_PEAK_HOUR, VMEM_PEAK_DAY);
      return FALSE;
    }
  if (vmem_peak_start (peak->start_t, peak->interval_s) != peak->start_t)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "start_t: %" G_GINT64_FORMAT " is not the start of an interval of %u s",
                   peak->start_t, peak->interval_s);
      return FALSE;
    }
  if (peak->uuid == NULL || *peak->uuid == '\0')
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "uuid: must be set");
      return FALSE;
    }
  if (!isfinite (peak->peak_mib) || peak->peak_mib < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "peak_mib: %g is not a size", peak->peak_mib);
      return FALSE;
    }
  if (peak->guest_samples > peak->samples)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "guest_samples: %u is more than samples %u", peak->guest_samples,
                   peak->samples);
      return FALSE;
    }

  if (peak->interval_s == VMEM_PEAK_DAY)
    {
      vmem_peak_tracker_seed (d->days, peak);
      return TRUE;
    }

  /* The aggregate gets the peak of the interval being tracked when it is
   * this one: never less than what was stored, nor than what was seen. */
  vmem_peak_tracker_seed (d->hours, peak);
  VmemPeakObs tracked;
  const VmemPeakObs *feed = peak;
  if (vmem_peak_tracker_lookup (d->hours, peak->uuid, &tracked) &&
      tracked.start_t == peak->start_t)
    feed = &tracked;
  return vmem_workload_agg_add (agg_for (d, workload), feed, error);
}

gboolean
vmem_demand_observe (VmemDemand *d, const char *workload, const VmemPeakSample *s,
                     VmemPeakObs out[2], GError **error)
{
  g_return_val_if_fail (d != NULL && s != NULL && out != NULL, FALSE);

  if (!check_workload (workload, error))
    return FALSE;
  /* The hourly tracker checks the sample and its hour and changes nothing
   * when it refuses; the day is checked first so that nothing changes
   * either when only the day is out of order. */
  VmemPeakObs day;
  if (s->uuid != NULL && vmem_peak_tracker_lookup (d->days, s->uuid, &day) &&
      vmem_peak_start (s->t, VMEM_PEAK_DAY) < day.start_t)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "t: %" G_GINT64_FORMAT " is in an earlier day than the daily peak of %s "
                   "being tracked (from %" G_GINT64_FORMAT ")", s->t, s->uuid, day.start_t);
      return FALSE;
    }
  if (!vmem_peak_tracker_add (d->hours, s, &out[0], error))
    return FALSE;
  if (!vmem_peak_tracker_add (d->days, s, &out[1], error))
    g_return_val_if_reached (FALSE);
  return vmem_workload_agg_add (agg_for (d, workload), &out[0], error);
}

VmemEstimate *
vmem_demand_estimate (VmemDemand *d, const char *workload, const VmemProfile *profile,
                      const VmemEstimateTarget *target, gint64 now, GError **error)
{
  g_return_val_if_fail (d != NULL && target != NULL, NULL);

  if (!check_workload (workload, error))
    return NULL;
  VmemWorkloadAgg *agg = g_hash_table_lookup (d->workloads, workload);
  if (agg != NULL)
    return vmem_estimator_estimate (agg, &d->config, profile, target, now, error);
  g_autoptr(VmemWorkloadAgg) empty = vmem_workload_agg_new (&d->config, NULL);
  return vmem_estimator_estimate (empty, &d->config, profile, target, now, error);
}

void
vmem_demand_forget_domain (VmemDemand *d, const char *uuid)
{
  g_return_if_fail (d != NULL);

  if (uuid == NULL)
    return;
  GHashTableIter iter;
  gpointer agg;
  g_hash_table_iter_init (&iter, d->workloads);
  while (g_hash_table_iter_next (&iter, NULL, &agg))
    vmem_workload_agg_remove_peer (agg, uuid);
  vmem_peak_tracker_forget (d->hours, uuid);
  vmem_peak_tracker_forget (d->days, uuid);
}

void
vmem_demand_forget_workload (VmemDemand *d, const char *workload)
{
  g_return_if_fail (d != NULL);

  if (workload != NULL)
    g_hash_table_remove (d->workloads, workload);
}

guint
vmem_demand_n_workloads (VmemDemand *d)
{
  g_return_val_if_fail (d != NULL, 0);

  return g_hash_table_size (d->workloads);
}
