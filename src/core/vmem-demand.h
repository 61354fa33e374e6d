/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Demand: per-workload estimator aggregates fed by per-domain peaks, and
 * the trackers that compute those peaks (DESIGN.md 4.3).  Pure: the daemon
 * loads the stored peaks into it, observes each new sample, writes the
 * peaks it hands back to the store as they are, and asks it for estimates;
 * the replay drives it the same way from a trace.
 *
 * Every sample updates its domain's hourly and daily peak; the hourly
 * peaks feed the workload's VmemWorkloadAgg, from which an estimate is
 * computed (vmem_estimator_estimate()).  Daily peaks are kept for the store
 * and for references that want them; the estimate does not read them. */

#include <glib.h>

#include "vmem-estimator.h"
#include "vmem-peaks.h"
#include "vmem-profile.h"

G_BEGIN_DECLS

typedef struct _VmemDemand VmemDemand;

/* Validates @config; the estimates use it. */
VmemDemand *vmem_demand_new (const VmemEstimatorConfig *config, GError **error);
void        vmem_demand_free (VmemDemand *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemDemand, vmem_demand_free)

/* Drops everything, aggregates and peaks being tracked (e.g. when the
 * estimator settings change), and replaces the config.  An invalid
 * @config changes nothing. */
gboolean vmem_demand_reset (VmemDemand *d, const VmemEstimatorConfig *config, GError **error);

/* A stored peak of a domain of @workload, loaded at start: an hourly one
 * (interval_s VMEM_PEAK_HOUR) joins the workload's aggregate; hourly and
 * daily ones (VMEM_PEAK_DAY) seed the trackers, so that later samples of
 * the same interval only raise them.  Peaks may come in any order, each
 * once.  Any other interval, a start_t that is not the start of one, or a
 * bad peak is VMEM_ERROR_INVALID_ARGUMENT and changes nothing. */
gboolean vmem_demand_load_peak (VmemDemand        *d,
                                const char        *workload,
                                const VmemPeakObs *peak,
                                GError           **error);

/* One new sample of a domain of @workload: raises its pending outcome's
 * peak (a squeezed sample marks it censored), updates its hourly and daily
 * peaks, feeds the hourly one into the workload's aggregate, and copies
 * both updated peaks into out[0] (hour) and out[1] (day) for the store to
 * write as they are.  Their strings point into @d and stay valid until the
 * next call for that uuid, forget or reset.  A sample of an earlier hour
 * or day than the domain's tracked peak, or a bad one, is
 * VMEM_ERROR_INVALID_ARGUMENT and changes nothing. */
gboolean vmem_demand_observe (VmemDemand           *d,
                              const char           *workload,
                              const VmemPeakSample *s,
                              VmemPeakObs           out[2],
                              GError              **error);

/* The estimate for @target of @workload at @now (@profile may be NULL):
 * vmem_estimator_estimate() on the workload's aggregate, with the margin
 * calibrated on the outcomes complete at @now (settled first).  A workload with
 * no peaks yet gets the estimate of an empty one (the profile's demand or
 * the fallback). */
VmemEstimate *vmem_demand_estimate (VmemDemand               *d,
                                    const char               *workload,
                                    const VmemProfile        *profile,
                                    const VmemEstimateTarget *target,
                                    gint64                    now,
                                    GError                  **error);

/* The same through vmem_estimator_estimate_direct(): the reference the
 * cached path is tested and measured against. */
VmemEstimate *vmem_demand_estimate_direct (VmemDemand               *d,
                                           const char               *workload,
                                           const VmemProfile        *profile,
                                           const VmemEstimateTarget *target,
                                           gint64                    now,
                                           GError                  **error);

/* A domain's <memory> in MiB (0 = unknown), by which its peers compare
 * their levels with its own (vmem-estimator.h). */
void vmem_demand_set_memory (VmemDemand *d,
                             const char *workload,
                             const char *uuid,
                             double      memory_mib);

/* One checked estimate: what a start was given against what it then used. */
typedef struct {
  const char    *uuid;
  const char    *workload;
  VmemStartKind  kind;
  gint64         start_t;    /* the start */
  gint64         end_t;      /* 24 h later, or when the run ended */
  double         base_mib;   /* the estimate before its margin */
  double         given_mib;  /* the estimate */
  double         risk;       /* the target it was calibrated to, 0..1 */
  double         peak_mib;   /* the highest used memory seen in between */
  gboolean       censored;   /* squeezed in between: the need was at least what it had */
} VmemOutcome;

#define VMEM_OUTCOME_SPAN (24 * 3600)

/* A start of @uuid at @t sized by @estimate: its outcome is its peak over
 * the next VMEM_OUTCOME_SPAN or until its run stops, whichever is first,
 * learnt by the calibration once complete.  An estimate without a base
 * (a fallback) is not checked: returns TRUE and tracks nothing.  A start
 * replaces a pending one of the same domain, which is completed first. */
gboolean vmem_demand_start (VmemDemand         *d,
                            const char         *workload,
                            const char         *uuid,
                            const VmemEstimate *estimate,
                            gint64              t,
                            GError            **error);
/* The run of @uuid ended at @t: its pending outcome is complete (it is
 * dropped when no sample was seen). */
void     vmem_demand_stop (VmemDemand *d, const char *uuid, gint64 t);
/* Completes the outcomes whose span is over at @now.  Returns how many. */
guint    vmem_demand_settle (VmemDemand *d, gint64 now);
/* Outcomes completed since the last call (for the store), oldest first;
 * free with g_array_unref(); their strings stay valid until then. */
GArray  *vmem_demand_take_outcomes (VmemDemand *d);
/* A stored outcome, loaded at start, for the calibration.  A bad one is
 * VMEM_ERROR_INVALID_ARGUMENT and changes nothing. */
gboolean vmem_demand_load_outcome (VmemDemand *d, const VmemOutcome *o, GError **error);
/* The calibration the estimates use. */
const VmemCalibration *vmem_demand_calibration (VmemDemand *d);

/* Forgets a domain (undefined): its history in every workload's aggregate
 * and the peaks tracked for it. */
void  vmem_demand_forget_domain (VmemDemand *d, const char *uuid);
/* Forgets a workload's aggregate (its profile was removed).  The peaks
 * tracked for its domains stay: they are the domains' own. */
void  vmem_demand_forget_workload (VmemDemand *d, const char *workload);
/* Workloads with an aggregate. */
guint vmem_demand_n_workloads (VmemDemand *d);

G_END_DECLS
