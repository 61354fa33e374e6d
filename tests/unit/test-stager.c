/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The stager against libvirt's test driver, in process: each test connects
 * to its own copy of tests/data/libvirt/node.xml, stages plans and reads the
 * definitions back from libvirt. */
#include "vmem-stager.h"
#include "vmem-cleanup.h"

#include <dlfcn.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "virt-helpers.h"

/* ---- a change between the stager's read and its define ------------------ */

/* This test defines virDomainGetXMLDesc itself (the stager links against
 * it): it calls libvirt's and then, once when armed, changes the domain as
 * another client would right after the stager read it. */
enum { RACE_NONE, RACE_UNDEFINE, RACE_EDIT };
static gint race;

char *
virDomainGetXMLDesc (virDomainPtr dom, unsigned int flags)
{
  typedef char *(*XmlFunc) (virDomainPtr, unsigned int);
  static XmlFunc real;

  if (real == NULL)
    real = (XmlFunc) dlsym (RTLD_NEXT, "virDomainGetXMLDesc");
  g_assert_nonnull (real);
  char *xml = real (dom, flags);
  /* The worker thread: no cmocka assertions here. */
  int what = g_atomic_int_exchange (&race, RACE_NONE);
  if (xml != NULL && what == RACE_UNDEFINE)
    g_assert_cmpint (virDomainUndefine (dom), ==, 0);
  else if (xml != NULL && what == RACE_EDIT)
    {
      g_autoptr(GString) edited = g_string_new (xml);
      g_assert_cmpuint (g_string_replace (edited, "</name>", "</name><description>EDITED</description>", 1), ==, 1);
      virDomainPtr d = virDomainDefineXML (virDomainGetConnect (dom), edited->str);
      g_assert_nonnull (d);
      virDomainFree (d);
    }
  return xml;
}

/* Domains of node.xml. */
#define ERP_1         "11111111-1111-4111-8111-000000000001" /* tagged erp, shut off */
#define WEB_1         "11111111-1111-4111-8111-000000000002" /* untagged, shut off */
#define ERP_RUN       "11111111-1111-4111-8111-000000000003" /* tagged erp, running */
#define ERP_TRANSIENT "11111111-1111-4111-8111-000000000004"
#define ERP_NOBALLOON "11111111-1111-4111-8111-000000000005"
#define UNKNOWN       "99999999-9999-4999-8999-999999999999"

/* 2023-11-15 00:00:00 UTC */
#define T0 G_GINT64_CONSTANT (1700006400)

typedef struct {
  char            *uuid;
  char            *name;
  char            *why;
  VmemStageOutcome outcome;
  GError          *error;
  guint64          demand_mib;
  char            *reasons; /* the plan's reasons as the callback got them, JSON text */
} Staged;

static void
staged_free (Staged *s)
{
  g_free (s->uuid);
  g_free (s->name);
  g_free (s->why);
  g_free (s->reasons);
  g_clear_error (&s->error);
  g_free (s);
}

typedef struct {
  VmemVirt   *virt;
  VmemStager *stager;
  GPtrArray  *staged; /* Staged, in the order the callbacks came */
  Gate        gate;
  gboolean    restage; /* the next callback stages the same domain again */
} Fixture;

static VmemStagedPlan *erp_plan (guint64 demand_mib);

static void
on_staged (const char *uuid, const char *name, const VmemStagedPlan *plan,
           VmemStageOutcome outcome, const GError *error, const char *why, gpointer user_data)
{
  Fixture *f = user_data;
  Staged *s = g_new0 (Staged, 1);
  s->uuid = g_strdup (uuid);
  s->name = g_strdup (name);
  s->why = g_strdup (why);
  s->outcome = outcome;
  s->error = error ? g_error_copy (error) : NULL;
  s->demand_mib = plan->plan.demand_mib;
  s->reasons = g_strdup (json_object_to_json_string_ext (plan->reasons, JSON_C_TO_STRING_PLAIN));
  g_ptr_array_add (f->staged, s);
  if (f->restage)
    {
      f->restage = FALSE;
      vmem_stager_stage (f->stager, uuid, erp_plan (plan->plan.demand_mib + 1), "again");
    }
}

