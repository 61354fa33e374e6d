/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The io.vmemd varlink methods. */
#include "vmem-methods.h"
#include "vmem-admission.h"
#include "vmem-cleanup.h"
#include "vmem-error.h"
#include "vmem-log.h"
#include "vmem-store.h"
#include "vmem-units.h"
#include "vmem-varlink.h"
#include "vmem-xml.h"
#include "vmemd-resources.h"

#include <gio/gio.h>
#include <math.h>
#include <string.h>

struct _VmemMethods {
  VmemMethodsContext ctx;
};

#define CONFIG(m) (*(m)->ctx.config)

/* The profile that manages a domain: its tag's, else the first (by name)
 * whose pattern matches its name. */
static const VmemProfile *
profile_for (VmemMethods *m, const char *tag, const char *name)
{
  return vmem_profile_resolve (m->ctx.profiles, tag, name);
}

/* Runs @work on the store worker; @done gets the result on the main loop. */
static void
store_submit (VmemMethods *m, const char *what, VmemWorkerFunc work, VmemWorkerDone done,
              gpointer data, GDestroyNotify data_free, GDestroyNotify result_free)
{
  const VmemWorkerJob job = {
    .what = what,
    .work = work,
    .done = done,
    .data = data,
    .data_free = data_free,
    .result_free = result_free,
  };
  vmem_worker_submit (m->ctx.store, &job);
}

/* ---- parameter helpers ------------------------------------------------ */

static gboolean
get_string (json_object *params, const char *key, gboolean required, const char **out,
            GError **error)
{
  json_object *v = NULL;
  *out = NULL;
  if (params == NULL || !json_object_object_get_ex (params, key, &v) ||
      json_object_is_type (v, json_type_null))
    {
      if (!required)
        return TRUE;
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "%s: missing", key);
      return FALSE;
    }
  if (!json_object_is_type (v, json_type_string) || *json_object_get_string (v) == '\0')
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s: must be a non-empty string", key);
      return FALSE;
    }
  *out = json_object_get_string (v);
  return TRUE;
}

static gboolean
get_bool (json_object *params, const char *key, gboolean *out, GError **error)
{
  json_object *v = NULL;
  *out = FALSE;
  if (params == NULL || !json_object_object_get_ex (params, key, &v) ||
      json_object_is_type (v, json_type_null))
    return TRUE;
  if (!json_object_is_type (v, json_type_boolean))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "%s: must be true or false",
                   key);
      return FALSE;
    }
  *out = json_object_get_boolean (v);
  return TRUE;
}

/* An optional integer parameter in [min, max]; absent leaves *out alone. */
static gboolean
get_int (json_object *params, const char *key, gint64 min, gint64 max, gint64 *out,
         GError **error)
{
  json_object *v = NULL;
  if (params == NULL || !json_object_object_get_ex (params, key, &v) ||
      json_object_is_type (v, json_type_null))
    return TRUE;
  if (!json_object_is_type (v, json_type_int) || json_object_get_int64 (v) < min ||
      json_object_get_int64 (v) > max)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s: must be an integer from %" G_GINT64_FORMAT " to %" G_GINT64_FORMAT, key,
                   min, max);
      return FALSE;
    }
  *out = json_object_get_int64 (v);
  return TRUE;
}

/* A required object or array parameter. */
static gboolean
get_typed (json_object *params, const char *key, json_type type, json_object **out, GError **error)
{
  *out = NULL;
  if (params == NULL || !json_object_object_get_ex (params, key, out) ||
      !json_object_is_type (*out, type))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "%s: must be %s", key,
                   type == json_type_array ? "an array" : "an object");
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_keys (json_object *params, const char *const *allowed, GError **error)
{
  if (params == NULL)
    return TRUE;
  json_object_object_foreach (params, key, v)
    {
      (void) v;
      if (!g_strv_contains (allowed, key))
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "%s: unknown parameter",
                       key);
          return FALSE;
        }
    }
  return TRUE;
}

#define CHECK_KEYS(call, params, ...)                                     \
  G_STMT_START {                                                          \
    static const char *const allowed_[] = { __VA_ARGS__, NULL };          \
    g_autoptr(GError) kerr_ = NULL;                                       \
    if (!check_keys (params, allowed_, &kerr_))                           \
      {                                                                   \
        vmem_call_return_error (call, kerr_);                             \
        return;                                                           \
      }                                                                   \
  } G_STMT_END

/* ---- Ping, profiles --------------------------------------------------- */

static void
method_ping (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemMethods *m = user_data;
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "version", json_object_new_string (VMEM_VERSION));
  json_object_object_add (r, "host", json_object_new_string (CONFIG (m)->host_name));
  vmem_call_reply (call, r);
}

static gint
compare_profiles (gconstpointer a, gconstpointer b)
{
  const VmemProfile *pa = *(VmemProfile *const *) a;
  const VmemProfile *pb = *(VmemProfile *const *) b;
  return strcmp (pa->name, pb->name);
}

/* From the mirror: the store's profiles as last read back after a write. */
static void
method_profile_list (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemMethods *m = user_data;

  CHECK_KEYS (call, params, "");
  g_autoptr(GPtrArray) list = g_ptr_array_new ();
  GHashTableIter it;
  gpointer value;
  g_hash_table_iter_init (&it, m->ctx.profiles);
  while (g_hash_table_iter_next (&it, NULL, &value))
    g_ptr_array_add (list, value);
  g_ptr_array_sort (list, compare_profiles);
  json_object *arr = json_object_new_array ();
  for (guint i = 0; i < list->len; i++)
    json_object_array_add (arr, vmem_profile_to_json (g_ptr_array_index (list, i)));
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "profiles", arr);
  vmem_call_reply (call, r);
}

static void
method_profile_get (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemMethods *m = user_data;
  g_autoptr(GError) error = NULL;
  const char *name;

  CHECK_KEYS (call, params, "name");
  if (!get_string (params, "name", TRUE, &name, &error))
    {
      vmem_call_return_error (call, error);
      return;
    }
  const VmemProfile *p = g_hash_table_lookup (m->ctx.profiles, name);
  if (p == NULL)
    {
      g_set_error (&error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no profile named '%s'", name);
      vmem_call_return_error (call, error);
      return;
    }
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "profile", vmem_profile_to_json (p));
  vmem_call_reply (call, r);
}

/* A profile write on the store worker: the change, then the whole list
 * read back in the same job, so the mirror is the store's. */
typedef struct {
  VmemMethods *m;
  VmemCall    *call;
  char        *op;        /* "set", "delete", "import" */
  VmemProfile *profile;   /* set: the new profile (validated) */
  json_object *patch;     /* set, update: the fields given */
  gboolean     create;
  char        *name;      /* delete */
  GPtrArray   *import;    /* import: VmemProfile */
  gboolean     replace;
  guint        created, updated, deleted;
  GPtrArray   *list;      /* result: every profile */
} ProfileJob;

static void
profile_job_free (ProfileJob *j)
{
  vmem_call_unref (j->call);
  g_free (j->op);
  vmem_profile_free (j->profile);
  vmem_json_put (j->patch);
  g_free (j->name);
  g_clear_pointer (&j->import, g_ptr_array_unref);
  g_clear_pointer (&j->list, g_ptr_array_unref);
  g_free (j);
}

