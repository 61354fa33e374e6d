/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The io.vmemd varlink methods. */
#include "vmem-cleanup.h"
#include "vmem-daemon-private.h"
#include "vmem-error.h"
#include "vmem-log.h"
#include "vmem-stager.h"
#include "vmem-units.h"
#include "vmem-varlink.h"
#include "vmem-xml.h"
#include "vmemd-resources.h"

#include <gio/gio.h>
#include <math.h>
#include <string.h>

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
  VmemDaemon *daemon = user_data;
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "version", json_object_new_string (VMEM_VERSION));
  json_object_object_add (r, "host", json_object_new_string (daemon->config->host_name));
  vmem_call_reply (call, r);
}

static void
method_profile_list (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  g_autoptr(GError) error = NULL;

  CHECK_KEYS (call, params, "");
  g_autoptr(GPtrArray) list = vmem_store_profile_list (daemon->store, &error);
  if (list == NULL)
    {
      vmem_call_return_error (call, error);
      return;
    }
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
  VmemDaemon *daemon = user_data;
  g_autoptr(GError) error = NULL;
  const char *name;

  CHECK_KEYS (call, params, "name");
  if (!get_string (params, "name", TRUE, &name, &error))
    {
      vmem_call_return_error (call, error);
      return;
    }
  g_autoptr(VmemProfile) p = vmem_store_profile_get (daemon->store, name, &error);
  if (p == NULL)
    {
      vmem_call_return_error (call, error);
      return;
    }
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "profile", vmem_profile_to_json (p));
  vmem_call_reply (call, r);
}

static void
method_profile_set (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemDaemon *daemon = user_data;
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

  g_autoptr(VmemProfile) base = NULL;
  if (!create)
    {
      json_object *jname = NULL;
      if (!json_object_object_get_ex (jprofile, "name", &jname) ||
          !json_object_is_type (jname, json_type_string))
        {
          g_set_error (&error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "name: missing");
          vmem_call_return_error (call, error);
          return;
        }
      base = vmem_store_profile_get (daemon->store, json_object_get_string (jname), &error);
      if (base == NULL)
        {
          vmem_call_return_error (call, error);
          return;
        }
    }
  g_autoptr(VmemProfile) p = vmem_profile_from_json (jprofile, base, &error);
  if (p == NULL ||
      !vmem_store_profile_put (daemon->store, p, create ? VMEM_STORE_PUT_CREATE : VMEM_STORE_PUT_UPDATE,
                               &error))
    {
      vmem_call_return_error (call, error);
      return;
    }
  g_autoptr(VmemProfile) stored = vmem_store_profile_get (daemon->store, p->name, &error);
  if (stored == NULL)
    {
      vmem_call_return_error (call, error);
      return;
    }
  g_autofree char *demand = vmem_size_format (stored->demand_mib);
  vmem_log_decision (NULL, stored->name, create ? "profile-added" : "profile-changed",
                     "profile %s %s (demand %s, mode %s, prealloc %s)", stored->name,
                     create ? "added" : "changed", stored->demand_mib ? demand : "none",
                     vmem_mode_to_string (stored->mode), stored->prealloc ? "on" : "off");
  vmem_daemon_profiles_changed (daemon, stored->name);
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "profile", vmem_profile_to_json (stored));
  vmem_call_reply (call, r);
}

static guint
count_tagged (VmemDaemon *daemon, const char *workload)
{
  guint n = 0;
  GHashTableIter it;
  VmemDomainEntry *e;
  g_hash_table_iter_init (&it, daemon->domains);
  while (g_hash_table_iter_next (&it, NULL, (gpointer *) &e))
    n += g_strcmp0 (e->info->workload, workload) == 0;
  return n;
}

static void
method_profile_delete (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemDaemon *daemon = user_data;
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
  guint tagged = count_tagged (daemon, name);
  if (tagged > 0 && !force)
    {
      g_set_error (&error, VMEM_ERROR, VMEM_ERROR_BUSY,
                   "profile '%s' is used by %u domain%s; unassign them or use --force", name,
                   tagged, tagged == 1 ? "" : "s");
      vmem_call_return_error (call, error);
      return;
    }
  if (!vmem_store_profile_delete (daemon->store, name, &error))
    {
      vmem_call_return_error (call, error);
      return;
    }
  vmem_log_decision (NULL, name, "profile-removed", "profile %s removed", name);
  vmem_daemon_profiles_changed (daemon, name);
  vmem_call_reply (call, NULL);
}