static int
setup (void **state)
{
  Fixture *f = g_new0 (Fixture, 1);
  g_autofree char *uri = node_uri ("node.xml");
  gate_init (&f->gate);
  f->staged = g_ptr_array_new_with_free_func ((GDestroyNotify) staged_free);
  f->virt = virt_connect (uri, NULL);
  const VmemStagerCallbacks callbacks = { .staged = on_staged };
  f->stager = vmem_stager_new (f->virt, &callbacks, f);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  Fixture *f = *state;
  gate_open (&f->gate);
  /* The worker's last results reach the stager: free it after. */
  g_clear_pointer (&f->virt, vmem_virt_free);
  vmem_stager_free (f->stager);
  gate_clear (&f->gate);
  g_ptr_array_unref (f->staged);
  g_free (f);
  return 0;
}

static VmemStagedPlan *
plan_new (const char *workload, gboolean by_tag, guint64 demand_mib, VmemMode mode, gint64 t)
{
  VmemStagedPlan *sp = g_new0 (VmemStagedPlan, 1);
  sp->workload = g_strdup (workload);
  sp->source = g_strdup ("peers");
  sp->by_tag = by_tag;
  sp->reasons = json_object_new_object ();
  sp->plan = (VmemPlan){
    .demand_mib = demand_mib,
    .prealloc = TRUE,
    .stats_period = 5,
    .mode = mode,
    .workload = sp->workload,
    .source = sp->source,
    .peers = 3,
    .time = t,
  };
  return sp;
}

static VmemStagedPlan *
erp_plan (guint64 demand_mib)
{
  return plan_new ("erp", TRUE, demand_mib, VMEM_MODE_BALLOON, T0);
}

/* Stages and waits for that one stage's outcome. */
static const Staged *
stage (Fixture *f, const char *uuid, VmemStagedPlan *plan, const char *why)
{
  guint before = f->staged->len;
  vmem_stager_stage (f->stager, uuid, plan, why);
  WAIT_FOR (f->staged->len > before);
  assert_int_equal (f->staged->len, before + 1);
  const Staged *s = g_ptr_array_index (f->staged, before);
  assert_string_equal (s->uuid, uuid);
  assert_string_equal (s->why, why);
  return s;
}

static void
assert_outcome (const Staged *s, VmemStageOutcome want)
{
  if (s->outcome != want)
    fail_msg ("%s: outcome %s, expected %s%s%s", s->name, vmem_stage_outcome_to_string (s->outcome),
              vmem_stage_outcome_to_string (want), s->error ? ": " : "",
              s->error ? s->error->message : "");
}

static VmemDomainInfo *
parse (const char *xml)
{
  g_autoptr(GError) error = NULL;
  VmemDomainInfo *info = vmem_xml_parse_domain (xml, &error);
  if (info == NULL)
    fail_msg ("%s", error->message);
  return info;
}

#define assert_contains(haystack, needle)                              \
  do                                                                   \
    {                                                                  \
      if (strstr ((haystack), (needle)) == NULL)                       \
        fail_msg ("'%s' does not contain '%s'", (haystack), (needle)); \
    }                                                                  \
  while (0)

/* ---- staging ------------------------------------------------------------- */

