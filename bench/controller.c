/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Replays a usage trace as a fleet on one host and drives vmemd's pure
 * controller (src/core/vmem-controller.h) next to static allocation,
 * oVirt MOM, Proxmox VE and Hyper-V, on the same trace and host.  Prints
 * figures, not a pass/fail test; bench/README.md says how to read them. */
#include "baselines.h"
#include "fleet.h"
#include "vmem-controller.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The host: this share of the sum of the domains' <memory>. */
#define DEFAULT_CAPACITY_PCT (100.0 / 3.0)

/* vmemd's targets (bench/README.md). */
#define TARGET_HELD_PCT    25.0
#define TARGET_STARVED_PCT 0.25

/* ---- vmemd ---- */

typedef struct {
  VmemControllerConfig    config;
  VmemProfile            *profile;
  VmemControllerState    *state;
  VmemControllerSample   *prev;
  gboolean               *has_prev;
  VmemControllerDecision *dec;
  gsize                  *idx;
} Vmemd;

static void
vmemd_init (Sim *sim, gpointer user_data)
{
  Vmemd *v = user_data;
  v->state = g_new0 (VmemControllerState, sim->n);
  v->prev = g_new0 (VmemControllerSample, sim->n);
  v->has_prev = g_new0 (gboolean, sim->n);
  v->dec = g_new0 (VmemControllerDecision, sim->n);
  v->idx = g_new0 (gsize, sim->n);
}

static void
vmemd_fini (Sim *sim, gpointer user_data)
{
  Vmemd *v = user_data;
  g_clear_pointer (&v->state, g_free);
  g_clear_pointer (&v->prev, g_free);
  g_clear_pointer (&v->has_prev, g_free);
  g_clear_pointer (&v->dec, g_free);
  g_clear_pointer (&v->idx, g_free);
}

/* One interval of the daemon: a decision for every domain that reported,
 * arbitration over all of them, then the targets set. */
static void
vmemd_cycle (Sim *sim, gint64 now, gpointer user_data)
{
  Vmemd *v = user_data;
  double committed = sim_committed_mib (sim);
  VmemControllerHost host = {
    .capacity_mib = (guint64) sim->capacity_mib,
    .committed_mib = (guint64) ceil (committed),
    .has_available = TRUE,
    .mem_available_mib = (guint64) MAX (sim->capacity_mib - committed, 0),
  };
  gsize m = 0;

  for (gsize i = 0; i < sim->n; i++)
    {
      SimDomain *d = &sim->dom[i];
      if (!d->observed)
        continue;
      guint64 target = (guint64) d->target_mib;
      guint64 used = (guint64) MIN (d->demand_mib, d->target_mib);
      VmemControllerSample s[2];
      gsize n = 0;
      if (v->has_prev[i])
        s[n++] = v->prev[i];
      s[n++] = (VmemControllerSample){
        .t = now,
        .fresh = TRUE,
        .used_mib = used,
        .available_mib = target - used,
        .total_mib = target,
        .actual_mib = target,
        .swap_in_kib = d->swap_in_kib,
        .major_fault = d->major_fault,
      };
      VmemControllerDomain dom = {
        .name = d->fd->name,
        .memory_mib = d->fd->memory_mib,
        .target_mib = target,
        .actual_mib = target,
      };
      vmem_controller_decide (&v->config, v->profile, &dom, s, n, &host, &v->state[i], now,
                              &v->dec[m]);
      v->idx[m++] = i;
      v->prev[i] = s[n - 1];
      v->has_prev[i] = TRUE;
    }
  vmem_controller_arbitrate (&v->config, &host, v->dec, m);
  for (gsize k = 0; k < m; k++)
    {
      VmemControllerDecision *dec = &v->dec[k];
      if (dec->send && !dec->observe)
        {
          sim_set_target (&sim->dom[v->idx[k]], (double) dec->target_mib);
          vmem_controller_sent (&v->state[v->idx[k]], dec->target_mib, now);
        }
      vmem_controller_decision_clear (dec);
    }
}

