/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-daemon-private.h"
#include "vmem-error.h"
#include "vmem-log.h"
#include "vmem-collector.h"
#include "vmem-demand.h"
#include "vmem-stager.h"

#include <stdio.h>
#include <string.h>

#define HEARTBEAT_S 30

static void
entry_free (VmemDomainEntry *e)
{
  vmem_virt_domain_free (e->info);
  g_free (e);
}

VmemDomainEntry *
vmem_daemon_find_domain (VmemDaemon *daemon, const char *name_or_uuid)
{
  VmemDomainEntry *e = g_hash_table_lookup (daemon->domains, name_or_uuid);
  if (e != NULL)
    return e;
  GHashTableIter it;
  g_hash_table_iter_init (&it, daemon->domains);
  while (g_hash_table_iter_next (&it, NULL, (gpointer *) &e))
    if (g_strcmp0 (e->info->name, name_or_uuid) == 0)
      return e;
  return NULL;
}

/* The workload tag wins; otherwise the first profile (by name) whose
 * pattern matches the domain name. */
const VmemProfile *
vmem_daemon_profile_for (VmemDaemon *daemon, const VmemVirtDomain *d)
{
  if (d->workload != NULL)
    return g_hash_table_lookup (daemon->profiles, d->workload);

  g_autoptr(GList) names = g_hash_table_get_keys (daemon->profiles);
  names = g_list_sort (names, (GCompareFunc) strcmp);
  for (GList *l = names; l != NULL; l = l->next)
    {
      const VmemProfile *p = g_hash_table_lookup (daemon->profiles, l->data);
      if (vmem_profile_matches (p, d->name))
        return p;
    }
  return NULL;
}

gboolean
vmem_daemon_reload_profiles (VmemDaemon *daemon, GError **error)
{
  g_autoptr(GPtrArray) list = vmem_store_profile_list (daemon->store, error);
  if (list == NULL)
    return FALSE;
  g_hash_table_remove_all (daemon->profiles);
  for (guint i = 0; i < list->len; i++)
    {
      VmemProfile *p = g_ptr_array_index (list, i);
      g_hash_table_insert (daemon->profiles, g_strdup (p->name), vmem_profile_copy (p));
    }
  return TRUE;
}

static guint64
meminfo_total_mib (void)
{
  g_autofree char *contents = NULL;
  if (!g_file_get_contents ("/proc/meminfo", &contents, NULL, NULL))
    return 0;
  const char *line = strstr (contents, "MemTotal:");
  guint64 kib = 0;
  if (line == NULL || sscanf (line, "MemTotal: %" G_GUINT64_FORMAT, &kib) != 1)
    return 0;
  return kib / 1024;
}

guint64
vmem_daemon_host_capacity (VmemDaemon *daemon)
{
  guint64 total = daemon->config->capacity_mib ? daemon->config->capacity_mib : meminfo_total_mib ();
  return total > daemon->config->reserve_mib ? total - daemon->config->reserve_mib : 0;
}

/* Memory held by running domains (their balloon size) plus the boot
 * footprint of domains between their prepare hook and their start. */
guint64
vmem_daemon_committed (VmemDaemon *daemon, const char *except_uuid)
{
  guint64 sum = 0;
  GHashTableIter it;
  VmemDomainEntry *e;

  g_hash_table_iter_init (&it, daemon->domains);
  while (g_hash_table_iter_next (&it, NULL, (gpointer *) &e))
    {
      if (except_uuid != NULL && g_strcmp0 (e->info->uuid, except_uuid) == 0)
        continue;
      if (e->starting)
        sum += MAX (e->boot_mib, e->info->active ? e->info->current_mib : 0);
      else if (e->info->active)
        sum += e->info->current_mib;
    }
  return sum;
}

static void
record_domain (VmemDaemon *daemon, const VmemVirtDomain *d)
{
  g_autoptr(GError) error = NULL;
  const VmemProfile *p = vmem_daemon_profile_for (daemon, d);
  VmemDomainRow row = {
    .uuid = d->uuid,
    .name = d->name,
    .host = daemon->config->host_name,
    .workload = p ? p->name : d->workload,
    .memory_mib = d->memory_mib,
    .vcpus = d->vcpus,
    .last_seen = g_get_real_time () / G_USEC_PER_SEC,
  };
  if (row.workload == NULL)
    return;
  if (!vmem_store_domain_upsert (daemon->store, &row, &error))
    g_warning ("cannot record domain %s: %s", d->name, error->message);
}

