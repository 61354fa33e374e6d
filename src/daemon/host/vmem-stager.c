/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-stager.h"
#include "vmem-error.h"
#include "vmem-log.h"
#include "vmem-units.h"

struct _VmemStager {
  VmemVirt           *virt;
  VmemStagerCallbacks callbacks;
  gpointer            user_data;
  guint64             replaced;

  /* Shared with the worker thread, under lock. */
  GMutex              lock;
  GHashTable         *held;     /* uuid set: starts under way */
  GHashTable         *deferred; /* uuid set: held when a stage job ran */
  GHashTable         *written;  /* uuid -> VmemDomain last defined */
};

static const char *const outcome_names[] = {
  "staged", "unchanged", "observed", "deferred", "skipped", "gone", "failed",
};

const char *
vmem_stage_outcome_to_string (VmemStageOutcome outcome)
{
  return (guint) outcome < G_N_ELEMENTS (outcome_names) ? outcome_names[outcome] : "unknown";
}

VmemStager *
vmem_stager_new (VmemVirt *virt, const VmemStagerCallbacks *callbacks, gpointer user_data)
{
  VmemStager *s = g_new0 (VmemStager, 1);
  s->virt = virt;
  if (callbacks != NULL)
    s->callbacks = *callbacks;
  s->user_data = user_data;
  g_mutex_init (&s->lock);
  s->held = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  s->written = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                      (GDestroyNotify) vmem_domain_free);
  s->deferred = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return s;
}

void
vmem_stager_free (VmemStager *s)
{
  if (s == NULL)
    return;
  g_hash_table_unref (s->held);
  g_hash_table_unref (s->written);
  g_hash_table_unref (s->deferred);
  g_mutex_clear (&s->lock);
  g_free (s);
}

/* ---- staging job ------------------------------------------------------ */

typedef struct {
  VmemStager     *stager;
  char           *uuid;
  char           *why;
  VmemStagedPlan *sp;
  char           *reasons; /* sp's reasons as JSON text while the job waits */
  char           *name;
  gboolean        completed;
} StageJob;

static void
stage_job_free (StageJob *j)
{
  if (!j->completed)
    j->stager->replaced++;
  g_free (j->uuid);
  g_free (j->why);
  g_free (j->name);
  g_free (j->reasons);
  vmem_staged_plan_free (j->sp);
  g_free (j);
}

/* Worker thread.  TRUE when a start of @uuid is under way; the deferral is
 * then recorded at once, under the same lock as the check, so that the
 * unhold that ends the start sees it even before this job's result has
 * reached the main context. */
static gboolean
defer_if_held (VmemStager *s, const char *uuid)
{
  g_mutex_lock (&s->lock);
  gboolean held = g_hash_table_contains (s->held, uuid);
  if (held)
    g_hash_table_add (s->deferred, g_strdup (uuid));
  g_mutex_unlock (&s->lock);
  return held;
}

/* A stage job's result: the outcome, offset so that none is NULL. */
#define OUTCOME(o) GINT_TO_POINTER ((o) + 1)

/* Worker thread.  FALSE, with *outcome and @error set, when the domain
 * @uuid is gone, no longer persistent, or its definition is no longer
 * @xml. */
static gboolean
still_as_read (virConnectPtr conn, const char *uuid, const char *xml, VmemStageOutcome *outcome,
               GError **error)
{
  g_autoptr(virDomain) dom = vmem_virt_lookup (conn, uuid, error);
  if (dom == NULL)
    {
      *outcome = VMEM_STAGE_GONE;
      return FALSE;
    }
  if (virDomainIsPersistent (dom) != 1)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE,
                   "it was undefined while being staged (now transient)");
      *outcome = VMEM_STAGE_SKIPPED;
      return FALSE;
    }
  g_autofree char *now = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
  if (now == NULL)
    {
      vmem_virt_set_error (error, VMEM_ERROR_UNAVAILABLE, "cannot read the definition again");
      *outcome = VMEM_STAGE_FAILED;
      return FALSE;
    }
  if (!g_str_equal (now, xml))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE,
                   "its definition changed while being staged; the change stages it again");
      *outcome = VMEM_STAGE_SKIPPED;
      return FALSE;
    }
  return TRUE;
}