static gpointer
profile_work (gpointer state, gpointer data, GError **error)
{
  VmemStore *store = state;
  ProfileJob *j = data;

  if (g_str_equal (j->op, "set"))
    {
      g_autoptr(VmemProfile) base = NULL;
      if (!j->create)
        {
          json_object *jname = NULL;
          if (!json_object_object_get_ex (j->patch, "name", &jname) ||
              !json_object_is_type (jname, json_type_string))
            {
              g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "name: missing");
              return NULL;
            }
          base = vmem_store_profile_get (store, json_object_get_string (jname), error);
          if (base == NULL)
            return NULL;
        }
      j->profile = vmem_profile_from_json (j->patch, base, error);
      if (j->profile == NULL ||
          !vmem_store_profile_put (store, j->profile,
                                   j->create ? VMEM_STORE_PUT_CREATE : VMEM_STORE_PUT_UPDATE,
                                   error))
        return NULL;
    }
  else if (g_str_equal (j->op, "delete"))
    {
      if (!vmem_store_profile_delete (store, j->name, error))
        return NULL;
    }
  else if (!vmem_store_profile_import (store, j->import, j->replace, &j->created, &j->updated,
                                       &j->deleted, error))
    return NULL;
  return vmem_store_profile_list (store, error);
}

static const VmemProfile *
find_in (GPtrArray *list, const char *name)
{
  for (guint i = 0; list != NULL && i < list->len; i++)
    {
      const VmemProfile *p = g_ptr_array_index (list, i);
      if (g_strcmp0 (p->name, name) == 0)
        return p;
    }
  return NULL;
}

static void
profile_done (gpointer result, const GError *error, gpointer data)
{
  ProfileJob *j = data;
  g_autoptr(GPtrArray) list = result;

  if (error != NULL)
    {
      vmem_call_return_error (j->call, error);
      return;
    }
  json_object *r = json_object_new_object ();
  const char *changed = NULL;
  if (g_str_equal (j->op, "set"))
    {
      const VmemProfile *stored = find_in (list, j->profile->name);
      g_autofree char *demand = vmem_size_format (stored->demand_mib);
      vmem_log_decision (NULL, stored->name, j->create ? "profile-added" : "profile-changed",
                         "profile %s %s (demand %s, mode %s, prealloc %s)", stored->name,
                         j->create ? "added" : "changed", stored->demand_mib ? demand : "none",
                         vmem_mode_to_string (stored->mode), stored->prealloc ? "on" : "off");
      json_object_object_add (r, "profile", vmem_profile_to_json (stored));
      changed = j->profile->name;
    }
  else if (g_str_equal (j->op, "delete"))
    {
      vmem_log_decision (NULL, j->name, "profile-removed", "profile %s removed", j->name);
      changed = j->name;
    }
  else
    {
      vmem_log_decision (NULL, NULL, "profiles-imported",
                         "profiles imported: %u created, %u updated, %u deleted", j->created,
                         j->updated, j->deleted);
      json_object_object_add (r, "created", json_object_new_int ((int) j->created));
      json_object_object_add (r, "updated", json_object_new_int ((int) j->updated));
      json_object_object_add (r, "deleted", json_object_new_int ((int) j->deleted));
    }
  j->m->ctx.profiles_changed (g_steal_pointer (&list), changed, j->m->ctx.user_data);
  vmem_call_reply (j->call, r);
}

static void
profile_submit (VmemMethods *m, ProfileJob *j)
{
  j->m = m;
  store_submit (m, "profile write", profile_work, profile_done, j,
                (GDestroyNotify) profile_job_free, (GDestroyNotify) g_ptr_array_unref);
}

static void
method_profile_set (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemMethods *m = user_data;
  g_autoptr(GError) error = NULL;
  json_object *jprofile = NULL;
  gboolean create;

  CHECK_KEYS (call, params, "profile", "create");
  if (!get_bool (params, "create", &create, &error) ||
      !get_typed (params, "profile", json_type_object, &jprofile, &error))
    {
      vmem_call_return_error (call, error);
      return;
    }
  ProfileJob *j = g_new0 (ProfileJob, 1);
  j->call = vmem_call_ref (call);
  j->op = g_strdup ("set");
  j->create = create;
  j->patch = json_object_get (jprofile);
  profile_submit (m, j);
}

static guint
count_tagged (VmemMethods *m, const char *workload)
{
  g_autoptr(GPtrArray) list = vmem_cache_list (m->ctx.cache);
  guint n = 0;
  for (guint i = 0; i < list->len; i++)
    {
      const VmemCacheEntry *e = g_ptr_array_index (list, i);
      n += g_strcmp0 (e->domain->workload, workload) == 0;
    }
  return n;
}

static void
method_profile_delete (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemMethods *m = user_data;
  g_autoptr(GError) error = NULL;
  const char *name;
  gboolean force;

  CHECK_KEYS (call, params, "name", "force");
  if (!get_string (params, "name", TRUE, &name, &error) ||
      !get_bool (params, "force", &force, &error))
    {
      vmem_call_return_error (call, error);
      return;
    }
  guint tagged = count_tagged (m, name);
  if (tagged > 0 && !force)
    {
      g_set_error (&error, VMEM_ERROR, VMEM_ERROR_BUSY,
                   "profile '%s' is used by %u domain%s; unassign them or use --force", name,
                   tagged, tagged == 1 ? "" : "s");
      vmem_call_return_error (call, error);
      return;
    }
  ProfileJob *j = g_new0 (ProfileJob, 1);
  j->call = vmem_call_ref (call);
  j->op = g_strdup ("delete");
  j->name = g_strdup (name);
  profile_submit (m, j);
}

static void
method_profile_import (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemMethods *m = user_data;
  g_autoptr(GError) error = NULL;
  json_object *arr = NULL;
  gboolean replace;

  CHECK_KEYS (call, params, "profiles", "replace");
  if (!get_bool (params, "replace", &replace, &error) ||
      !get_typed (params, "profiles", json_type_array, &arr, &error))
    {
      vmem_call_return_error (call, error);
      return;
    }

  g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_profile_free);
  g_autoptr(GHashTable) names = g_hash_table_new (g_str_hash, g_str_equal);
  for (size_t i = 0; i < json_object_array_length (arr); i++)
    {
      VmemProfile *p = vmem_profile_from_json (json_object_array_get_idx (arr, i), NULL, &error);
      if (p == NULL)
        {
          g_prefix_error (&error, "profiles[%zu]: ", i);
          vmem_call_return_error (call, error);
          return;
        }
      g_ptr_array_add (list, p);
      if (!g_hash_table_add (names, p->name))
        {
          g_set_error (&error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                       "profiles[%zu]: name: '%s' appears twice", i, p->name);
          vmem_call_return_error (call, error);
          return;
        }
    }
  if (replace)
    {
      GHashTableIter it;
      const char *existing;
      g_hash_table_iter_init (&it, m->ctx.profiles);
      while (g_hash_table_iter_next (&it, (gpointer *) &existing, NULL))
        if (!g_hash_table_contains (names, existing) && count_tagged (m, existing) > 0)
          {
            g_set_error (&error, VMEM_ERROR, VMEM_ERROR_BUSY,
                         "profile '%s' is used by domains and is not in the import", existing);
            vmem_call_return_error (call, error);
            return;
          }
    }
  ProfileJob *j = g_new0 (ProfileJob, 1);
  j->call = vmem_call_ref (call);
  j->op = g_strdup ("import");
  j->import = g_steal_pointer (&list);
  j->replace = replace;
  profile_submit (m, j);
}

/* ---- Assign / Unassign (libvirt, on the worker) ------------------------ */

typedef struct {
  VmemMethods *m;
  VmemCall   *call;
  char       *domain;
  char       *workload; /* NULL: unassign */
  gboolean    restore;
  gboolean    restored;
} TagJob;

static void
tag_job_free (TagJob *j)
{
  vmem_call_unref (j->call);
  g_free (j->domain);
  g_free (j->workload);
  g_free (j);
}

