/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fleet.h"
#include "vmem-demand.h"
#include "vmem-trace.h"

#include <math.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
  FleetDomain *fd;
  GArray      *t;
  GArray      *used;
} Loading;

static void
fleet_domain_free (gpointer data)
{
  FleetDomain *fd = data;
  g_free (fd->name);
  g_free (fd->workload);
  g_free (fd->t);
  g_free (fd->used_mib);
  g_free (fd->estimate_source);
  g_free (fd);
}

void
fleet_free (Fleet *fleet)
{
  if (fleet == NULL)
    return;
  g_ptr_array_unref (fleet->domains);
  g_free (fleet);
}

static void
loading_free (gpointer data)
{
  Loading *l = data;
  if (l->t != NULL)
    g_array_unref (l->t);
  if (l->used != NULL)
    g_array_unref (l->used);
  g_free (l);
}

static int
cmp_gint64 (const void *a, const void *b)
{
  gint64 x = *(const gint64 *) a, y = *(const gint64 *) b;
  return x < y ? -1 : x > y;
}

/* The domain starts now: what vmemd's estimator would stage for it, from
 * everything seen before this first sample. */
static gboolean
estimate_start (VmemDemand *demand, FleetDomain *fd, gint64 t, GError **error)
{
  VmemEstimateTarget target = {
    .uuid = fd->name,
    .vcpus = fd->vcpus,
    .memory_mib = (double) fd->memory_mib,
  };
  g_autoptr(VmemEstimate) e = vmem_demand_estimate (demand, fd->workload, NULL, &target, t, error);
  if (e == NULL)
    return FALSE;
  fd->estimate_mib = e->demand_mib > 0 ? MIN (e->demand_mib, fd->memory_mib) : fd->memory_mib;
  fd->estimate_source = g_strdup (vmem_estimate_source_to_string (e->source));
  return TRUE;
}

Fleet *
fleet_load (const char *path, GError **error)
{
  VmemEstimatorConfig config;
  vmem_estimator_config_init (&config);
  g_autoptr(VmemDemand) demand = vmem_demand_new (&config, error);
  if (demand == NULL)
    return NULL;
  g_autoptr(VmemTraceReader) reader = vmem_trace_reader_open (path, error);
  if (reader == NULL)
    return NULL;

  g_autoptr(Fleet) fleet = g_new0 (Fleet, 1);
  fleet->domains = g_ptr_array_new_with_free_func (fleet_domain_free);
  g_autoptr(GHashTable) by_name = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                                         loading_free);
  g_autoptr(GArray) gaps = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_autoptr(GPtrArray) order = g_ptr_array_new ();

  for (;;)
    {
      VmemTraceRow row;
      g_autoptr(GError) local = NULL;
      if (!vmem_trace_reader_next (reader, &row, &local))
        {
          if (local != NULL)
            {
              g_propagate_error (error, g_steal_pointer (&local));
              return NULL;
            }
          break;
        }
      Loading *l = g_hash_table_lookup (by_name, row.domain);
      if (l == NULL)
        {
          FleetDomain *fd = g_new0 (FleetDomain, 1);
          fd->name = g_strdup (row.domain);
          fd->workload = g_strdup (row.workload);
          fd->vcpus = row.vcpus;
          fd->memory_mib = (row.ceiling_kib + 1023) / 1024;
          if (!estimate_start (demand, fd, row.t, error))
            {
              fleet_domain_free (fd);
              return NULL;
            }
          g_ptr_array_add (fleet->domains, fd);
          l = g_new0 (Loading, 1);
          l->fd = fd;
          l->t = g_array_new (FALSE, FALSE, sizeof (gint64));
          l->used = g_array_new (FALSE, FALSE, sizeof (guint32));
          g_hash_table_insert (by_name, fd->name, l);
          g_ptr_array_add (order, l);
          fleet->memory_mib += fd->memory_mib;
          if (fleet->samples == 0)
            fleet->t0 = row.t;
        }
      else
        {
          gint64 gap = row.t - g_array_index (l->t, gint64, l->t->len - 1);
          g_array_append_val (gaps, gap);
        }

      VmemPeakSample s = {
        .uuid = l->fd->name,
        .domain = l->fd->name,
        .t = row.t,
        .used_mib = (double) row.used_kib / 1024.0,
        .guest = TRUE,
        .vcpus = row.vcpus,
      };
      VmemPeakObs out[2];
      if (!vmem_demand_observe (demand, l->fd->workload, &s, out, error))
        {
          g_prefix_error (error, "%s:%" G_GUINT64_FORMAT ": ", path, row.line);
          return NULL;
        }

      guint64 used = (row.used_kib + 1023) / 1024;
      if (used > l->fd->memory_mib)
        {
          fleet->clipped++;
          used = l->fd->memory_mib;
        }
      guint32 used32 = (guint32) used;
      g_array_append_val (l->t, row.t);
      g_array_append_val (l->used, used32);
      fleet->t_end = row.t;
      fleet->samples++;
    }
  if (fleet->samples == 0 || gaps->len == 0)
    {
      g_set_error (error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: too few samples", path);
      return NULL;
    }

  for (guint i = 0; i < order->len; i++)
    {
      Loading *l = g_ptr_array_index (order, i);
      l->fd->n = l->t->len;
      l->fd->t = (gint64 *) (void *) g_array_free (g_steal_pointer (&l->t), FALSE);
      l->fd->used_mib = (guint32 *) (void *) g_array_free (g_steal_pointer (&l->used), FALSE);
    }
  qsort (gaps->data, gaps->len, sizeof (gint64), cmp_gint64);
  fleet->step_s = (guint) MAX (g_array_index (gaps, gint64, gaps->len / 2), 1);
  return g_steal_pointer (&fleet);
}