void
vmem_daemon_update_entry (VmemDaemon *daemon, VmemVirtDomain *info /* transfer full */)
{
  VmemDomainEntry *e = g_hash_table_lookup (daemon->domains, info->uuid);
  if (e == NULL)
    {
      e = g_new0 (VmemDomainEntry, 1);
      g_hash_table_insert (daemon->domains, g_strdup (info->uuid), e);
    }
  else
    vmem_virt_domain_free (e->info);
  if (info->active && e->active_since == 0)
    e->active_since = g_get_monotonic_time ();
  else if (!info->active)
    e->active_since = 0;
  e->info = info;
  if (info->active)
    e->starting = FALSE;
  else
    e->period_set = FALSE;
  record_domain (daemon, info);
}

static void
refresh_all_done (gpointer result, const GError *error, gpointer data)
{
  VmemDaemon *daemon = data;
  g_autoptr(GPtrArray) list = result;

  if (error != NULL)
    {
      g_warning ("cannot read domains: %s", error->message);
      return;
    }
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < list->len; i++)
    {
      VmemVirtDomain *d = g_ptr_array_index (list, i);
      g_hash_table_add (seen, d->uuid);
    }
  GHashTableIter it;
  const char *uuid;
  g_hash_table_iter_init (&it, daemon->domains);
  while (g_hash_table_iter_next (&it, (gpointer *) &uuid, NULL))
    if (!g_hash_table_contains (seen, uuid))
      g_hash_table_iter_remove (&it);

  guint managed = 0;
  for (guint i = 0; i < list->len; i++)
    {
      VmemVirtDomain *d = g_ptr_array_steal_index_fast (list, i--);
      managed += vmem_daemon_profile_for (daemon, d) != NULL;
      vmem_daemon_update_entry (daemon, d);
    }
  g_message ("%u domains known, %u managed", g_hash_table_size (daemon->domains), managed);
  vmem_stager_stage_workload (daemon, NULL, "daemon start");
}

static gpointer
read_all_work (virConnectPtr conn, gpointer data, GError **error)
{
  return vmem_virt_read_all (conn, error);
}

static gpointer
read_one_work (virConnectPtr conn, gpointer data, GError **error)
{
  g_autoptr(virDomain) dom = vmem_virt_lookup (conn, data, error);
  if (dom == NULL)
    return NULL;
  return vmem_virt_read_domain (dom, error);
}

typedef struct {
  VmemDaemon *daemon;
  char       *uuid;
  char       *why;     /* stage afterwards, for this reason; NULL = don't */
  gboolean    started; /* set the live balloon target afterwards */
} RefreshData;

static void
refresh_data_free (RefreshData *r)
{
  g_free (r->uuid);
  g_free (r->why);
  g_free (r);
}

static void
refresh_one_done (gpointer result, const GError *error, gpointer data)
{
  RefreshData *r = data;

  if (error != NULL)
    {
      if (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND))
        g_hash_table_remove (r->daemon->domains, r->uuid);
      else
        g_debug ("cannot refresh domain %s: %s", r->uuid, error->message);
      return;
    }
  vmem_daemon_update_entry (r->daemon, result);
  VmemDomainEntry *e = g_hash_table_lookup (r->daemon->domains, r->uuid);
  if (e == NULL)
    return;
  if (r->started)
    vmem_stager_apply_live (r->daemon, r->uuid);
  if (r->why != NULL || (e->stage_pending && !e->starting))
    {
      e->stage_pending = FALSE;
      vmem_stager_stage (r->daemon, r->uuid, r->why ? r->why : "start ended");
    }
}

static gpointer
refresh_one_work (virConnectPtr conn, gpointer data, GError **error)
{
  RefreshData *r = data;
  return read_one_work (conn, r->uuid, error);
}

static void
refresh_domain (VmemDaemon *daemon, const char *uuid, const char *why, gboolean started)
{
  RefreshData *r = g_new0 (RefreshData, 1);
  r->daemon = daemon;
  r->uuid = g_strdup (uuid);
  r->why = g_strdup (why);
  r->started = started;
  vmem_virt_submit (daemon->virt, "refresh domain", refresh_one_work, refresh_one_done, r,
                    (GDestroyNotify) refresh_data_free, (GDestroyNotify) vmem_virt_domain_free);
}

void
vmem_daemon_refresh_domain (VmemDaemon *daemon, const char *uuid)
{
  refresh_domain (daemon, uuid, NULL, FALSE);
}

