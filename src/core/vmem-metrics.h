/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The daemon's figures for Prometheus.  Pure: a snapshot in, text out.
 *
 * One list of metric families is built from a VmemMetricsSnapshot and
 * written in one of three forms:
 *   - OpenMetrics 1.0 text (vmemctl metrics);
 *   - the Prometheus text format 0.0.4, which node exporter's textfile
 *     collector and promtool read: the same families and samples, except
 *     that a counter's HELP and TYPE lines name it with its _total, an
 *     info family is a gauge named with its _info, and OpenMetrics' UNIT
 *     lines and closing "# EOF" are left out;
 *   - JSON: the families with their samples (vmemctl metrics --json).
 * Names follow Prometheus' conventions: base units (_bytes, _seconds,
 * _ratio), counters end in _total.  Every label value of a counter or a
 * histogram is written from the start, zero or not, so that rates work
 * from the first scrape.
 *
 * The counters the daemon keeps (VmemMetricsCounters) are plain data too:
 * the daemon owns them and hands its parts a pointer; the snapshot takes a
 * copy. */

#include <glib.h>
#include <json-c/json.h>

#include "vmem-estimator.h"

G_BEGIN_DECLS

/* ---- counters ----------------------------------------------------------- */

/* A histogram with fixed bounds (the family's, see vmem-metrics.c). */
#define VMEM_METRICS_MAX_BUCKETS 16
typedef struct {
  guint64 counts[VMEM_METRICS_MAX_BUCKETS + 1]; /* per bucket, not cumulative; the last is +Inf */
  guint64 count;
  double  sum;
} VmemMetricsHistogram;

/* The op of a hook call, as libvirt names it (label op). */
typedef enum {
  VMEM_METRICS_HOOK_PREPARE,
  VMEM_METRICS_HOOK_START,
  VMEM_METRICS_HOOK_STARTED,
  VMEM_METRICS_HOOK_STOPPED,
  VMEM_METRICS_HOOK_RELEASE,
  VMEM_METRICS_HOOK_MIGRATE,
  VMEM_METRICS_HOOK_RESTORE,
  VMEM_METRICS_HOOK_RECONNECT,
  VMEM_METRICS_HOOK_ATTACH,
  VMEM_METRICS_HOOK_OTHER, /* any op libvirt may add */
  VMEM_METRICS_N_HOOK_OPS,
} VmemMetricsHookOp;

/* What a hook call got (label result). */
typedef enum {
  VMEM_METRICS_HOOK_ALLOWED,
  VMEM_METRICS_HOOK_REFUSED,
  VMEM_METRICS_HOOK_ERROR, /* bad parameters: the hook got an error */
  VMEM_METRICS_N_HOOK_RESULTS,
} VmemMetricsHookResult;

/* A kind of store write (label write). */
typedef enum {
  VMEM_METRICS_WRITE_SAMPLES,
  VMEM_METRICS_WRITE_DOMAIN,
  VMEM_METRICS_WRITE_RUN_OPEN,
  VMEM_METRICS_WRITE_RUN_CLOSE,
  VMEM_METRICS_WRITE_PLAN,
  VMEM_METRICS_WRITE_HEARTBEAT,
  VMEM_METRICS_WRITE_PRUNE,
  VMEM_METRICS_WRITE_MOVE,
  VMEM_METRICS_WRITE_OUTCOME,
  VMEM_METRICS_N_WRITES,
} VmemMetricsWrite;

/* How a stage job ended (label outcome), as the stager says. */
typedef enum {
  VMEM_METRICS_STAGE_STAGED,
  VMEM_METRICS_STAGE_UNCHANGED,
  VMEM_METRICS_STAGE_OBSERVED,
  VMEM_METRICS_STAGE_DEFERRED,
  VMEM_METRICS_STAGE_SKIPPED,
  VMEM_METRICS_STAGE_GONE,
  VMEM_METRICS_STAGE_FAILED,
  VMEM_METRICS_N_STAGES,
} VmemMetricsStage;

/* A move of the on-demand controller (label action). */
typedef enum {
  VMEM_METRICS_MOVE_GROW,
  VMEM_METRICS_MOVE_SHRINK,
  VMEM_METRICS_MOVE_STUCK, /* a balloon that does not follow, sent its target again */
  VMEM_METRICS_MOVE_OTHER,
  VMEM_METRICS_N_MOVES,
} VmemMetricsMove;

/* The daemon's counters since it started.  Zeroed is empty. */
typedef struct {
  guint64              collector_cycles[2];   /* [0] read, [1] failed */
  guint64              collector_skipped;     /* due while the one before ran */
  VmemMetricsHistogram collector_cycle;       /* seconds, from the stats call queued to the
                                                 samples handled */
  guint64              hook_requests[VMEM_METRICS_N_HOOK_OPS][VMEM_METRICS_N_HOOK_RESULTS];
  VmemMetricsHistogram hook_duration[VMEM_METRICS_N_HOOK_OPS]; /* seconds, receipt to reply */
  guint64              store_writes[VMEM_METRICS_N_WRITES];     /* ended, failed or not */
  guint64              store_write_errors[VMEM_METRICS_N_WRITES];
  guint64              stages[VMEM_METRICS_N_STAGES];
  guint64              moves[VMEM_METRICS_N_MOVES][2];         /* [action][applied] */
  guint64              textfile_errors;
  guint64              store_samples_dropped; /* never written: the buffer was full */
  guint64              store_writes_dropped;  /* other writes never written: the bound
                                                 or a kept write the store refused */
} VmemMetricsCounters;