static gpointer
tag_work (virConnectPtr conn, gpointer data, GError **error)
{
  TagJob *j = data;
  g_autoptr(virDomain) dom = vmem_virt_lookup (conn, j->domain, error);
  if (dom == NULL)
    return NULL;
  if (virDomainIsPersistent (dom) != 1)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE,
                   "domain '%s' is transient: vmemd manages persistent domains only", j->domain);
      return NULL;
    }

  g_autofree char *xml = NULL;
  if (j->workload != NULL)
    {
      /* Another hypervisor's domain would never take a plan: say so now. */
      g_autofree char *def = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE);
      if (def == NULL)
        {
          vmem_virt_set_error (error, VMEM_ERROR_UNAVAILABLE, "cannot read domain '%s'", j->domain);
          return NULL;
        }
      g_autoptr(VmemDomainInfo) info = vmem_xml_parse_domain (def, error);
      if (info == NULL)
        return NULL;
      if (!vmem_xml_type_is_managed (info->type))
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE,
                       "domain '%s' cannot be managed: it is a type='%s' domain, and vmemd "
                       "manages QEMU and KVM domains only",
                       j->domain, info->type ? info->type : "");
          return NULL;
        }
      xml = g_markup_printf_escaped ("<workload name=\"%s\"/>", j->workload);
    }

  if (j->workload == NULL && j->restore)
    {
      g_autofree char *cur = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
      if (cur == NULL)
        {
          vmem_virt_set_error (error, VMEM_ERROR_UNAVAILABLE, "cannot read domain '%s'", j->domain);
          return NULL;
        }
      g_autoptr(GError) local = NULL;
      g_autofree char *restored = vmem_xml_restore (cur, &local);
      if (restored == NULL && local != NULL)
        {
          g_propagate_prefixed_error (error, g_steal_pointer (&local),
                                      "cannot restore domain '%s': ", j->domain);
          return NULL;
        }
      if (restored != NULL)
        {
          virDomainPtr d2 = virDomainDefineXMLFlags (conn, restored, VIR_DOMAIN_DEFINE_VALIDATE);
          if (d2 == NULL)
            {
              vmem_virt_set_error (error, VMEM_ERROR_FAILED, "cannot redefine domain '%s'",
                                   j->domain);
              return NULL;
            }
          virDomainFree (d2);
          j->restored = TRUE;
        }
    }

  if (virDomainSetMetadata (dom, VIR_DOMAIN_METADATA_ELEMENT, xml,
                            xml ? VMEM_METADATA_KEY : NULL, VMEM_METADATA_URI,
                            VIR_DOMAIN_AFFECT_CONFIG) < 0)
    {
      vmem_virt_set_error (error, VMEM_ERROR_FAILED, "cannot %s domain '%s'",
                           xml ? "tag" : "untag", j->domain);
      return NULL;
    }
  /* The running instance shows the tag too, for `virsh dumpxml`; a failure
   * there changes nothing that matters for the next start. */
  if (virDomainIsActive (dom) == 1 &&
      virDomainSetMetadata (dom, VIR_DOMAIN_METADATA_ELEMENT, xml, xml ? VMEM_METADATA_KEY : NULL,
                            VMEM_METADATA_URI, VIR_DOMAIN_AFFECT_LIVE) < 0)
    virResetLastError ();
  return vmem_virt_read_domain (dom, error);
}

static void
tag_done (gpointer result, const GError *error, gpointer data)
{
  TagJob *j = data;
  g_autoptr(VmemDomain) d = result;

  if (error != NULL)
    {
      vmem_call_return_error (j->call, error);
      return;
    }
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "domain", json_object_new_string (d->name));
  json_object_object_add (r, "uuid", json_object_new_string (d->uuid));
  if (j->workload != NULL)
    {
      json_object_object_add (r, "workload", json_object_new_string (j->workload));
      vmem_log_decision (d->name, j->workload, "assigned", "domain %s assigned to workload %s",
                         d->name, j->workload);
    }
  else
    {
      json_object_object_add (r, "restored", json_object_new_boolean (j->restored));
      vmem_log_decision (d->name, NULL, "unassigned", "domain %s unassigned%s", d->name,
                         j->restored ? ", memory settings restored" : "");
    }
  vmem_call_reply (j->call, r);
  /* The cache follows at once, so that the next call sees the new tag. */
  j->m->ctx.domain_read (g_steal_pointer (&d), j->m->ctx.user_data);
}

static void
method_assign (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemMethods *m = user_data;
  g_autoptr(GError) error = NULL;
  const char *domain, *workload;

  CHECK_KEYS (call, params, "domain", "workload");
  if (!get_string (params, "domain", TRUE, &domain, &error) ||
      !get_string (params, "workload", TRUE, &workload, &error))
    {
      vmem_call_return_error (call, error);
      return;
    }
  if (!vmem_profile_name_valid (workload, &error))
    {
      g_prefix_error (&error, "workload: ");
      vmem_call_return_error (call, error);
      return;
    }
  if (!g_hash_table_contains (m->ctx.profiles, workload))
    {
      g_set_error (&error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND,
                   "no profile named '%s' (create it first: vmemctl profile add %s --demand SIZE)",
                   workload, workload);
      vmem_call_return_error (call, error);
      return;
    }
  TagJob *j = g_new0 (TagJob, 1);
  j->m = m;
  j->call = vmem_call_ref (call);
  j->domain = g_strdup (domain);
  j->workload = g_strdup (workload);
  vmem_virt_submit (m->ctx.virt, "assign", NULL, tag_work, tag_done, j, (GDestroyNotify) tag_job_free,
                    (GDestroyNotify) vmem_domain_free);
}

static void
method_unassign (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemMethods *m = user_data;
  g_autoptr(GError) error = NULL;
  const char *domain;
  gboolean restore;

  CHECK_KEYS (call, params, "domain", "restore");
  if (!get_string (params, "domain", TRUE, &domain, &error) ||
      !get_bool (params, "restore", &restore, &error))
    {
      vmem_call_return_error (call, error);
      return;
    }
  TagJob *j = g_new0 (TagJob, 1);
  j->m = m;
  j->call = vmem_call_ref (call);
  j->domain = g_strdup (domain);
  j->restore = restore;
  vmem_virt_submit (m->ctx.virt, "unassign", NULL, tag_work, tag_done, j, (GDestroyNotify) tag_job_free,
                    (GDestroyNotify) vmem_domain_free);
}

/* ---- Status ----------------------------------------------------------- */

