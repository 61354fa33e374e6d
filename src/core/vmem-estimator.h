/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Peer-based demand estimation (DESIGN.md 4.3).  Pure: data in, data out,
 * the clock is a parameter.  No libvirt, sockets or database in here.
 *
 * The daemon keeps one VmemWorkloadAgg per workload and feeds it the
 * per-domain per-interval peaks as they are updated; an estimate is then
 * computed from the aggregate alone, never from raw samples.
 *
 * The estimate, in order:
 *  1. each peer's level: a high quantile (peer_quantile) of the peer's own
 *     decaying histogram of peaks (weights 2^(-age/half_life), host-side
 *     samples weighted rss_weight) -- the peak a peer reaches in a day,
 *     robust to one stale spike;
 *     with scale = per-vcpu the level is divided by the peer's vCPUs;
 *  2. the profile's quantile of the peer levels, each peer weighted by its
 *     decayed weight (stale peers count less);
 *  3. the margin, widened by 1/confidence, where confidence = n/(n+1)
 *     for n peers (the chance that one more peer stays under the highest
 *     of n) times 0.5 + 0.5 * min(1, history/full_history);
 *     with scale = per-vcpu, times the target's vCPUs;
 *  4. clamps: profile floor, profile ceiling, the domain's <memory>.
 * With fewer than min_peers peers or less than min_history_hours of
 * history the profile's manual demand is used instead (or, without one,
 * the domain's <memory>), and the reason says why. */

#include <glib.h>
#include <json-c/json.h>

#include "vmem-peaks.h"
#include "vmem-profile.h"

G_BEGIN_DECLS

typedef enum {
  VMEM_SOURCE_PEERS,                  /* from peer history */
  VMEM_SOURCE_PROFILE,                /* the profile's manual demand */
  VMEM_SOURCE_FALLBACK_DOMAIN_MEMORY, /* nothing better: the domain's <memory> */
  VMEM_SOURCE_NONE,                   /* nothing at all; demand_mib is 0 */
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
  guint  min_peers;          /* default 1 */
  double min_history_hours;  /* default 6 */
  double full_history_hours; /* history at which confidence stops growing; default 72 */
  double peer_quantile;      /* quantile of each peer's own peaks; default 0.99 */
  double rss_weight;         /* weight of a host-side (rss) sample, 0..1; default 0.5 */
} VmemEstimatorConfig;

void     vmem_estimator_config_init (VmemEstimatorConfig *config);
/* Names the offending field. */
gboolean vmem_estimator_config_validate (const VmemEstimatorConfig *config, GError **error);

/* The peaks fed to the estimator are VmemPeakObs (vmem-peaks.h). */

/* The domain being estimated for. */
typedef struct {
  const char *uuid;          /* may be NULL */
  gboolean    exclude_self;  /* leave the domain's own history out */
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
  double  peak_mib;          /* its level (step 1), absolute */
  double  weight;            /* its decayed weight at `now` */
} VmemEstimatePeer;

typedef struct {
  guint64             demand_mib;    /* the answer, rounded up to a whole MiB */
  double              value_mib;     /* the answer before rounding */
  VmemEstimateSource  source;
  char               *reason;        /* one sentence saying why this source */
  GPtrArray          *peers;         /* VmemEstimatePeer, highest level first */
  double              quantile;      /* the quantile used */
  double              quantile_mib;  /* its value (per vCPU when per-vcpu) */
  double              margin_pct;    /* the configured margin */
  double              effective_margin_pct; /* widened by confidence */
  double              confidence;    /* 0..1 */
  double              history_hours; /* age of the oldest peak used */
  VmemScale           scale;
  guint               vcpus;         /* the target's, when per-vcpu */
  double              raw_mib;       /* before the clamps */
  guint               clamps;        /* VmemClamp bits that applied */
  gint64              now;
} VmemEstimate;

void vmem_estimate_free (VmemEstimate *estimate);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemEstimate, vmem_estimate_free)

/* For `vmemctl explain`: {"demand_mib":..,"source":"peers","reason":..,
 *  "quantile":..,"quantile_mib":..,"margin_pct":..,"effective_margin_pct":..,
 *  "confidence":..,"history_hours":..,"scale":..,"vcpus":..,"raw_mib":..,
 *  "clamps":["ceiling",..],"time":..,"peers":[{"uuid","name","host",
 *  "samples","intervals","vcpus","peak_mib","weight"},..]} */
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
 * ended counts as new. */
VmemEstimate *vmem_estimator_estimate (const VmemWorkloadAgg     *agg,
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