static void
vmemd_policy (Vmemd *v, SimPolicy *out)
{
  *out = (SimPolicy){
    .name = "vmemd",
    .cycles_per_step = 1,
    .init = vmemd_init,
    .cycle = vmemd_cycle,
    .fini = vmemd_fini,
    .user_data = v,
  };
}

/* ---- tables ---- */

typedef struct {
  const char *name;
  SimResult   r;
  gboolean    timed;
} Row;

static double
pct (double part, double whole)
{
  return whole > 0 ? 100.0 * part / whole : 0;
}

static void
print_span (const char *title, Row *rows, guint n, int span, double hours)
{
  printf ("%s\n", title);
  printf ("  %-8s %10s %8s %8s %8s %9s %10s %10s", "policy", "held GiB-h", "avg GiB", "% static",
          "peak GiB", "starved %", "deficit", "moves/d-h");
  if (span < 0)
    printf (" %9s %9s", "cpu p50", "cpu p99");
  printf ("\n");
  for (guint i = 0; i < n; i++)
    {
      const SimTally *t = span < 0 ? &rows[i].r.all : &rows[i].r.half[span];
      printf ("  %-8s %10.0f %8.1f %8.2f %8.1f %9.3f %10.1f %10.3f", rows[i].name, t->held_gib_h,
              t->held_gib_h / hours, pct (t->held_gib_h, t->static_gib_h), t->peak_gib,
              pct (t->starved, t->domain_intervals), t->deficit_gib_h,
              t->domain_hours > 0 ? t->moves / t->domain_hours : 0);
      if (span < 0)
        {
          if (rows[i].timed)
            printf (" %7.1f µs %7.1f µs", sim_percentile (rows[i].r.cycle_us, 0.50),
                    sim_percentile (rows[i].r.cycle_us, 0.99));
          else
            printf (" %9s %9s", "-", "-");
        }
      printf ("\n");
    }
  const SimTally *t = span < 0 ? &rows[0].r.all : &rows[0].r.half[span];
  printf ("  %-8s %10.0f %8.1f %8.2f %8s %9s %10s  (what the domains used)\n", "demand",
          t->demand_gib_h, t->demand_gib_h / hours, pct (t->demand_gib_h, t->static_gib_h), "",
          "", "");
}

/* vmemd's targets, against the rows named MOM and Proxmox. */
static void
print_targets (Row *rows, guint n, int span)
{
  const SimTally *v = NULL, *mom = NULL, *pve = NULL;
  for (guint i = 0; i < n; i++)
    {
      const SimTally *t = span < 0 ? &rows[i].r.all : &rows[i].r.half[span];
      if (strcmp (rows[i].name, "vmemd") == 0)
        v = t;
      else if (strcmp (rows[i].name, "MOM") == 0)
        mom = t;
      else if (strcmp (rows[i].name, "Proxmox") == 0)
        pve = t;
    }
  if (v == NULL || mom == NULL || pve == NULL)
    return;
  double held = pct (v->held_gib_h, v->static_gib_h);
  double starved = pct (v->starved, v->domain_intervals);
  gboolean held_ok = held <= TARGET_HELD_PCT;
  gboolean starved_ok = starved < TARGET_STARVED_PCT;
  gboolean mom_ok = v->held_gib_h < mom->held_gib_h &&
                    starved < pct (mom->starved, mom->domain_intervals);
  gboolean pve_ok = v->held_gib_h < pve->held_gib_h &&
                    starved < pct (pve->starved, pve->domain_intervals);
  printf ("  targets: held %.2f %% of static (<= %.0f %%): %s; starved %.3f %% (< %.2f %%): %s; "
          "better than MOM on both: %s; better than Proxmox on both: %s\n",
          held, TARGET_HELD_PCT, held_ok ? "met" : "NOT met", starved, TARGET_STARVED_PCT,
          starved_ok ? "met" : "NOT met", mom_ok ? "met" : "NOT met", pve_ok ? "met" : "NOT met");
}

