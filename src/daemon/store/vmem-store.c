/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The backend-independent half of the store: argument checks, so that bad
 * input is refused the same way by every backend before anything is
 * written, then dispatch through the backend's operations. */
#include "config.h"

#include "vmem-store-private.h"
#include "vmem-error.h"

#include <math.h>

void
vmem_domain_row_free (VmemDomainRow *row)
{
  if (row == NULL)
    return;
  g_free (row->uuid);
  g_free (row->name);
  g_free (row->host);
  g_free (row->workload);
  g_free (row);
}

void
vmem_peak_free (VmemPeak *peak)
{
  if (peak == NULL)
    return;
  g_free (peak->uuid);
  g_free (peak->domain);
  g_free (peak->host);
  g_free (peak->workload);
  g_free (peak);
}

void
vmem_plan_row_free (VmemPlanRow *row)
{
  if (row == NULL)
    return;
  g_free (row->uuid);
  g_free (row->host);
  g_free (row->workload);
  g_free (row->source);
  g_free (row->reasons_json);
  g_free (row);
}

void
vmem_host_row_free (VmemHostRow *row)
{
  if (row == NULL)
    return;
  g_free (row->id);
  g_free (row->name);
  g_free (row);
}

void
vmem_run_free (VmemRun *run)
{
  if (run == NULL)
    return;
  g_free (run->uuid);
  g_free (run->host);
  g_free (run->workload);
  g_free (run->stop_reason);
  g_free (run);
}

static gboolean
require (const char *what, const char *value, GError **error)
{
  if (value == NULL || *value == '\0')
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "%s: must not be empty", what);
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_interval (const char *what, guint interval_s, GError **error)
{
  if (interval_s != VMEM_STORE_HOUR && interval_s != VMEM_STORE_DAY)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s %u s: only %u (hour) and %u (day) are kept", what, interval_s,
                   VMEM_STORE_HOUR, VMEM_STORE_DAY);
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_peak (const VmemPeak *p, GError **error)
{
  if (!require ("uuid", p->uuid, error) || !require ("host", p->host, error) ||
      !require ("workload", p->workload, error) ||
      !check_interval ("interval_s", p->interval_s, error))
    return FALSE;
  /* A misaligned start would be a row of its own that no later peak of
   * the same interval ever replaces. */
  if (p->start_t % (gint64) p->interval_s != 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "start_t %" G_GINT64_FORMAT ": must be a multiple of interval_s %u", p->start_t,
                   p->interval_s);
      return FALSE;
    }
  if (p->guest_samples > p->samples)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "guest_samples %u: more than samples %u", p->guest_samples, p->samples);
      return FALSE;
    }
  return TRUE;
}

VmemStore *
vmem_store_open (const VmemConfig *config, GError **error)
{
  g_return_val_if_fail (config != NULL, NULL);

  switch (config->backend)
    {
    case VMEM_STORE_SQLITE:
      if (!require ("[store] database", config->database, error))
        return NULL;
      return vmem_store_open_sqlite_as (config->database, config->host_id, error);
    case VMEM_STORE_POSTGRES:
      if (!require ("[store] postgres", config->postgres, error))
        return NULL;
      return vmem_store_open_pg (config->postgres, error);
    default:
      g_return_val_if_reached (NULL);
    }
}

gboolean
vmem_store_check_config (const VmemConfig *config, GError **error)
{
  g_return_val_if_fail (config != NULL, FALSE);

  if (config->backend != VMEM_STORE_POSTGRES)
    return TRUE;
  if (config->postgres == NULL || *config->postgres == '\0')
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_CONFIG,
                   "[store] backend=postgres needs [store] postgres (a libpq connection string)");
      return FALSE;
    }
  return vmem_store_pg_check_conninfo (config->postgres, error);
}

#if !HAVE_LIBPQ
static gboolean
not_built (GError **error)
{
  g_set_error (error, VMEM_ERROR, VMEM_ERROR_CONFIG,
               "[store] backend=postgres: PostgreSQL backend not built into this vmemd "
               "(it was built without libpq)");
  return FALSE;
}

