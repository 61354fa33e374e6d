/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Replays a usage trace and prints, for the same simulated starts, vmemd's
 * estimator next to two references: the Kubernetes VPA memory recommender
 * and static provisioning.  Figures, not a pass/fail test. */
#include "bounds.h"
#include "vmemctl-replay-file.h"

#include <stdio.h>
#include <sys/resource.h>

/* The target: at most this share of starts under-provisioned. */
#define TARGET_UNDER_PCT 5.0

typedef struct {
  VmemReplaySummary s[VMEM_REPLAY_N_ESTIMATORS];
  /* The starts where vmemd had peers: the estimators differ only there. */
  VmemReplaySummary with_peers[VMEM_REPLAY_N_ESTIMATORS];
  VmemBounds       *bounds;
} Bench;

static void
on_case (const VmemReplayCase *c, gpointer user_data)
{
  Bench *b = user_data;
  for (guint i = 0; i < VMEM_REPLAY_N_ESTIMATORS; i++)
    {
      vmem_replay_summary_add (&b->s[i], c, i);
      if (c->peers > 0)
        vmem_replay_summary_add (&b->with_peers[i], c, i);
    }
  vmem_bounds_add (b->bounds, c);
}

static void
print_table (const char *title, const VmemReplaySummary *s)
{
  const VmemReplayTally *vpa = &s[VMEM_REPLAY_VPA].all;

  printf ("%s (%" G_GUINT64_FORMAT " starts)\n", title, s[0].all.cases);
  printf ("  %-8s %9s %8s %10s %12s %12s\n", "", "under%", "waste%", "GiB-days",
          "GiB-days/VPA", "waste/VPA");
  for (guint i = 0; i < VMEM_REPLAY_N_ESTIMATORS; i++)
    {
      const VmemReplayTally *t = &s[i].all;
      printf ("  %-8s %9.2f %8.2f %10.0f %12.3f %12.3f\n", vmem_replay_estimator_to_string (i),
              vmem_replay_tally_under_pct (t), vmem_replay_tally_waste_pct (t),
              vmem_replay_tally_gib_days (t),
              vmem_replay_tally_gib_days (t) / vmem_replay_tally_gib_days (vpa),
              vmem_replay_tally_waste_pct (t) / vmem_replay_tally_waste_pct (vpa));
    }
}

int
main (int argc, char **argv)
{
  if (argc != 2)
    {
      fprintf (stderr, "usage: %s TRACE.csv[.gz]\n", argv[0]);
      return 2;
    }

  VmemEstimatorConfig config;
  vmem_estimator_config_init (&config);
  g_autoptr(VmemBounds) bounds = vmem_bounds_new ();
  Bench b = { .bounds = bounds };
  g_autoptr(GError) error = NULL;

  gint64 start = g_get_monotonic_time ();
  if (!vmemctl_replay_file (argv[1], &config, on_case, NULL, &b, &error))
    {
      fprintf (stderr, "%s\n", error->message);
      return 1;
    }
  double wall = (double) (g_get_monotonic_time () - start) / G_USEC_PER_SEC;
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);

  printf ("trace: %s\n", argv[1]);
  printf ("vmemd defaults: half-life %g h, p%g of peer levels (each peer's p%g), "
          "margin %g %% widened by confidence\n\n", config.half_life_hours,
          config.quantile * 100, config.peer_quantile * 100, config.margin_pct);
  print_table ("All starts", b.s);
  printf ("\n");
  print_table ("Starts with at least one peer", b.with_peers);
  printf ("\nvmemd by peer count:\n");
  g_autofree char *by = vmem_replay_summary_format (&b.s[VMEM_REPLAY_VMEMD]);
  printf ("%s", by);
  printf ("\nreplay wall time %.2f s, peak RSS %.1f MiB\n", wall, ru.ru_maxrss / 1024.0);
  printf ("\nWhat an estimator that sees only the peers can reach on these starts\n\n");
  vmem_bounds_print (bounds, TARGET_UNDER_PCT);
  return 0;
}
