/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Offline replay of a usage trace (vmem-trace.h) through the estimator,
 * shared by `vmemctl replay` and the benchmark.  Pure: the caller reads
 * the trace and feeds it row by row (vmemctl-replay-file.h does).
 *
 * The trace is cut into days (multiples of 86400 s).  Every domain that
 * runs on a day, from the first day boundary at or after the trace's first
 * sample, is a simulated start at that boundary, sized from the history
 * before the boundary only; the outcome is the domain's peak over the 24 h
 * that follow.  Two kinds of start:
 *  - restart (the default): the domain's own earlier history counts, as in
 *    the daemon;
 *  - first start: every start is sized as if the domain were new, from its
 *    peers alone; the domain's own samples are never read for it.
 *
 * vmemd's estimator runs as in the daemon: every row is a sample observed
 * through a VmemDemand (vmem-demand.h), so the workload's aggregate holds
 * the same hourly peaks the daemon would store; each domain's <memory> is
 * handed to it (vmem_demand_set_memory()); a start is sized by
 * vmem_demand_estimate() at the boundary and registered with
 * vmem_demand_start(), and its outcome, complete 24 h later, calibrates the
 * margin of the starts after it, exactly as the daemon learns.  The VPA
 * reference keeps its own aggregate of the daily peaks the same VmemDemand
 * computes, each added when its day is over: one histogram per workload,
 * as VPA pools the containers of one workload (for a first start without
 * the domain's own peaks). */

#include <glib.h>
#include <json-c/json.h>

#include "vmem-estimator.h"
#include "vmem-trace.h"

G_BEGIN_DECLS

#define VMEM_REPLAY_DAY 86400

typedef enum {
  VMEM_REPLAY_VMEMD,   /* vmemd's estimator with the given config */
  VMEM_REPLAY_VPA,     /* Kubernetes VPA's memory recommender: pooled p90 of
                        * daily peaks, 24 h half-life, +15 % */
  VMEM_REPLAY_VPA_UPPER, /* VPA's upper bound: the p95, +15 %, times
                          * 1 + 1/(days of history) */
  VMEM_REPLAY_STATIC,  /* the domain's provisioned memory (ceiling_kib) */
  VMEM_REPLAY_N_ESTIMATORS,
} VmemReplayEstimator;

const char *vmem_replay_estimator_to_string (VmemReplayEstimator estimator);
gboolean    vmem_replay_estimator_from_string (const char          *s,
                                               VmemReplayEstimator *out,
                                               GError             **error);

/* One simulated start.  The strings are valid during the callback only. */
typedef struct {
  gint64      t;            /* the day boundary */
  const char *domain;
  const char *workload;
  guint       peers;        /* peers with history before t */
  gboolean    own;          /* vmemd sized it with the domain's own history */
  guint64     ceiling_kib;
  guint64     peak_kib;     /* highest used over [t, t + 24 h) */
  guint64     estimate_kib[VMEM_REPLAY_N_ESTIMATORS];
  const char *source[VMEM_REPLAY_N_ESTIMATORS];
} VmemReplayCase;

/* Cases come day by day, in domain-name order within a day, once the
 * day is over. */
typedef void (*VmemReplayCaseFunc) (const VmemReplayCase *c, gpointer user_data);

typedef struct _VmemReplay VmemReplay;

/* Validates @config, vmemd's estimator settings.  @first_start: size
 * every start from the peers alone. */
VmemReplay *vmem_replay_new (const VmemEstimatorConfig *config,
                             gboolean                   first_start,
                             VmemReplayCaseFunc         on_case,
                             gpointer                   user_data,
                             GError                   **error);
void        vmem_replay_free (VmemReplay *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemReplay, vmem_replay_free)

/* Feeds the next row of the trace; rows come in time order.  A row out of
 * order, or of a domain that was in another workload before, is a
 * VMEM_ERROR_INVALID_ARGUMENT whose message starts with
 * "SOURCE_NAME:LINE:" (@source_name names the trace, may be NULL).  The
 * replay cannot go on after an error. */
gboolean vmem_replay_feed (VmemReplay         *r,
                           const VmemTraceRow *row,
                           const char         *source_name,
                           GError            **error);
/* The trace is over: closes its last day and reports its cases. */
gboolean vmem_replay_finish (VmemReplay *r, GError **error);

typedef struct {
  guint64 cases;
  guint64 under;         /* peak above the estimate */
  double  waste_kib;     /* sum of max(0, estimate - peak) */
  double  estimate_kib;  /* sum of estimates */
} VmemReplayTally;

double vmem_replay_tally_under_pct (const VmemReplayTally *t);
double vmem_replay_tally_waste_pct (const VmemReplayTally *t);
/* Each case holds its estimate for one day. */
double vmem_replay_tally_gib_days (const VmemReplayTally *t);

/* Peer-count classes: 0, 1, 2, 3-4, 5-9, 10+. */
#define VMEM_REPLAY_PEER_CLASSES 6
guint       vmem_replay_peer_class (guint peers);
const char *vmem_replay_peer_class_label (guint peer_class);

typedef struct {
  VmemReplayTally all;
  VmemReplayTally by_peers[VMEM_REPLAY_PEER_CLASSES];
} VmemReplaySummary;

void         vmem_replay_summary_add (VmemReplaySummary    *summary,
                                      const VmemReplayCase *c,
                                      VmemReplayEstimator   estimator);
/* A small table: one line overall, one per peer-count class with cases. */
char        *vmem_replay_summary_format (const VmemReplaySummary *summary);
json_object *vmem_replay_summary_to_json (const VmemReplaySummary *summary);

G_END_DECLS
