/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-store-private.h"
#include "vmem-error.h"

void
vmem_peak_free (VmemPeak *p)
{
  if (p == NULL)
    return;
  g_free (p->uuid);
  g_free (p->domain);
  g_free (p->host);
  g_free (p);
}

void
vmem_plan_row_free (VmemPlanRow *p)
{
  if (p == NULL)
    return;
  g_free (p->uuid);
  g_free (p->workload);
  g_free (p->source);
  g_free (p->reasons_json);
  g_free (p);
}

void
vmem_run_free (VmemRun *r)
{
  if (r == NULL)
    return;
  g_free (r->uuid);
  g_free (r->host);
  g_free (r->workload);
  g_free (r->stop_reason);
  g_free (r);
}

VmemStore *
vmem_store_open (const VmemConfig *config, GError **error)
{
  switch (config->backend)
    {
    case VMEM_STORE_SQLITE:
      return vmem_store_open_sqlite (config->database, error);
    case VMEM_STORE_POSTGRES:
    default:
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_CONFIG,
                   "[store] backend=postgres: this build of vmemd has no PostgreSQL backend");
      return NULL;
    }
}

void
vmem_store_free (VmemStore *s)
{
  if (s != NULL)
    s->ops->free (s);
}

int
vmem_store_schema_version (VmemStore *s)
{
  return s->ops->schema_version (s);
}

const char *
vmem_store_backend_name (VmemStore *s)
{
  return s->ops->name;
}

GPtrArray *
vmem_store_profile_list (VmemStore *s, GError **error)
{
  return s->ops->profile_list (s, error);
}

VmemProfile *
vmem_store_profile_get (VmemStore *s, const char *name, GError **error)
{
  return s->ops->profile_get (s, name, error);
}

gboolean
vmem_store_profile_put (VmemStore *s, const VmemProfile *p, VmemStorePut mode, GError **error)
{
  if (!vmem_profile_validate (p, error))
    return FALSE;
  return s->ops->profile_put (s, p, mode, error);
}

gboolean
vmem_store_profile_delete (VmemStore *s, const char *name, GError **error)
{
  return s->ops->profile_delete (s, name, error);
}

gboolean
vmem_store_profile_import (VmemStore *s, GPtrArray *profiles, gboolean replace, guint *created,
                           guint *updated, guint *deleted, GError **error)
{
  for (guint i = 0; i < profiles->len; i++)
    if (!vmem_profile_validate (g_ptr_array_index (profiles, i), error))
      {
        g_prefix_error (error, "profiles[%u]: ", i);
        return FALSE;
      }
  return s->ops->profile_import (s, profiles, replace, created, updated, deleted, error);
}

gboolean
vmem_store_domain_upsert (VmemStore *s, const VmemDomainRow *row, GError **error)
{
  return s->ops->domain_upsert (s, row, error);
}

gboolean
vmem_store_samples_add (VmemStore *s, const VmemSample *samples, guint n, GError **error)
{
  return n == 0 || s->ops->samples_add (s, samples, n, error);
}

GPtrArray *
vmem_store_peaks_for_workload (VmemStore *s, const char *workload, guint interval_s, gint64 since,
                               GError **error)
{
  return s->ops->peaks_for_workload (s, workload, interval_s, since, error);
}

gboolean
vmem_store_prune (VmemStore *s, gint64 now, guint raw_hours, guint peak_days, GError **error)
{
  return s->ops->prune (s, now, raw_hours, peak_days, error);
}

gint64
vmem_store_run_open (VmemStore *s, const char *uuid, const char *host, const char *workload,
                     gint64 started, guint64 demand_mib, GError **error)
{
  return s->ops->run_open (s, uuid, host, workload, started, demand_mib, error);
}

gboolean
vmem_store_run_close (VmemStore *s, const char *uuid, gint64 stopped, const char *reason,
                      GError **error)
{
  return s->ops->run_close (s, uuid, stopped, reason, error);
}

GPtrArray *
vmem_store_run_list (VmemStore *s, const char *uuid, guint limit, GError **error)
{
  return s->ops->run_list (s, uuid, limit, error);
}

gboolean
vmem_store_plan_add (VmemStore *s, const VmemPlanRow *row, GError **error)
{
  return s->ops->plan_add (s, row, error);
}

VmemPlanRow *
vmem_store_plan_latest (VmemStore *s, const char *uuid, GError **error)
{
  return s->ops->plan_latest (s, uuid, error);
}

gboolean
vmem_store_host_heartbeat (VmemStore *s, const VmemHostRow *row, GError **error)
{
  return s->ops->host_heartbeat (s, row, error);
}
