/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-calibration.h"
#include "vmem-error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define POOL_WINDOWS 8
#define DEFAULT_DELTA 0.1

typedef struct {
  double   score;
  gboolean under;
} Outcome;

/* The latest `cap` outcomes, oldest overwritten first. */
typedef struct {
  Outcome *v;
  guint    cap;
  guint    len;
  guint    next;
} Ring;

typedef struct {
  Ring   ring[VMEM_START_N_KINDS];
  double adjust[VMEM_START_N_KINDS];
} Workload;

struct _VmemCalibration {
  guint       window;
  guint       min_outcomes;
  double      step;
  double      delta;
  double      adjust[VMEM_START_N_KINDS]; /* added to the risk: the adapted level; <= 0 */
  GHashTable *workloads;  /* name -> Workload */
  Ring        pool[VMEM_START_N_KINDS];
};

static const char *const kind_names[] = { "own", "first-start" };
static const char *const scope_names[] = { "none", "workload", "pooled" };

const char *
vmem_start_kind_to_string (VmemStartKind kind)
{
  return (guint) kind < G_N_ELEMENTS (kind_names) ? kind_names[kind] : "unknown";
}

const char *
vmem_calibration_scope_to_string (VmemCalibrationScope scope)
{
  return (guint) scope < G_N_ELEMENTS (scope_names) ? scope_names[scope] : "unknown";
}

static void
ring_init (Ring *r, guint cap)
{
  r->v = g_new0 (Outcome, cap);
  r->cap = cap;
  r->len = 0;
  r->next = 0;
}

static void
ring_push (Ring *r, double score, gboolean under)
{
  r->v[r->next] = (Outcome){ score, under };
  r->next = (r->next + 1) % r->cap;
  if (r->len < r->cap)
    r->len++;
}

static void
workload_free (gpointer data)
{
  Workload *w = data;
  for (guint k = 0; k < VMEM_START_N_KINDS; k++)
    g_free (w->ring[k].v);
  g_free (w);
}

VmemCalibration *
vmem_calibration_new (guint window, guint min_outcomes, double step, double delta)
{
  g_return_val_if_fail (window >= 1, NULL);

  VmemCalibration *cal = g_new0 (VmemCalibration, 1);
  cal->window = window;
  cal->min_outcomes = min_outcomes;
  cal->step = isfinite (step) && step > 0 ? step : 0;
  cal->delta = isfinite (delta) && delta > 0 && delta < 1 ? delta : DEFAULT_DELTA;
  cal->workloads = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, workload_free);
  for (guint k = 0; k < VMEM_START_N_KINDS; k++)
    ring_init (&cal->pool[k], window * POOL_WINDOWS);
  return cal;
}

void
vmem_calibration_free (VmemCalibration *cal)
{
  if (cal == NULL)
    return;
  g_hash_table_destroy (cal->workloads);
  for (guint k = 0; k < VMEM_START_N_KINDS; k++)
    g_free (cal->pool[k].v);
  g_free (cal);
}

void
vmem_calibration_clear (VmemCalibration *cal)
{
  g_return_if_fail (cal != NULL);

  g_hash_table_remove_all (cal->workloads);
  for (guint k = 0; k < VMEM_START_N_KINDS; k++)
    {
      cal->pool[k].len = cal->pool[k].next = 0;
      cal->adjust[k] = 0;
    }
}

void
vmem_calibration_forget_workload (VmemCalibration *cal, const char *workload)
{
  g_return_if_fail (cal != NULL);

  if (workload != NULL)
    g_hash_table_remove (cal->workloads, workload);
}

gboolean
vmem_calibration_add (VmemCalibration *cal, const char *workload, VmemStartKind kind,
                      double score, gboolean under, double risk, GError **error)
{
  g_return_val_if_fail (cal != NULL, FALSE);

  if (workload == NULL || *workload == '\0')
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "workload: must be set");
      return FALSE;
    }
  if ((guint) kind >= VMEM_START_N_KINDS)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "kind: %d is unknown",
                   (int) kind);
      return FALSE;
    }
  if (!isfinite (score) || score < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "score: %g is not a ratio of sizes", score);
      return FALSE;
    }
  if (!isfinite (risk) || risk <= 0 || risk >= 1)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "risk: %g is not between 0 and 1", risk);
      return FALSE;
    }
  Workload *w = g_hash_table_lookup (cal->workloads, workload);
  if (w == NULL)
    {
      w = g_new0 (Workload, 1);
      for (guint k = 0; k < VMEM_START_N_KINDS; k++)
        ring_init (&w->ring[k], cal->window);
      g_hash_table_insert (cal->workloads, g_strdup (workload), w);
    }
  ring_push (&w->ring[kind], score, under);
  ring_push (&cal->pool[kind], score, under);
  /* One-sided adaptive conformal inference: the level never rises above
   * the risk (the PAC rank is the least safe one used), and falls while
   * misses run above the risk.  Bounded below, so that a long run of
   * misses cannot push the level where it takes as long to come back. */
  double miss = risk - (under ? 1.0 : 0.0);
  cal->adjust[kind] = CLAMP (cal->adjust[kind] + cal->step * miss, -1.0, 0.0);
  w->adjust[kind] = CLAMP (w->adjust[kind] + cal->step * miss, -1.0, 0.0);
  return TRUE;
}