VmemStore *
vmem_store_open_pg (const char *conninfo, GError **error)
{
  not_built (error);
  return NULL;
}

gboolean
vmem_store_pg_check_conninfo (const char *conninfo, GError **error)
{
  return not_built (error);
}
#endif

void
vmem_store_free (VmemStore *store)
{
  if (store == NULL)
    return;
  for (int k = 0; k < VMEM_STORE_N_KEYS; k++)
    g_clear_pointer (&store->keys[k], g_hash_table_unref);
  store->ops->free (store);
}

gboolean
vmem_store_key (VmemStore *store, VmemStoreKey kind, const char *text, gint64 *id,
                GError **error)
{
  gpointer value;
  if (store->keys[kind] == NULL)
    store->keys[kind] = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  if (g_hash_table_lookup_extended (store->keys[kind], text, NULL, &value))
    {
      *id = GPOINTER_TO_SIZE (value);
      return TRUE;
    }
  if (!store->ops->key_fetch (store, kind, text, id, error))
    return FALSE;
  g_hash_table_insert (store->keys[kind], g_strdup (text), GSIZE_TO_POINTER ((gsize) *id));
  return TRUE;
}

void
vmem_store_keys_forget (VmemStore *store)
{
  for (int k = 0; k < VMEM_STORE_N_KEYS; k++)
    if (store->keys[k] != NULL)
      g_hash_table_remove_all (store->keys[k]);
}

int
vmem_store_schema_version (VmemStore *store)
{
  return store->ops->schema_version (store);
}

const char *
vmem_store_backend_name (VmemStore *store)
{
  return store->ops->name;
}

const char *
vmem_store_location (VmemStore *store)
{
  return store->ops->location (store);
}

void
vmem_store_set_startup_window (VmemStore *store, guint seconds)
{
  store->startup_window_s = seconds;
}

GPtrArray *
vmem_store_profile_list (VmemStore *store, GError **error)
{
  return store->ops->profile_list (store, error);
}

VmemProfile *
vmem_store_profile_get (VmemStore *store, const char *name, GError **error)
{
  if (name == NULL || *name == '\0')
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no profile named '%s'",
                   name ? name : "");
      return NULL;
    }
  return store->ops->profile_get (store, name, error);
}

gboolean
vmem_store_profile_put (VmemStore *store, const VmemProfile *profile, VmemStorePut mode,
                        GError **error)
{
  if (!vmem_profile_validate (profile, error))
    return FALSE;
  return store->ops->profile_put (store, profile, mode, error);
}

gboolean
vmem_store_profile_delete (VmemStore *store, const char *name, GError **error)
{
  if (name == NULL || *name == '\0')
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no profile named '%s'",
                   name ? name : "");
      return FALSE;
    }
  return store->ops->profile_delete (store, name, error);
}

gboolean
vmem_store_profile_import (VmemStore *store, GPtrArray *profiles, gboolean replace, guint *created,
                           guint *updated, guint *deleted, GError **error)
{
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);

  for (guint i = 0; i < profiles->len; i++)
    {
      const VmemProfile *p = g_ptr_array_index (profiles, i);
      if (!vmem_profile_validate (p, error))
        {
          g_prefix_error (error, "profiles[%u]: ", i);
          return FALSE;
        }
      if (!g_hash_table_add (seen, p->name))
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                       "profiles[%u]: profile '%s' is given twice", i, p->name);
          return FALSE;
        }
    }
  return store->ops->profile_import (store, profiles, replace, created, updated, deleted, error);
}

gboolean
vmem_store_domain_upsert (VmemStore *store, const VmemDomainRow *row, GError **error)
{
  if (!require ("domain uuid", row->uuid, error) || !require ("domain name", row->name, error) ||
      !require ("domain host", row->host, error))
    return FALSE;
  return store->ops->domain_upsert (store, row, error);
}

VmemDomainRow *
vmem_store_domain_get (VmemStore *store, const char *uuid, GError **error)
{
  if (!require ("domain uuid", uuid, error))
    return NULL;
  return store->ops->domain_get (store, uuid, error);
}

GPtrArray *
vmem_store_domain_list (VmemStore *store, const char *workload, GError **error)
{
  return store->ops->domain_list (store, workload, error);
}

