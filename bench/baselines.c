/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "baselines.h"

#include <math.h>

#define MIB ((gint64) 1024 * 1024)

static guint
cycles_in (guint step_s, guint interval_s)
{
  return MAX (1, (step_s + interval_s / 2) / interval_s);
}

/* ---- static ---- */

static void
static_cycle (Sim *sim, gint64 now, gpointer user_data)
{
  for (gsize i = 0; i < sim->n; i++)
    if (sim->dom[i].started)
      sim_set_target (&sim->dom[i], (double) sim->dom[i].fd->memory_mib);
}

void
baseline_static (SimPolicy *out)
{
  *out = (SimPolicy){ .name = "static", .cycles_per_step = 1, .cycle = static_cycle };
}

/* ---- oVirt MOM ---- */

void
baseline_mom_init (BaselineMom *mom)
{
  *mom = (BaselineMom){
    .pressure_threshold = 0.20,
    .pressure_critical = 0.05,
    .min_guest_free_percent = 0.20,
    .max_balloon_change_percent = 0.05,
    .min_balloon_change_percent = 0.0025,
    .interval_s = 10,
  };
}

static gboolean
mom_change_big_enough (const BaselineMom *m, double cur, double new_val)
{
  return fabs (new_val - cur) > m->min_balloon_change_percent * cur;
}

/* One run of balloon.rules: host_free_percent from the host's free memory
 * (what the guests do not hold) over its total; under the threshold every
 * guest is shrunk, else every guest grows. */
static void
mom_cycle (Sim *sim, gint64 now, gpointer user_data)
{
  const BaselineMom *m = user_data;
  double total = sim->capacity_mib;
  double host_free = MAX (total - sim_committed_mib (sim), 0);
  double host_free_percent = host_free / total;
  gboolean pressure = host_free_percent < m->pressure_threshold;
  double guest_free_percent =
    host_free_percent <= m->pressure_critical
      ? -0.05 + host_free_percent
      : m->min_guest_free_percent * (host_free_percent / m->pressure_threshold);

  for (gsize i = 0; i < sim->n; i++)
    {
      SimDomain *d = &sim->dom[i];
      if (!d->observed)
        continue;
      double cur = d->target_mib;
      double max = (double) d->fd->memory_mib;
      /* balloon_cur - mem_unused */
      double used = MIN (d->demand_mib, cur);
      if (pressure)
        {
          double balloon_min = used + guest_free_percent * cur;
          double size = cur * (1 - m->max_balloon_change_percent);
          if (size < balloon_min)
            size = balloon_min;
          if (size <= cur && mom_change_big_enough (m, cur, size))
            sim_set_target (d, MAX (size, 0));
        }
      else if (cur < max)
        {
          double balloon_min = used + m->min_guest_free_percent * max;
          double size = cur * (1 + m->max_balloon_change_percent);
          if (size > max)
            size = max;
          if (size < balloon_min)
            size = balloon_min;
          /* QEMU does not take a balloon target above the maximum. */
          size = MIN (size, max);
          if (mom_change_big_enough (m, cur, size))
            sim_set_target (d, size);
        }
    }
}

void
baseline_mom (BaselineMom *mom, guint step_s, SimPolicy *out)
{
  *out = (SimPolicy){
    .name = "MOM",
    .cycles_per_step = cycles_in (step_s, mom->interval_s),
    .cycle = mom_cycle,
    .user_data = mom,
  };
}

/* ---- Proxmox VE ---- */

void
baseline_pve_init (BaselinePve *pve)
{
  *pve = (BaselinePve){
    .target_pct = 80,
    .maxchange_mib = 100,
    .deadband_mib = 10,
    .shares = 1000,
    .min_mib = 512,
    .interval_s = 10,
  };
}

/* One VM as vmstatus gives it to compute_alg1, in bytes. */
typedef struct {
  SimDomain *d;
  gint64     balloon;
  gint64     balloon_min;
  gint64     maxmem;
  gint64     freemem;
  gint64     shares;
  gint64     res;      /* the new balloon, when has_res */
  gboolean   has_res;
  gboolean   done;
} PveVm;

/* PVE::AutoBalloon::compute_alg1's $change_func: hands @bytes out to (or
 * takes them from) the VMs of @ids by shares, each moving at most
 * maxchange from its current balloon; returns what is left. */