static void
method_status (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemMethods *m = user_data;
  const VmemConfig *c = CONFIG (m);
  VmemCache *cache = m->ctx.cache;

  CHECK_KEYS (call, params, "");
  guint64 committed = vmem_cache_committed (cache, NULL);
  json_object *s = json_object_new_object ();
  json_object_object_add (s, "version", json_object_new_string (VMEM_VERSION));
  json_object_object_add (s, "host", json_object_new_string (c->host_name));
  json_object_object_add (s, "host_id", json_object_new_string (c->host_id));
  json_object_object_add (s, "uri", json_object_new_string (c->uri));
  json_object_object_add (s, "libvirt_connected",
                          json_object_new_boolean (vmem_virt_is_connected (m->ctx.virt)));
  json_object_object_add (s, "ready", json_object_new_boolean (vmem_cache_is_ready (cache)));
  json_object_object_add (s, "store", json_object_new_string (m->ctx.store_backend));
  json_object_object_add (s, "database", json_object_new_string (m->ctx.store_location));
  json_object_object_add (s, "schema_version", json_object_new_int (m->ctx.schema_version));
  if (m->ctx.buffer != NULL)
    {
      /* Kept while the store cannot be written, to be written when it can. */
      json_object *waiting = json_object_new_object ();
      json_object_object_add (waiting, "samples",
                              json_object_new_int64 (vmem_store_buffer_pending (m->ctx.buffer)));
      json_object_object_add (waiting, "writes", json_object_new_int64 (
                                vmem_store_buffer_pending_writes (m->ctx.buffer)));
      json_object_object_add (s, "store_waiting", waiting);
    }
  json_object_object_add (s, "started", json_object_new_int64 (m->ctx.started_at));
  json_object_object_add (s, "admission", json_object_new_string (vmem_admission_to_string (c->admission)));
  json_object_object_add (s, "capacity_mib", json_object_new_int64 ((gint64) m->ctx.capacity (m->ctx.user_data)));
  json_object_object_add (s, "reserve_mib", json_object_new_int64 ((gint64) c->reserve_mib));
  json_object_object_add (s, "committed_mib", json_object_new_int64 ((gint64) committed));
  json_object_object_add (s, "profiles", json_object_new_int ((int) g_hash_table_size (m->ctx.profiles)));

  gint64 now = g_get_monotonic_time ();
  g_autoptr(GPtrArray) reservations = vmem_cache_reservations (cache);
  json_object *rarr = json_object_new_array ();
  for (guint i = 0; i < reservations->len; i++)
    {
      const VmemReservation *r = g_ptr_array_index (reservations, i);
      json_object *jr = json_object_new_object ();
      json_object_object_add (jr, "name", json_object_new_string (r->name));
      json_object_object_add (jr, "uuid", json_object_new_string (r->uuid));
      json_object_object_add (jr, "mib", json_object_new_int64 ((gint64) r->mib));
      json_object_object_add (jr, "age_s", json_object_new_int64 ((now - r->since) / G_USEC_PER_SEC));
      json_object_array_add (rarr, jr);
    }
  json_object_object_add (s, "reservations", rarr);

  g_autoptr(GPtrArray) entries = vmem_cache_list (cache);
  json_object *arr = json_object_new_array ();
  for (guint i = 0; i < entries->len; i++)
    {
      const VmemCacheEntry *e = g_ptr_array_index (entries, i);
      const VmemDomain *dom = e->domain;
      const VmemProfile *p = profile_for (m, dom->workload, dom->name);
      json_object *d = json_object_new_object ();
      json_object_object_add (d, "name", json_object_new_string (dom->name));
      json_object_object_add (d, "uuid", json_object_new_string (dom->uuid));
      json_object_object_add (d, "state", json_object_new_string (vmem_cache_is_starting (cache, dom->uuid) && !dom->active ? "starting" : vmem_domain_state_to_string (dom->state)));
      json_object_object_add (d, "managed", json_object_new_boolean (p != NULL));
      if (p != NULL)
        json_object_object_add (d, "workload", json_object_new_string (p->name));
      else if (dom->workload != NULL)
        json_object_object_add (d, "workload", json_object_new_string (dom->workload));
      json_object_object_add (d, "memory_mib", json_object_new_int64 ((gint64) dom->memory_mib));
      json_object_object_add (d, "current_mib", json_object_new_int64 ((gint64) dom->current_mib));
      json_object_object_add (d, "vcpus", json_object_new_int ((int) dom->vcpus));
      if (p != NULL && e->staged_mib > 0)
        json_object_object_add (d, "demand_mib", json_object_new_int64 ((gint64) e->staged_mib));
      if (p != NULL && dom->active)
        {
          /* After the start: what the guest said last and what the
           * on-demand controller made of it. */
          if (e->seen_t > 0)
            {
              json_object_object_add (d, "used_mib", json_object_new_int64 ((gint64) e->used_mib));
              json_object_object_add (d, "available_mib",
                                      json_object_new_int64 ((gint64) e->available_mib));
              json_object_object_add (d, "seen", json_object_new_int64 (e->seen_t));
            }
          if (e->action != NULL)
            {
              json_object_object_add (d, "target_mib", json_object_new_int64 ((gint64) e->target_mib));
              json_object_object_add (d, "action", json_object_new_string (e->action));
              json_object_object_add (d, "reason", json_object_new_string (e->reason ? e->reason : ""));
              json_object_object_add (d, "action_time", json_object_new_int64 (e->action_t));
            }
        }
      json_object_array_add (arr, d);
    }
  json_object_object_add (s, "domains", arr);

  json_object *r = json_object_new_object ();
  json_object_object_add (r, "status", s);
  vmem_call_reply (call, r);
}

/* ---- Explain ---------------------------------------------------------- */

typedef struct {
  VmemCall    *call;
  json_object *x;     /* the explanation so far */
  char        *uuid;
} ExplainJob;

static void
explain_job_free (ExplainJob *j)
{
  vmem_call_unref (j->call);
  vmem_json_put (j->x);
  g_free (j->uuid);
  g_free (j);
}

static gpointer
explain_work (gpointer state, gpointer data, GError **error)
{
  ExplainJob *j = data;
  return vmem_store_plan_latest (state, j->uuid, error);
}

/* The plan staged last, from the store, joins the explanation. */
static void
explain_done (gpointer result, const GError *error, gpointer data)
{
  ExplainJob *j = data;
  g_autoptr(VmemPlanRow) row = result;

  if (error != NULL && !g_error_matches (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND))
    {
      vmem_call_return_error (j->call, error);
      return;
    }
  if (row != NULL)
    {
      json_object *st = json_object_new_object ();
      json_object_object_add (st, "time", json_object_new_int64 (row->t));
      json_object_object_add (st, "demand_mib", json_object_new_int64 ((gint64) row->demand_mib));
      json_object_object_add (st, "source", json_object_new_string (row->source ? row->source : ""));
      json_object *reasons = row->reasons_json ? json_tokener_parse (row->reasons_json) : NULL;
      if (reasons != NULL)
        json_object_object_add (st, "reasons", reasons);
      json_object_object_add (j->x, "staged", st);
    }
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "explanation", g_steal_pointer (&j->x));
  vmem_call_reply (j->call, r);
}

/* Names each peer's host (peers carry its id) in a plan's reasons. */
static json_object *
name_peer_hosts (VmemMethods *m, json_object *plan)
{
  json_object *est = NULL, *peers = NULL;
  if (m->ctx.host_names == NULL || !json_object_object_get_ex (plan, "estimate", &est) ||
      !json_object_object_get_ex (est, "peers", &peers) ||
      !json_object_is_type (peers, json_type_array))
    return plan;
  for (size_t i = 0; i < json_object_array_length (peers); i++)
    {
      json_object *peer = json_object_array_get_idx (peers, i);
      json_object *id = NULL;
      if (!json_object_object_get_ex (peer, "host", &id) ||
          !json_object_is_type (id, json_type_string))
        continue;
      const char *name = g_hash_table_lookup (m->ctx.host_names, json_object_get_string (id));
      if (name != NULL)
        json_object_object_add (peer, "host_name", json_object_new_string (name));
    }
  return plan;
}