gboolean
vmem_store_samples_add (VmemStore *store, const VmemSample *samples, guint n, const VmemPeak *peaks,
                        guint n_peaks, GError **error)
{
  g_return_val_if_fail (n == 0 || samples != NULL, FALSE);
  g_return_val_if_fail (n_peaks == 0 || peaks != NULL, FALSE);

  for (guint i = 0; i < n; i++)
    {
      const VmemSample *s = &samples[i];
      if (!require ("uuid", s->uuid, error) || !require ("host", s->host, error) ||
          !require ("workload", s->workload, error))
        {
          g_prefix_error (error, "samples[%u]: ", i);
          return FALSE;
        }
    }
  for (guint i = 0; i < n_peaks; i++)
    if (!check_peak (&peaks[i], error))
      {
        g_prefix_error (error, "peaks[%u]: ", i);
        return FALSE;
      }
  if (n == 0 && n_peaks == 0)
    return TRUE;
  if (store->ops->samples_add (store, samples, n, peaks, n_peaks, error))
    return TRUE;
  vmem_store_keys_forget (store);
  return FALSE;
}

GPtrArray *
vmem_store_peaks_for_workload (VmemStore *store, const char *workload, guint interval_s,
                               gint64 since, GError **error)
{
  if (!require ("workload", workload, error) ||
      !check_interval ("peak interval", interval_s, error))
    return NULL;
  return store->ops->peaks_for_workload (store, workload, interval_s, since, error);
}

GPtrArray *
vmem_store_peaks_latest (VmemStore *store, gint64 since, GError **error)
{
  return store->ops->peaks_latest (store, since, error);
}

gboolean
vmem_store_prune (VmemStore *store, gint64 now, guint raw_hours, guint full_hours,
                  guint thinned_s, guint peak_days, GError **error)
{
  const gint64 raw_before = now - (gint64) raw_hours * 3600;
  gint64 thin_before = 0;
  if (full_hours >= raw_hours)
    thinned_s = 0;
  if (thinned_s > 0)
    {
      /* Whole periods only: one still filling is thinned once it is
       * all past (thinning it earlier would give the same rows). */
      thin_before = now - (gint64) full_hours * 3600;
      thin_before -= thin_before % thinned_s;
      if (thin_before <= raw_before)
        thinned_s = 0;
    }
  return store->ops->prune (store, raw_before, thin_before, thinned_s,
                            now - (gint64) peak_days * 86400, error);
}

gint64
vmem_store_run_open (VmemStore *store, const char *uuid, const char *host, const char *workload,
                     gint64 started, guint64 demand_mib, GError **error)
{
  if (!require ("run uuid", uuid, error) || !require ("run host", host, error) ||
      !require ("run workload", workload, error))
    return -1;
  return store->ops->run_open (store, uuid, host, workload, started, demand_mib, error);
}

gboolean
vmem_store_run_close (VmemStore *store, const char *uuid, const char *host, gint64 stopped,
                      const char *reason, GError **error)
{
  if (!require ("run uuid", uuid, error) || !require ("run host", host, error) ||
      !require ("stop reason", reason, error))
    return FALSE;
  return store->ops->run_close (store, uuid, host, stopped, reason, error);
}

GPtrArray *
vmem_store_run_list (VmemStore *store, const char *uuid, guint limit, GError **error)
{
  if (!require ("run uuid", uuid, error))
    return NULL;
  return store->ops->run_list (store, uuid, limit, error);
}

gboolean
vmem_store_plan_add (VmemStore *store, const VmemPlanRow *row, GError **error)
{
  if (!require ("plan uuid", row->uuid, error) || !require ("plan host", row->host, error) ||
      !require ("plan workload", row->workload, error) ||
      !require ("plan source", row->source, error))
    return FALSE;
  return store->ops->plan_add (store, row, error);
}

VmemPlanRow *
vmem_store_plan_latest (VmemStore *store, const char *uuid, GError **error)
{
  if (!require ("plan uuid", uuid, error))
    return NULL;
  return store->ops->plan_latest (store, uuid, error);
}

