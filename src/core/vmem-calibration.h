/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Online calibration of the estimator's margin to a risk target
 * (DESIGN.md 4.3).  Pure: no clock, files or database.
 *
 * Every estimate that sized a start is later checked against what the
 * domain then used (its outcome); the outcome's score is that use over the
 * estimate before its margin (the base).  The margin factor for the next
 * start is the split-conformal quantile of the scores seen so far: the
 * ceil((n + 1)(1 - risk))-th smallest of n, so that a new start whose score
 * is exchangeable with them is above it with probability at most risk.
 * Only the latest `window` outcomes of a workload count, so that a step
 * change in usage is followed.  Scores drift (they are not exchangeable
 * across a month of real use), so the level is adapted online as adaptive
 * conformal inference does (Gibbs and Candes, 2021): after each outcome,
 * level += step * (risk - under), so that the rate of under-provisioned
 * starts itself is driven to the risk; the adjustment is kept per kind of
 * start, across workloads.
 *
 * Scores are kept per workload and per kind of start (own history, or
 * peers only: their scores differ).  While a workload has fewer than
 * `min_outcomes` of a kind (or too few for the risk: 1/risk - 1), the
 * scores of every workload of that kind are pooled; with too few of those
 * as well there is no calibration and the caller keeps its fixed margin. */

#include <glib.h>
#include <json-c/json.h>

G_BEGIN_DECLS

typedef enum {
  VMEM_START_OWN,    /* sized with the domain's own history */
  VMEM_START_FIRST,  /* sized from the peers alone */
  VMEM_START_N_KINDS,
} VmemStartKind;

const char *vmem_start_kind_to_string (VmemStartKind kind);

typedef enum {
  VMEM_CALIBRATION_NONE,      /* too few outcomes anywhere */
  VMEM_CALIBRATION_WORKLOAD,  /* the workload's own outcomes */
  VMEM_CALIBRATION_POOLED,    /* every workload's outcomes */
} VmemCalibrationScope;

const char *vmem_calibration_scope_to_string (VmemCalibrationScope scope);

/* What the calibration chose, for an estimate and `vmemctl explain`. */
typedef struct {
  VmemCalibrationScope scope;
  VmemStartKind        kind;
  double               risk;          /* the target */
  double               level;         /* the risk the quantile was taken at, adapted */
  guint                outcomes;      /* in the scope's window */
  guint                workload_outcomes; /* the workload's own, of this kind */
  guint                under;         /* of `outcomes`, starts that needed more than they got */
  double               observed_pct;  /* 100 * under / outcomes */
  double               factor;        /* the margin factor (base * factor); 0 when NONE */
} VmemCalibrationResult;

json_object *vmem_calibration_result_to_json (const VmemCalibrationResult *r);

typedef struct _VmemCalibration VmemCalibration;

/* @window: outcomes kept per workload and kind (>= 1); the pool keeps
 * window * 8.  @min_outcomes: a workload's own outcomes needed before they
 * are used alone.  @step: the adaptation of the level per outcome (0: none). */
VmemCalibration *vmem_calibration_new (guint window, guint min_outcomes, double step);
void             vmem_calibration_free (VmemCalibration *cal);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemCalibration, vmem_calibration_free)

/* One complete outcome: @score = used / base (> 0, finite), @under = the
 * start needed more than it was given, @risk its target (0 < risk < 1).  A bad score or workload is
 * VMEM_ERROR_INVALID_ARGUMENT and changes nothing. */
gboolean vmem_calibration_add (VmemCalibration *cal,
                               const char      *workload,
                               VmemStartKind    kind,
                               double           score,
                               gboolean         under,
                               double           risk,
                               GError         **error);

/* The margin factor for the next start of @workload of @kind at @risk
 * (0 < risk < 1).  Returns FALSE (scope NONE) when there are too few
 * outcomes even pooled; @out is filled either way. */
gboolean vmem_calibration_margin (const VmemCalibration *cal,
                                  const char            *workload,
                                  VmemStartKind          kind,
                                  double                 risk,
                                  VmemCalibrationResult *out);

/* Forgets a workload's outcomes (its profile was removed); the pool keeps
 * what it learnt from them. */
void vmem_calibration_forget_workload (VmemCalibration *cal, const char *workload);
void vmem_calibration_clear (VmemCalibration *cal);

G_END_DECLS