/* Worker thread. */
static gpointer
stage_work (virConnectPtr conn, gpointer data, GError **error)
{
  StageJob *j = data;
  VmemStager *s = j->stager;

  g_autoptr(virDomain) dom = vmem_virt_lookup (conn, j->uuid, error);
  if (dom == NULL)
    return NULL;
  j->name = g_strdup (virDomainGetName (dom));
  if (defer_if_held (s, j->uuid))
    return OUTCOME (VMEM_STAGE_DEFERRED);
  if (virDomainIsPersistent (dom) != 1)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE,
                   "transient domain: vmemd manages persistent domains only");
      return OUTCOME (VMEM_STAGE_SKIPPED);
    }
  /* SECURE: without it a VNC or SPICE password would be lost on define. */
  g_autofree char *xml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
  if (xml == NULL)
    {
      vmem_virt_set_error (error, VMEM_ERROR_UNAVAILABLE, "cannot read the definition");
      return NULL;
    }
  g_autoptr(VmemDomainInfo) info = vmem_xml_parse_domain (xml, error);
  if (info == NULL)
    return NULL;

  /* The plan was made for a domain tagged so (or matched by its name);
   * an unassign or a retag since then wins. */
  if (j->sp->by_tag ? g_strcmp0 (info->workload, j->sp->workload) != 0 : info->workload != NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE,
                   "its workload tag changed since the plan was made (now %s)",
                   info->workload ? info->workload : "none");
      return OUTCOME (VMEM_STAGE_SKIPPED);
    }

  /* Keep the plan's original time when nothing else changes, so that a
   * re-stage of an unchanged plan is a no-op. */
  if (info->plan_demand_mib == j->sp->plan.demand_mib && info->plan_time != 0 &&
      g_strcmp0 (info->plan_source, j->sp->plan.source) == 0)
    j->sp->plan.time = info->plan_time;

  gboolean changed = FALSE;
  g_autofree char *next = vmem_xml_apply_plan (xml, &j->sp->plan, &changed, error);
  if (next == NULL)
    return NULL;
  if (!changed)
    return OUTCOME (VMEM_STAGE_UNCHANGED);
  if (j->sp->plan.mode == VMEM_MODE_OBSERVE)
    return OUTCOME (VMEM_STAGE_OBSERVED);

  if (defer_if_held (s, j->uuid))
    return OUTCOME (VMEM_STAGE_DEFERRED);
  /* Undefined or edited since it was read, defining now would bring the
   * domain back or lose the edit: read it again, as close to the define as
   * can be.  An edit's own DEFINED event stages it anew. */
  VmemStageOutcome gone_or_changed;
  if (!still_as_read (conn, j->uuid, xml, &gone_or_changed, error))
    return gone_or_changed == VMEM_STAGE_SKIPPED ? OUTCOME (gone_or_changed) : NULL;
  /* Remembered before the define: its DEFINED event may be dispatched
   * before this job's result. */
  VmemDomain *mine = vmem_domain_new_from_xml (next, NULL);
  g_mutex_lock (&s->lock);
  if (mine != NULL)
    g_hash_table_replace (s->written, g_strdup (j->uuid), mine);
  g_mutex_unlock (&s->lock);

  virDomainPtr defined = virDomainDefineXMLFlags (conn, next, VIR_DOMAIN_DEFINE_VALIDATE);
  if (defined == NULL)
    {
      vmem_virt_set_error (error, VMEM_ERROR_FAILED, "libvirt refused the staged definition");
      g_mutex_lock (&s->lock);
      g_hash_table_remove (s->written, j->uuid);
      g_mutex_unlock (&s->lock);
      return NULL;
    }
  virDomainFree (defined);
  return OUTCOME (VMEM_STAGE_STAGED);
}

