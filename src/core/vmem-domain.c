/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-domain.h"

VmemDomain *
vmem_domain_new_from_info (const VmemDomainInfo *info)
{
  VmemDomain *d = g_new0 (VmemDomain, 1);
  d->uuid = g_strdup (info->uuid);
  d->name = g_strdup (info->name);
  d->state = VMEM_DOMAIN_SHUTOFF;
  d->memory_mib = info->memory_mib;
  d->current_mib = info->current_mib;
  d->vcpus = info->vcpus;
  d->workload = g_strdup (info->workload);
  d->prealloc = info->prealloc;
  d->virtio_mem_size_mib = info->virtio_mem_size_mib;
  d->virtio_mem_requested_mib = info->virtio_mem_requested_mib;
  d->virtio_mem_staged = info->virtio_mem_staged;
  d->has_plan = info->has_plan;
  d->plan_demand_mib = info->plan_demand_mib;
  d->plan_time = info->plan_time;
  return d;
}

VmemDomain *
vmem_domain_new_from_xml (const char *xml, GError **error)
{
  g_autoptr(VmemDomainInfo) info = vmem_xml_parse_domain (xml, error);
  if (info == NULL)
    return NULL;
  return vmem_domain_new_from_info (info);
}

VmemDomain *
vmem_domain_copy (const VmemDomain *d)
{
  VmemDomain *c = g_memdup2 (d, sizeof *d);
  c->uuid = g_strdup (d->uuid);
  c->name = g_strdup (d->name);
  c->workload = g_strdup (d->workload);
  return c;
}

void
vmem_domain_free (VmemDomain *d)
{
  if (d == NULL)
    return;
  g_free (d->uuid);
  g_free (d->name);
  g_free (d->workload);
  g_free (d);
}

gboolean
vmem_domain_same_definition (const VmemDomain *a, const VmemDomain *b)
{
  return g_strcmp0 (a->name, b->name) == 0 && a->memory_mib == b->memory_mib &&
         a->current_mib == b->current_mib &&
         a->vcpus == b->vcpus && g_strcmp0 (a->workload, b->workload) == 0 &&
         a->prealloc == b->prealloc && a->has_plan == b->has_plan &&
         a->plan_demand_mib == b->plan_demand_mib && a->plan_time == b->plan_time;
}

const char *
vmem_domain_state_to_string (VmemDomainState state)
{
  switch (state)
    {
    case VMEM_DOMAIN_RUNNING:
      return "running";
    case VMEM_DOMAIN_BLOCKED:
      return "blocked";
    case VMEM_DOMAIN_PAUSED:
      return "paused";
    case VMEM_DOMAIN_SHUTDOWN:
      return "shutting-down";
    case VMEM_DOMAIN_SHUTOFF:
      return "shut-off";
    case VMEM_DOMAIN_CRASHED:
      return "crashed";
    case VMEM_DOMAIN_PMSUSPENDED:
      return "pm-suspended";
    case VMEM_DOMAIN_NOSTATE:
    default:
      return "unknown";
    }
}
