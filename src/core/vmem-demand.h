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

/* One new sample of a domain of @workload: updates its hourly and daily
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
 * vmem_estimator_estimate() on the workload's aggregate.  A workload with
 * no peaks yet gets the estimate of an empty one (the profile's demand or
 * the fallback). */
VmemEstimate *vmem_demand_estimate (VmemDemand               *d,
                                    const char               *workload,
                                    const VmemProfile        *profile,
                                    const VmemEstimateTarget *target,
                                    gint64                    now,
                                    GError                  **error);

/* Forgets a domain (undefined): its history in every workload's aggregate
 * and the peaks tracked for it. */
void  vmem_demand_forget_domain (VmemDemand *d, const char *uuid);
/* Forgets a workload's aggregate (its profile was removed).  The peaks
 * tracked for its domains stay: they are the domains' own. */
void  vmem_demand_forget_workload (VmemDemand *d, const char *workload);
/* Workloads with an aggregate. */
guint vmem_demand_n_workloads (VmemDemand *d);

G_END_DECLS