static void
method_explain (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemMethods *m = user_data;
  g_autoptr(GError) error = NULL;
  const char *domain, *workload;

  CHECK_KEYS (call, params, "domain", "workload");
  if (!get_string (params, "domain", FALSE, &domain, &error) ||
      !get_string (params, "workload", FALSE, &workload, &error))
    {
      vmem_call_return_error (call, error);
      return;
    }
  if ((domain == NULL) == (workload == NULL))
    {
      g_set_error (&error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "give either a domain or a workload");
      vmem_call_return_error (call, error);
      return;
    }

  g_autoptr(json_object) x = json_object_new_object ();
  if (domain != NULL)
    {
      const VmemCacheEntry *e = vmem_cache_find (m->ctx.cache, domain);
      if (e == NULL)
        {
          g_set_error (&error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no domain named '%s'", domain);
          vmem_call_return_error (call, error);
          return;
        }
      const VmemDomain *d = e->domain;
      const VmemProfile *p = profile_for (m, d->workload, d->name);
      json_object_object_add (x, "domain", json_object_new_string (d->name));
      json_object_object_add (x, "uuid", json_object_new_string (d->uuid));
      json_object_object_add (x, "managed", json_object_new_boolean (p != NULL));
      json_object_object_add (x, "memory_mib", json_object_new_int64 ((gint64) d->memory_mib));
      json_object_object_add (x, "current_mib", json_object_new_int64 ((gint64) d->current_mib));
      json_object_object_add (x, "vcpus", json_object_new_int ((int) d->vcpus));
      if (p == NULL)
        {
          json_object_object_add (x, "why",
                                  json_object_new_string (d->workload
                                                          ? "tagged with a workload that has no profile"
                                                          : "no workload tag and no profile pattern matches its name: vmemd leaves it alone"));
          if (d->workload != NULL)
            json_object_object_add (x, "workload", json_object_new_string (d->workload));
        }
      else
        {
          json_object_object_add (x, "workload", json_object_new_string (p->name));
          json_object_object_add (x, "matched_by",
                                  json_object_new_string (d->workload ? "tag" : "name pattern"));
          json_object_object_add (x, "profile", vmem_profile_to_json (p));
          g_autoptr(VmemStagedPlan) sp = m->ctx.plan (p, d, m->ctx.user_data);
          json_object_object_add (x, "plan", name_peer_hosts (m, json_object_get (sp->reasons)));
          ExplainJob *j = g_new0 (ExplainJob, 1);
          j->call = vmem_call_ref (call);
          j->x = g_steal_pointer (&x);
          j->uuid = g_strdup (d->uuid);
          store_submit (m, "explain", explain_work, explain_done, j,
                        (GDestroyNotify) explain_job_free, (GDestroyNotify) vmem_plan_row_free);
          return;
        }
    }
  else
    {
      const VmemProfile *p = g_hash_table_lookup (m->ctx.profiles, workload);
      if (p == NULL)
        {
          g_set_error (&error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no profile named '%s'", workload);
          vmem_call_return_error (call, error);
          return;
        }
      json_object_object_add (x, "workload", json_object_new_string (p->name));
      json_object_object_add (x, "profile", vmem_profile_to_json (p));
      g_autoptr(VmemStagedPlan) sp = m->ctx.plan (p, NULL, m->ctx.user_data);
      json_object_object_add (x, "plan", name_peer_hosts (m, json_object_get (sp->reasons)));
      json_object *doms = json_object_new_array ();
      g_autoptr(GPtrArray) entries = vmem_cache_list (m->ctx.cache);
      for (guint i = 0; i < entries->len; i++)
        {
          const VmemCacheEntry *e = g_ptr_array_index (entries, i);
          if (profile_for (m, e->domain->workload, e->domain->name) == p)
            json_object_array_add (doms, json_object_new_string (e->domain->name));
        }
      json_object_object_add (x, "domains", doms);
    }

  json_object *r = json_object_new_object ();
  json_object_object_add (r, "explanation", g_steal_pointer (&x));
  vmem_call_reply (call, r);
}

/* ---- History ---------------------------------------------------------- */

#define HISTORY_DEFAULT_S (6 * 3600)
#define HISTORY_MAX_ROWS  100000

typedef struct {
  VmemCall  *call;
  char      *name;
  char      *uuid;
  gint64     since;
  guint      limit;
  GPtrArray *moves;
  GPtrArray *samples;
} HistoryJob;

static void
history_job_free (HistoryJob *j)
{
  vmem_call_unref (j->call);
  g_free (j->name);
  g_free (j->uuid);
  g_clear_pointer (&j->moves, g_ptr_array_unref);
  g_clear_pointer (&j->samples, g_ptr_array_unref);
  g_free (j);
}

static gpointer
history_work (gpointer state, gpointer data, GError **error)
{
  HistoryJob *j = data;
  j->moves = vmem_store_move_list (state, j->uuid, j->since, j->limit, error);
  if (j->moves == NULL)
    return NULL;
  j->samples = vmem_store_sample_list (state, j->uuid, j->since, j->limit, error);
  return j->samples != NULL ? GINT_TO_POINTER (1) : NULL;
}

static void
history_done (gpointer result, const GError *error, gpointer data)
{
  HistoryJob *j = data;
  if (error != NULL)
    {
      vmem_call_return_error (j->call, error);
      return;
    }
  json_object *moves = json_object_new_array ();
  for (guint i = 0; i < j->moves->len; i++)
    {
      const VmemMoveRow *m = g_ptr_array_index (j->moves, i);
      json_object *o = json_object_new_object ();
      json_object_object_add (o, "t", json_object_new_int64 (m->t));
      json_object_object_add (o, "action", json_object_new_string (m->action));
      json_object_object_add (o, "mode", json_object_new_string (m->mode));
      json_object_object_add (o, "from_mib", json_object_new_int64 ((gint64) m->from_mib));
      json_object_object_add (o, "to_mib", json_object_new_int64 ((gint64) m->to_mib));
      json_object_object_add (o, "applied", json_object_new_boolean (m->applied));
      /* null once retention has dropped it (raw_retention_hours). */
      json_object_object_add (o, "reason", m->reason ? json_object_new_string (m->reason) : NULL);
      json_object_array_add (moves, o);
    }
  json_object *samples = json_object_new_array ();
  for (guint i = 0; i < j->samples->len; i++)
    {
      const VmemSampleRow *r = g_ptr_array_index (j->samples, i);
      json_object *o = json_object_new_object ();
      json_object_object_add (o, "t", json_object_new_int64 (r->t));
      json_object_object_add (o, "used_mib", json_object_new_int64 ((gint64) r->used_mib));
      json_object_object_add (o, "actual_mib", json_object_new_int64 ((gint64) r->current_mib));
      json_object_object_add (o, "total_mib", json_object_new_int64 ((gint64) r->available_mib));
      json_object_object_add (o, "available_mib", json_object_new_int64 ((gint64) r->usable_mib));
      json_object_object_add (o, "rss_mib", json_object_new_int64 ((gint64) r->rss_mib));
      json_object_object_add (o, "guest", json_object_new_boolean (r->guest_quality));
      json_object_array_add (samples, o);
    }
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "domain", json_object_new_string (j->name));
  json_object_object_add (r, "uuid", json_object_new_string (j->uuid));
  json_object_object_add (r, "since", json_object_new_int64 (j->since));
  json_object_object_add (r, "moves", moves);
  json_object_object_add (r, "samples", samples);
  vmem_call_reply (j->call, r);
}

static void
method_history (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemMethods *m = user_data;
  g_autoptr(GError) error = NULL;
  const char *domain;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  gint64 since = now - HISTORY_DEFAULT_S, limit = 2000;

  CHECK_KEYS (call, params, "domain", "since", "limit");
  if (!get_string (params, "domain", TRUE, &domain, &error) ||
      !get_int (params, "since", 0, G_MAXINT64, &since, &error) ||
      !get_int (params, "limit", 1, HISTORY_MAX_ROWS, &limit, &error))
    {
      vmem_call_return_error (call, error);
      return;
    }
  const VmemCacheEntry *e = vmem_cache_find (m->ctx.cache, domain);
  if (e == NULL)
    {
      g_set_error (&error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no domain named '%s'", domain);
      vmem_call_return_error (call, error);
      return;
    }
  HistoryJob *j = g_new0 (HistoryJob, 1);
  j->call = vmem_call_ref (call);
  j->name = g_strdup (e->domain->name);
  j->uuid = g_strdup (e->domain->uuid);
  j->since = since;
  j->limit = (guint) limit;
  store_submit (m, "history", history_work, history_done, j, (GDestroyNotify) history_job_free,
                NULL);
}

/* ---- Hosts, Place ------------------------------------------------------ */

typedef struct {
  VmemCall  *call;
  VmemMethods *m;
  char      *workload;
  guint64    demand_mib;
  guint64    boot_mib;
  char      *source;
  GPtrArray *hosts;
} HostsJob;

static void
hosts_job_free (HostsJob *j)
{
  vmem_call_unref (j->call);
  g_free (j->workload);
  g_free (j->source);
  g_clear_pointer (&j->hosts, g_ptr_array_unref);
  g_free (j);
}

static gpointer
hosts_work (gpointer state, gpointer data, GError **error)
{
  HostsJob *j = data;
  j->hosts = vmem_store_host_list (state, error);
  return j->hosts != NULL ? GINT_TO_POINTER (1) : NULL;
}

static guint64
host_free_mib (const VmemHostRow *h)
{
  return h->capacity_mib > h->committed_mib ? h->capacity_mib - h->committed_mib : 0;
}

static json_object *
host_json (VmemMethods *m, const VmemHostRow *h, gint64 now)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "id", json_object_new_string (h->id));
  json_object_object_add (o, "name", json_object_new_string (h->name));
  json_object_object_add (o, "self", json_object_new_boolean (g_str_equal (h->id,
                                                                           CONFIG (m)->host_id)));
  json_object_object_add (o, "capacity_mib", json_object_new_int64 ((gint64) h->capacity_mib));
  json_object_object_add (o, "reserve_mib", json_object_new_int64 ((gint64) h->reserved_mib));
  json_object_object_add (o, "committed_mib", json_object_new_int64 ((gint64) h->committed_mib));
  json_object_object_add (o, "free_mib", json_object_new_int64 ((gint64) host_free_mib (h)));
  json_object_object_add (o, "reservations", json_object_new_int64 (h->reservations));
  json_object_object_add (o, "reservations_mib",
                          json_object_new_int64 ((gint64) h->reservations_mib));
  json_object_object_add (o, "domains", json_object_new_int64 (h->domains));
  json_object_object_add (o, "interval_s", json_object_new_int64 (h->interval_s));
  json_object_object_add (o, "heartbeat", json_object_new_int64 (h->heartbeat));
  json_object_object_add (o, "alive", json_object_new_boolean (vmem_store_host_alive (h, now)));
  return o;
}