static void
print_table (const char *title, const Fleet *fleet, Row *rows, guint n)
{
  double hours = (double) (fleet->t_end - fleet->t0) / 3600.0;
  g_autofree char *whole = g_strdup_printf ("%s -- the whole trace (%.0f h)", title, hours);
  print_span (whole, rows, n, -1, hours);
  print_targets (rows, n, -1);
  for (int h = 0; h < 2; h++)
    {
      g_autofree char *t = g_strdup_printf ("%s -- %s half (%.0f h)", title,
                                            h == 0 ? "first" : "second", hours / 2);
      printf ("\n");
      print_span (t, rows, n, h, hours / 2);
      print_targets (rows, n, h);
    }
}

static void
run_all (const Fleet *fleet, double capacity, gboolean boot_estimate, Vmemd *vmemd,
         BaselineMom *mom, BaselinePve *pve, BaselineHyperv *hv, Row *rows, guint *n_rows)
{
  SimPolicy p[5];
  guint n = 0;
  baseline_static (&p[n++]);
  vmemd_policy (vmemd, &p[n++]);
  baseline_mom (mom, fleet->step_s, &p[n++]);
  baseline_pve (pve, fleet->step_s, &p[n++]);
  baseline_hyperv (hv, &p[n++]);
  for (guint i = 0; i < n; i++)
    {
      rows[i].name = p[i].name;
      rows[i].timed = i > 0;
      sim_run (fleet, capacity, boot_estimate, &p[i], &rows[i].r);
    }
  *n_rows = n;
}

/* ---- how the defaults were chosen ---- */

typedef struct {
  guint64 min_buffer_mib;
  double  min_buffer_pct;
  gint64  hold_s;
  gint64  half_life_s;
} Choice;

/* Runs vmemd with each setting of a small grid and picks, on the first
 * half only, the one that holds the least memory with at most
 * @starved_pct of its intervals starved. */
static void
run_grid (const Fleet *fleet, double capacity, const VmemProfile *profile, double starved_pct)
{
  static const guint64 buffers[] = { 256, 512, 1024 };
  static const double buffer_pcts[] = { 0, 5, 10 };
  static const gint64 holds[] = { 1800, 3600, 3 * 3600 };
  static const gint64 half_lives[] = { 1800, 3600, 7200 };
  Choice best = { 0 };
  double best_held = G_MAXDOUBLE;

  printf ("Grid (vmemd only, boot at <memory>): first half | second half\n");
  printf ("  %6s %6s %6s %6s | %8s %9s | %8s %9s\n", "buffer", "buf %", "hold", "half-l",
          "% static", "starved %", "% static", "starved %");
  for (guint a = 0; a < G_N_ELEMENTS (buffers); a++)
    for (guint b = 0; b < G_N_ELEMENTS (buffer_pcts); b++)
      for (guint c = 0; c < G_N_ELEMENTS (holds); c++)
        for (guint d = 0; d < G_N_ELEMENTS (half_lives); d++)
          {
            Vmemd v = { .profile = (VmemProfile *) profile };
            vmem_controller_config_init (&v.config);
            v.config.min_buffer_mib = buffers[a];
            v.config.min_buffer_pct = buffer_pcts[b];
            v.config.surplus_hold_s = holds[c];
            v.config.shrink_half_life_s = half_lives[d];
            SimPolicy p;
            vmemd_policy (&v, &p);
            SimResult r;
            sim_run (fleet, capacity, FALSE, &p, &r);
            const SimTally *h1 = &r.half[0], *h2 = &r.half[1];
            double held1 = pct (h1->held_gib_h, h1->static_gib_h);
            double st1 = pct (h1->starved, h1->domain_intervals);
            printf ("  %6" G_GUINT64_FORMAT " %6.1f %6.1f %6.1f | %8.2f %9.3f | %8.2f %9.3f\n",
                    buffers[a], buffer_pcts[b], holds[c] / 3600.0, half_lives[d] / 3600.0, held1,
                    st1, pct (h2->held_gib_h, h2->static_gib_h),
                    pct (h2->starved, h2->domain_intervals));
            if (st1 <= starved_pct && held1 < best_held)
              {
                best_held = held1;
                best = (Choice){ buffers[a], buffer_pcts[b], holds[c], half_lives[d] };
              }
            sim_result_clear (&r);
          }
  if (best_held < G_MAXDOUBLE)
    printf ("chosen on the first half (least memory with at most %.2f %% starved): "
            "min_buffer_mib %" G_GUINT64_FORMAT ", min_buffer_pct %.1f, surplus_hold_s %"
            G_GINT64_FORMAT ", shrink_half_life_s %" G_GINT64_FORMAT "\n",
            starved_pct, best.min_buffer_mib, best.min_buffer_pct, best.hold_s, best.half_life_s);
  else
    printf ("no setting starves at most %.2f %% of the first half's intervals\n", starved_pct);
}

