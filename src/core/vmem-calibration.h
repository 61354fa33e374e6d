/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Online calibration of the estimator's margin to a risk target
 * (DESIGN.md 4.3).  Pure: no clock, files or database.
 *
 * Every estimate that sized a start is later checked against what the
 * domain then used (its outcome); the outcome's score is that use over the
 * estimate before its margin (the base).  The margin factor for the next
 * start is the k-th smallest of the n scores kept, with k chosen so that
 * the risk is an upper bound held with a stated confidence 1 - delta:
 * training-conditional ("PAC") split conformal prediction (Vovk, 2012,
 * "Conditional validity of inductive conformal predictors", Proposition
 * 2a; Angelopoulos and Bates, 2021, "A gentle introduction to conformal
 * prediction and distribution-free uncertainty quantification", on the
 * calibration set's size: given the n scores, the coverage of the k-th
 * smallest is distributed as Beta(k, n + 1 - k)).  For n exchangeable scores and a new one, the
 * probability that a new start is above the k-th smallest, given the n,
 * is at most the risk except with probability delta over the n:
 *
 *   k = the least k with  P(Binomial(n, 1 - risk) >= k) <= delta,
 *
 * i.e. BinomialCDF(k - 1; n, 1 - risk) >= 1 - delta.  The rank exists
 * (k <= n) once (1 - risk)^n <= delta: 45 outcomes at 5 % risk and
 * delta 0.1.  The plain marginal rank ceil((n + 1)(1 - risk)) holds the
 * risk only on average over calibration sets, so about half of them
 * land above it.
 *
 * Only the latest `window` outcomes of a workload count, so that a step
 * change in usage is followed.  Scores drift (they are not exchangeable
 * across a month of real use), and the guarantee above assumes they are;
 * so the level is also adapted online as adaptive conformal inference does
 * (Gibbs and Candes, 2021), one-sided: after each outcome
 * level += step * (risk - under), but never above the risk.  While misses
 * stay under the risk the level stays at the risk and the rank is the PAC
 * one; when they run above it, the level falls and the rank rises.  Since
 * level(t+1) - level(t) <= step * (risk - under(t)), the rate over T
 * outcomes is at most risk + (risk - level(T+1)) / (step * T) for any
 * sequence of scores (as long as the level stays above its floor, -1): the
 * long-run rate is held at or under the risk, never driven up to it.  The
 * adjustment is kept per kind of start, across workloads, and per workload.
 *
 * Scores are kept per workload and per kind of start (own history, or
 * peers only: their scores differ).  While a workload has fewer than
 * `min_outcomes` of a kind, or too few for a rank at the risk and
 * confidence, the scores of every workload of that kind are pooled; with
 * too few of those as well there is no calibration and the caller keeps its
 * fixed margin. */

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
  double               confidence;    /* 1 - delta: how sure the risk is an upper bound */
  double               level;         /* the risk the rank was taken at, adapted (<= risk) */
  guint                rank;          /* the factor is the rank-th smallest of `outcomes` scores */
  guint                needed;        /* outcomes a rank at the risk needs (pooled) */
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
 * are used alone.  @step: the adaptation of the level per outcome (0: none).
 * @delta: the chance allowed that the risk is not an upper bound for a
 * window of exchangeable outcomes (0 < delta < 1; else 0.1). */
VmemCalibration *vmem_calibration_new (guint window, guint min_outcomes, double step,
                                       double delta);

/* The rank k (1-based) of the factor among @n sorted scores at @level and
 * @delta: the least k with P(Binomial(n, 1 - level) >= k) <= delta; n + 1
 * when there is none (too few scores, or level <= 0). */
guint vmem_calibration_pac_rank (guint n, double level, double delta);

/* The least number of scores with a rank at @risk and @delta:
 * the least n with (1 - risk)^n <= delta. */
guint vmem_calibration_needed (double risk, double delta);
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