static void
hosts_done (gpointer result, const GError *error, gpointer data)
{
  HostsJob *j = data;
  if (error != NULL)
    {
      vmem_call_return_error (j->call, error);
      return;
    }
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  json_object *list = json_object_new_array ();
  for (guint i = 0; i < j->hosts->len; i++)
    json_object_array_add (list, host_json (j->m, g_ptr_array_index (j->hosts, i), now));
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "now", json_object_new_int64 (now));
  json_object_object_add (r, "hosts", list);
  vmem_call_reply (j->call, r);
}

static void
method_hosts (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemMethods *m = user_data;
  CHECK_KEYS (call, params, "");
  HostsJob *j = g_new0 (HostsJob, 1);
  j->call = vmem_call_ref (call);
  j->m = m;
  store_submit (m, "hosts", hosts_work, hosts_done, j, (GDestroyNotify) hosts_job_free, NULL);
}

/* Fitting hosts first, the most room left first; then the others, the
 * least short first. */
static gint
compare_places (gconstpointer a, gconstpointer b, gpointer user_data)
{
  const VmemHostRow *ha = *(VmemHostRow *const *) a;
  const VmemHostRow *hb = *(VmemHostRow *const *) b;
  guint64 boot = *(const guint64 *) user_data;
  gint64 ra = (gint64) host_free_mib (ha) - (gint64) boot;
  gint64 rb = (gint64) host_free_mib (hb) - (gint64) boot;
  if (ra != rb)
    return ra > rb ? -1 : 1;
  return strcmp (ha->id, hb->id);
}

static void
place_done (gpointer result, const GError *error, gpointer data)
{
  HostsJob *j = data;
  if (error != NULL)
    {
      vmem_call_return_error (j->call, error);
      return;
    }
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  g_autoptr(GPtrArray) live = g_ptr_array_new ();
  for (guint i = 0; i < j->hosts->len; i++)
    if (vmem_store_host_alive (g_ptr_array_index (j->hosts, i), now))
      g_ptr_array_add (live, g_ptr_array_index (j->hosts, i));
  g_ptr_array_sort_with_data (live, compare_places, &j->boot_mib);
  json_object *list = json_object_new_array ();
  for (guint i = 0; i < live->len; i++)
    {
      const VmemHostRow *h = g_ptr_array_index (live, i);
      json_object *o = host_json (j->m, h, now);
      guint64 free_mib = host_free_mib (h);
      json_object_object_add (o, "rank", json_object_new_int64 (i + 1));
      json_object_object_add (o, "fits", json_object_new_boolean (free_mib >= j->boot_mib));
      json_object_object_add (o, "room_mib",
                              json_object_new_int64 ((gint64) free_mib - (gint64) j->boot_mib));
      json_object_array_add (list, o);
    }
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "workload", json_object_new_string (j->workload));
  json_object_object_add (r, "demand_mib", json_object_new_int64 ((gint64) j->demand_mib));
  json_object_object_add (r, "boot_mib", json_object_new_int64 ((gint64) j->boot_mib));
  json_object_object_add (r, "source", json_object_new_string (j->source));
  json_object_object_add (r, "hosts", list);
  vmem_call_reply (j->call, r);
}

/* Where a new domain of a workload would go: its demand as estimated now,
 * and what it holds at boot by its profile's mode (balloon with
 * preallocation: its whole <memory>; virtio-mem: the demand; observe: its
 * <memory> as defined), against each live host's free memory. */
static void
method_place (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemMethods *m = user_data;
  g_autoptr(GError) error = NULL;
  const char *workload;
  gint64 memory = 0;

  CHECK_KEYS (call, params, "workload", "memory_mib");
  if (!get_string (params, "workload", TRUE, &workload, &error) ||
      !get_int (params, "memory_mib", 1, G_MAXINT32, &memory, &error))
    {
      vmem_call_return_error (call, error);
      return;
    }
  const VmemProfile *p = g_hash_table_lookup (m->ctx.profiles, workload);
  if (p == NULL)
    {
      g_set_error (&error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no profile named '%s'", workload);
      vmem_call_return_error (call, error);
      return;
    }
  g_autoptr(VmemStagedPlan) sp = m->ctx.plan (p, NULL, m->ctx.user_data);
  HostsJob *j = g_new0 (HostsJob, 1);
  j->call = vmem_call_ref (call);
  j->m = m;
  j->workload = g_strdup (p->name);
  j->source = g_strdup (sp->source);
  j->demand_mib = sp->plan.demand_mib;
  guint64 mem = memory > 0 ? (guint64) memory : j->demand_mib;
  if (mem < j->demand_mib)
    mem = j->demand_mib;
  switch (p->mode)
    {
    case VMEM_MODE_BALLOON:
      j->boot_mib = p->prealloc ? mem : j->demand_mib;
      break;
    case VMEM_MODE_VIRTIO_MEM:
      j->boot_mib = j->demand_mib;
      break;
    case VMEM_MODE_OBSERVE:
    default:
      j->boot_mib = mem;
      break;
    }
  store_submit (m, "place", hosts_work, place_done, j, (GDestroyNotify) hosts_job_free, NULL);
}

/* ---- HookEvent -------------------------------------------------------- */

/* The time since the call came in, in seconds, into the daemon's counters. */
static void
hook_count (VmemMethods *m, VmemCall *call, VmemMetricsHookOp op, VmemMetricsHookResult result)
{
  double seconds = (double) (g_get_monotonic_time () - vmem_call_get_received (call)) /
                   G_USEC_PER_SEC;
  if (m->ctx.counters != NULL)
    vmem_metrics_hook_request (m->ctx.counters, op, result, seconds);
}

static void
hook_reply (VmemMethods *m, VmemCall *call, VmemMetricsHookOp op, gboolean allow,
            const char *message, const char *xml)
{
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "allow", json_object_new_boolean (allow));
  if (message != NULL)
    json_object_object_add (r, "message", json_object_new_string (message));
  if (xml != NULL)
    json_object_object_add (r, "xml", json_object_new_string (xml));
  vmem_call_reply (call, r);
  hook_count (m, call, op, allow ? VMEM_METRICS_HOOK_ALLOWED : VMEM_METRICS_HOOK_REFUSED);
}