GPtrArray *
vmem_store_plan_list (VmemStore *store, const char *uuid, guint limit, GError **error)
{
  if (!require ("plan uuid", uuid, error))
    return NULL;
  return store->ops->plan_list (store, uuid, limit, error);
}

void
vmem_outcome_row_free (VmemOutcomeRow *row)
{
  if (row == NULL)
    return;
  g_free (row->uuid);
  g_free (row->host);
  g_free (row->workload);
  g_free (row->kind);
  g_free (row);
}

gboolean
vmem_store_outcome_add (VmemStore *store, const VmemOutcomeRow *row, GError **error)
{
  if (!require ("outcome uuid", row->uuid, error) || !require ("outcome host", row->host, error) ||
      !require ("outcome workload", row->workload, error) ||
      !require ("outcome kind", row->kind, error))
    return FALSE;
  if (!isfinite (row->base_mib) || row->base_mib <= 0 || !isfinite (row->given_mib) ||
      row->given_mib < 0 || !isfinite (row->peak_mib) || row->peak_mib < 0 ||
      !isfinite (row->risk) || row->risk <= 0 || row->risk >= 1)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "outcome: base %g, given %g, peak %g MiB and risk %g are not valid",
                   row->base_mib, row->given_mib, row->peak_mib, row->risk);
      return FALSE;
    }
  return store->ops->outcome_add (store, row, error);
}

GPtrArray *
vmem_store_outcome_list (VmemStore *store, gint64 since, GError **error)
{
  return store->ops->outcome_list (store, since, error);
}

void
vmem_move_row_free (VmemMoveRow *row)
{
  if (row == NULL)
    return;
  g_free (row->uuid);
  g_free (row->host);
  g_free (row->workload);
  g_free (row->action);
  g_free (row->mode);
  g_free (row->reason);
  g_free (row);
}

gboolean
vmem_store_move_add (VmemStore *store, const VmemMoveRow *row, GError **error)
{
  if (!require ("move uuid", row->uuid, error) || !require ("move host", row->host, error) ||
      !require ("move workload", row->workload, error) ||
      !require ("move action", row->action, error) || !require ("move mode", row->mode, error) ||
      !require ("move reason", row->reason, error))
    return FALSE;
  if (store->ops->move_add (store, row, error))
    return TRUE;
  vmem_store_keys_forget (store);
  return FALSE;
}

GPtrArray *
vmem_store_move_list (VmemStore *store, const char *uuid, gint64 since, guint limit,
                      GError **error)
{
  if (!require ("move uuid", uuid, error))
    return NULL;
  return store->ops->move_list (store, uuid, since, limit, error);
}

GPtrArray *
vmem_store_sample_list (VmemStore *store, const char *uuid, gint64 since, guint limit,
                        GError **error)
{
  if (!require ("sample uuid", uuid, error))
    return NULL;
  return store->ops->sample_list (store, uuid, since, limit, error);
}

gboolean
vmem_store_host_heartbeat (VmemStore *store, const VmemHostRow *row, GError **error)
{
  if (!require ("host id", row->id, error) || !require ("host name", row->name, error))
    return FALSE;
  if (!vmem_host_id_valid (row->id))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "host id '%s': 1 to %d letters, digits and . _ : -", row->id,
                   VMEM_HOST_ID_MAX);
      return FALSE;
    }
  if (row->interval_s == 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "host %s: interval_s must be positive", row->id);
      return FALSE;
    }
  if (!isfinite (row->overcommit) || row->overcommit <= 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "host %s: overcommit %g must be a positive number", row->name, row->overcommit);
      return FALSE;
    }
  return store->ops->host_heartbeat (store, row, error);
}

GPtrArray *
vmem_store_host_list (VmemStore *store, GError **error)
{
  return store->ops->host_list (store, error);
}

gboolean
vmem_store_host_alive (const VmemHostRow *row, gint64 now)
{
  g_return_val_if_fail (row != NULL, FALSE);
  gint64 window = (gint64) VMEM_STORE_HOST_ALIVE_INTERVALS * MAX (row->interval_s, 1u);
  return row->heartbeat <= now + window && now - row->heartbeat <= window;
}