static void
method_profile_import (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemDaemon *daemon = user_data;
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
      g_hash_table_iter_init (&it, daemon->profiles);
      while (g_hash_table_iter_next (&it, (gpointer *) &existing, NULL))
        if (!g_hash_table_contains (names, existing) && count_tagged (daemon, existing) > 0)
          {
            g_set_error (&error, VMEM_ERROR, VMEM_ERROR_BUSY,
                         "profile '%s' is used by domains and is not in the import", existing);
            vmem_call_return_error (call, error);
            return;
          }
    }

  guint created = 0, updated = 0, deleted = 0;
  if (!vmem_store_profile_import (daemon->store, list, replace, &created, &updated, &deleted,
                                  &error))
    {
      vmem_call_return_error (call, error);
      return;
    }
  vmem_log_decision (NULL, NULL, "profiles-imported",
                     "profiles imported: %u created, %u updated, %u deleted", created, updated,
                     deleted);
  vmem_daemon_profiles_changed (daemon, NULL);
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "created", json_object_new_int (created));
  json_object_object_add (r, "updated", json_object_new_int (updated));
  json_object_object_add (r, "deleted", json_object_new_int (deleted));
  vmem_call_reply (call, r);
}

/* ---- Assign / Unassign (libvirt, on the worker) ------------------------ */

typedef struct {
  VmemDaemon *daemon;
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
    xml = g_markup_printf_escaped ("<workload name=\"%s\"/>", j->workload);

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
  g_autoptr(VmemVirtDomain) d = result;

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
  vmem_daemon_update_entry (j->daemon, g_steal_pointer (&d));
}

static void
method_assign (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemDaemon *daemon = user_data;
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
  if (!g_hash_table_contains (daemon->profiles, workload))
    {
      g_set_error (&error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND,
                   "no profile named '%s' (create it first: vmemctl profile add %s --demand SIZE)",
                   workload, workload);
      vmem_call_return_error (call, error);
      return;
    }
  TagJob *j = g_new0 (TagJob, 1);
  j->daemon = daemon;
  j->call = vmem_call_ref (call);
  j->domain = g_strdup (domain);
  j->workload = g_strdup (workload);
  vmem_virt_submit (daemon->virt, "assign", tag_work, tag_done, j, (GDestroyNotify) tag_job_free,
                    (GDestroyNotify) vmem_virt_domain_free);
}

static void
method_unassign (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemDaemon *daemon = user_data;
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
  j->daemon = daemon;
  j->call = vmem_call_ref (call);
  j->domain = g_strdup (domain);
  j->restore = restore;
  vmem_virt_submit (daemon->virt, "unassign", tag_work, tag_done, j, (GDestroyNotify) tag_job_free,
                    (GDestroyNotify) vmem_virt_domain_free);
}

/* ---- Status ----------------------------------------------------------- */

static const char *
state_name (int state)
{
  switch (state)
    {
    case VIR_DOMAIN_RUNNING:
      return "running";
    case VIR_DOMAIN_BLOCKED:
      return "blocked";
    case VIR_DOMAIN_PAUSED:
      return "paused";
    case VIR_DOMAIN_SHUTDOWN:
      return "shutting-down";
    case VIR_DOMAIN_SHUTOFF:
      return "shut-off";
    case VIR_DOMAIN_CRASHED:
      return "crashed";
    case VIR_DOMAIN_PMSUSPENDED:
      return "pm-suspended";
    default:
      return "unknown";
    }
}

static gint
compare_entries (gconstpointer a, gconstpointer b)
{
  const VmemDomainEntry *ea = *(VmemDomainEntry *const *) a;
  const VmemDomainEntry *eb = *(VmemDomainEntry *const *) b;
  return g_strcmp0 (ea->info->name, eb->info->name);
}