/* Main context. */
static void
stage_done (gpointer result, const GError *error, gpointer data)
{
  StageJob *j = data;
  VmemStager *s = j->stager;
  VmemStageOutcome outcome;

  j->completed = TRUE;
  if (result != NULL)
    outcome = (VmemStageOutcome) (GPOINTER_TO_INT (result) - 1);
  else if (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND))
    outcome = VMEM_STAGE_GONE;
  else
    outcome = VMEM_STAGE_FAILED;

  if (j->reasons != NULL)
    j->sp->reasons = json_tokener_parse (j->reasons);
  g_clear_pointer (&j->reasons, g_free);
  if (s->callbacks.staged != NULL)
    s->callbacks.staged (j->uuid, j->name ? j->name : j->uuid, j->sp, outcome, error, j->why,
                         s->user_data);
}

void
vmem_stager_stage (VmemStager *s, const char *uuid, VmemStagedPlan *plan, const char *why)
{
  g_return_if_fail (uuid != NULL && plan != NULL);

  StageJob *j = g_new0 (StageJob, 1);
  j->stager = s;
  j->uuid = g_strdup (uuid);
  j->why = g_strdup (why);
  j->sp = plan;
  /* A start stages every managed domain at once, and a plan's reasons
   * list each peer of its workload: as a json-c tree they take several
   * times the memory of their text, so the text waits in the queue and
   * the tree is made again when the outcome is reported. */
  if (plan->reasons != NULL)
    {
      j->reasons = g_strdup (json_object_to_json_string_ext (plan->reasons, JSON_C_TO_STRING_PLAIN));
      json_object_put (plan->reasons);
      plan->reasons = NULL;
    }
  g_autofree char *key = g_strconcat ("stage:", uuid, NULL);
  vmem_virt_submit (s->virt, "stage", key, stage_work, stage_done, j,
                    (GDestroyNotify) stage_job_free, NULL);
}

void
vmem_stager_hold (VmemStager *s, const char *uuid)
{
  g_mutex_lock (&s->lock);
  g_hash_table_add (s->held, g_strdup (uuid));
  g_mutex_unlock (&s->lock);
}

gboolean
vmem_stager_unhold (VmemStager *s, const char *uuid)
{
  g_mutex_lock (&s->lock);
  g_hash_table_remove (s->held, uuid);
  gboolean deferred = g_hash_table_remove (s->deferred, uuid);
  g_mutex_unlock (&s->lock);
  return deferred;
}

gboolean
vmem_stager_is_own_define (VmemStager *s, const VmemDomain *domain)
{
  g_mutex_lock (&s->lock);
  const VmemDomain *mine = g_hash_table_lookup (s->written, domain->uuid);
  gboolean own = mine != NULL && vmem_domain_same_definition (mine, domain);
  g_mutex_unlock (&s->lock);
  return own;
}

guint64
vmem_stager_n_replaced (VmemStager *s)
{
  return s->replaced;
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
      if (!g_error_matches (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND))
        g_warning ("%s", error->message);
      return;
    }
  g_autofree char *target = vmem_size_format (j->target_mib);
  vmem_log_decision (name, NULL, "balloon-target", "balloon target of %s set to %s", name, target);
}

void
vmem_stager_set_live_target (VmemStager *s, const char *uuid, guint64 target_mib)
{
  LiveJob *j = g_new0 (LiveJob, 1);
  j->uuid = g_strdup (uuid);
  j->target_mib = target_mib;
  g_autofree char *key = g_strconcat ("live:", uuid, NULL);
  vmem_virt_submit (s->virt, "set balloon", key, live_work, live_done, j,
                    (GDestroyNotify) live_job_free, g_free);
}

/* ---- live virtio-mem requested size ------------------------------------ */

typedef struct {
  char   *uuid;
  guint64 requested_mib;
} VirtioMemJob;

typedef struct {
  char                *name;
  VmemVirtioMemRequest request;
} VirtioMemResult;

