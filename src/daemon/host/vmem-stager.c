/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-stager.h"
#include "vmem-demand.h"
#include "vmem-cleanup.h"
#include "vmem-error.h"
#include "vmem-log.h"
#include "vmem-units.h"

#include <math.h>
#include <string.h>

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
vmem_stager_plan (VmemDaemon *daemon, const VmemVirtDomain *d)
{
  const VmemProfile *p = vmem_daemon_profile_for (daemon, d);
  if (p == NULL)
    return NULL;

  g_autoptr(VmemStagedPlan) sp = g_new0 (VmemStagedPlan, 1);
  json_object *r = json_object_new_object ();
  sp->reasons = r;
  sp->workload = g_strdup (p->name);
  json_object_object_add (r, "workload", json_object_new_string (p->name));
  json_object_object_add (r, "tagged", json_object_new_boolean (d->workload != NULL));

  /* Peers' history first, the profile's manual demand when it is thin,
   * clamped to floor, ceiling and <memory>: the estimator decides and says
   * why. */
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemEstimate) est = vmem_demand_estimate (daemon, d, p, &error);
  guint64 demand = 0;
  const char *source = "domain";
  json_object *clamps = json_object_new_array ();
  if (est == NULL)
    g_warning ("cannot estimate the demand of %s: %s", d->name, error->message);
  else if (est->source != VMEM_SOURCE_NONE && est->demand_mib > 0)
    {
      demand = est->demand_mib;
      source = vmem_estimate_source_to_string (est->source);
      json_object_object_add (r, "why", json_object_new_string (est->reason ? est->reason : ""));
      json_object_object_add (r, "unclamped_mib", json_object_new_int64 ((gint64) ceil (est->raw_mib)));
      if (est->clamps & VMEM_CLAMP_FLOOR)
        json_object_array_add (clamps, json_object_new_string ("raised to the profile's floor"));
      if (est->clamps & VMEM_CLAMP_CEILING)
        json_object_array_add (clamps, json_object_new_string ("lowered to the profile's ceiling"));
      if (est->clamps & VMEM_CLAMP_DOMAIN_MEMORY)
        json_object_array_add (clamps, json_object_new_string ("lowered to the domain's <memory>"));
      json_object_object_add (r, "estimate", vmem_estimate_to_json (est));
      sp->plan.peers = est->peers ? est->peers->len : 0;
    }
  if (demand == 0)
    {
      /* Nothing to go on: the domain keeps its whole <memory>. */
      demand = d->memory_mib;
      json_object_object_add (r, "why", json_object_new_string (
                                "no peer history and no manual demand: the domain's whole <memory>"));
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
  sp->plan.time = g_get_real_time () / G_USEC_PER_SEC;
  return g_steal_pointer (&sp);
}

/* ---- staging job ------------------------------------------------------ */

typedef struct {
  VmemDaemon     *daemon;
  char           *uuid;
  char           *why;
  VmemStagedPlan *sp;
  gboolean        changed;
  char           *name;
} StageJob;

static void
stage_job_free (StageJob *j)
{
  g_free (j->uuid);
  g_free (j->why);
  g_free (j->name);
  vmem_staged_plan_free (j->sp);
  g_free (j);
}

static gpointer
stage_work (virConnectPtr conn, gpointer data, GError **error)
{
  StageJob *j = data;
  g_autoptr(virDomain) dom = vmem_virt_lookup (conn, j->uuid, error);
  if (dom == NULL)
    return NULL;
  j->name = g_strdup (virDomainGetName (dom));
  if (virDomainIsPersistent (dom) != 1)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE, "transient domain");
      return NULL;
    }
  /* SECURE: without it a VNC or SPICE password would be lost on define. */
  g_autofree char *xml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
  if (xml == NULL)
    {
      vmem_virt_set_error (error, VMEM_ERROR_UNAVAILABLE, "cannot read the definition");
      return NULL;
    }
  /* Keep the plan's original time when nothing else changes, so that a
   * re-stage of an unchanged plan is a no-op. */
  g_autoptr(VmemDomainInfo) info = vmem_xml_parse_domain (xml, error);
  if (info == NULL)
    return NULL;
  if (info->plan_demand_mib == j->sp->plan.demand_mib && info->plan_time != 0 &&
      g_strcmp0 (info->plan_source, j->sp->plan.source) == 0)
    j->sp->plan.time = info->plan_time;

  gboolean changed = FALSE;
  g_autofree char *next = vmem_xml_apply_plan (xml, &j->sp->plan, &changed, error);
  if (next == NULL)
    return NULL;
  if (!changed)
    return g_strdup ("unchanged");
  if (j->sp->plan.mode == VMEM_MODE_OBSERVE)
    return g_strdup ("observed");

  virDomainPtr defined = virDomainDefineXMLFlags (conn, next, VIR_DOMAIN_DEFINE_VALIDATE);
  if (defined == NULL)
    {
      vmem_virt_set_error (error, VMEM_ERROR_FAILED, "libvirt refused the staged definition");
      return NULL;
    }
  virDomainFree (defined);
  j->changed = TRUE;
  return g_strdup ("staged");
}

