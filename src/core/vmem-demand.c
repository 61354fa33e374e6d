/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-demand.h"
#include "vmem-error.h"

#include <math.h>
#include <string.h>

/* A start whose outcome is not complete yet. */
typedef struct {
  char          *uuid;
  char          *workload;
  VmemStartKind  kind;
  gint64         start_t;
  gint64         end_t;      /* when complete */
  double         base_mib;
  double         given_mib;
  double         risk;
  double         peak_mib;
  gboolean       seen;
  gboolean       censored;
} Pending;

struct _VmemDemand {
  VmemEstimatorConfig config;
  GHashTable         *workloads; /* name -> VmemWorkloadAgg */
  GHashTable         *memory;    /* uuid -> double * (<memory> in MiB) */
  VmemPeakTracker    *hours;
  VmemPeakTracker    *days;
  VmemCalibration    *cal;
  GHashTable         *pending;   /* uuid -> Pending */
  GPtrArray          *done;      /* Pending, completed, for take_outcomes */
};

static void
pending_free (gpointer data)
{
  Pending *p = data;
  g_free (p->uuid);
  g_free (p->workload);
  g_free (p);
}

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
  d->memory = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  d->cal = vmem_calibration_new (config->calibration_window, config->calibration_min,
                                 config->calibration_step, config->calibration_delta);
  d->pending = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, pending_free);
  d->done = g_ptr_array_new_with_free_func (pending_free);
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
  g_hash_table_destroy (d->memory);
  vmem_calibration_free (d->cal);
  g_hash_table_destroy (d->pending);
  g_ptr_array_unref (d->done);
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
  /* The outcomes were measured against the old settings' estimates. */
  vmem_calibration_free (d->cal);
  d->cal = vmem_calibration_new (config->calibration_window, config->calibration_min,
                                 config->calibration_step, config->calibration_delta);
  g_hash_table_remove_all (d->pending);
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

static int
pending_cmp (gconstpointer a, gconstpointer b)
{
  const Pending *x = *(Pending *const *) a, *y = *(Pending *const *) b;
  if (x->start_t != y->start_t)
    return (x->start_t > y->start_t) - (x->start_t < y->start_t);
  return strcmp (x->uuid, y->uuid);
}

static void
outcome_clear (gpointer data)
{
  VmemOutcome *o = data;
  g_free ((char *) o->uuid);
  g_free ((char *) o->workload);
}

/* A peak joins its workload's aggregate with the domain's <memory>. */
static gboolean
agg_add (VmemDemand *d, const char *workload, const VmemPeakObs *obs, GError **error)
{
  VmemWorkloadAgg *agg = agg_for (d, workload);
  if (!vmem_workload_agg_add (agg, obs, error))
    return FALSE;
  const double *mem = g_hash_table_lookup (d->memory, obs->uuid);
  if (mem != NULL)
    vmem_workload_agg_set_memory (agg, obs->uuid, *mem);
  return TRUE;
}

void
vmem_demand_set_memory (VmemDemand *d, const char *workload, const char *uuid, double memory_mib)
{
  g_return_if_fail (d != NULL);

  if (uuid == NULL || *uuid == '\0' || !isfinite (memory_mib) || memory_mib < 0)
    return;
  g_hash_table_insert (d->memory, g_strdup (uuid), g_memdup2 (&memory_mib, sizeof memory_mib));
  if (workload != NULL && *workload != '\0')
    vmem_workload_agg_set_memory (agg_for (d, workload), uuid, memory_mib);
}

/* Learns a complete outcome; a start that saw no sample teaches nothing. */
static void
complete (VmemDemand *d, Pending *p, gint64 end_t)
{
  if (!p->seen || p->base_mib <= 0)
    {
      pending_free (p);
      return;
    }
  double need = p->peak_mib;
  /* Squeezed, the guest used all it had and wanted more: its need is
   * censored at what it was given, so it counts as under-provisioned. */
  gboolean under = p->censored || need > p->given_mib + 1e-9;
  if (p->censored)
    need = MAX (need, p->given_mib * (1.0 + 1e-6));
  vmem_calibration_add (d->cal, p->workload, p->kind, need / p->base_mib, under, p->risk, NULL);
  p->end_t = end_t;
  g_ptr_array_add (d->done, p);
}

gboolean
vmem_demand_start (VmemDemand *d, const char *workload, const char *uuid,
                   const VmemEstimate *e, gint64 t, GError **error)
{
  g_return_val_if_fail (d != NULL && e != NULL, FALSE);

  if (!check_workload (workload, error))
    return FALSE;
  if (uuid == NULL || *uuid == '\0')
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "uuid: must be set");
      return FALSE;
    }
  vmem_demand_stop (d, uuid, t);
  if ((e->source != VMEM_SOURCE_OWN && e->source != VMEM_SOURCE_PEERS) || e->base_mib <= 0)
    return TRUE;
  Pending *p = g_new0 (Pending, 1);
  p->uuid = g_strdup (uuid);
  p->workload = g_strdup (workload);
  p->kind = e->kind;
  p->start_t = t;
  p->base_mib = e->base_mib;
  p->given_mib = e->value_mib;
  p->risk = e->calibration.risk;
  g_hash_table_insert (d->pending, p->uuid, p);
  return TRUE;
}

