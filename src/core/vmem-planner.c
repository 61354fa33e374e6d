/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-planner.h"
#include "vmem-cleanup.h"

#include <math.h>

/* 0: keep a balloon's own stats period, 5 s where it has none. */
#define STATS_PERIOD_S 0

void
vmem_staged_plan_free (VmemStagedPlan *sp)
{
  if (sp == NULL)
    return;
  g_free (sp->workload);
  g_free (sp->source);
  vmem_json_put (sp->reasons);
  g_free (sp);
}

VmemStagedPlan *
vmem_planner_plan (const VmemProfile *p, const VmemDomain *d, const VmemEstimate *est, gint64 now)
{
  g_return_val_if_fail (p != NULL, NULL);

  g_autoptr(VmemStagedPlan) sp = g_new0 (VmemStagedPlan, 1);
  json_object *r = json_object_new_object ();
  sp->reasons = r;
  sp->workload = g_strdup (p->name);
  sp->by_tag = d != NULL && d->workload != NULL;
  json_object_object_add (r, "workload", json_object_new_string (p->name));
  json_object_object_add (r, "tagged", json_object_new_boolean (sp->by_tag));

  /* The estimator decides (peers' history first, the profile's manual
   * demand when it is thin, clamped to floor, ceiling and <memory>) and
   * says why. */
  guint64 demand = 0;
  const char *source = "domain";
  json_object *clamps = json_object_new_array ();
  if (est != NULL && est->source != VMEM_SOURCE_NONE && est->demand_mib > 0)
    {
      demand = est->demand_mib;
      source = vmem_estimate_source_to_string (est->source);
      json_object_object_add (r, "why", json_object_new_string (est->reason ? est->reason : ""));
      json_object_object_add (r, "unclamped_mib",
                              json_object_new_int64 ((gint64) ceil (est->raw_mib)));
      if (est->clamps & VMEM_CLAMP_FLOOR)
        json_object_array_add (clamps, json_object_new_string ("raised to the profile's floor"));
      if (est->clamps & VMEM_CLAMP_CEILING)
        json_object_array_add (clamps, json_object_new_string ("lowered to the profile's ceiling"));
      if (est->clamps & VMEM_CLAMP_DOMAIN_MEMORY)
        json_object_array_add (clamps, json_object_new_string ("lowered to the domain's <memory>"));
      json_object_object_add (r, "estimate", vmem_estimate_to_json (est));
      sp->plan.peers = est->n_peers;
    }
  if (demand == 0)
    {
      /* Nothing to go on: the domain keeps its whole <memory>. */
      demand = d != NULL ? d->memory_mib : 0;
      json_object_object_add (r, "why",
                              json_object_new_string (est == NULL
                                                        ? "no estimate could be made: the domain's whole <memory>"
                                                        : "no peer history and no manual demand: the domain's whole <memory>"));
      json_object_object_add (r, "unclamped_mib", json_object_new_int64 ((gint64) demand));
    }
  json_object_object_add (r, "clamps", clamps);
  json_object_object_add (r, "demand_mib", json_object_new_int64 ((gint64) demand));
  json_object_object_add (r, "source", json_object_new_string (source));
  json_object_object_add (r, "prealloc", json_object_new_boolean (p->prealloc));
  json_object_object_add (r, "mode", json_object_new_string (vmem_mode_to_string (p->mode)));

  sp->source = g_strdup (source);
  sp->plan.demand_mib = demand;
  sp->plan.prealloc = p->prealloc;
  sp->plan.stats_period = STATS_PERIOD_S;
  sp->plan.mode = p->mode;
  sp->plan.workload = sp->workload;
  sp->plan.source = sp->source;
  sp->plan.time = now;
  return g_steal_pointer (&sp);
}

gboolean
vmem_planner_moved (guint64 staged_mib, guint64 now_mib, double hysteresis_pct,
                    guint64 hysteresis_mib)
{
  double moved = fabs ((double) now_mib - (double) staged_mib);
  return moved > (double) hysteresis_mib && moved > (double) staged_mib * hysteresis_pct / 100.0;
}