/* The same policies on smaller and larger hosts, over the whole trace. */
static void
run_sweep (const Fleet *fleet, Vmemd *vmemd, BaselineMom *mom, BaselinePve *pve,
           BaselineHyperv *hv)
{
  static const double capacities[] = { 25, 100.0 / 3.0, 50, 100.0 * 2.0 / 3.0, 100 };

  printf ("By host capacity (boot at <memory>, the whole trace): %% of static held / %% of "
          "intervals starved\n");
  printf ("  %8s %17s %17s %17s %17s  %s\n", "capacity", "vmemd", "MOM", "Proxmox", "Hyper-V",
          "vmemd's targets");
  for (guint k = 0; k < G_N_ELEMENTS (capacities); k++)
    {
      double capacity = capacities[k] / 100.0 * (double) fleet->memory_mib;
      SimPolicy p[4];
      vmemd_policy (vmemd, &p[0]);
      baseline_mom (mom, fleet->step_s, &p[1]);
      baseline_pve (pve, fleet->step_s, &p[2]);
      baseline_hyperv (hv, &p[3]);
      Row rows[4] = { 0 };
      printf ("  %7.0f%%", capacities[k]);
      for (guint i = 0; i < 4; i++)
        {
          rows[i].name = p[i].name;
          sim_run (fleet, capacity, FALSE, &p[i], &rows[i].r);
          const SimTally *t = &rows[i].r.all;
          printf (" %7.2f / %6.3f", pct (t->held_gib_h, t->static_gib_h),
                  pct (t->starved, t->domain_intervals));
        }
      const SimTally *v = &rows[0].r.all, *m = &rows[1].r.all, *x = &rows[2].r.all;
      double st = pct (v->starved, v->domain_intervals);
      printf ("  %s%s%s%s\n", pct (v->held_gib_h, v->static_gib_h) <= TARGET_HELD_PCT ? "held" : "",
              st < TARGET_STARVED_PCT ? " starved" : "",
              v->held_gib_h < m->held_gib_h && st < pct (m->starved, m->domain_intervals)
                ? " >MOM"
                : "",
              v->held_gib_h < x->held_gib_h && st < pct (x->starved, x->domain_intervals)
                ? " >Proxmox"
                : "");
      for (guint i = 0; i < 4; i++)
        sim_result_clear (&rows[i].r);
    }
}

static void
usage (const char *argv0)
{
  fprintf (stderr, "usage: %s [--capacity-pct N] [--grid] TRACE.csv[.gz]\n", argv0);
}