/* ---- the simulation ---- */

void
sim_result_clear (SimResult *r)
{
  if (r->cycle_us != NULL)
    g_array_unref (r->cycle_us);
  *r = (SimResult){ 0 };
}

double
sim_committed_mib (const Sim *sim)
{
  double sum = 0;
  for (gsize i = 0; i < sim->n; i++)
    if (sim->dom[i].started)
      sum += sim->dom[i].target_mib;
  return sum;
}

void
sim_set_target (SimDomain *d, double target_mib)
{
  double t = round (target_mib);
  if (t != d->target_mib)
    d->moves++;
  d->target_mib = t;
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return x < y ? -1 : x > y;
}

double
sim_percentile (GArray *values, double q)
{
  if (values == NULL || values->len == 0)
    return NAN;
  qsort (values->data, values->len, sizeof (double), cmp_double);
  gsize i = (gsize) floor (q * (double) (values->len - 1) + 0.5);
  return g_array_index (values, double, MIN (i, values->len - 1));
}

static double
now_us (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double) ts.tv_sec * 1e6 + (double) ts.tv_nsec / 1e3;
}

static void
tally_add (SimTally *t, const SimDomain *d, double step_h)
{
  t->domain_intervals += 1;
  t->domain_hours += step_h;
  t->held_gib_h += d->target_mib / 1024.0 * step_h;
  t->static_gib_h += (double) d->fd->memory_mib / 1024.0 * step_h;
  t->demand_gib_h += d->demand_mib / 1024.0 * step_h;
  if (d->demand_mib > d->target_mib)
    {
      t->starved += 1;
      t->deficit_gib_h += (d->demand_mib - d->target_mib) / 1024.0 * step_h;
    }
}

void
sim_run (const Fleet *fleet, double capacity_mib, gboolean boot_estimate,
         const SimPolicy *policy, SimResult *out)
{
  Sim sim = {
    .fleet = fleet,
    .n = fleet->domains->len,
    .capacity_mib = capacity_mib,
    .boot_estimate = boot_estimate,
  };
  sim.dom = g_new0 (SimDomain, sim.n);
  for (gsize i = 0; i < sim.n; i++)
    sim.dom[i].fd = g_ptr_array_index (fleet->domains, i);

  *out = (SimResult){ .cycle_us = g_array_new (FALSE, FALSE, sizeof (double)) };
  if (policy->init != NULL)
    policy->init (&sim, policy->user_data);

  gint64 step = fleet->step_s;
  double step_h = (double) step / 3600.0;
  gint64 mid = fleet->t0 + (fleet->t_end - fleet->t0) / 2;
  guint cycles = MAX (policy->cycles_per_step, 1);
  for (gint64 now = fleet->t0; now <= fleet->t_end; now += step)
    {
      SimTally *half = &out->half[now < mid ? 0 : 1];
      double committed = 0;
      for (gsize i = 0; i < sim.n; i++)
        {
          SimDomain *d = &sim.dom[i];
          const FleetDomain *fd = d->fd;
          while (d->cursor < fd->n && fd->t[d->cursor] <= now)
            d->cursor++;
          d->observed = FALSE;
          if (d->cursor == 0)
            continue;
          gsize latest = d->cursor - 1;
          gboolean was_started = d->started;
          if (!d->started)
            {
              d->started = TRUE;
              d->target_mib = boot_estimate ? (double) fd->estimate_mib : (double) fd->memory_mib;
            }
          committed += d->target_mib;
          if (now - fd->t[latest] >= 2 * step)
            continue;
          d->observed = TRUE;
          d->demand_mib = fd->used_mib[latest];
          /* The interval since the last step the domain was seen, under the
           * target set then. */
          if (was_started && d->last_t != 0)
            {
              tally_add (&out->all, d, step_h);
              tally_add (half, d, step_h);
            }
          d->last_t = now;
          if (d->demand_mib > d->target_mib)
            {
              guint64 lack = (guint64) ceil (d->demand_mib - d->target_mib);
              d->swap_in_kib += lack * 1024;
              d->major_fault += lack * 256;
            }
        }
      /* After the first day: every domain boots at once when the trace
       * begins, which no host of this capacity could. */
      if (now >= fleet->t0 + SIM_PEAK_AFTER_S)
        {
          out->all.peak_gib = MAX (out->all.peak_gib, committed / 1024.0);
          half->peak_gib = MAX (half->peak_gib, committed / 1024.0);
        }

      guint64 moves_before = 0, moves_after = 0;
      for (gsize i = 0; i < sim.n; i++)
        moves_before += sim.dom[i].moves;
      for (guint c = 0; c < cycles; c++)
        {
          double t0 = now_us ();
          policy->cycle (&sim, now + (gint64) c * step / cycles, policy->user_data);
          double us = now_us () - t0;
          g_array_append_val (out->cycle_us, us);
        }
      for (gsize i = 0; i < sim.n; i++)
        moves_after += sim.dom[i].moves;
      out->all.moves += (double) (moves_after - moves_before);
      half->moves += (double) (moves_after - moves_before);
    }

  if (policy->fini != NULL)
    policy->fini (&sim, policy->user_data);
  g_free (sim.dom);
}