static gint64
pve_change (PveVm *vm, const guint *ids, guint n_ids, gint64 bytes, gint64 maxchange)
{
  gint64 rest = bytes;
  gboolean repeat = TRUE;
  gint64 progress = 1;

  for (guint k = 0; k < n_ids; k++)
    vm[ids[k]].done = FALSE;
  while (rest != 0 && repeat && progress != 0)
    {
      repeat = FALSE;
      progress = 0;
      gint64 shares_total = 0;
      gint64 alloc_old = 0;
      for (guint k = 0; k < n_ids; k++)
        {
          PveVm *v = &vm[ids[k]];
          if (v->done)
            continue;
          gint64 balloon = v->has_res ? v->res : v->balloon;
          alloc_old += balloon - v->balloon_min;
          shares_total += v->shares;
        }
      if (shares_total == 0)
        break;
      gint64 changes = 0;
      gint64 alloc_new = alloc_old + rest;
      for (guint k = 0; k < n_ids; k++)
        {
          PveVm *v = &vm[ids[k]];
          if (v->done)
            continue;
          /* Perl's int() truncates toward zero. */
          gint64 desired =
            v->balloon_min + (gint64) trunc ((double) alloc_new / (double) shares_total *
                                             (double) v->shares);
          if (desired > v->maxmem)
            {
              desired = v->maxmem;
              repeat = TRUE;
            }
          else if (desired < v->balloon_min)
            {
              desired = v->balloon_min;
              repeat = TRUE;
            }
          gint64 balloon;
          if (bytes > 0 && desired - v->balloon > 0)
            balloon = MIN (v->balloon + maxchange, desired);
          else if (desired - v->balloon < 0)
            balloon = MAX (v->balloon - maxchange, desired);
          else
            {
              v->done = TRUE;
              continue;
            }
          gint64 diff = balloon - v->balloon;
          if (diff != 0)
            {
              gint64 oldballoon = v->has_res ? v->res : v->balloon;
              v->res = balloon;
              v->has_res = TRUE;
              gint64 change = balloon - oldballoon;
              if (change != 0)
                {
                  changes += change;
                  progress += diff > 0 ? diff : -diff;
                  repeat = TRUE;
                }
            }
        }
      rest -= changes;
    }
  return rest;
}

typedef struct {
  PveVm       *vm;
  guint       *all;
  guint       *pressed; /* idlist1: memory pressure */
  guint       *roomy;   /* idlist2: enough free memory */
} Pve;

static void
pve_init (Sim *sim, gpointer user_data)
{
  BaselinePve *c = user_data;
  Pve *p = g_new0 (Pve, 1);
  c->run = p;
  p->vm = g_new0 (PveVm, sim->n);
  p->all = g_new0 (guint, sim->n);
  p->pressed = g_new0 (guint, sim->n);
  p->roomy = g_new0 (guint, sim->n);
}

static void
pve_fini (Sim *sim, gpointer user_data)
{
  BaselinePve *c = user_data;
  Pve *p = c->run;
  g_free (p->vm);
  g_free (p->all);
  g_free (p->pressed);
  g_free (p->roomy);
  g_clear_pointer (&c->run, g_free);
}

/* pvestatd's auto_ballooning: goal = memtotal * 80 % - memused, then
 * compute_alg1 and a balloon command for every VM whose size changed. */