static void
virtio_mem_job_free (VirtioMemJob *j)
{
  g_free (j->uuid);
  g_free (j);
}

static void
virtio_mem_result_free (VirtioMemResult *r)
{
  g_free (r->name);
  g_free (r);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VirtioMemResult, virtio_mem_result_free)

/* Worker thread. */
static gpointer
virtio_mem_work (virConnectPtr conn, gpointer data, GError **error)
{
  VirtioMemJob *j = data;
  g_autoptr(virDomain) dom = vmem_virt_lookup (conn, j->uuid, error);
  if (dom == NULL)
    return NULL;
  const char *name = virDomainGetName (dom);
  if (virDomainIsActive (dom) != 1)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE,
                   "cannot set the virtio-mem size of %s: it is not running", name);
      return NULL;
    }
  /* The live XML: the device is found by the alias and address libvirt
   * gave it at the start. */
  g_autofree char *xml = virDomainGetXMLDesc (dom, 0);
  if (xml == NULL)
    {
      vmem_virt_set_error (error, VMEM_ERROR_UNAVAILABLE, "cannot read the live XML of %s", name);
      return NULL;
    }
  VirtioMemResult *r = g_new0 (VirtioMemResult, 1);
  g_autoptr(GError) local = NULL;
  g_autofree char *device = vmem_xml_virtio_mem_request (xml, j->requested_mib, &r->request,
                                                         &local);
  if (device == NULL)
    {
      virtio_mem_result_free (r);
      /* Not found here is the device, not the domain: worth a warning. */
      g_set_error (error, VMEM_ERROR,
                   g_error_matches (local, VMEM_ERROR, VMEM_ERROR_NOT_FOUND)
                     ? VMEM_ERROR_UNMANAGEABLE
                     : local->code,
                   "cannot set the virtio-mem size of %s: %s", name, local->message);
      return NULL;
    }
  r->name = g_strdup (name);
  if (r->request.changed &&
      virDomainUpdateDeviceFlags (dom, device, VIR_DOMAIN_AFFECT_LIVE) < 0)
    {
      virtio_mem_result_free (r);
      vmem_virt_set_error (error, VMEM_ERROR_FAILED, "cannot set the virtio-mem size of %s",
                           name);
      return NULL;
    }
  return r;
}

/* Main context. */
static void
virtio_mem_done (gpointer result, const GError *error, gpointer data)
{
  g_autoptr(VirtioMemResult) r = result;
  if (error != NULL)
    {
      if (!g_error_matches (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND))
        g_warning ("%s", error->message);
      return;
    }
  g_autofree char *req = vmem_size_format (r->request.requested_kib / 1024);
  g_autofree char *size = vmem_size_format (r->request.size_kib / 1024);
  g_autofree char *cur = vmem_size_format (r->request.current_kib / 1024);
  if (!r->request.changed)
    {
      g_debug ("virtio-mem requested size of %s already %s", r->name, req);
      return;
    }
  g_autofree char *prev = vmem_size_format (r->request.previous_kib / 1024);
  vmem_log_decision (r->name, NULL, "virtio-mem-requested",
                     "virtio-mem requested size of %s set to %s (was %s, plugged %s, device %s)",
                     r->name, req, prev, cur, size);
}

void
vmem_stager_set_virtio_mem_requested (VmemStager *s, const char *uuid, guint64 requested_mib)
{
  g_return_if_fail (uuid != NULL);

  VirtioMemJob *j = g_new0 (VirtioMemJob, 1);
  j->uuid = g_strdup (uuid);
  j->requested_mib = requested_mib;
  g_autofree char *key = g_strconcat ("virtio-mem:", uuid, NULL);
  vmem_virt_submit (s->virt, "set virtio-mem size", key, virtio_mem_work, virtio_mem_done, j,
                    (GDestroyNotify) virtio_mem_job_free,
                    (GDestroyNotify) virtio_mem_result_free);
}