static void
hook_error (VmemMethods *m, VmemCall *call, VmemMetricsHookOp op, const GError *error)
{
  vmem_call_return_error (call, error);
  hook_count (m, call, op, VMEM_METRICS_HOOK_ERROR);
}

/* The boot footprint of a domain that is not managed: admission does not
 * judge its start, but charges it, so that concurrent starts see it. */
static guint64
unmanaged_boot_mib (const VmemDomain *d)
{
  return vmem_admission_boot_mib (d->memory_mib, d->current_mib, d->prealloc,
                                  d->virtio_mem_size_mib, d->virtio_mem_requested_mib);
}

/* Logs @out, takes its reservation when it admits, and gives the line the
 * hook shows: a refusal, or a warning ("vmemd: ..."); NULL otherwise. */
static gboolean
admission_done (VmemMethods *m, const char *name, const char *workload, const char *uuid,
                guint64 reserve_mib, VmemAdmissionDecision *out, char **message)
{
  if (out->verdict == VMEM_ADMISSION_REFUSE)
    {
      vmem_log_decision (name, workload, out->event, "%s", out->message);
      *message = g_steal_pointer (&out->message);
      return FALSE;
    }
  if (out->warn)
    {
      vmem_log_decision_warning (name, workload, out->event, "%s", out->message);
      *message = g_strdup_printf ("vmemd: %s", out->message);
    }
  else
    vmem_log_decision (name, workload, out->event, "%s", out->message);
  if (uuid != NULL)
    m->ctx.start_admitted (uuid, name, reserve_mib, m->ctx.user_data);
  return TRUE;
}

static VmemAdmissionRequest
admission_request (VmemMethods *m, const char *uuid, const char *name, const char *workload)
{
  const VmemConfig *c = CONFIG (m);
  return (VmemAdmissionRequest){
    .mode = c->admission,
    .not_ready = c->not_ready,
    .unchecked = c->unchecked,
    .ready = vmem_cache_is_ready (m->ctx.cache),
    .capacity_mib = m->ctx.capacity (m->ctx.user_data),
    .committed_mib = vmem_cache_committed (m->ctx.cache, uuid),
    .name = name,
    .workload = workload,
  };
}

/* Admission control for a managed domain that is about to start.  Answers
 * from memory only: the domain is locked by libvirt while its hook runs,
 * so no libvirt call can be made here, and the store may be slow.  @id is
 * the domain's uuid as best known (the XML's may be missing); NULL: the
 * start is judged but cannot be charged. */
static gboolean
admit (VmemMethods *m, const VmemProfile *p, const VmemDomain *d, const char *id, char **message)
{
  VmemAdmissionRequest req = admission_request (m, id, d->name, p->name);
  req.memory_mib = d->memory_mib;
  req.current_mib = d->current_mib;
  req.prealloc = d->prealloc;
  req.virtio_mem_size_mib = d->virtio_mem_size_mib;
  req.virtio_mem_requested_mib = d->virtio_mem_requested_mib;
  req.profile_mode = p->mode;
  g_auto(VmemAdmissionDecision) out = { 0 };
  vmem_admission_decide (&req, &out);
  return admission_done (m, d->name, p->name, id, out.needed_mib, &out, message);
}

/* The start of @domain cannot be checked: its XML cannot be used (@why).
 * The cache's definition may charge the start for the starts after it,
 * but not judge it (see vmem-admission.h). */
static gboolean
admit_unchecked (VmemMethods *m, const VmemProfile *p, const VmemCacheEntry *e,
                 const char *domain, const char *uuid, const char *why, char **message)
{
  VmemAdmissionRequest req = admission_request (m, uuid, domain, p ? p->name : NULL);
  req.unchecked_why = why;
  g_auto(VmemAdmissionDecision) out = { 0 };
  vmem_admission_decide (&req, &out);
  return admission_done (m, domain, p ? p->name : NULL, uuid,
                         e != NULL ? unmanaged_boot_mib (e->domain) : 0, &out, message);
}

/* The definition being started carries the plan staged earlier; if the
 * estimate has moved since, the balloon target is corrected once the
 * domain runs (the STARTED event), and the log says why. */
static void
check_freshness (VmemMethods *m, const VmemProfile *p, const VmemDomain *d)
{
  const VmemConfig *c = CONFIG (m);
  if (!d->has_plan)
    {
      vmem_log_decision (d->name, p->name, "not-staged",
                         "%s starts without a staged plan; its balloon target is set once it runs",
                         d->name);
      return;
    }
  g_autoptr(VmemStagedPlan) sp = m->ctx.plan (p, d, m->ctx.user_data);
  if (vmem_planner_moved (d->plan_demand_mib, sp->plan.demand_mib, c->hysteresis_pct,
                          c->hysteresis_mib))
    {
      g_autofree char *staged = vmem_size_format (d->plan_demand_mib);
      g_autofree char *now = vmem_size_format (sp->plan.demand_mib);
      vmem_log_decision (d->name, p->name, "plan-stale",
                         "%s starts with a stale plan (staged %s, now %s from %s); the balloon "
                         "target is corrected once it runs", d->name, staged, now, sp->source);
    }
}