static void
pve_cycle (Sim *sim, gint64 now, gpointer user_data)
{
  const BaselinePve *c = user_data;
  Pve *p = c->run;
  gint64 memtotal = (gint64) (sim->capacity_mib * MIB);
  gint64 memused = (gint64) (sim_committed_mib (sim) * MIB);
  gint64 goal = (gint64) trunc ((double) memtotal * c->target_pct / 100.0) - memused;
  gint64 maxchange = (gint64) (c->maxchange_mib * MIB);
  gint64 deadband = (gint64) (c->deadband_mib * MIB);
  guint n_all = 0, n_pressed = 0, n_roomy = 0;

  for (gsize i = 0; i < sim->n; i++)
    {
      SimDomain *d = &sim->dom[i];
      if (!d->observed)
        continue;
      PveVm *v = &p->vm[i];
      double max = (double) d->fd->memory_mib;
      *v = (PveVm){
        .d = d,
        .balloon = (gint64) (d->target_mib * MIB),
        .balloon_min = (gint64) (MIN (c->min_mib, max) * MIB),
        .maxmem = (gint64) (max * MIB),
        .freemem = (gint64) ((d->target_mib - MIN (d->demand_mib, d->target_mib)) * MIB),
        .shares = (gint64) c->shares,
      };
      p->all[n_all++] = (guint) i;
      if (v->freemem != 0 && (double) v->freemem > (double) v->balloon_min * 0.25 &&
          v->balloon >= v->balloon_min)
        p->roomy[n_roomy++] = (guint) i;
      else
        p->pressed[n_pressed++] = (guint) i;
    }

  if (goal > deadband)
    {
      /* Grow the VMs under pressure first. */
      gint64 rest = pve_change (p->vm, p->pressed, n_pressed, goal, maxchange);
      if (rest >= goal)
        pve_change (p->vm, p->all, n_all, rest, maxchange);
    }
  else if (goal < -deadband)
    {
      /* Shrink the VMs with enough free memory first. */
      gint64 rest = pve_change (p->vm, p->roomy, n_roomy, goal, maxchange);
      if (rest <= goal)
        pve_change (p->vm, p->all, n_all, rest, maxchange);
    }
  else
    return;

  for (guint k = 0; k < n_all; k++)
    {
      PveVm *v = &p->vm[p->all[k]];
      if (v->has_res && v->res != v->balloon)
        sim_set_target (v->d, (double) v->res / (double) MIB);
    }
}

void
baseline_pve (BaselinePve *pve, guint step_s, SimPolicy *out)
{
  *out = (SimPolicy){
    .name = "Proxmox",
    .cycles_per_step = cycles_in (step_s, pve->interval_s),
    .init = pve_init,
    .cycle = pve_cycle,
    .fini = pve_fini,
    .user_data = pve,
  };
}

/* ---- Hyper-V Dynamic Memory ---- */

void
baseline_hyperv_init (BaselineHyperv *hv)
{
  *hv = (BaselineHyperv){ .buffer_pct = 20, .weight = 5000, .min_mib = 512 };
}

/* Each VM is given its demand plus the buffer, within Minimum RAM and
 * <memory>.  When the host cannot, every VM gets the same share of what
 * it wants (the same "memory pressure"), scaled by its weight, and never
 * less than its Minimum RAM. */
static void
hyperv_cycle (Sim *sim, gint64 now, gpointer user_data)
{
  const BaselineHyperv *hv = user_data;
  double fixed = 0, want_sum = 0, min_sum = 0;

  for (gsize i = 0; i < sim->n; i++)
    {
      SimDomain *d = &sim->dom[i];
      if (!d->started)
        continue;
      if (!d->observed)
        {
          fixed += d->target_mib;
          continue;
        }
      double max = (double) d->fd->memory_mib;
      double min = MIN (hv->min_mib, max);
      want_sum += CLAMP (ceil (d->demand_mib * (1 + hv->buffer_pct / 100.0)), min, max);
      min_sum += min;
    }
  double avail = sim->capacity_mib - fixed;
  double f = 1.0;
  if (want_sum > avail)
    {
      /* The share f: bisection, the sum grows with f. */
      double lo = 0, hi = 1;
      for (int it = 0; it < 50 && min_sum < avail; it++)
        {
          double mid = (lo + hi) / 2, sum = 0;
          for (gsize i = 0; i < sim->n; i++)
            {
              SimDomain *d = &sim->dom[i];
              if (!d->observed)
                continue;
              double max = (double) d->fd->memory_mib;
              double min = MIN (hv->min_mib, max);
              double want = CLAMP (ceil (d->demand_mib * (1 + hv->buffer_pct / 100.0)), min, max);
              sum += CLAMP (mid * want * hv->weight / 5000.0, min, want);
            }
          if (sum > avail)
            hi = mid;
          else
            lo = mid;
        }
      f = lo;
    }
  for (gsize i = 0; i < sim->n; i++)
    {
      SimDomain *d = &sim->dom[i];
      if (!d->observed)
        continue;
      double max = (double) d->fd->memory_mib;
      double min = MIN (hv->min_mib, max);
      double want = CLAMP (ceil (d->demand_mib * (1 + hv->buffer_pct / 100.0)), min, max);
      sim_set_target (d, CLAMP (f * want * hv->weight / 5000.0, min, want));
    }
}

void
baseline_hyperv (BaselineHyperv *hv, SimPolicy *out)
{
  *out = (SimPolicy){
    .name = "Hyper-V",
    .cycles_per_step = 1,
    .cycle = hyperv_cycle,
    .user_data = hv,
  };
}
