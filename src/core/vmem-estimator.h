/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Demand estimation (DESIGN.md 4.3).  Pure: data in, data out, the clock
 * is a parameter.  No libvirt, sockets or database in here.
 *
 * The daemon keeps one VmemWorkloadAgg per workload and feeds it the
 * per-domain per-interval peaks as they are updated; an estimate is then
 * computed from the aggregate alone, never from raw samples.
 *
 * The estimate, in order:
 *  1. each domain's level: a high quantile (peer_quantile) of its own
 *     decaying histogram of peaks (weights 2^(-age/half_life), host-side
 *     samples weighted rss_weight) -- the peak it reaches in a day,
 *     robust to one stale spike;
 *  2. the prior, from the peers (every other domain of the workload): each
 *     peer's level relative to its own <memory> (per vCPU when the
 *     profile's scale is per-vcpu; absolute when a size is unknown),
 *     scaled to the target's <memory> (or vCPUs); the profile's quantile
 *     of these, each peer weighted by its decayed weight;
 *  3. own history first: the base is the domain's own level and the prior
 *     averaged with weights own_hours and min(peer_hours, prior_hours),
 *     the hours of history on each side (the peers count as at most
 *     prior_hours of the domain's own); a domain without history of its
 *     own is sized from the prior alone (a first start);
 *  4. the margin: base * factor, where the factor is calibrated to the
 *     profile's risk from the outcomes of past starts, as an upper bound
 *     held with confidence 1 - calibration_delta (vmem-calibration.h),
 *     or, while there are too few outcomes, 1 + the profile's margin;
 *  5. clamps: profile floor, profile ceiling, the domain's <memory>.
 * With no own history of min_history_hours and fewer than min_peers peers
 * (or less than min_history_hours of theirs), the profile's manual demand
 * is used instead (or, without one, the domain's <memory>), and the reason
 * says why.  History is counted from the first sample actually seen. */

#include <glib.h>
#include <json-c/json.h>

#include "vmem-calibration.h"
#include "vmem-peaks.h"
#include "vmem-profile.h"

G_BEGIN_DECLS

typedef enum {
  VMEM_SOURCE_PEERS,                  /* from peer history alone (a first start) */
  VMEM_SOURCE_PROFILE,                /* the profile's manual demand */
  VMEM_SOURCE_FALLBACK_DOMAIN_MEMORY, /* nothing better: the domain's <memory> */
  VMEM_SOURCE_NONE,                   /* nothing at all; demand_mib is 0 */
  VMEM_SOURCE_OWN,                    /* own history, the peers as the prior */
} VmemEstimateSource;

const char *vmem_estimate_source_to_string (VmemEstimateSource source);

/* Which clamps changed the value (bit set). */
typedef enum {
  VMEM_CLAMP_FLOOR          = 1 << 0,
  VMEM_CLAMP_CEILING        = 1 << 1,
  VMEM_CLAMP_DOMAIN_MEMORY  = 1 << 2,
} VmemClamp;

typedef struct {
  double half_life_hours;    /* decay of peak weights; default 24 */
  double quantile;           /* used when no profile is given; default 0.95 */
  double margin_pct;         /* used when no profile is given; default 15 */
  double risk_pct;           /* used when no profile is given; default 5 */
  guint  min_peers;          /* default 1 */
  double min_history_hours;  /* default 6 */
  double full_history_hours; /* history at which confidence stops growing; default 72 */
  double peer_quantile;      /* quantile of each peer's own peaks; default 0.99 */
  double rss_weight;         /* weight of a host-side (rss) sample, 0..1; default 0.5 */
  double prior_hours;        /* the most the peers' history weighs against the domain's own; default 24 */
  guint  calibration_window; /* outcomes kept per workload and kind of start; default 200 */
  guint  calibration_min;    /* a workload's own outcomes before they are used alone; default 20 */
  double calibration_step;   /* adaptation of the calibration's level per outcome; default 0.005 */
  double calibration_delta;  /* the chance allowed that the risk is not an upper bound; default 0.1 */
} VmemEstimatorConfig;

void     vmem_estimator_config_init (VmemEstimatorConfig *config);
/* Names the offending field. */
gboolean vmem_estimator_config_validate (const VmemEstimatorConfig *config, GError **error);

/* The peaks fed to the estimator are VmemPeakObs (vmem-peaks.h). */

/* The domain being estimated for. */
typedef struct {
  const char *uuid;          /* may be NULL */
  const char *workload;      /* names its calibration; may be NULL (the pool) */
  gboolean    exclude_self;  /* leave the domain's own history out: size it as a first start */
  guint       vcpus;         /* for scale = per-vcpu; 0 counted as 1 */
  double      memory_mib;    /* its <memory>; 0 = unknown (no clamp) */
} VmemEstimateTarget;

typedef struct {
  char   *uuid;
  char   *name;
  char   *host;
  guint   samples;           /* samples behind the peaks it contributed */
  guint   intervals;         /* peaks it contributed */
  guint   vcpus;
  double  memory_mib;        /* its <memory>; 0 = unknown */
  double  peak_mib;          /* its level (step 1), absolute */
  double  scaled_mib;        /* its level scaled to the target (step 2) */
  double  weight;            /* its decayed weight at `now` */
} VmemEstimatePeer;

typedef struct {
  guint64             demand_mib;    /* the answer, rounded up to a whole MiB */
  double              value_mib;     /* the answer before rounding */
  VmemEstimateSource  source;
  char               *reason;        /* one sentence saying why this source */
  GPtrArray          *peers;         /* VmemEstimatePeer (not the domain), highest level first */
  double              quantile;      /* the quantile of the peers' scaled levels */
  double              quantile_mib;  /* its value: the prior, scaled to the target */
  double              margin_pct;    /* the configured margin (used without calibration) */
  double              effective_margin_pct; /* the margin applied: 100 * (factor - 1) */
  double              history_hours; /* the peers' history: since their first sample */
  double              own_level_mib; /* the domain's own level; 0 without history */
  double              own_hours;     /* its history, since its first sample */
  double              own_weight;    /* 0..1: the own level's share of the base */
  double              base_mib;      /* own level and prior combined, before the margin */
  VmemStartKind       kind;          /* own history or a first start */
  VmemCalibrationResult calibration; /* scope NONE: the configured margin was used */
  VmemScale           scale;
  guint               vcpus;         /* the target's, when per-vcpu */
  double              raw_mib;       /* before the clamps */
  guint               clamps;        /* VmemClamp bits that applied */
  gint64              now;
} VmemEstimate;

void vmem_estimate_free (VmemEstimate *estimate);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemEstimate, vmem_estimate_free)

/* For `vmemctl explain`: {"demand_mib":..,"source":"own","reason":..,
 *  "kind":"own","quantile":..,"quantile_mib":..,"margin_pct":..,
 *  "effective_margin_pct":..,"history_hours":..,"own_level_mib":..,
 *  "own_hours":..,"own_weight":..,"base_mib":..,"calibration":{"scope",
 *  "kind","risk","confidence","level","rank","outcomes","workload_outcomes",
 *  "under","observed_pct","factor"},"scale":..,"vcpus":..,"raw_mib":..,"clamps":["ceiling",..],
 *  "time":..,"peers":[{"uuid","name","host","samples","intervals","vcpus",
 *  "memory_mib","peak_mib","scaled_mib","weight"},..]} */
json_object *vmem_estimate_to_json (const VmemEstimate *estimate);

/* Incremental per-workload aggregate: one decaying log-bucketed histogram
 * of peaks per peer.  Adding a peak is O(1); a query walks the buckets of
 * each peer, never the peaks themselves.  Bucket width is 2 %: a quantile
 * is the highest peak seen in the bucket where it falls, so it is exact
 * when peaks differ by more than that. */
typedef struct _VmemWorkloadAgg VmemWorkloadAgg;

/* The half-life and rss_weight of @config are fixed here: an estimate
 * from this aggregate uses them whatever config it is given. */
VmemWorkloadAgg *vmem_workload_agg_new (const VmemEstimatorConfig *config, GError **error);
void             vmem_workload_agg_free (VmemWorkloadAgg *agg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemWorkloadAgg, vmem_workload_agg_free)

/* Adds one peak.  A peak for the same peer and the same start_t as the
 * peer's latest one (the newest start_t added for it) replaces it: the
 * current interval's peak grows as samples arrive.  Any other is added, so
 * stored peaks may be loaded in any order, each once. */
gboolean vmem_workload_agg_add (VmemWorkloadAgg   *agg,
                                const VmemPeakObs *obs,
                                GError           **error);
/* A domain's <memory> (MiB, 0 = unknown), by which its level is compared
 * with other domains'.  Kept until the peer is removed; a peer with no
 * peaks yet keeps it for when they come. */
void     vmem_workload_agg_set_memory (VmemWorkloadAgg *agg, const char *uuid, double memory_mib);
/* Forgets a peer (a domain that was undefined or moved to another workload). */
gboolean vmem_workload_agg_remove_peer (VmemWorkloadAgg *agg, const char *uuid);
guint    vmem_workload_agg_n_peers (const VmemWorkloadAgg *agg);

/* The weighted @q quantile of all peers' peaks pooled together (the
 * reference estimator of the benchmarks).  Returns FALSE when there are no
 * peaks (after leaving @exclude_uuid out). */
gboolean vmem_workload_agg_pooled_quantile (const VmemWorkloadAgg *agg,
                                            const char            *exclude_uuid,
                                            double                 q,
                                            gint64                 now,
                                            double                *out_mib,
                                            guint                 *out_peers);

/* The estimate for @target at @now.  @profile may be NULL (config
 * defaults, no floor/ceiling/manual demand).  Peaks are weighted by their
 * age at @now, counted from the end of their interval; a peak not yet
 * ended counts as new.  @cal (may be NULL: no calibration) gives the
 * margin for target->workload. */
VmemEstimate *vmem_estimator_estimate (const VmemWorkloadAgg     *agg,
                                       const VmemCalibration     *cal,
                                       const VmemEstimatorConfig *config,
                                       const VmemProfile         *profile,
                                       const VmemEstimateTarget  *target,
                                       gint64                     now,
                                       GError                   **error);

/* The same from a list of peaks (VmemPeakObs *), building the aggregate
 * on the way: for one-off estimates and tests. */
VmemEstimate *vmem_estimator_estimate_peaks (const VmemPeakObs         *peaks,
                                             gsize                      n_peaks,
                                             const VmemEstimatorConfig *config,
                                             const VmemProfile         *profile,
                                             const VmemEstimateTarget  *target,
                                             gint64                     now,
                                             GError                   **error);

G_END_DECLS
