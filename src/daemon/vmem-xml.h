/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Reads and rewrites libvirt domain XML.  Pure: strings in, strings out.
 *
 * Two vmemd elements live in <metadata>, each in its own namespace, because
 * libvirt's metadata API replaces a whole namespace's element at once:
 *   <vmemd:workload xmlns:vmemd="urn:vmemd:1" name="erp"/>       (the tag; vmemctl assign)
 *   <vmemd-plan:plan xmlns:vmemd-plan="urn:vmemd:plan:1" .../>    (the staged plan)
 * The plan element keeps the values staging replaced the first time, so
 * that they can be put back. */

#include <glib.h>

#include "vmem-profile.h"

G_BEGIN_DECLS

#define VMEM_XML_NS_WORKLOAD "urn:vmemd:1"
#define VMEM_XML_NS_PLAN     "urn:vmemd:plan:1"
#define VMEM_XML_MAX_SIZE    (16 * 1024 * 1024)

typedef struct {
  guint64     demand_mib;   /* becomes <currentMemory>, never above <memory> */
  gboolean    prealloc;     /* <allocation mode='immediate'/> */
  guint       stats_period; /* seconds, for <memballoon><stats period/> */
  VmemMode    mode;
  const char *workload;
  const char *source;       /* "profile", "peers", "domain", ... */
  guint       peers;
  gint64      time;         /* unix seconds, recorded in the plan element */
} VmemPlan;

typedef struct {
  char    *name;
  char    *uuid;
  char    *type;            /* kvm, qemu, ... */
  guint64  memory_mib;      /* <memory> */
  guint64  current_mib;     /* <currentMemory>, or <memory> when absent */
  guint64  max_memory_mib;  /* <maxMemory>, 0 = none */
  guint    vcpus;
  char    *workload;        /* the urn:vmemd:1 tag */
  char    *balloon_model;   /* NULL = no <memballoon> */
  gboolean prealloc;        /* <allocation mode='immediate'/> */
  gboolean hugepages;
  guint    numa_cells;
  guint    virtio_mem_devices;
  gboolean manageable;
  char    *unmanageable_reason;
  gboolean has_plan;
  guint64  plan_demand_mib;
  char    *plan_source;
  gint64   plan_time;
} VmemDomainInfo;

void            vmem_domain_info_free (VmemDomainInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemDomainInfo, vmem_domain_info_free)

/* VMEM_ERROR_INVALID_ARGUMENT with the parser's line for bad XML. */
VmemDomainInfo *vmem_xml_parse_domain (const char *xml, GError **error);

/* The inactive XML with @plan staged.  *changed (optional) says whether
 * anything but formatting differs from @xml.  VMEM_ERROR_UNMANAGEABLE when
 * the domain cannot carry the plan (e.g. <memballoon model='none'>). */
char           *vmem_xml_apply_plan (const char *xml, const VmemPlan *plan, gboolean *changed,
                                     GError **error);

/* Puts back what staging replaced and drops the plan element.  Returns NULL
 * without error when there is no plan to undo. */
char           *vmem_xml_restore (const char *xml, GError **error);

/* For incoming migration and restore: only changes libvirt accepts there
 * (preallocation).  NULL without error when nothing changes. */
char           *vmem_xml_migrate_variant (const char *xml, const VmemPlan *plan, GError **error);

/* KiB from a libvirt memory element's text and unit attribute. */
gboolean        vmem_xml_parse_memory_kib (const char *text, const char *unit, guint64 *kib,
                                           GError **error);

G_END_DECLS