static void
stage_done (gpointer result, const GError *error, gpointer data)
{
  StageJob *j = data;
  g_autofree char *outcome = result;
  const char *name = j->name ? j->name : j->uuid;

  if (error != NULL)
    {
      if (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND))
        return;
      vmem_log_decision (name, j->sp->workload, "not-staged", "cannot stage %s (%s): %s", name,
                         j->why, error->message);
      return;
    }
  if (g_strcmp0 (outcome, "observed") == 0)
    {
      g_autofree char *d = vmem_size_format (j->sp->plan.demand_mib);
      vmem_log_decision (name, j->sp->workload, "observed",
                         "would stage %s (%s): demand %s from %s (mode observe: nothing changed)",
                         name, j->why, d, j->sp->source);
      return;
    }
  VmemDomainEntry *e = g_hash_table_lookup (j->daemon->domains, j->uuid);
  if (e != NULL)
    e->staged_mib = j->sp->plan.demand_mib;
  if (!j->changed)
    {
      g_debug ("plan of %s unchanged (%s)", name, j->why);
      return;
    }
  g_autofree char *demand = vmem_size_format (j->sp->plan.demand_mib);
  vmem_log_decision (name, j->sp->workload, "staged",
                     "staged %s for its next start (%s): demand %s from %s, prealloc %s, mode %s",
                     name, j->why, demand, j->sp->source, j->sp->plan.prealloc ? "on" : "off",
                     vmem_mode_to_string (j->sp->plan.mode));

  g_autoptr(GError) local = NULL;
  g_autofree char *reasons = g_strdup (json_object_to_json_string_ext (j->sp->reasons, JSON_C_TO_STRING_PLAIN));
  VmemPlanRow row = {
    .uuid = j->uuid,
    .workload = j->sp->workload,
    .t = j->sp->plan.time,
    .demand_mib = j->sp->plan.demand_mib,
    .source = j->sp->source,
    .reasons_json = reasons,
  };
  if (!vmem_store_plan_add (j->daemon->store, &row, &local))
    g_warning ("cannot record the plan of %s: %s", name, local->message);
}

void
vmem_stager_stage (VmemDaemon *daemon, const char *uuid, const char *why)
{
  VmemDomainEntry *e = g_hash_table_lookup (daemon->domains, uuid);
  if (e == NULL || !e->info->persistent)
    return;
  if (e->starting)
    {
      /* libvirt holds the domain's lock through its start; stage after. */
      e->stage_pending = TRUE;
      return;
    }
  StageJob *j = g_new0 (StageJob, 1);
  j->sp = vmem_stager_plan (daemon, e->info);
  if (j->sp == NULL)
    {
      g_free (j);
      return;
    }
  j->daemon = daemon;
  j->uuid = g_strdup (uuid);
  j->why = g_strdup (why);
  vmem_virt_submit (daemon->virt, "stage", stage_work, stage_done, j,
                    (GDestroyNotify) stage_job_free, g_free);
}

void
vmem_stager_stage_workload (VmemDaemon *daemon, const char *workload, const char *why)
{
  GHashTableIter it;
  const char *uuid;
  VmemDomainEntry *e;

  g_hash_table_iter_init (&it, daemon->domains);
  while (g_hash_table_iter_next (&it, (gpointer *) &uuid, (gpointer *) &e))
    {
      const VmemProfile *p = vmem_daemon_profile_for (daemon, e->info);
      if (p != NULL && (workload == NULL || g_str_equal (p->name, workload)))
        vmem_stager_stage (daemon, uuid, why);
    }
}

/* ---- live balloon target --------------------------------------------- */

typedef struct {
  char   *uuid;
  guint64 target_mib;
} LiveJob;

static void
live_job_free (LiveJob *j)
{
  g_free (j->uuid);
  g_free (j);
}

static gpointer
live_work (virConnectPtr conn, gpointer data, GError **error)
{
  LiveJob *j = data;
  g_autoptr(virDomain) dom = vmem_virt_lookup (conn, j->uuid, error);
  if (dom == NULL)
    return NULL;
  if (virDomainSetMemoryFlags (dom, j->target_mib * 1024, VIR_DOMAIN_AFFECT_LIVE) < 0)
    {
      vmem_virt_set_error (error, VMEM_ERROR_FAILED, "cannot set the balloon target of %s",
                           virDomainGetName (dom));
      return NULL;
    }
  return g_strdup (virDomainGetName (dom));
}

static void
live_done (gpointer result, const GError *error, gpointer data)
{
  LiveJob *j = data;
  g_autofree char *name = result;
  if (error != NULL)
    {
      g_warning ("%s", error->message);
      return;
    }
  g_autofree char *target = vmem_size_format (j->target_mib);
  vmem_log_decision (name, NULL, "balloon-target", "balloon target of %s set to %s", name, target);
}

void
vmem_stager_apply_live (VmemDaemon *daemon, const char *uuid)
{
  VmemDomainEntry *e = g_hash_table_lookup (daemon->domains, uuid);
  if (e == NULL || !e->info->active)
    return;
  g_autoptr(VmemStagedPlan) sp = vmem_stager_plan (daemon, e->info);
  if (sp == NULL || sp->plan.mode != VMEM_MODE_BALLOON || sp->plan.demand_mib >= e->info->memory_mib)
    return;
  LiveJob *j = g_new0 (LiveJob, 1);
  j->uuid = g_strdup (uuid);
  j->target_mib = sp->plan.demand_mib;
  vmem_virt_submit (daemon->virt, "set balloon", live_work, live_done, j,
                    (GDestroyNotify) live_job_free, g_free);
}