void
vmem_daemon_profiles_changed (VmemDaemon *daemon, const char *workload)
{
  g_autoptr(GError) error = NULL;
  if (!vmem_daemon_reload_profiles (daemon, &error))
    {
      g_warning ("cannot reload profiles: %s", error->message);
      return;
    }
  vmem_stager_stage_workload (daemon, workload, "profile changed");
}

static const char *
event_name (int event)
{
  switch (event)
    {
    case -1:
      return "metadata-changed";
    case VIR_DOMAIN_EVENT_DEFINED:
      return "defined";
    case VIR_DOMAIN_EVENT_UNDEFINED:
      return "undefined";
    case VIR_DOMAIN_EVENT_STARTED:
      return "started";
    case VIR_DOMAIN_EVENT_SUSPENDED:
      return "suspended";
    case VIR_DOMAIN_EVENT_RESUMED:
      return "resumed";
    case VIR_DOMAIN_EVENT_STOPPED:
      return "stopped";
    case VIR_DOMAIN_EVENT_SHUTDOWN:
      return "shutdown";
    case VIR_DOMAIN_EVENT_PMSUSPENDED:
      return "pmsuspended";
    case VIR_DOMAIN_EVENT_CRASHED:
      return "crashed";
    default:
      return "other";
    }
}

static void
on_domain_event (const char *uuid, const char *name, int event, int detail, gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  VmemDomainEntry *e = g_hash_table_lookup (daemon->domains, uuid);

  g_debug ("event %s on domain %s (%s)", event_name (event), name, uuid);
  if (e != NULL && (event == VIR_DOMAIN_EVENT_STARTED || event == VIR_DOMAIN_EVENT_STOPPED))
    e->starting = FALSE;

  if (event == VIR_DOMAIN_EVENT_STARTED && e != NULL && vmem_daemon_profile_for (daemon, e->info))
    {
      g_autoptr(GError) error = NULL;
      const VmemProfile *p = vmem_daemon_profile_for (daemon, e->info);
      if (vmem_store_run_open (daemon->store, uuid, daemon->config->host_name, p->name,
                               g_get_real_time () / G_USEC_PER_SEC, e->staged_mib, &error) < 0)
        g_warning ("cannot record the start of %s: %s", name, error->message);
    }
  if (event == VIR_DOMAIN_EVENT_STOPPED)
    {
      g_autoptr(GError) error = NULL;
      if (!vmem_store_run_close (daemon->store, uuid, g_get_real_time () / G_USEC_PER_SEC,
                                 "stopped", &error) &&
          !g_error_matches (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND))
        g_warning ("cannot record the stop of %s: %s", name, error->message);
    }
  /* Whatever happened, read the domain again; UNDEFINED of a stopped domain
   * makes that read fail with NOT_FOUND, which drops it from the cache.  A
   * new or changed definition, a stop and a retag each get staged. */
  const char *why = NULL;
  if (event == VIR_DOMAIN_EVENT_DEFINED || event == VIR_DOMAIN_EVENT_STOPPED || event == -1)
    why = event_name (event);
  refresh_domain (daemon, uuid, why, event == VIR_DOMAIN_EVENT_STARTED);
}

static void
on_connected (gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  vmem_virt_submit (daemon->virt, "read all domains", read_all_work, refresh_all_done, daemon,
                    NULL, (GDestroyNotify) g_ptr_array_unref);
}

static void
on_disconnected (gpointer user_data)
{
  /* The cache stays: running domains keep running while libvirtd restarts,
   * and admission control keeps counting them. */
}

static gboolean
heartbeat (gpointer user_data)
{
  VmemDaemon *daemon = user_data;
  g_autoptr(GError) error = NULL;
  VmemHostRow row = {
    .name = daemon->config->host_name,
    .capacity_mib = vmem_daemon_host_capacity (daemon) + daemon->config->reserve_mib,
    .reserved_mib = daemon->config->reserve_mib,
    .overcommit = 1.0,
    .committed_mib = vmem_daemon_committed (daemon, NULL),
    .heartbeat = g_get_real_time () / G_USEC_PER_SEC,
  };
  if (!vmem_store_host_heartbeat (daemon->store, &row, &error))
    g_warning ("cannot record host heartbeat: %s", error->message);
  return G_SOURCE_CONTINUE;
}