static int
double_cmp (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

guint
vmem_calibration_pac_rank (guint n, double level, double delta)
{
  if (n == 0 || !isfinite (level) || level <= 0 || !isfinite (delta) || delta <= 0)
    return n + 1;
  if (level >= 1 || delta >= 1)
    return 1;
  /* X ~ Binomial(n, p), p = 1 - level: walk the upper tail down from
   * P(X = n) = p^n, with P(X = j - 1) = P(X = j) * j / (n - j + 1) * (1 - p) / p,
   * in logarithms (p^n underflows for large n), while the tail
   * P(X >= k) stays within delta. */
  double lp = log1p (-level), lq = log (level);
  double lpmf = n * lp, tail = 0;
  guint k = n + 1;
  while (k > 1)
    {
      guint j = k - 1;  /* P(X = j) is exp (lpmf) */
      double pmf = exp (lpmf);
      if (tail + pmf > delta)
        break;
      tail += pmf;
      k = j;
      lpmf += log ((double) j) - log ((double) (n - j + 1)) + lq - lp;
    }
  return k;
}

guint
vmem_calibration_needed (double risk, double delta)
{
  if (!isfinite (risk) || risk <= 0 || risk >= 1 || !isfinite (delta) || delta <= 0)
    return G_MAXUINT;
  if (delta >= 1)
    return 1;
  /* The least n with (1 - risk)^n <= delta: the rank n exists. */
  double least = ceil (log (delta) / log1p (-risk) - 1e-9);
  if (!(least < G_MAXUINT / 2))
    return G_MAXUINT;
  guint n = (guint) MAX (least, 1.0);
  while (n > 1 && vmem_calibration_pac_rank (n - 1, risk, delta) <= n - 1)
    n--;
  while (vmem_calibration_pac_rank (n, risk, delta) > n)
    n++;
  return n;
}

static void
from_ring (const Ring *r, double level, double delta, VmemCalibrationResult *out)
{
  g_autofree double *s = g_new (double, MAX (r->len, 1));
  guint under = 0;
  for (guint i = 0; i < r->len; i++)
    {
      s[i] = r->v[i].score;
      under += r->v[i].under ? 1 : 0;
    }
  qsort (s, r->len, sizeof (double), double_cmp);
  /* Below the risk (the adapted level) there may be no rank with the
   * confidence: the highest score is taken. */
  guint rank = vmem_calibration_pac_rank (r->len, level, delta);
  rank = CLAMP (rank, 1, r->len);
  out->rank = rank;
  out->outcomes = r->len;
  out->under = under;
  out->observed_pct = r->len > 0 ? 100.0 * under / r->len : 0;
  out->factor = s[rank - 1];
}

gboolean
vmem_calibration_margin (const VmemCalibration *cal, const char *workload, VmemStartKind kind,
                         double risk, VmemCalibrationResult *out)
{
  g_return_val_if_fail (cal != NULL && out != NULL, FALSE);
  g_return_val_if_fail ((guint) kind < VMEM_START_N_KINDS, FALSE);

  memset (out, 0, sizeof *out);
  out->kind = kind;
  out->risk = risk;
  out->confidence = 1.0 - cal->delta;
  if (!isfinite (risk) || risk <= 0 || risk >= 1)
    return FALSE;

  /* Enough outcomes for a rank at the risk itself; at an adapted level
   * below it the rank may run past them, and the highest is taken. */
  guint need = vmem_calibration_needed (risk, cal->delta);
  out->needed = need;
  out->level = CLAMP (risk + cal->adjust[kind], 0.0, risk);
  const Workload *w = workload != NULL ? g_hash_table_lookup (cal->workloads, workload) : NULL;
  const Ring *own = w != NULL ? &w->ring[kind] : NULL;
  out->workload_outcomes = own != NULL ? own->len : 0;
  if (own != NULL && own->len >= MAX (need, cal->min_outcomes))
    {
      out->scope = VMEM_CALIBRATION_WORKLOAD;
      out->level = CLAMP (risk + w->adjust[kind], 0.0, risk);
      from_ring (own, out->level, cal->delta, out);
      return TRUE;
    }
  const Ring *pool = &cal->pool[kind];
  if (pool->len >= need)
    {
      out->scope = VMEM_CALIBRATION_POOLED;
      from_ring (pool, out->level, cal->delta, out);
      return TRUE;
    }
  out->scope = VMEM_CALIBRATION_NONE;
  out->outcomes = pool->len;
  return FALSE;
}

static json_object *
new_double (double v)
{
  g_autofree char *s = g_strdup_printf ("%.6g", isfinite (v) ? v : 0);
  if (strpbrk (s, ".e") == NULL)
    {
      g_autofree char *t = s;
      s = g_strdup_printf ("%s.0", t);
    }
  return json_object_new_double_s (isfinite (v) ? v : 0, s);
}

json_object *
vmem_calibration_result_to_json (const VmemCalibrationResult *r)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "scope",
                          json_object_new_string (vmem_calibration_scope_to_string (r->scope)));
  json_object_object_add (o, "kind", json_object_new_string (vmem_start_kind_to_string (r->kind)));
  json_object_object_add (o, "risk", new_double (r->risk));
  json_object_object_add (o, "confidence", new_double (r->confidence));
  json_object_object_add (o, "level", new_double (r->level));
  json_object_object_add (o, "rank", json_object_new_int64 (r->rank));
  json_object_object_add (o, "needed", json_object_new_int64 (r->needed));
  json_object_object_add (o, "outcomes", json_object_new_int64 (r->outcomes));
  json_object_object_add (o, "workload_outcomes", json_object_new_int64 (r->workload_outcomes));
  json_object_object_add (o, "under", json_object_new_int64 (r->under));
  json_object_object_add (o, "observed_pct", new_double (r->observed_pct));
  json_object_object_add (o, "factor", new_double (r->factor));
  return o;
}