static void
test_stage_writes_plan (void **state)
{
  Fixture *f = *state;

  const Staged *s = stage (f, ERP_1, erp_plan (2048), "defined");
  assert_outcome (s, VMEM_STAGE_STAGED);
  assert_string_equal (s->name, "erp-1");
  assert_null (s->error);
  assert_int_equal (s->demand_mib, 2048);

  g_autofree char *xml = inactive_xml (f->virt, ERP_1);
  g_autoptr(VmemDomainInfo) info = parse (xml);
  assert_int_equal (info->memory_mib, 4096);
  assert_int_equal (info->current_mib, 2048);
  assert_contains (xml, "<currentMemory unit='KiB'>2097152</currentMemory>");
  assert_true (info->prealloc);
  assert_contains (xml, "<allocation mode='immediate'/>");
  assert_string_equal (info->balloon_model, "virtio");
  assert_true (info->balloon_autodeflate);
  assert_true (info->balloon_free_page_reporting);
  assert_int_equal (info->balloon_stats_period, 5);
  /* The plan, next to the tag it was made for. */
  assert_string_equal (info->workload, "erp");
  assert_true (info->has_plan);
  assert_int_equal (info->plan_demand_mib, 2048);
  assert_string_equal (info->plan_workload, "erp");
  assert_string_equal (info->plan_source, "peers");
  assert_int_equal (info->plan_peers, 3);
  assert_int_equal (info->plan_time, T0);
  assert_contains (xml, VMEM_XML_NS_PLAN);
  /* What it replaced, for unassign --restore. */
  assert_contains (xml, "orig_current_kib=\"4194304\"");
}

static void
test_stage_again_unchanged (void **state)
{
  Fixture *f = *state;

  assert_outcome (stage (f, ERP_1, erp_plan (2048), "first"), VMEM_STAGE_STAGED);
  g_autofree char *first = inactive_xml (f->virt, ERP_1);

  /* The same plan made later: nothing to write, and the time it was first
   * staged stays. */
  VmemStagedPlan *later = erp_plan (2048);
  later->plan.time = T0 + 3600;
  assert_outcome (stage (f, ERP_1, later, "second"), VMEM_STAGE_UNCHANGED);
  g_autofree char *second = inactive_xml (f->virt, ERP_1);
  assert_string_equal (second, first);

  /* A new demand is a new plan. */
  VmemStagedPlan *moved = erp_plan (3072);
  moved->plan.time = T0 + 7200;
  assert_outcome (stage (f, ERP_1, moved, "moved"), VMEM_STAGE_STAGED);
  g_autofree char *third = inactive_xml (f->virt, ERP_1);
  g_autoptr(VmemDomainInfo) info = parse (third);
  assert_int_equal (info->current_mib, 3072);
  assert_int_equal (info->plan_time, T0 + 7200);
  /* What the first staging replaced is kept. */
  assert_contains (third, "orig_current_kib=\"4194304\"");
}

static void
test_observe_writes_nothing (void **state)
{
  Fixture *f = *state;
  g_autofree char *before = inactive_xml (f->virt, ERP_1);

  const Staged *s = stage (f, ERP_1, plan_new ("erp", TRUE, 2048, VMEM_MODE_OBSERVE, T0),
                           "observe");
  assert_outcome (s, VMEM_STAGE_OBSERVED);
  assert_null (s->error);
  g_autofree char *after = inactive_xml (f->virt, ERP_1);
  assert_string_equal (after, before);
}

/* A domain running now: its next start gets the plan, on top of the
 * definition it will start with (here a pending vCPU change), and the
 * running one keeps its balloon. */
static void
test_stage_running_writes_definition_only (void **state)
{
  Fixture *f = *state;

  g_autofree char *pending = inactive_xml (f->virt, ERP_RUN);
  const char *vcpu = "<vcpu placement='static'>2</vcpu>";
  assert_contains (pending, vcpu);
  g_autoptr(GString) edited = g_string_new (pending);
  g_string_replace (edited, vcpu, "<vcpu placement='static'>4</vcpu>", 1);
  define_xml (f->virt, edited->str);

  assert_outcome (stage (f, ERP_RUN, erp_plan (1024), "running"), VMEM_STAGE_STAGED);
  g_autofree char *xml = inactive_xml (f->virt, ERP_RUN);
  g_autoptr(VmemDomainInfo) info = parse (xml);
  assert_int_equal (info->current_mib, 1024);
  assert_int_equal (info->vcpus, 4);
  assert_int_equal (balloon_kib (f->virt, ERP_RUN), 4096 * 1024);
  g_autofree char *live = live_xml (f->virt, ERP_RUN);
  assert_contains (live, vcpu);
}

