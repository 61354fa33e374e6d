/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* How far can an estimator that only sees a domain's peers get on a trace?
 *
 * Two bounds, computed on exactly the replay's simulated starts:
 *
 *  - clairvoyant: the estimate is a statistic (max or p90) of the peers'
 *    actual peaks over the coming 24 h -- information no estimator has at
 *    start time -- times (1 + margin), for a sweep of margins;
 *
 *  - fitted in hindsight: the estimate is a quantile of the peers' levels
 *    (each peer's highest daily peak over the 7 days before the start) times
 *    (1 + margin), with the quantile and the margin chosen separately for
 *    every workload, after the fact, to minimise waste while at most the
 *    target share of starts is under-provisioned.  Parameters fitted on the
 *    answers: no estimator deployed ahead of time can do better within this
 *    family.
 *
 * For comparison it also prints what the domain's own history alone would
 * give (which the replay's leave-one-out rules out).
 *
 * Every estimate is clamped to the domain's ceiling and a start without
 * peers gets its ceiling, as in the replay.  Daily peaks come from the
 * cases themselves, so the partial day before the first boundary is not
 * part of any peer's level. */
#include "bounds.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define LEVEL_DAYS   7
#define MARGIN_STEP  0.05
#define MARGIN_STEPS 81 /* 0 .. 400 % */

typedef struct {
  gint64      t;
  const char *domain;   /* interned */
  const char *workload; /* interned */
  guint64     ceiling_kib;
  guint64     peak_kib;
} BoundCase;

struct _VmemBounds {
  GArray *cases; /* BoundCase, in replay order: day by day */
};

VmemBounds *
vmem_bounds_new (void)
{
  VmemBounds *b = g_new0 (VmemBounds, 1);
  b->cases = g_array_new (FALSE, FALSE, sizeof (BoundCase));
  return b;
}

void
vmem_bounds_free (VmemBounds *b)
{
  if (b == NULL)
    return;
  g_array_unref (b->cases);
  g_free (b);
}

void
vmem_bounds_add (VmemBounds *b, const VmemReplayCase *c)
{
  BoundCase bc = {
    .t = c->t,
    .domain = g_intern_string (c->domain),
    .workload = g_intern_string (c->workload),
    .ceiling_kib = c->ceiling_kib,
    .peak_kib = c->peak_kib,
  };
  g_array_append_val (b->cases, bc);
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

/* Linear interpolation between order statistics; @v is sorted in place. */
static double
quantile (double *v, guint n, double q)
{
  qsort (v, n, sizeof (double), cmp_double);
  double pos = q * (double) (n - 1);
  guint lo = (guint) floor (pos);
  guint hi = MIN (lo + 1, n - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - (double) lo);
}

typedef struct {
  guint64 under;
  double  waste;
  double  total;
} Tally;

static void
tally_add (Tally *t, double estimate, const BoundCase *c)
{
  double e = MIN (estimate, (double) c->ceiling_kib);
  double p = (double) c->peak_kib;
  t->under += p > e;
  t->waste += MAX (0.0, e - p);
  t->total += e;
}

/* Indices of the cases of one (day, workload): cases of a day are
 * contiguous, so a group is found by scanning that day. */
typedef struct {
  guint  first, last; /* the day's cases, [first, last) */
} Day;

static GArray *
split_days (GArray *cases)
{
  GArray *days = g_array_new (FALSE, FALSE, sizeof (Day));
  for (guint i = 0; i < cases->len;)
    {
      Day d = { i, i };
      gint64 t = g_array_index (cases, BoundCase, i).t;
      while (d.last < cases->len && g_array_index (cases, BoundCase, d.last).t == t)
        d.last++;
      g_array_append_val (days, d);
      i = d.last;
    }
  return days;
}

/* The coming-day peaks of @c's peers (same day, same workload, not @c). */
static guint
peer_peaks (GArray *cases, const Day *day, guint self, double *out)
{
  const BoundCase *c = &g_array_index (cases, BoundCase, self);
  guint n = 0;
  for (guint j = day->first; j < day->last; j++)
    {
      const BoundCase *o = &g_array_index (cases, BoundCase, j);
      if (j != self && o->workload == c->workload)
        out[n++] = (double) o->peak_kib;
    }
  return n;
}

/* One sweep: each case's estimate is @base[i] * (1 + margin), or its
 * ceiling where @base[i] is NAN (nothing to go on).  Prints the frontier every
 * @every steps and the first margin that meets the target. */
static void
print_sweep (GArray *cases, const double *base, const char *label, guint steps, guint every,
             double target_pct)
{
  gboolean reached = FALSE;
  for (guint m = 0; m < steps; m++)
    {
      double margin = MARGIN_STEP * m;
      Tally t = { 0 };
      for (guint i = 0; i < cases->len; i++)
        {
          const BoundCase *c = &g_array_index (cases, BoundCase, i);
          tally_add (&t, isnan (base[i]) ? (double) c->ceiling_kib : base[i] * (1.0 + margin), c);
        }
      double under = 100.0 * (double) t.under / (double) cases->len;
      gboolean first_at_target = !reached && under <= target_pct;
      if (m % every == 0 || first_at_target)
        printf ("  %-5s %6.0f%% %9.2f %8.2f%s\n", label, margin * 100, under,
                t.total > 0 ? 100.0 * t.waste / t.total : 0.0,
                first_at_target ? "   <- first margin at the target" : "");
      reached = reached || first_at_target;
    }
}

static void
print_clairvoyant (GArray *cases, GArray *days, double target_pct)
{
  static const struct {
    const char *name;
    double      q;
  } stats[] = { { "max", 1.0 }, { "p90", 0.9 } };
  double *buf = g_new (double, cases->len);
  double *base = g_new (double, cases->len);

  printf ("Clairvoyant bound: the peers' actual peaks of the coming 24 h, times (1 + margin)\n");
  printf ("  %-5s %7s %9s %8s\n", "stat", "margin", "under%", "waste%");
  for (guint s = 0; s < G_N_ELEMENTS (stats); s++)
    {
      for (guint d = 0; d < days->len; d++)
        {
          const Day *day = &g_array_index (days, Day, d);
          for (guint i = day->first; i < day->last; i++)
            {
              guint n = peer_peaks (cases, day, i, buf);
              base[i] = n ? quantile (buf, n, stats[s].q) : NAN;
            }
        }
      print_sweep (cases, base, stats[s].name, MARGIN_STEPS, 10, target_pct);
    }
  g_free (base);
  g_free (buf);
}

/* For the fits: each domain's daily peaks, by day index (0 = not running). */
typedef struct {
  GHashTable *index; /* domain -> GArray of double */
} History;

static History
history_new (GArray *cases, GArray *days)
{
  History h = { g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL,
                                       (GDestroyNotify) g_array_unref) };
  for (guint d = 0; d < days->len; d++)
    {
      const Day *day = &g_array_index (days, Day, d);
      for (guint i = day->first; i < day->last; i++)
        {
          const BoundCase *c = &g_array_index (cases, BoundCase, i);
          GArray *a = g_hash_table_lookup (h.index, c->domain);
          if (a == NULL)
            {
              a = g_array_new (FALSE, TRUE, sizeof (double));
              g_hash_table_insert (h.index, (gpointer) c->domain, a);
            }
          if (a->len <= d)
            g_array_set_size (a, d + 1);
          g_array_index (a, double, d) = (double) c->peak_kib;
        }
    }
  return h;
}

/* A domain's level before day @day: its highest daily peak of the
 * @window days before. */
static double
level (const History *h, const char *domain, guint day, guint window)
{
  GArray *a = g_hash_table_lookup (h->index, domain);
  double best = 0.0;
  for (guint d = day > window ? day - window : 0; a && d < day && d < a->len; d++)
    best = MAX (best, g_array_index (a, double, d));
  return best;
}

/* The levels of @self's peers on day @d: every other domain of the
 * workload that ran in the level's window, each counted once. */
static guint
peer_levels (GArray *cases, GArray *days, const History *h, guint d, guint self, guint window,
             double *out)
{
  const BoundCase *c = &g_array_index (cases, BoundCase, self);
  g_autoptr(GHashTable) seen = g_hash_table_new (g_direct_hash, g_direct_equal);
  guint n = 0;
  for (guint dd = d > window ? d - window : 0; dd < d; dd++)
    {
      const Day *pd = &g_array_index (days, Day, dd);
      for (guint j = pd->first; j < pd->last; j++)
        {
          const BoundCase *o = &g_array_index (cases, BoundCase, j);
          if (o->workload != c->workload || o->domain == c->domain ||
              !g_hash_table_add (seen, (gpointer) o->domain))
            continue;
          out[n++] = level (h, o->domain, d, window);
        }
    }
  return n;
}

static const double fit_quantiles[] = { 0.5, 0.75, 0.9, 1.0 };
#define N_OPTS (G_N_ELEMENTS (fit_quantiles) * MARGIN_STEPS)

typedef struct {
  const char *workload;
  guint64     cases;
  Tally       opts[N_OPTS]; /* per (quantile, margin) */
} Fit;

/* The least total of w - r t over one option per workload with at most
 * @budget under-provisioned starts in all: a multiple-choice knapsack,
 * solved exactly by dynamic programming over the budget.  Fills @pick. */
static double
knapsack (GPtrArray *fits, guint budget, double r, guint *pick)
{
  guint nb = budget + 1, nf = fits->len;
  double *cost = g_new (double, (gsize) (nf + 1) * nb);
  guint *choice = g_new (guint, (gsize) nf * nb);

  for (guint b = 0; b < nb; b++)
    cost[b] = 0.0;
  for (guint k = 0; k < nf; k++)
    {
      const Fit *f = fits->pdata[k];
      double *prev = cost + (gsize) k * nb, *cur = cost + (gsize) (k + 1) * nb;
      for (guint b = 0; b < nb; b++)
        {
          cur[b] = HUGE_VAL;
          choice[(gsize) k * nb + b] = G_MAXUINT;
          for (guint o = 0; o < N_OPTS; o++)
            {
              const Tally *t = &f->opts[o];
              if (t->under > b || prev[b - t->under] == HUGE_VAL)
                continue;
              double v = prev[b - t->under] + t->waste - r * t->total;
              if (v < cur[b])
                {
                  cur[b] = v;
                  choice[(gsize) k * nb + b] = o;
                }
            }
        }
    }
  double best = cost[(gsize) nf * nb + budget];
  for (guint k = nf, b = budget; k-- > 0 && best != HUGE_VAL;)
    {
      pick[k] = choice[(gsize) k * nb + b];
      b -= (guint) ((const Fit *) fits->pdata[k])->opts[pick[k]].under;
    }
  g_free (cost);
  g_free (choice);
  return best;
}

typedef enum {
  FIT_LEVELS,      /* the peers' levels before the start */
  FIT_CLAIRVOYANT, /* the peers' actual peaks of the coming day */
} FitBase;

/* Per workload, the option (quantile of the base, margin) of least waste
 * for at most @target_pct under-provisioned starts, fitted on the answers.
 * The least waste ratio is found exactly (for these options) by
 * Dinkelbach's method over the knapsack above. */
static void
print_fit (GArray *cases, GArray *days, const History *h, FitBase base, guint window,
           gboolean detail, double target_pct)
{
  g_autoptr(GHashTable) by_name = g_hash_table_new (g_direct_hash, g_direct_equal);
  g_autoptr(GPtrArray) fits = g_ptr_array_new_with_free_func (g_free);
  double *buf = g_new (double, cases->len);

  for (guint d = 0; d < days->len; d++)
    {
      const Day *day = &g_array_index (days, Day, d);
      for (guint i = day->first; i < day->last; i++)
        {
          const BoundCase *c = &g_array_index (cases, BoundCase, i);
          Fit *f = g_hash_table_lookup (by_name, c->workload);
          if (f == NULL)
            {
              f = g_new0 (Fit, 1);
              f->workload = c->workload;
              g_hash_table_insert (by_name, (gpointer) c->workload, f);
              g_ptr_array_add (fits, f);
            }
          f->cases++;
          guint n = base == FIT_LEVELS ? peer_levels (cases, days, h, d, i, window, buf)
                                       : peer_peaks (cases, day, i, buf);
          double qv[G_N_ELEMENTS (fit_quantiles)];
          for (guint q = 0; q < G_N_ELEMENTS (fit_quantiles); q++)
            qv[q] = n ? quantile (buf, n, fit_quantiles[q]) : 0.0;
          for (guint q = 0; q < G_N_ELEMENTS (fit_quantiles); q++)
            for (guint m = 0; m < MARGIN_STEPS; m++)
              {
                double e = n ? qv[q] * (1.0 + MARGIN_STEP * m) : (double) c->ceiling_kib;
                tally_add (&f->opts[q * MARGIN_STEPS + m], e, c);
              }
        }
    }
  g_free (buf);

  guint budget = (guint) floor (target_pct / 100.0 * (double) cases->len);
  g_autofree guint *pick = g_new0 (guint, fits->len);
  double r = 1.0, W = 0, T = 0;
  guint64 U = 0;
  gboolean feasible = FALSE;
  for (guint iter = 0; iter < 100; iter++)
    {
      if (knapsack (fits, budget, r, pick) == HUGE_VAL)
        break;
      feasible = TRUE;
      W = T = 0, U = 0;
      for (guint k = 0; k < fits->len; k++)
        {
          const Tally *t = &((const Fit *) fits->pdata[k])->opts[pick[k]];
          W += t->waste, T += t->total, U += t->under;
        }
      double next = W / T;
      if (fabs (next - r) < 1e-12)
        break;
      r = next;
    }

  g_autofree char *what = base == FIT_LEVELS
                            ? g_strdup_printf ("The peers' levels before the start (highest daily "
                                               "peak of %u days)", window)
                            : g_strdup ("The peers' actual peaks of the coming 24 h (clairvoyant)");
  printf ("%s, fitted on the answers per workload:\n", what);
  if (detail)
    printf ("  p50/p75/p90/max of them times (1 + margin 0..%.0f %%), least waste for at most "
            "%.0f %% under-provisioned starts\n", MARGIN_STEP * (MARGIN_STEPS - 1) * 100,
            target_pct);
  if (!feasible)
    {
      printf ("  no choice meets the target\n");
      return;
    }
  printf ("  under%% %.2f   waste%% %.2f\n", 100.0 * (double) U / (double) cases->len,
          100.0 * W / T);
  if (!detail)
    return;
  printf ("    %-16s %6s %-11s %7s %8s\n", "workload", "starts", "choice", "under%", "waste%");
  for (guint k = 0; k < fits->len; k++)
    {
      const Fit *f = fits->pdata[k];
      const Tally *t = &f->opts[pick[k]];
      g_autofree char *choice = g_strdup_printf ("p%.0f +%.0f%%",
                                                 fit_quantiles[pick[k] / MARGIN_STEPS] * 100,
                                                 MARGIN_STEP * (pick[k] % MARGIN_STEPS) * 100);
      printf ("    %-16s %6" G_GUINT64_FORMAT " %-11s %7.2f %8.2f\n", f->workload, f->cases,
              choice, 100.0 * (double) t->under / (double) f->cases,
              t->total > 0 ? 100.0 * t->waste / t->total : 0.0);
    }
}

/* Not a peers-only estimator: the domain's own level (its highest daily
 * peak of the LEVEL_DAYS days before the start) times (1 + margin); a
 * start without own history gets its ceiling.  What a restarted domain's
 * own record is worth, next to its peers'. */
static void
print_own (GArray *cases, GArray *days, const History *h, double target_pct)
{
  double *base = g_new (double, cases->len);
  for (guint d = 0; d < days->len; d++)
    {
      const Day *day = &g_array_index (days, Day, d);
      for (guint i = day->first; i < day->last; i++)
        {
          /* A day without a peak reads 0 in the history: no level yet. */
          double own = level (h, g_array_index (cases, BoundCase, i).domain, d, LEVEL_DAYS);
          base[i] = own > 0 ? own : NAN;
        }
    }
  printf ("The domain's own level before the start (highest daily peak of %d days), "
          "times (1 + margin):\n", LEVEL_DAYS);
  printf ("  %-5s %7s %9s %8s\n", "", "margin", "under%", "waste%");
  print_sweep (cases, base, "own", 21, 5, target_pct);
  g_free (base);
}

void
vmem_bounds_print (VmemBounds *b, double target_pct)
{
  g_autoptr(GArray) days = split_days (b->cases);
  History h = history_new (b->cases, days);
  print_clairvoyant (b->cases, days, target_pct);
  printf ("\n");
  print_fit (b->cases, days, &h, FIT_LEVELS, LEVEL_DAYS, TRUE, target_pct);
  printf ("\n");
  print_fit (b->cases, days, &h, FIT_LEVELS, 1, FALSE, target_pct);
  print_fit (b->cases, days, &h, FIT_LEVELS, 3, FALSE, target_pct);
  print_fit (b->cases, days, &h, FIT_LEVELS, 30, FALSE, target_pct);
  printf ("\n");
  print_fit (b->cases, days, &h, FIT_CLAIRVOYANT, 0, TRUE, target_pct);
  printf ("\n");
  print_own (b->cases, days, &h, target_pct);
  g_hash_table_unref (h.index);
}