static void
method_status (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  const VmemConfig *c = daemon->config;

  CHECK_KEYS (call, params, "");
  json_object *s = json_object_new_object ();
  json_object_object_add (s, "version", json_object_new_string (VMEM_VERSION));
  json_object_object_add (s, "host", json_object_new_string (c->host_name));
  json_object_object_add (s, "uri", json_object_new_string (c->uri));
  json_object_object_add (s, "libvirt_connected",
                          json_object_new_boolean (vmem_virt_is_connected (daemon->virt)));
  json_object_object_add (s, "store", json_object_new_string (vmem_store_backend_name (daemon->store)));
  json_object_object_add (s, "database", json_object_new_string (c->backend == VMEM_STORE_SQLITE ? c->database : "postgres"));
  json_object_object_add (s, "schema_version", json_object_new_int (vmem_store_schema_version (daemon->store)));
  json_object_object_add (s, "started", json_object_new_int64 (daemon->started_at));
  json_object_object_add (s, "admission", json_object_new_string (vmem_admission_to_string (c->admission)));
  json_object_object_add (s, "capacity_mib", json_object_new_int64 ((gint64) vmem_daemon_host_capacity (daemon)));
  json_object_object_add (s, "reserve_mib", json_object_new_int64 ((gint64) c->reserve_mib));
  json_object_object_add (s, "committed_mib", json_object_new_int64 ((gint64) vmem_daemon_committed (daemon, NULL)));
  json_object_object_add (s, "profiles", json_object_new_int (g_hash_table_size (daemon->profiles)));

  g_autoptr(GPtrArray) entries = g_ptr_array_new ();
  GHashTableIter hit;
  gpointer value;
  g_hash_table_iter_init (&hit, daemon->domains);
  while (g_hash_table_iter_next (&hit, NULL, &value))
    g_ptr_array_add (entries, value);
  g_ptr_array_sort (entries, compare_entries);
  json_object *arr = json_object_new_array ();
  for (guint i = 0; i < entries->len; i++)
    {
      VmemDomainEntry *e = g_ptr_array_index (entries, i);
      const VmemProfile *p = vmem_daemon_profile_for (daemon, e->info);
      json_object *d = json_object_new_object ();
      json_object_object_add (d, "name", json_object_new_string (e->info->name));
      json_object_object_add (d, "uuid", json_object_new_string (e->info->uuid));
      json_object_object_add (d, "state", json_object_new_string (e->starting ? "starting" : state_name (e->info->state)));
      json_object_object_add (d, "managed", json_object_new_boolean (p != NULL));
      if (p != NULL)
        json_object_object_add (d, "workload", json_object_new_string (p->name));
      else if (e->info->workload != NULL)
        json_object_object_add (d, "workload", json_object_new_string (e->info->workload));
      json_object_object_add (d, "memory_mib", json_object_new_int64 ((gint64) e->info->memory_mib));
      json_object_object_add (d, "current_mib", json_object_new_int64 ((gint64) e->info->current_mib));
      json_object_object_add (d, "vcpus", json_object_new_int ((int) e->info->vcpus));
      json_object_array_add (arr, d);
    }
  json_object_object_add (s, "domains", arr);

  json_object *r = json_object_new_object ();
  json_object_object_add (r, "status", s);
  vmem_call_reply (call, r);
}

/* ---- Explain ---------------------------------------------------------- */