static void
test_unstageable_fails (void **state)
{
  Fixture *f = *state;
  g_autofree char *before = inactive_xml (f->virt, ERP_NOBALLOON);

  const Staged *s = stage (f, ERP_NOBALLOON, erp_plan (1024), "defined");
  assert_outcome (s, VMEM_STAGE_FAILED);
  assert_non_null (s->error);
  assert_contains (s->error->message, "memballoon");
  g_autofree char *after = inactive_xml (f->virt, ERP_NOBALLOON);
  assert_string_equal (after, before);
}

/* ---- starts under way ------------------------------------------------- */

static void
test_hold_defers (void **state)
{
  Fixture *f = *state;
  g_autofree char *before = inactive_xml (f->virt, ERP_1);

  /* Nothing held, nothing deferred. */
  assert_false (vmem_stager_unhold (f->stager, ERP_1));

  vmem_stager_hold (f->stager, ERP_1);
  const Staged *s = stage (f, ERP_1, erp_plan (2048), "profile changed");
  assert_outcome (s, VMEM_STAGE_DEFERRED);
  assert_string_equal (s->name, "erp-1");
  g_autofree char *during = inactive_xml (f->virt, ERP_1);
  assert_string_equal (during, before);
  /* Another domain is not held. */
  assert_outcome (stage (f, WEB_1, plan_new ("web", FALSE, 1024, VMEM_MODE_BALLOON, T0), "x"),
                  VMEM_STAGE_STAGED);

  /* The start ends: the owner is told to stage again, once. */
  assert_true (vmem_stager_unhold (f->stager, ERP_1));
  assert_false (vmem_stager_unhold (f->stager, ERP_1));
  assert_outcome (stage (f, ERP_1, erp_plan (2048), "start ended"), VMEM_STAGE_STAGED);

  /* A start during which nothing was staged asks for nothing. */
  vmem_stager_hold (f->stager, ERP_1);
  assert_false (vmem_stager_unhold (f->stager, ERP_1));
}

/* The start ends while the deferred stage's outcome is on its way to the
 * main loop (its job has run, its callback has not): unhold must still say
 * that a stage was deferred, or the plan is never staged again. */
static void
test_unhold_while_deferral_in_flight (void **state)
{
  Fixture *f = *state;

  vmem_stager_hold (f->stager, ERP_1);
  vmem_stager_stage (f->stager, ERP_1, erp_plan (2048), "profile changed");
  /* Once the worker is at the gate the stage job has run; the main loop
   * has not been iterated since. */
  gate_close (&f->gate, f->virt);
  assert_int_equal (f->staged->len, 0);
  assert_true (vmem_stager_unhold (f->stager, ERP_1));
  gate_open (&f->gate);
  WAIT_FOR (f->gate.done && f->staged->len == 1);
  assert_outcome (g_ptr_array_index (f->staged, 0), VMEM_STAGE_DEFERRED);

  /* That deferral was answered: a later start that defers nothing asks
   * for nothing. */
  vmem_stager_hold (f->stager, ERP_1);
  assert_false (vmem_stager_unhold (f->stager, ERP_1));
}

/* ---- still managed as the plan assumed ---------------------------------- */

/* `vmemctl unassign --restore` racing a profile change: the plan made for
 * the tagged domain must not re-stage the untagged one. */
static void
test_tag_removed_skips (void **state)
{
  Fixture *f = *state;

  VmemStagedPlan *plan = erp_plan (2048);
  set_tag (f->virt, ERP_1, NULL);
  g_autofree char *before = inactive_xml (f->virt, ERP_1);
  g_autoptr(VmemDomainInfo) untagged = parse (before);
  assert_null (untagged->workload);

  const Staged *s = stage (f, ERP_1, plan, "profile changed");
  assert_outcome (s, VMEM_STAGE_SKIPPED);
  assert_true (g_error_matches (s->error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE));
  assert_contains (s->error->message, "none");
  g_autofree char *after = inactive_xml (f->virt, ERP_1);
  assert_string_equal (after, before);
}