VmemDaemon *
vmem_daemon_new (VmemConfig *config, GError **error)
{
  g_autoptr(VmemConfig) owned = config;
  g_autoptr(VmemDaemon) daemon = g_new0 (VmemDaemon, 1);

  daemon->config = g_steal_pointer (&owned);
  daemon->domains = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                           (GDestroyNotify) entry_free);
  daemon->profiles = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                            (GDestroyNotify) vmem_profile_free);
  vmem_demand_init (daemon);
  daemon->store = vmem_store_open (daemon->config, error);
  if (daemon->store == NULL)
    return NULL;
  if (!vmem_daemon_reload_profiles (daemon, error))
    return NULL;
  vmem_demand_load (daemon);
  return g_steal_pointer (&daemon);
}

gboolean
vmem_daemon_start (VmemDaemon *daemon, int listen_fd, GError **error)
{
  const VmemConfig *c = daemon->config;
  VmemServerLimits limits = {
    .max_message = 1024 * 1024,
    .max_clients = c->max_clients,
    .request_timeout_s = c->request_timeout,
  };

  daemon->started_at = g_get_real_time () / G_USEC_PER_SEC;
  daemon->server = vmem_server_new (&limits);
  vmem_server_set_admin_group (daemon->server, c->admin_group);
  vmem_daemon_register_methods (daemon);
  if (listen_fd >= 0)
    {
      if (!vmem_server_adopt_fd (daemon->server, listen_fd, error))
        return FALSE;
      g_message ("listening on the socket passed by systemd");
    }
  else
    {
      if (!vmem_server_listen (daemon->server, c->socket_path, 0660, c->admin_group, error))
        return FALSE;
      g_message ("listening on %s", c->socket_path);
    }
  g_message ("store: %s %s (schema %d), %u profiles", vmem_store_backend_name (daemon->store),
             c->database, vmem_store_schema_version (daemon->store),
             g_hash_table_size (daemon->profiles));

  const VmemVirtCallbacks callbacks = {
    .connected = on_connected,
    .disconnected = on_disconnected,
    .domain_event = on_domain_event,
  };
  daemon->virt = vmem_virt_new (c->uri, &callbacks, daemon);
  vmem_virt_start (daemon->virt);

  daemon->collector = vmem_collector_new (daemon);
  heartbeat (daemon);
  daemon->heartbeat_id = g_timeout_add_seconds (HEARTBEAT_S, heartbeat, daemon);
  return TRUE;
}

gboolean
vmem_daemon_reload (VmemDaemon *daemon, VmemConfig *config, GError **error)
{
  g_autoptr(VmemConfig) next = config;
  const VmemConfig *cur = daemon->config;

  if (g_strcmp0 (cur->socket_path, next->socket_path) != 0 ||
      g_strcmp0 (cur->database, next->database) != 0 || cur->backend != next->backend ||
      g_strcmp0 (cur->postgres, next->postgres) != 0 || g_strcmp0 (cur->uri, next->uri) != 0 ||
      g_strcmp0 (cur->host_name, next->host_name) != 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_CONFIG,
                   "socket, store, libvirt URI or host name changed: restart vmemd to apply");
      return FALSE;
    }
  gboolean estimator_changed = cur->half_life_hours != next->half_life_hours ||
                               cur->quantile != next->quantile ||
                               cur->margin_pct != next->margin_pct ||
                               cur->min_peers != next->min_peers ||
                               cur->min_history_hours != next->min_history_hours;
  vmem_log_set_level (next->log_level);
  if (daemon->collector != NULL)
    vmem_collector_set_interval (daemon->collector, next->stats_interval);
  vmem_config_free (daemon->config);
  daemon->config = g_steal_pointer (&next);
  /* An aggregate's decay is fixed when it is built: rebuild them, and
   * re-stage with the new settings. */
  if (estimator_changed)
    {
      vmem_demand_load (daemon);
      vmem_stager_stage_workload (daemon, NULL, "estimator settings reloaded");
    }
  return TRUE;
}

void
vmem_daemon_free (VmemDaemon *daemon)
{
  if (daemon == NULL)
    return;
  g_clear_handle_id (&daemon->heartbeat_id, g_source_remove);
  g_clear_pointer (&daemon->server, vmem_server_free);
  /* The worker's last results still reach the collector: free it after. */
  g_clear_pointer (&daemon->virt, vmem_virt_free);
  g_clear_pointer (&daemon->collector, vmem_collector_free);
  g_clear_pointer (&daemon->store, vmem_store_free);
  g_clear_pointer (&daemon->domains, g_hash_table_unref);
  g_clear_pointer (&daemon->profiles, g_hash_table_unref);
  vmem_demand_clear (daemon);
  vmem_config_free (daemon->config);
  g_free (daemon);
}