static void
method_explain (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemDaemon *daemon = user_data;
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

  json_object *x = json_object_new_object ();
  if (domain != NULL)
    {
      VmemDomainEntry *e = vmem_daemon_find_domain (daemon, domain);
      if (e == NULL)
        {
          json_object_put (x);
          g_set_error (&error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no domain named '%s'", domain);
          vmem_call_return_error (call, error);
          return;
        }
      const VmemProfile *p = vmem_daemon_profile_for (daemon, e->info);
      json_object_object_add (x, "domain", json_object_new_string (e->info->name));
      json_object_object_add (x, "uuid", json_object_new_string (e->info->uuid));
      json_object_object_add (x, "managed", json_object_new_boolean (p != NULL));
      json_object_object_add (x, "memory_mib", json_object_new_int64 ((gint64) e->info->memory_mib));
      json_object_object_add (x, "current_mib", json_object_new_int64 ((gint64) e->info->current_mib));
      json_object_object_add (x, "vcpus", json_object_new_int ((int) e->info->vcpus));
      if (p == NULL)
        {
          json_object_object_add (x, "why",
                                  json_object_new_string (e->info->workload
                                                          ? "tagged with a workload that has no profile"
                                                          : "no workload tag and no profile pattern matches its name: vmemd leaves it alone"));
          if (e->info->workload != NULL)
            json_object_object_add (x, "workload", json_object_new_string (e->info->workload));
        }
      else
        {
          json_object_object_add (x, "workload", json_object_new_string (p->name));
          json_object_object_add (x, "matched_by",
                                  json_object_new_string (e->info->workload ? "tag" : "name pattern"));
          json_object_object_add (x, "profile", vmem_profile_to_json (p));
          g_autoptr(VmemStagedPlan) sp = vmem_stager_plan (daemon, e->info);
          json_object_object_add (x, "plan", json_object_get (sp->reasons));
          g_autoptr(GError) local = NULL;
          g_autoptr(VmemPlanRow) row = vmem_store_plan_latest (daemon->store, e->info->uuid, &local);
          if (row != NULL)
            {
              json_object *st = json_object_new_object ();
              json_object_object_add (st, "time", json_object_new_int64 (row->t));
              json_object_object_add (st, "demand_mib", json_object_new_int64 ((gint64) row->demand_mib));
              json_object_object_add (st, "source", json_object_new_string (row->source ? row->source : ""));
              json_object *reasons = row->reasons_json ? json_tokener_parse (row->reasons_json) : NULL;
              if (reasons != NULL)
                json_object_object_add (st, "reasons", reasons);
              json_object_object_add (x, "staged", st);
            }
        }
    }
  else
    {
      const VmemProfile *p = g_hash_table_lookup (daemon->profiles, workload);
      if (p == NULL)
        {
          json_object_put (x);
          g_set_error (&error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no profile named '%s'", workload);
          vmem_call_return_error (call, error);
          return;
        }
      json_object_object_add (x, "workload", json_object_new_string (p->name));
      json_object_object_add (x, "profile", vmem_profile_to_json (p));
      VmemVirtDomain probe = { .name = (char *) "", .workload = (char *) p->name };
      g_autoptr(VmemStagedPlan) sp = vmem_stager_plan (daemon, &probe);
      json_object_object_add (x, "plan", json_object_get (sp->reasons));
      json_object *doms = json_object_new_array ();
      GHashTableIter it;
      VmemDomainEntry *e;
      g_hash_table_iter_init (&it, daemon->domains);
      while (g_hash_table_iter_next (&it, NULL, (gpointer *) &e))
        if (vmem_daemon_profile_for (daemon, e->info) == p)
          json_object_array_add (doms, json_object_new_string (e->info->name));
      json_object_object_add (x, "domains", doms);
    }

  json_object *r = json_object_new_object ();
  json_object_object_add (r, "explanation", x);
  vmem_call_reply (call, r);
}

/* ---- HookEvent -------------------------------------------------------- */

static void
hook_reply (VmemCall *call, gboolean allow, const char *message, const char *xml)
{
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "allow", json_object_new_boolean (allow));
  if (message != NULL)
    json_object_object_add (r, "message", json_object_new_string (message));
  if (xml != NULL)
    json_object_object_add (r, "xml", json_object_new_string (xml));
  vmem_call_reply (call, r);
}

/* Admission control for a managed domain that is about to start.  Answers
 * from the daemon's cache only: the domain is locked by libvirt while its
 * hook runs, so no libvirt call can be made here. */
static gboolean
admit (VmemDaemon *daemon, VmemDomainEntry *e, const VmemProfile *p, const VmemDomainInfo *x,
       char **message)
{
  const VmemConfig *c = daemon->config;
  const char *name = x->name;
  guint64 memory = x->memory_mib;
  guint64 current = x->current_mib ? x->current_mib : memory;
  gboolean prealloc_whole = x->prealloc && p->mode == VMEM_MODE_BALLOON;
  guint64 needed = prealloc_whole ? memory : current;
  guint64 capacity = vmem_daemon_host_capacity (daemon);
  guint64 committed = vmem_daemon_committed (daemon, x->uuid);
  guint64 free_mib = capacity > committed ? capacity - committed : 0;

  if (e != NULL)
    {
      e->starting = TRUE;
      e->starting_since = g_get_monotonic_time ();
      e->boot_mib = needed;
    }

  g_autofree char *s_need = vmem_size_format (needed);
  g_autofree char *s_free = vmem_size_format (free_mib);
  g_autofree char *s_cap = vmem_size_format (capacity);
  g_autofree char *s_com = vmem_size_format (committed);
  if (needed <= free_mib || c->admission == VMEM_ADMISSION_OFF)
    {
      vmem_log_decision (name, p->name, "admitted",
                         "start of %s admitted: needs %s%s, %s free of %s (%s committed)", name,
                         s_need, prealloc_whole ? " (whole <memory> preallocated)" : "", s_free,
                         s_cap, s_com);
      return TRUE;
    }
  *message = g_strdup_printf ("vmemd: not enough host memory to start %s: needs %s%s, %s free "
                              "of %s usable (%s committed to running domains)",
                              name, s_need, prealloc_whole ? " (whole <memory> preallocated)" : "",
                              s_free, s_cap, s_com);
  if (c->admission == VMEM_ADMISSION_WARN)
    {
      vmem_log_decision (name, p->name, "admitted-over", "%s; admitted anyway (admission=warn)",
                         *message);
      g_clear_pointer (message, g_free);
      return TRUE;
    }
  vmem_log_decision (name, p->name, "refused", "%s", *message);
  if (e != NULL)
    e->starting = FALSE;
  return FALSE;
}

/* The definition being started carries the plan staged earlier; if the
 * estimate has moved since, the balloon target is corrected once the
 * domain runs (the STARTED event), and the log says why. */
static void
check_freshness (VmemDaemon *daemon, const VmemProfile *p, const VmemDomainInfo *x)
{
  VmemVirtDomain d = {
    .uuid = x->uuid,
    .name = x->name,
    .memory_mib = x->memory_mib,
    .vcpus = x->vcpus,
    .workload = (char *) p->name,
  };
  g_autoptr(VmemStagedPlan) sp = vmem_stager_plan (daemon, &d);
  if (sp == NULL)
    return;
  if (!x->has_plan)
    {
      vmem_log_decision (x->name, p->name, "not-staged",
                         "%s starts without a staged plan; its balloon target is set once it runs",
                         x->name);
      return;
    }
  double moved = fabs ((double) sp->plan.demand_mib - (double) x->plan_demand_mib);
  if (moved > daemon->config->hysteresis_mib &&
      moved > (double) x->plan_demand_mib * daemon->config->hysteresis_pct / 100.0)
    {
      g_autofree char *staged = vmem_size_format (x->plan_demand_mib);
      g_autofree char *now = vmem_size_format (sp->plan.demand_mib);
      vmem_log_decision (x->name, p->name, "plan-stale",
                         "%s starts with a stale plan (staged %s, now %s from %s); the balloon "
                         "target is corrected once it runs", x->name, staged, now, sp->source);
    }
}

static void
method_hook_event (VmemCall *call, json_object *params, gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  g_autoptr(GError) error = NULL;
  const char *op, *subop, *extra, *domain, *uuid, *xml;

  CHECK_KEYS (call, params, "op", "subop", "extra", "domain", "uuid", "xml");
  if (!get_string (params, "op", TRUE, &op, &error) ||
      !get_string (params, "subop", TRUE, &subop, &error) ||
      !get_string (params, "extra", FALSE, &extra, &error) ||
      !get_string (params, "domain", TRUE, &domain, &error) ||
      !get_string (params, "uuid", FALSE, &uuid, &error) ||
      !get_string (params, "xml", FALSE, &xml, &error))
    {
      vmem_call_return_error (call, error);
      return;
    }

  VmemDomainEntry *e = vmem_daemon_find_domain (daemon, uuid ? uuid : domain);
  g_autoptr(VmemDomainInfo) x = NULL;
  if (xml != NULL)
    {
      x = vmem_xml_parse_domain (xml, &error);
      if (x == NULL)
        {
          /* Never block a start on what we cannot read: log and let it go. */
          g_warning ("hook %s %s for %s: unreadable domain XML: %s", op, subop, domain,
                     error->message);
          hook_reply (call, TRUE, NULL, NULL);
          return;
        }
    }

  /* Who is this? The XML the hook got is the truth for this start; the
   * cache may not have seen the domain yet (transient, just defined). */
  VmemVirtDomain probe = { 0 };
  probe.name = (char *) domain;
  /* A saved image predates a later assign; the domain is the same one. */
  probe.workload = x && x->workload ? x->workload : (e ? e->info->workload : NULL);
  const VmemProfile *p = vmem_daemon_profile_for (daemon, &probe);

  g_info ("hook %s %s%s%s for %s%s%s", op, subop, extra ? " " : "", extra ? extra : "", domain,
          p ? ", workload " : " (unmanaged)", p ? p->name : "");

  if (g_str_equal (op, "prepare") && g_str_equal (subop, "begin"))
    {
      g_autofree char *message = NULL;
      if (p == NULL || x == NULL)
        {
          hook_reply (call, TRUE, NULL, NULL);
          return;
        }
      gboolean ok = admit (daemon, e, p, x, &message);
      if (ok)
        check_freshness (daemon, p, x);
      hook_reply (call, ok, message, NULL);
      return;
    }

  if ((g_str_equal (op, "stopped") || g_str_equal (op, "release")) && e != NULL)
    e->starting = FALSE;

  /* Incoming migration and restore: libvirt uses the XML the hook prints,
   * if it passes the ABI check, so only non-ABI parts (preallocation) go in
   * here; the balloon target is set live once the domain runs. */
  if ((g_str_equal (op, "migrate") || g_str_equal (op, "restore")) &&
      g_str_equal (subop, "begin") && p != NULL && x != NULL)
    {
      VmemVirtDomain d = {
        .uuid = x->uuid,
        .name = x->name,
        .memory_mib = x->memory_mib,
        .vcpus = x->vcpus,
        .workload = probe.workload,
      };
      g_autoptr(VmemStagedPlan) sp = vmem_stager_plan (daemon, &d);
      g_autofree char *out = sp ? vmem_xml_migrate_variant (xml, &sp->plan, &error) : NULL;
      if (error != NULL)
        g_warning ("hook %s for %s: %s; XML left as it is", op, domain, error->message);
      else if (out != NULL)
        vmem_log_decision (domain, p->name, op, "%s of %s: preallocation staged in the incoming XML",
                           op, domain);
      hook_reply (call, TRUE, NULL, out);
      return;
    }

  hook_reply (call, TRUE, NULL, NULL);
}

/* ---- registration ----------------------------------------------------- */

void
vmem_daemon_register_methods (VmemDaemon *daemon)
{
  VmemServer *s = daemon->server;
  /* Looked up in our own resource: a static library would drop a resource
   * that only registers itself from a constructor. */
  g_autoptr(GBytes) idl = g_resource_lookup_data (vmemd_get_resource (),
                                                  "/io/vmemd/io.vmemd.varlink",
                                                  G_RESOURCE_LOOKUP_FLAGS_NONE, NULL);
  g_assert (idl != NULL);
  g_autofree char *text = g_strndup (g_bytes_get_data (idl, NULL), g_bytes_get_size (idl));

  vmem_server_add_interface (s, VMEM_VARLINK_INTERFACE, text);
  vmem_server_add_method (s, "io.vmemd.Ping", 0, method_ping, daemon);
  vmem_server_add_method (s, "io.vmemd.ProfileList", VMEM_METHOD_ADMIN, method_profile_list, daemon);
  vmem_server_add_method (s, "io.vmemd.ProfileGet", VMEM_METHOD_ADMIN, method_profile_get, daemon);
  vmem_server_add_method (s, "io.vmemd.ProfileSet", VMEM_METHOD_ADMIN, method_profile_set, daemon);
  vmem_server_add_method (s, "io.vmemd.ProfileDelete", VMEM_METHOD_ADMIN, method_profile_delete, daemon);
  vmem_server_add_method (s, "io.vmemd.ProfileImport", VMEM_METHOD_ADMIN, method_profile_import, daemon);
  vmem_server_add_method (s, "io.vmemd.Assign", VMEM_METHOD_ADMIN, method_assign, daemon);
  vmem_server_add_method (s, "io.vmemd.Unassign", VMEM_METHOD_ADMIN, method_unassign, daemon);
  vmem_server_add_method (s, "io.vmemd.Status", VMEM_METHOD_ADMIN, method_status, daemon);
  vmem_server_add_method (s, "io.vmemd.Explain", VMEM_METHOD_ADMIN, method_explain, daemon);
  vmem_server_add_method (s, "io.vmemd.HookEvent", VMEM_METHOD_ROOT, method_hook_event, daemon);
}