static void
test_tag_changed_skips (void **state)
{
  Fixture *f = *state;

  set_tag (f->virt, ERP_1, "crm");
  g_autofree char *before = inactive_xml (f->virt, ERP_1);

  const Staged *s = stage (f, ERP_1, erp_plan (2048), "estimate moved");
  assert_outcome (s, VMEM_STAGE_SKIPPED);
  assert_true (g_error_matches (s->error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE));
  assert_contains (s->error->message, "crm");
  g_autofree char *after = inactive_xml (f->virt, ERP_1);
  assert_string_equal (after, before);

  /* Tagged back: staged. */
  set_tag (f->virt, ERP_1, "erp");
  assert_outcome (stage (f, ERP_1, erp_plan (2048), "assigned"), VMEM_STAGE_STAGED);
}

/* A plan by name pattern is for an untagged domain only: once tagged, the
 * tag's workload decides. */
static void
test_name_plan_skips_tagged (void **state)
{
  Fixture *f = *state;

  assert_outcome (stage (f, WEB_1, plan_new ("web", FALSE, 1024, VMEM_MODE_BALLOON, T0), "match"),
                  VMEM_STAGE_STAGED);
  set_tag (f->virt, WEB_1, "web");
  g_autofree char *before = inactive_xml (f->virt, WEB_1);

  const Staged *s = stage (f, WEB_1, plan_new ("web", FALSE, 1536, VMEM_MODE_BALLOON, T0), "match");
  assert_outcome (s, VMEM_STAGE_SKIPPED);
  assert_true (g_error_matches (s->error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE));
  g_autofree char *after = inactive_xml (f->virt, WEB_1);
  assert_string_equal (after, before);
}

static void
test_transient_skipped (void **state)
{
  Fixture *f = *state;

  const Staged *s = stage (f, ERP_TRANSIENT, erp_plan (1024), "started");
  assert_outcome (s, VMEM_STAGE_SKIPPED);
  assert_string_equal (s->name, "erp-transient");
  assert_true (g_error_matches (s->error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE));
  assert_contains (s->error->message, "transient");
  assert_int_equal (balloon_kib (f->virt, ERP_TRANSIENT), 2048 * 1024);
}

static void
test_unknown_gone (void **state)
{
  Fixture *f = *state;

  const Staged *s = stage (f, UNKNOWN, erp_plan (1024), "defined");
  assert_outcome (s, VMEM_STAGE_GONE);
  /* Never read: named by its uuid. */
  assert_string_equal (s->name, UNKNOWN);
  assert_true (g_error_matches (s->error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND));
}

static void
test_undefined_while_staging_stays_gone (void **state)
{
  Fixture *f = *state;

  g_atomic_int_set (&race, RACE_UNDEFINE);
  const Staged *s = stage (f, ERP_1, erp_plan (2048), "defined");
  assert_outcome (s, VMEM_STAGE_GONE);
  assert_int_equal (g_atomic_int_get (&race), RACE_NONE);
  /* Not brought back by the stager's define. */
  g_autoptr(GError) error = NULL;
  g_autofree char *xml = virt_call (f->virt, inactive_xml_work, (gpointer) ERP_1, &error);
  assert_null (xml);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND));
}

static void
test_edited_while_staging_keeps_edit (void **state)
{
  Fixture *f = *state;

  g_atomic_int_set (&race, RACE_EDIT);
  const Staged *s = stage (f, ERP_1, erp_plan (2048), "defined");
  assert_outcome (s, VMEM_STAGE_SKIPPED);
  assert_non_null (strstr (s->error->message, "changed while being staged"));
  g_autofree char *xml = inactive_xml (f->virt, ERP_1);
  assert_contains (xml, "<description>EDITED");
  assert_null (strstr (xml, VMEM_XML_NS_PLAN));
  /* Staged on the next pass, the edit kept. */
  assert_outcome (stage (f, ERP_1, erp_plan (2048), "again"), VMEM_STAGE_STAGED);
  g_autofree char *after = inactive_xml (f->virt, ERP_1);
  assert_contains (after, "<description>EDITED");
  assert_contains (after, VMEM_XML_NS_PLAN);
}

