/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Replays a usage trace twice, as restarts (a domain's own earlier history
 * counts, as in the daemon) and as first starts (peers only), and prints
 * for both vmemd's estimator next to the references: the Kubernetes VPA
 * memory recommender and its upper bound, a fixed fraction of each
 * domain's <memory>, and static provisioning.  Each is shown as
 * configured and rescaled by one global factor to 5 % under-provisioned
 * starts (equal safety), over the whole trace and each half of it.
 * Figures, not a pass/fail test. */
#include "bounds.h"
#include "vmemctl-replay-file.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

/* Equal safety: this share of starts under-provisioned. */
#define TARGET_UNDER_PCT 5.0

enum { ROW_VMEMD, ROW_VPA, ROW_VPA_UPPER, ROW_FIXED, ROW_STATIC, N_ROWS };
static const char *const row_names[N_ROWS] = {
  "vmemd", "VPA", "VPA upper", "fixed", "static",
};

typedef struct {
  gint64  t;
  double  est[N_ROWS];  /* KiB; ROW_FIXED is filled in once its fraction is chosen */
  double  peak;
  double  ceiling;
  gboolean own;
} Case;

typedef struct {
  GArray     *cases;
  VmemBounds *bounds;   /* may be NULL */
} Run;

static void
on_case (const VmemReplayCase *c, gpointer user_data)
{
  Run *run = user_data;
  Case k = {
    .t = c->t,
    .peak = (double) c->peak_kib,
    .ceiling = (double) c->ceiling_kib,
    .own = c->own,
  };
  k.est[ROW_VMEMD] = (double) c->estimate_kib[VMEM_REPLAY_VMEMD];
  k.est[ROW_VPA] = (double) c->estimate_kib[VMEM_REPLAY_VPA];
  k.est[ROW_VPA_UPPER] = (double) c->estimate_kib[VMEM_REPLAY_VPA_UPPER];
  k.est[ROW_STATIC] = (double) c->estimate_kib[VMEM_REPLAY_STATIC];
  k.est[ROW_FIXED] = (double) c->ceiling_kib;
  g_array_append_val (run->cases, k);
  if (run->bounds != NULL)
    vmem_bounds_add (run->bounds, c);
}

typedef struct {
  guint64 n, under;
  double  waste, total;
} Tally;

static gboolean
in_period (const Case *c, int period, gint64 mid)
{
  return period == 0 || (period == 1 && c->t < mid) || (period == 2 && c->t >= mid);
}

/* The estimate rescaled by @f, never above the domain's memory. */
static Tally
tally (GArray *cases, int row, double f, int period, gint64 mid)
{
  Tally t = { 0 };
  for (guint i = 0; i < cases->len; i++)
    {
      const Case *c = &g_array_index (cases, Case, i);
      if (!in_period (c, period, mid))
        continue;
      double e = MIN (c->est[row] * f, c->ceiling);
      t.n++;
      if (c->peak > e)
        t.under++;
      else
        t.waste += e - c->peak;
      t.total += e;
    }
  return t;
}

static int
double_desc (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x < y) - (x > y);
}

/* The smallest global factor with at most TARGET_UNDER_PCT of the
 * period's starts under-provisioned; NAN when the starts whose peak is
 * above their memory are already more. */
static double
factor_at_target (GArray *cases, int row, int period, gint64 mid)
{
  g_autofree double *ratio = g_new (double, cases->len + 1);
  guint n = 0, always = 0, m = 0;
  for (guint i = 0; i < cases->len; i++)
    {
      const Case *c = &g_array_index (cases, Case, i);
      if (!in_period (c, period, mid))
        continue;
      n++;
      if (c->peak > c->ceiling)
        always++;
      else if (c->est[row] > 0)
        ratio[m++] = c->peak / c->est[row];
      else if (c->peak > 0)
        always++;
    }
  gint64 allowed = (gint64) floor (n * TARGET_UNDER_PCT / 100.0) - always;
  if (allowed < 0)
    return NAN;
  if ((guint64) allowed >= m)
    return 0;
  qsort (ratio, m, sizeof (double), double_desc);
  /* Starts whose ratio is above the factor are under-provisioned. */
  return ratio[allowed] * (1.0 + 1e-12);
}