int
main (int argc, char **argv)
{
  double capacity_pct = DEFAULT_CAPACITY_PCT;
  gboolean grid = FALSE;
  const char *path = NULL;

  for (int i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--grid") == 0)
        grid = TRUE;
      else if (strcmp (argv[i], "--capacity-pct") == 0 && i + 1 < argc)
        {
          char *end = NULL;
          capacity_pct = g_ascii_strtod (argv[++i], &end);
          if (end == argv[i] || *end != '\0' || !(capacity_pct > 0 && capacity_pct <= 1000))
            {
              fprintf (stderr, "--capacity-pct: %s is not a percentage (above 0, up to 1000)\n",
                       argv[i]);
              return 2;
            }
        }
      else if (argv[i][0] == '-' || path != NULL)
        {
          usage (argv[0]);
          return 2;
        }
      else
        path = argv[i];
    }
  if (path == NULL)
    {
      usage (argv[0]);
      return 2;
    }

  g_autoptr(GError) error = NULL;
  g_autoptr(Fleet) fleet = fleet_load (path, &error);
  if (fleet == NULL)
    {
      fprintf (stderr, "%s\n", error->message);
      return 1;
    }
  double capacity = capacity_pct / 100.0 * (double) fleet->memory_mib;
  guint estimated = 0;
  for (guint i = 0; i < fleet->domains->len; i++)
    {
      const FleetDomain *fd = g_ptr_array_index (fleet->domains, i);
      estimated += strcmp (fd->estimate_source, "peers") == 0;
    }

  printf ("trace: %s\n", path);
  printf ("%u domains, %" G_GUINT64_FORMAT " samples (%" G_GUINT64_FORMAT " above their "
          "<memory>, counted as it), %.1f days, one step every %u s (the median sampling "
          "interval)\n",
          fleet->domains->len, fleet->samples, fleet->clipped,
          (double) (fleet->t_end - fleet->t0) / 86400.0, fleet->step_s);
  printf ("host capacity: %.0f GiB = %.0f %% of the sum of <memory> (%.0f GiB)\n\n",
          capacity / 1024.0, capacity_pct, (double) fleet->memory_mib / 1024.0);

  g_autoptr(VmemProfile) profile = vmem_profile_new ("bench");
  if (grid)
    {
      run_grid (fleet, capacity, profile, 0.20);
      return 0;
    }

  Vmemd vmemd = { .profile = profile };
  vmem_controller_config_init (&vmemd.config);
  BaselineMom mom;
  baseline_mom_init (&mom);
  BaselinePve pve;
  baseline_pve_init (&pve);
  BaselineHyperv hv;
  baseline_hyperv_init (&hv);

  const VmemControllerConfig *c = &vmemd.config;
  printf ("vmemd: default profile (buffer %g %% of used, priority %d) and controller defaults: "
          "buffer at least %" G_GUINT64_FORMAT " MiB and %g %% of <memory>, surplus held %"
          G_GINT64_FORMAT " s then halved every %" G_GINT64_FORMAT " s, minimum step %"
          G_GUINT64_FORMAT
          " MiB / %g %%, one decision per step\n",
          profile->buffer_pct, profile->priority, c->min_buffer_mib, c->min_buffer_pct,
          c->surplus_hold_s, c->shrink_half_life_s, c->min_step_mib, c->min_step_pct);
  printf ("MOM and Proxmox run their 10 s cycle %u times per step; Hyper-V once\n",
          MAX (1u, (fleet->step_s + 5) / 10));
  printf ("peak GiB: the highest memory held at one step after the first day; deficit: GiB-h "
          "of demand above the target; moves: balloon targets set per domain-hour; cpu: one "
          "cycle over all domains\n\n");

  Row rows[5] = { 0 };
  guint n = 0;
  run_all (fleet, capacity, FALSE, &vmemd, &mom, &pve, &hv, rows, &n);
  print_table ("Boot at <memory>", fleet, rows, n);
  for (guint i = 0; i < n; i++)
    sim_result_clear (&rows[i].r);

  printf ("\n%u of %u domains had peers with history at their first sample; the others boot "
          "at their <memory> in the table below too\n\n",
          estimated, fleet->domains->len);
  run_all (fleet, capacity, TRUE, &vmemd, &mom, &pve, &hv, rows, &n);
  print_table ("Boot at vmemd's pre-start estimate", fleet, rows, n);
  for (guint i = 0; i < n; i++)
    sim_result_clear (&rows[i].r);

  printf ("\n");
  run_sweep (fleet, &vmemd, &mom, &pve, &hv);
  return 0;
}