/* The reasons wait in the queue as text: the callback gets the same
 * reasons, to the byte once written out, whatever they hold. */
static void
test_reasons_reach_callback_unchanged (void **state)
{
  Fixture *f = *state;

  VmemStagedPlan *sp = erp_plan (2048);
  json_object *r = sp->reasons;
  json_object_object_add (r, "why", json_object_new_string ("p99 of 2 peers / \"own\" \u00e9 \t"));
  json_object_object_add (r, "unclamped_mib", json_object_new_int64 (G_GINT64_CONSTANT (1) << 40));
  json_object *est = json_object_new_object ();
  json_object_object_add (est, "quantile", json_object_new_double (0.99));
  json_object_object_add (est, "margin_pct", json_object_new_double (1.0 / 3.0));
  json_object_object_add (est, "reason", NULL);
  json_object *peers = json_object_new_array ();
  for (guint i = 0; i < 3; i++)
    {
      json_object *p = json_object_new_object ();
      json_object_object_add (p, "uuid", json_object_new_string (WEB_1));
      json_object_object_add (p, "peak_mib", json_object_new_double (1e-7 + i));
      json_object_object_add (p, "samples", json_object_new_int64 (-(gint64) i));
      json_object_array_add (peers, p);
    }
  json_object_object_add (est, "peers", peers);
  json_object_object_add (r, "estimate", est);
  json_object_object_add (r, "clamps", json_object_new_array ());
  json_object_object_add (r, "prealloc", json_object_new_boolean (TRUE));
  g_autofree char *want = g_strdup (json_object_to_json_string_ext (r, JSON_C_TO_STRING_PLAIN));

  const Staged *s = stage (f, ERP_1, sp, "defined");
  assert_outcome (s, VMEM_STAGE_STAGED);
  assert_string_equal (s->reasons, want);
  /* Unchanged, and skipped: the same for every outcome. */
  s = stage (f, ERP_1, erp_plan (2048), "again");
  assert_outcome (s, VMEM_STAGE_UNCHANGED);
  assert_string_equal (s->reasons, "{}");
}

/* ---- one pending stage per domain ----------------------------------------- */

static void
test_coalesce (void **state)
{
  Fixture *f = *state;

  gate_close (&f->gate, f->virt);
  vmem_stager_stage (f->stager, ERP_1, erp_plan (1024), "one");
  vmem_stager_stage (f->stager, WEB_1, plan_new ("web", FALSE, 512, VMEM_MODE_BALLOON, T0), "web");
  vmem_stager_stage (f->stager, ERP_1, erp_plan (1536), "two");
  vmem_stager_stage (f->stager, ERP_1, erp_plan (2048), "three");
  /* Replaced in the queue, before anything ran. */
  assert_int_equal (vmem_stager_n_replaced (f->stager), 2);
  gate_open (&f->gate);
  WAIT_FOR (f->staged->len == 2);
  /* Nothing else comes: everything queued has run once this call has. */
  g_autofree char *xml = inactive_xml (f->virt, ERP_1);
  spin_ms (50);
  assert_int_equal (f->staged->len, 2);

  /* In queue order: erp-1's place, with the last plan. */
  const Staged *erp = g_ptr_array_index (f->staged, 0);
  assert_string_equal (erp->uuid, ERP_1);
  assert_outcome (erp, VMEM_STAGE_STAGED);
  assert_string_equal (erp->why, "three");
  assert_int_equal (erp->demand_mib, 2048);
  const Staged *web = g_ptr_array_index (f->staged, 1);
  assert_string_equal (web->uuid, WEB_1);
  assert_outcome (web, VMEM_STAGE_STAGED);

  g_autoptr(VmemDomainInfo) info = parse (xml);
  assert_int_equal (info->current_mib, 2048);
  assert_int_equal (info->plan_demand_mib, 2048);
  assert_int_equal (vmem_stager_n_replaced (f->stager), 2);
}

/* ---- own defines ---------------------------------------------------------- */

