/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A domain as vmemd knows it: the one domain type of the daemon.  Its
 * definition's facts come from the one XML reader (vmem_xml_parse_domain),
 * whether the XML was read from libvirt or handed over by the hook; libvirt
 * adds only the run-time state. */

#include <glib.h>

#include "vmem-xml.h"

G_BEGIN_DECLS

/* Run-time states, numbered as libvirt's virDomainState. */
typedef enum {
  VMEM_DOMAIN_NOSTATE = 0,
  VMEM_DOMAIN_RUNNING = 1,
  VMEM_DOMAIN_BLOCKED = 2,
  VMEM_DOMAIN_PAUSED = 3,
  VMEM_DOMAIN_SHUTDOWN = 4,
  VMEM_DOMAIN_SHUTOFF = 5,
  VMEM_DOMAIN_CRASHED = 6,
  VMEM_DOMAIN_PMSUSPENDED = 7,
} VmemDomainState;

typedef struct {
  char           *uuid;
  char           *name;
  VmemDomainState state;
  gboolean        active;
  gboolean        persistent;
  guint64         memory_mib;  /* <memory> of the definition */
  guint64         current_mib; /* running: the balloon's actual size; else <currentMemory> */
  guint           vcpus;
  char           *workload;    /* the urn:vmemd:1 tag; NULL = none */
  gboolean        prealloc;    /* <allocation mode='immediate'/> */
  guint64         virtio_mem_size_mib;      /* virtio-mem devices' <size>, summed */
  guint64         virtio_mem_requested_mib; /* their <requested>, summed */
  gboolean        virtio_mem_staged;        /* vmemd gave it its virtio-mem layout */
  /* The plan staged in the definition, when there is one. */
  gboolean        has_plan;
  guint64         plan_demand_mib;
  gint64          plan_time;
} VmemDomain;

/* A shut-off domain with the facts of @info (copied). */
VmemDomain *vmem_domain_new_from_info (const VmemDomainInfo *info);
/* The same from XML text. */
VmemDomain *vmem_domain_new_from_xml (const char *xml, GError **error);
VmemDomain *vmem_domain_copy (const VmemDomain *domain);
void        vmem_domain_free (VmemDomain *domain);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemDomain, vmem_domain_free)

/* TRUE when the two carry the same definition facts (name, memory, current
 * memory, vCPUs, tag, preallocation, staged plan): a define that changed none of them
 * needs no new plan. */
gboolean    vmem_domain_same_definition (const VmemDomain *a, const VmemDomain *b);

const char *vmem_domain_state_to_string (VmemDomainState state);

G_END_DECLS