static double
pct (double a, double b)
{
  return b > 0 ? 100.0 * a / b : 0;
}

static void
print_period (GArray *cases, int period, gint64 mid, const char *title)
{
  Tally count = tally (cases, ROW_STATIC, 1, period, mid);
  printf ("  %s (%" G_GUINT64_FORMAT " starts)\n", title, count.n);
  printf ("    %-10s %9s %8s   %8s %9s %8s %12s\n", "", "under%", "waste%", "factor",
          "under%@5", "waste%@5", "GiB-days@5");
  for (int row = 0; row < N_ROWS; row++)
    {
      Tally t = tally (cases, row, 1, period, mid);
      double f = factor_at_target (cases, row, period, mid);
      if (isnan (f))
        {
          printf ("    %-10s %9.2f %8.2f   %8s\n", row_names[row], pct (t.under, t.n),
                  pct (t.waste, t.total), "-");
          continue;
        }
      Tally r = tally (cases, row, f, period, mid);
      printf ("    %-10s %9.2f %8.2f   %8.3f %9.2f %8.2f %12.0f\n", row_names[row],
              pct (t.under, t.n), pct (t.waste, t.total), f, pct (r.under, r.n),
              pct (r.waste, r.total), r.total / (1024.0 * 1024.0));
    }
}

static gint64
mid_time (GArray *cases)
{
  gint64 lo = G_MAXINT64, hi = G_MININT64;
  for (guint i = 0; i < cases->len; i++)
    {
      gint64 t = g_array_index (cases, Case, i).t;
      lo = MIN (lo, t);
      hi = MAX (hi, t);
    }
  /* A day boundary: starts are on them. */
  gint64 mid = lo + (hi - lo) / 2;
  return mid - mid % VMEM_REPLAY_DAY;
}