void
vmem_demand_stop (VmemDemand *d, const char *uuid, gint64 t)
{
  g_return_if_fail (d != NULL);

  gpointer key = NULL, value = NULL;
  if (uuid == NULL || !g_hash_table_lookup_extended (d->pending, uuid, &key, &value))
    return;
  g_hash_table_steal (d->pending, uuid);
  Pending *p = value;
  complete (d, p, MIN (t, p->start_t + VMEM_OUTCOME_SPAN));
}

guint
vmem_demand_settle (VmemDemand *d, gint64 now)
{
  g_return_val_if_fail (d != NULL, 0);

  g_autoptr(GPtrArray) due = g_ptr_array_new ();
  GHashTableIter iter;
  gpointer value;
  g_hash_table_iter_init (&iter, d->pending);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Pending *p = value;
      if (now >= p->start_t + VMEM_OUTCOME_SPAN)
        {
          g_hash_table_iter_steal (&iter);
          g_ptr_array_add (due, p);
        }
    }
  /* In start order, so that the calibration's window is the same
   * whatever order the table keeps. */
  g_ptr_array_sort (due, pending_cmp);
  for (guint i = 0; i < due->len; i++)
    {
      Pending *p = g_ptr_array_index (due, i);
      complete (d, p, p->start_t + VMEM_OUTCOME_SPAN);
    }
  return due->len;
}

GArray *
vmem_demand_take_outcomes (VmemDemand *d)
{
  g_return_val_if_fail (d != NULL, NULL);

  GArray *out = g_array_sized_new (FALSE, FALSE, sizeof (VmemOutcome), d->done->len);
  /* The strings move to the array, freed with it. */
  g_array_set_clear_func (out, outcome_clear);
  for (guint i = 0; i < d->done->len; i++)
    {
      Pending *p = g_ptr_array_index (d->done, i);
      VmemOutcome o = {
        .uuid = g_steal_pointer (&p->uuid),
        .workload = g_steal_pointer (&p->workload),
        .kind = p->kind,
        .start_t = p->start_t,
        .end_t = p->end_t,
        .base_mib = p->base_mib,
        .given_mib = p->given_mib,
        .risk = p->risk,
        .peak_mib = p->peak_mib,
        .censored = p->censored,
      };
      g_array_append_val (out, o);
    }
  g_ptr_array_set_size (d->done, 0);
  return out;
}

gboolean
vmem_demand_load_outcome (VmemDemand *d, const VmemOutcome *o, GError **error)
{
  g_return_val_if_fail (d != NULL && o != NULL, FALSE);

  if (!check_workload (o->workload, error))
    return FALSE;
  if (!isfinite (o->base_mib) || o->base_mib <= 0 || !isfinite (o->peak_mib) ||
      o->peak_mib < 0 || !isfinite (o->given_mib) || o->given_mib < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "outcome: base %g, given %g and peak %g MiB are not sizes", o->base_mib,
                   o->given_mib, o->peak_mib);
      return FALSE;
    }
  gboolean under = o->censored || o->peak_mib > o->given_mib + 1e-9;
  return vmem_calibration_add (d->cal, o->workload, o->kind, o->peak_mib / o->base_mib, under,
                               o->risk, error);
}

const VmemCalibration *
vmem_demand_calibration (VmemDemand *d)
{
  g_return_val_if_fail (d != NULL, NULL);

  return d->cal;
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
  return agg_add (d, workload, feed, error);
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
  Pending *p = g_hash_table_lookup (d->pending, s->uuid);
  if (p != NULL && s->t >= p->start_t && s->t < p->start_t + VMEM_OUTCOME_SPAN)
    {
      p->peak_mib = p->seen ? MAX (p->peak_mib, s->used_mib) : s->used_mib;
      p->seen = TRUE;
      p->censored |= s->squeezed;
    }
  return agg_add (d, workload, &out[0], error);
}

VmemEstimate *
vmem_demand_estimate (VmemDemand *d, const char *workload, const VmemProfile *profile,
                      const VmemEstimateTarget *target, gint64 now, GError **error)
{
  g_return_val_if_fail (d != NULL && target != NULL, NULL);

  if (!check_workload (workload, error))
    return NULL;
  vmem_demand_settle (d, now);
  VmemEstimateTarget t = *target;
  t.workload = workload;
  VmemWorkloadAgg *agg = g_hash_table_lookup (d->workloads, workload);
  if (agg != NULL)
    return vmem_estimator_estimate (agg, d->cal, &d->config, profile, &t, now, error);
  g_autoptr(VmemWorkloadAgg) empty = vmem_workload_agg_new (&d->config, NULL);
  return vmem_estimator_estimate (empty, d->cal, &d->config, profile, &t, now, error);
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
  g_hash_table_remove (d->memory, uuid);
  g_hash_table_remove (d->pending, uuid);
}

void
vmem_demand_forget_workload (VmemDemand *d, const char *workload)
{
  g_return_if_fail (d != NULL);

  if (workload != NULL)
    {
      g_hash_table_remove (d->workloads, workload);
      vmem_calibration_forget_workload (d->cal, workload);
    }
}

guint
vmem_demand_n_workloads (VmemDemand *d)
{
  g_return_val_if_fail (d != NULL, 0);

  return g_hash_table_size (d->workloads);
}
