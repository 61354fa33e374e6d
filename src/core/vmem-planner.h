/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The plan for a domain's next start.  Pure: the profile, the domain, the
 * estimate and the time come in, the plan and its reasons come out. */

#include <glib.h>
#include <json-c/json.h>

#include "vmem-domain.h"
#include "vmem-estimator.h"
#include "vmem-profile.h"
#include "vmem-xml.h"

G_BEGIN_DECLS

/* The plan, and why (a JSON object for explain and the store). */
typedef struct {
  VmemPlan     plan;
  char        *workload;
  char        *source;
  gboolean     by_tag;  /* managed through its workload tag, not a name pattern */
  json_object *reasons;
} VmemStagedPlan;

void vmem_staged_plan_free (VmemStagedPlan *sp);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemStagedPlan, vmem_staged_plan_free)

/* @domain may be NULL (a workload's plan for a new domain of unknown size);
 * @estimate may be NULL when estimating failed.  The demand is the
 * estimate's, else the domain's whole <memory>. */
VmemStagedPlan *vmem_planner_plan (const VmemProfile  *profile,
                                   const VmemDomain   *domain,
                                   const VmemEstimate *estimate,
                                   gint64              now);

/* Whether a demand moved from @staged_mib to @now_mib by more than both
 * hysteresis thresholds (small domains do not flap on a few MiB, large ones
 * not on a few per cent). */
gboolean vmem_planner_moved (guint64 staged_mib, guint64 now_mib, double hysteresis_pct,
                             guint64 hysteresis_mib);

G_END_DECLS