static gboolean
replay (const char *path, const VmemEstimatorConfig *config, gboolean first_start, Run *run,
        double *wall, double *rss, GError **error)
{
  gint64 start = g_get_monotonic_time ();
  if (!vmemctl_replay_file (path, config, first_start, on_case, NULL, run, error))
    return FALSE;
  *wall = (double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC;
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  *rss = ru.ru_maxrss / 1024.0;
  return TRUE;
}

int
main (int argc, char **argv)
{
  VmemEstimatorConfig config;
  vmem_estimator_config_init (&config);
  int window = (int) config.calibration_window, min_outcomes = (int) config.calibration_min;
  GOptionEntry entries[] = {
    { "quantile", 0, 0, G_OPTION_ARG_DOUBLE, &config.quantile,
      "Quantile of the peers' scaled levels (the prior)", "Q" },
    { "peer-quantile", 0, 0, G_OPTION_ARG_DOUBLE, &config.peer_quantile,
      "Quantile of a domain's own hourly peaks (its level)", "Q" },
    { "prior-hours", 0, 0, G_OPTION_ARG_DOUBLE, &config.prior_hours,
      "The most the peers' history weighs against the domain's own", "H" },
    { "half-life", 0, 0, G_OPTION_ARG_DOUBLE, &config.half_life_hours,
      "Half-life of peak weights", "H" },
    { "window", 0, 0, G_OPTION_ARG_INT, &window, "Outcomes kept per workload", "N" },
    { "step", 0, 0, G_OPTION_ARG_DOUBLE, &config.calibration_step,
      "Adaptation of the calibration's level per outcome", "S" },
    { "min-outcomes", 0, 0, G_OPTION_ARG_INT, &min_outcomes,
      "A workload's own outcomes before they are used alone", "N" },
    { "delta", 0, 0, G_OPTION_ARG_DOUBLE, &config.calibration_delta,
      "The chance allowed that the risk is not an upper bound (1 - confidence)", "D" },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("TRACE.csv[.gz]");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_autoptr(GError) error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || argc != 2)
    {
      fprintf (stderr, "usage: %s [OPTION...] TRACE.csv[.gz]%s%s\n", argv[0],
               error ? ": " : "", error ? error->message : "");
      return 2;
    }
  config.calibration_window = (guint) MAX (window, 0);
  config.calibration_min = (guint) MAX (min_outcomes, 0);
  if (!vmem_estimator_config_validate (&config, &error))
    {
      fprintf (stderr, "%s\n", error->message);
      return 2;
    }
  g_autoptr(VmemBounds) bounds = vmem_bounds_new ();
  g_autoptr(GArray) restart = g_array_new (FALSE, FALSE, sizeof (Case));
  g_autoptr(GArray) first = g_array_new (FALSE, FALSE, sizeof (Case));
  Run runs[2] = { { restart, NULL }, { first, bounds } };
  double wall[2], rss[2];

  for (int k = 0; k < 2; k++)
    if (!replay (argv[1], &config, k == 1, &runs[k], &wall[k], &rss[k], &error))
      {
        fprintf (stderr, "%s\n", error->message);
        return 1;
      }

  /* The fixed fraction of <memory> is chosen on the first half: the
   * smallest with at most 5 % of its starts under-provisioned. */
  gint64 mid = mid_time (restart);
  double fixed = factor_at_target (restart, ROW_FIXED, 1, mid);
  for (int k = 0; k < 2; k++)
    for (guint i = 0; i < runs[k].cases->len; i++)
      {
        Case *c = &g_array_index (runs[k].cases, Case, i);
        c->est[ROW_FIXED] = isnan (fixed) ? c->ceiling : ceil (c->ceiling * fixed);
      }

  printf ("trace: %s\n", argv[1]);
  printf ("vmemd defaults: half-life %g h, each domain's level the p%g of its hourly peaks, "
          "prior the p%g of the peers' levels relative to <memory>, weighing at most %g h "
          "against the domain's own history; margin calibrated to at most %g %% risk with %g %% "
          "confidence (window %u, pooled under %u outcomes, adaptation step %g), %g %% before "
          "there are outcomes\n",
          config.half_life_hours, config.peer_quantile * 100, config.quantile * 100,
          config.prior_hours, config.risk_pct, 100 * (1 - config.calibration_delta),
          config.calibration_window, config.calibration_min, config.calibration_step,
          config.margin_pct);
  printf ("fixed: %.1f %% of <memory> (chosen on the first half: the least with at most "
          "%g %% under-provisioned)\n", fixed * 100, TARGET_UNDER_PCT);
  printf ("first half: starts before %" G_GINT64_FORMAT "; \"@5\": rescaled by one global "
          "factor to %g %% under-provisioned starts, on each period alone\n\n", mid,
          TARGET_UNDER_PCT);

  static const char *const titles[2] = {
    "Restarts: the domain's own earlier history counts",
    "First starts: every start sized from the peers alone",
  };
  static const char *const periods[3] = { "whole trace", "first half", "second half" };
  for (int k = 0; k < 2; k++)
    {
      guint own = 0;
      for (guint i = 0; i < runs[k].cases->len; i++)
        own += g_array_index (runs[k].cases, Case, i).own ? 1 : 0;
      printf ("%s (vmemd sized %u of %u with own history)\n", titles[k], own,
              runs[k].cases->len);
      for (int p = 0; p < 3; p++)
        print_period (runs[k].cases, p, mid, periods[p]);
      printf ("  replay: %.2f s wall time, peak RSS %.1f MiB so far\n\n", wall[k], rss[k]);
    }

  printf ("What an estimator that sees only the peers can reach on these starts\n\n");
  vmem_bounds_print (bounds, TARGET_UNDER_PCT);
  return 0;
}