static void
test_own_define (void **state)
{
  Fixture *f = *state;

  /* Never staged: not ours. */
  g_autoptr(VmemDomain) untouched = read_domain (f->virt, ERP_1);
  assert_false (vmem_stager_is_own_define (f->stager, untouched));

  assert_outcome (stage (f, ERP_1, erp_plan (2048), "defined"), VMEM_STAGE_STAGED);
  g_autoptr(VmemDomain) staged = read_domain (f->virt, ERP_1);
  assert_true (staged->has_plan);
  assert_true (vmem_stager_is_own_define (f->stager, staged));
  /* Unchanged stages keep it ours. */
  assert_outcome (stage (f, ERP_1, erp_plan (2048), "again"), VMEM_STAGE_UNCHANGED);
  g_autoptr(VmemDomain) again = read_domain (f->virt, ERP_1);
  assert_true (vmem_stager_is_own_define (f->stager, again));

  /* Someone else gives it more memory: a define to plan for. */
  g_autofree char *xml = inactive_xml (f->virt, ERP_1);
  const char *memory = "<memory unit='KiB'>4194304</memory>";
  assert_contains (xml, memory);
  g_autoptr(GString) edited = g_string_new (xml);
  g_string_replace (edited, memory, "<memory unit='KiB'>8388608</memory>", 1);
  define_xml (f->virt, edited->str);
  g_autoptr(VmemDomain) theirs = read_domain (f->virt, ERP_1);
  assert_int_equal (theirs->memory_mib, 8192);
  assert_false (vmem_stager_is_own_define (f->stager, theirs));
}

/* The connection is freed with a stage queued: it runs, and a stage its
 * callback asks for then is dropped (freed, never run). */
static void
test_stage_while_virt_freed (void **state)
{
  Fixture *f = *state;

  f->restage = TRUE;
  gate_close (&f->gate, f->virt);
  vmem_stager_stage (f->stager, ERP_1, erp_plan (2048), "last");
  gate_open (&f->gate);
  g_clear_pointer (&f->virt, vmem_virt_free);
  assert_int_equal (f->staged->len, 1);
  assert_outcome (g_ptr_array_index (f->staged, 0), VMEM_STAGE_STAGED);
  assert_false (f->restage);
}

/* ---- live balloon target ------------------------------------------------- */

static void
test_live_target (void **state)
{
  Fixture *f = *state;

  assert_int_equal (balloon_kib (f->virt, ERP_RUN), 4096 * 1024);
  vmem_stager_set_live_target (f->stager, ERP_RUN, 2560);
  /* Behind it on the worker. */
  assert_int_equal (balloon_kib (f->virt, ERP_RUN), 2560 * 1024);
  /* The definition is not the live domain. */
  g_autofree char *xml = inactive_xml (f->virt, ERP_RUN);
  g_autoptr(VmemDomainInfo) info = parse (xml);
  assert_int_equal (info->current_mib, 4096);

  /* A domain gone meanwhile is no error. */
  vmem_stager_set_live_target (f->stager, UNKNOWN, 1024);
  assert_int_equal (balloon_kib (f->virt, ERP_RUN), 2560 * 1024);
}

#define T(fn) cmocka_unit_test_setup_teardown (fn, setup, teardown)

int
main (void)
{
  const struct CMUnitTest tests[] = {
    T (test_stage_writes_plan),
    T (test_stage_again_unchanged),
    T (test_observe_writes_nothing),
    T (test_stage_running_writes_definition_only),
    T (test_unstageable_fails),
    T (test_hold_defers),
    T (test_unhold_while_deferral_in_flight),
    T (test_tag_removed_skips),
    T (test_tag_changed_skips),
    T (test_name_plan_skips_tagged),
    T (test_transient_skipped),
    T (test_unknown_gone),
    T (test_undefined_while_staging_stays_gone),
    T (test_edited_while_staging_keeps_edit),
    T (test_reasons_reach_callback_unchanged),
    T (test_coalesce),
    T (test_own_define),
    T (test_stage_while_virt_freed),
    T (test_live_target),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