static void
method_hook_event (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemMethods *m = user_data;
  g_autoptr(GError) error = NULL;
  const char *op, *subop, *extra, *domain, *uuid, *xml;

  const char *xml_missing;
  static const char *const allowed[] = {
    "op", "subop", "extra", "domain", "uuid", "xml", "xml_missing", NULL,
  };

  /* Every call is counted, by its op, with the time to its reply. */
  json_object *jop = NULL;
  VmemMetricsHookOp hop = vmem_metrics_hook_op (
    json_object_object_get_ex (params, "op", &jop) && json_object_is_type (jop, json_type_string)
      ? json_object_get_string (jop)
      : NULL);
  if (!check_keys (params, allowed, &error) ||
      !get_string (params, "op", TRUE, &op, &error) ||
      !get_string (params, "subop", TRUE, &subop, &error) ||
      !get_string (params, "extra", FALSE, &extra, &error) ||
      !get_string (params, "domain", TRUE, &domain, &error) ||
      !get_string (params, "uuid", FALSE, &uuid, &error) ||
      !get_string (params, "xml", FALSE, &xml, &error) ||
      !get_string (params, "xml_missing", FALSE, &xml_missing, &error))
    {
      hook_error (m, call, hop, error);
      return;
    }

  gboolean prepare = g_str_equal (op, "prepare") && g_str_equal (subop, "begin");
  /* A hook that gave up waiting (vmemd was stopped or too slow) has let
   * the start go on or refused it already: judging it now would only leave
   * a reservation behind for a start that is not there. */
  if (prepare && !vmem_call_is_connected (call))
    {
      g_warning ("hook prepare begin for %s: the hook gave up waiting before vmemd read its "
                 "call; the start was not checked and nothing is reserved", domain);
      hook_reply (m, call, hop, TRUE, NULL, NULL);
      return;
    }

  const VmemCacheEntry *e = vmem_cache_find (m->ctx.cache, uuid ? uuid : domain);
  g_autoptr(VmemDomain) x = NULL;
  /* Why the XML of this event cannot be used, when it cannot. */
  g_autofree char *unusable = NULL;
  if (xml != NULL)
    {
      x = vmem_domain_new_from_xml (xml, &error);
      if (x == NULL)
        unusable = g_strdup_printf ("vmemd cannot read its domain XML (%s)", error->message);
      else if (g_strcmp0 (x->name, domain) != 0)
        {
          /* Another domain's XML says nothing about this start. */
          unusable = g_strdup_printf ("the domain XML sent with it is that of '%s'", x->name);
          g_clear_pointer (&x, vmem_domain_free);
        }
      g_clear_error (&error);
    }
  else
    unusable = g_strdup (xml_missing ? xml_missing : "the hook sent no domain XML");

  /* Who is this? The XML the hook got is the truth for this start; the
   * cache may not have seen the domain yet (transient, just defined).  A
   * saved image predates a later assign; the domain is the same one. */
  const char *tag = x && x->workload ? x->workload : (e ? e->domain->workload : NULL);
  const VmemProfile *p = profile_for (m, tag, domain);
  const char *id = x && x->uuid ? x->uuid : (uuid ? uuid : (e ? e->domain->uuid : NULL));

  g_info ("hook %s %s%s%s for %s%s%s", op, subop, extra ? " " : "", extra ? extra : "", domain,
          p ? ", workload " : " (unmanaged)", p ? p->name : "");

  if (prepare)
    {
      g_autofree char *message = NULL;
      if (x == NULL)
        {
          /* A domain the cache knows as unmanaged is not judged anyway;
           * any other (managed, or unknown: it may carry a tag) is "not
           * checked", visibly. */
          if (p == NULL && e != NULL)
            {
              g_info ("hook prepare begin for %s (unmanaged): %s", domain, unusable);
              if (id != NULL)
                m->ctx.start_admitted (id, domain, unmanaged_boot_mib (e->domain),
                                       m->ctx.user_data);
              hook_reply (m, call, hop, TRUE, NULL, NULL);
              return;
            }
          gboolean ok = admit_unchecked (m, p, e, domain, id, unusable, &message);
          hook_reply (m, call, hop, ok, message, NULL);
          return;
        }
      if (p == NULL)
        {
          if (id != NULL)
            m->ctx.start_admitted (id, domain, unmanaged_boot_mib (x), m->ctx.user_data);
          hook_reply (m, call, hop, TRUE, NULL, NULL);
          return;
        }
      gboolean ok = admit (m, p, x, id, &message);
      if (ok)
        check_freshness (m, p, x);
      hook_reply (m, call, hop, ok, message, NULL);
      return;
    }

  if ((g_str_equal (op, "stopped") || g_str_equal (op, "release")) && id != NULL)
    m->ctx.start_ended (id, op, m->ctx.user_data);

  if ((g_str_equal (op, "migrate") || g_str_equal (op, "restore")) &&
      g_str_equal (subop, "begin") && p != NULL && x == NULL)
    g_warning ("hook %s begin for %s: %s; its XML is left as it is", op, domain, unusable);

  /* Incoming migration and restore: libvirt uses the XML the hook prints,
   * if it passes the ABI check, so only non-ABI parts (preallocation) go in
   * here; the balloon target is set live once the domain runs. */
  if ((g_str_equal (op, "migrate") || g_str_equal (op, "restore")) &&
      g_str_equal (subop, "begin") && p != NULL && x != NULL)
    {
      g_autoptr(VmemStagedPlan) sp = m->ctx.plan (p, x, m->ctx.user_data);
      g_autofree char *out = vmem_xml_migrate_variant (xml, &sp->plan, &error);
      if (error != NULL)
        g_warning ("hook %s for %s: %s; XML left as it is", op, domain, error->message);
      else if (out != NULL)
        vmem_log_decision (domain, p->name, op, "%s of %s: preallocation staged in the incoming XML",
                           op, domain);
      hook_reply (m, call, hop, TRUE, NULL, out);
      return;
    }

  hook_reply (m, call, hop, TRUE, NULL, NULL);
}

/* ---- Metrics ---------------------------------------------------------- */

/* The text vmemd writes to [daemon] metrics_textfile, in the format asked
 * for: the same snapshot, the same formatter. */
static void
method_metrics (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemMethods *m = user_data;
  g_autoptr(GError) error = NULL;
  const char *format;
  VmemMetricsFormat f = VMEM_METRICS_OPENMETRICS;

  CHECK_KEYS (call, params, "format");
  if (!get_string (params, "format", FALSE, &format, &error))
    {
      vmem_call_return_error (call, error);
      return;
    }
  gboolean json = g_strcmp0 (format, "json") == 0;
  if (format != NULL && !json && !vmem_metrics_format_from_string (format, &f))
    {
      g_set_error (&error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "format: '%s' is not one of openmetrics, prometheus, json", format);
      vmem_call_return_error (call, error);
      return;
    }
  if (m->ctx.metrics == NULL)
    {
      g_set_error (&error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE, "no metrics in this server");
      vmem_call_return_error (call, error);
      return;
    }
  g_autoptr(VmemMetricsSnapshot) snapshot = m->ctx.metrics (m->ctx.user_data);
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "format",
                          json_object_new_string (json ? "json"
                                                       : vmem_metrics_format_to_string (f)));
  if (json)
    json_object_object_add (r, "families", vmem_metrics_to_json (snapshot));
  else
    {
      g_autofree char *text = vmem_metrics_format (snapshot, f);
      json_object_object_add (r, "text", json_object_new_string (text));
    }
  vmem_call_reply (call, r);
}

/* ---- registration ----------------------------------------------------- */

VmemMethods *
vmem_methods_register (VmemServer *s, const VmemMethodsContext *context)
{
  VmemMethods *m = g_new0 (VmemMethods, 1);
  m->ctx = *context;

  /* Looked up in our own resource: a static library would drop a resource
   * that only registers itself from a constructor. */
  g_autoptr(GBytes) idl = g_resource_lookup_data (vmemd_get_resource (),
                                                  "/io/vmemd/io.vmemd.varlink",
                                                  G_RESOURCE_LOOKUP_FLAGS_NONE, NULL);
  g_assert (idl != NULL);
  g_autofree char *text = g_strndup (g_bytes_get_data (idl, NULL), g_bytes_get_size (idl));

  vmem_server_add_interface (s, VMEM_VARLINK_INTERFACE, text);
  vmem_server_add_method (s, "io.vmemd.Ping", 0, method_ping, m);
  vmem_server_add_method (s, "io.vmemd.ProfileList", 0, method_profile_list, m);
  vmem_server_add_method (s, "io.vmemd.ProfileGet", 0, method_profile_get, m);
  vmem_server_add_method (s, "io.vmemd.ProfileSet", VMEM_METHOD_ADMIN, method_profile_set, m);
  vmem_server_add_method (s, "io.vmemd.ProfileDelete", VMEM_METHOD_ADMIN, method_profile_delete, m);
  vmem_server_add_method (s, "io.vmemd.ProfileImport", VMEM_METHOD_ADMIN, method_profile_import, m);
  vmem_server_add_method (s, "io.vmemd.Assign", VMEM_METHOD_ADMIN, method_assign, m);
  vmem_server_add_method (s, "io.vmemd.Unassign", VMEM_METHOD_ADMIN, method_unassign, m);
  vmem_server_add_method (s, "io.vmemd.Status", 0, method_status, m);
  vmem_server_add_method (s, "io.vmemd.Explain", 0, method_explain, m);
  vmem_server_add_method (s, "io.vmemd.History", 0, method_history, m);
  vmem_server_add_method (s, "io.vmemd.Metrics", 0, method_metrics, m);
  vmem_server_add_method (s, "io.vmemd.Hosts", 0, method_hosts, m);
  vmem_server_add_method (s, "io.vmemd.Place", 0, method_place, m);
  vmem_server_add_method (s, "io.vmemd.HookEvent", VMEM_METHOD_ROOT, method_hook_event, m);
  return m;
}

void
vmem_methods_free (VmemMethods *m)
{
  g_free (m);
}