/* One collector cycle that ended (@ok: read, else failed) after @seconds. */
void              vmem_metrics_collector_cycle (VmemMetricsCounters *c, gboolean ok,
                                                double seconds);
/* @op as libvirt passes it to the hook ("prepare", ...); NULL or unknown:
 * VMEM_METRICS_HOOK_OTHER. */
VmemMetricsHookOp vmem_metrics_hook_op (const char *op);
/* One hook call answered @result after @seconds. */
void              vmem_metrics_hook_request (VmemMetricsCounters *c, VmemMetricsHookOp op,
                                             VmemMetricsHookResult result, double seconds);
/* One move decided: @action as vmem_controller_action_to_string() names it. */
void              vmem_metrics_move (VmemMetricsCounters *c, const char *action,
                                     gboolean applied);

/* ---- snapshot ------------------------------------------------------------ */

/* A managed domain.  The figures after the start are written only while
 * it runs, and each only once it is known. */
typedef struct {
  char    *name;
  char    *workload;
  gboolean running;
  guint64  memory_mib;    /* its <memory> */
  guint64  demand_mib;    /* staged for its next start; 0 = not known */
  guint64  actual_mib;    /* running: the balloon's size */
  gboolean has_target;    /* running, and the controller has decided */
  guint64  target_mib;
  gboolean has_used;      /* running, and the guest has reported */
  guint64  used_mib;
  guint64  available_mib; /* the guest's MemAvailable */
} VmemMetricsDomain;

/* A workload (a profile) and the estimate for a new domain of it. */
typedef struct {
  char              *name;
  guint              domains;        /* managed domains of it */
  gboolean           has_estimate;
  VmemEstimateSource source;
  guint64            estimate_mib;   /* 0 = none */
  guint              peers;          /* peers with history */
  double             history_hours;
  /* The estimator's calibration, when the estimate comes from peers. */
  double             margin_pct;
  double             effective_margin_pct;
  double             observed_risk;
} VmemMetricsWorkload;

typedef struct {
  char               *version;
  gint64              started_at;        /* unix seconds */
  gboolean            ready;             /* every domain read once */
  gboolean            libvirt_connected;
  guint64             capacity_mib;      /* usable by guests: capacity less reserve */
  guint64             reserve_mib;
  guint64             committed_mib;
  guint               boot_reservations;
  guint64             boot_reserved_mib;
  guint64             store_samples_buffered; /* kept until the store can be written */
  guint64             store_writes_buffered;  /* other writes (runs, plans, ...) kept so */
  GPtrArray          *domains;           /* VmemMetricsDomain, in the order added */
  GPtrArray          *workloads;         /* VmemMetricsWorkload, in the order added */
  VmemMetricsCounters counters;
} VmemMetricsSnapshot;

VmemMetricsSnapshot *vmem_metrics_snapshot_new (const char *version);
void                 vmem_metrics_snapshot_free (VmemMetricsSnapshot *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemMetricsSnapshot, vmem_metrics_snapshot_free)

/* Adds a domain or a workload (zeroed but for the names) and returns it
 * to be filled in. */
VmemMetricsDomain   *vmem_metrics_snapshot_add_domain (VmemMetricsSnapshot *s, const char *name,
                                                       const char *workload);
VmemMetricsWorkload *vmem_metrics_snapshot_add_workload (VmemMetricsSnapshot *s,
                                                         const char *name);
/* The estimate's figures into @w (@estimate NULL: estimating failed). */
void                 vmem_metrics_workload_set_estimate (VmemMetricsWorkload *w,
                                                         const VmemEstimate *estimate);

/* ---- output --------------------------------------------------------------- */

typedef enum {
  VMEM_METRICS_OPENMETRICS,
  VMEM_METRICS_PROMETHEUS,
} VmemMetricsFormat;

/* "openmetrics", "prometheus". */
const char *vmem_metrics_format_to_string (VmemMetricsFormat format);
gboolean    vmem_metrics_format_from_string (const char *text, VmemMetricsFormat *format);

/* The text, ending in a newline (OpenMetrics: in "# EOF\n"). */
char        *vmem_metrics_format (const VmemMetricsSnapshot *s, VmemMetricsFormat format);
/* [{"name": family, "type": "gauge"|"counter"|"histogram"|"info", "unit":
 * "bytes" (or absent), "help": ..., "samples": [{"name": ..., "labels":
 * {...}, "value": ...}]}], in the order of the text. */
json_object *vmem_metrics_to_json (const VmemMetricsSnapshot *s);

G_END_DECLS
