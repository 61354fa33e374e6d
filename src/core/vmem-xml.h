/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Reads and rewrites libvirt domain XML.  Pure: strings in, strings out, the
 * clock comes in with the plan.
 *
 * A rewrite is a set of splices into the original text: libxml2 checks the
 * document and answers what it means, a scanner locates each element's
 * bytes, and only the parts vmemd changes are replaced.  Everything else
 * (secrets, comments, unknown elements, other namespaces, quoting,
 * attribute order, whitespace) comes out byte for byte.
 *
 * vmemd keeps two elements in <metadata>, each in its own namespace, because
 * libvirt's metadata API (virDomainSetMetadata) stores one element per
 * namespace URI and replaces it whole:
 *
 *   <vmemd:workload xmlns:vmemd="urn:vmemd:1" name="erp"/>
 *       the tag, written by `vmemctl assign` (key "vmemd"); the rewriter
 *       only reads it, so an assign never clobbers a plan and a re-stage
 *       never clobbers an assign;
 *   <vmemd-plan:plan xmlns:vmemd-plan="urn:vmemd:plan:1" .../>
 *       the staged plan (key "vmemd-plan"), written here.
 *
 * The plan element's attributes: workload, mode, demand_mib, source, peers,
 * prealloc (yes/no), stats_period, time (ISO 8601 UTC), and what the first
 * staging replaced, kept unchanged by every later one so that
 * vmem_xml_restore() can put it back:
 *   orig_current_kib     <currentMemory> in KiB, or "none"
 *   orig_allocation      <allocation> mode, "unset" (no mode), or "none"
 *   orig_memorybacking   "present" or "none"
 *   orig_memballoon      the <memballoon> element's original text, or "none"
 *   orig_devices         "none" when there was no <devices> (absent otherwise)
 *   orig_metadata        "empty" when <metadata> had no element (absent otherwise)
 * A <metadata> holding only vmemd's elements goes on restore, as it came
 * with them. */

#include <glib.h>

#include "vmem-profile.h"
#include "vmem-varlink.h"

G_BEGIN_DECLS

#define VMEM_XML_NS_WORKLOAD  "urn:vmemd:1"
#define VMEM_XML_NS_PLAN      "urn:vmemd:plan:1"
#define VMEM_XML_PLAN_KEY     "vmemd-plan"
/* The same limit as the hook's and one HookEvent's. */
#define VMEM_XML_MAX_SIZE     VMEM_VARLINK_MAX_XML
/* Used when a plan gives no stats period and the balloon has none. */
#define VMEM_XML_STATS_PERIOD 5

typedef struct {
  guint64     demand_mib;   /* becomes <currentMemory>, never above <memory> */
  gboolean    prealloc;     /* <allocation mode='immediate'/> */
  guint       stats_period; /* seconds, <memballoon><stats period/>; 0 = keep, else 5 */
  VmemMode    mode;
  const char *workload;
  const char *source;       /* "profile", "peers", "fallback", ... */
  guint       peers;
  gint64      time;         /* unix seconds, recorded in the plan element */
} VmemPlan;

typedef struct {
  char    *name;
  char    *uuid;
  char    *type;                /* kvm, qemu, ... */
  guint64  memory_kib;          /* <memory> */
  guint64  memory_mib;
  guint64  current_kib;         /* <currentMemory>, or <memory> when absent */
  guint64  current_mib;
  guint64  max_memory_mib;      /* <maxMemory>, 0 = none */
  guint    max_memory_slots;
  guint    vcpus;
  char    *workload;            /* the urn:vmemd:1 tag, NULL = none */
  gboolean has_balloon;         /* a <memballoon> element exists */
  char    *balloon_model;       /* its model, NULL = no <memballoon> */
  guint    balloon_stats_period;/* 0 = none */
  gboolean balloon_autodeflate;
  gboolean balloon_free_page_reporting;
  char    *allocation_mode;     /* <allocation mode>, NULL = none or no mode */
  gboolean prealloc;            /* <allocation mode='immediate'/> */
  gboolean hugepages;
  char    *memory_source;       /* <memoryBacking><source type>: memfd, file, anonymous */
  char    *memory_access;       /* <memoryBacking><access mode>: shared, private */
  guint    numa_cells;
  guint64  numa_memory_mib;     /* sum of the cells' memory */
  guint    virtio_mem_devices;
  guint64  virtio_mem_size_mib;      /* sum of <target><size> */
  guint64  virtio_mem_requested_mib; /* sum of <target><requested> */
  gboolean manageable;
  char    *unmanageable_reason; /* why not, when !manageable */
  /* The staged plan, when there is one. */
  gboolean has_plan;
  guint64  plan_demand_mib;
  char    *plan_source;
  char    *plan_workload;
  char    *plan_mode;
  gboolean plan_prealloc;
  guint    plan_peers;
  gint64   plan_time;
} VmemDomainInfo;

void            vmem_domain_info_free (VmemDomainInfo *info);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemDomainInfo, vmem_domain_info_free)

/* The domain types vmemd manages: kvm and qemu, and libvirt's test
 * driver's, which takes the same XML.  Other hypervisors treat memory
 * otherwise: libxl (Xen) rejects a virtio balloon at build and has a
 * balloon of its own, VMware takes <currentMemory> for a hard cap; LXC and
 * bhyve have no virtio balloon to set a target with.  A domain of another
 * type (or none) is not manageable: its info says why. */
gboolean        vmem_xml_type_is_managed (const char *type);

/* VMEM_ERROR_INVALID_ARGUMENT with the parser's line for bad XML, for a
 * root that is not <domain>, a DOCTYPE (never fetched nor expanded), input
 * over VMEM_XML_MAX_SIZE, or an unreadable memory size. */
VmemDomainInfo *vmem_xml_parse_domain (const char *xml, GError **error);

/* The inactive XML with @plan staged: <currentMemory> = demand (clamped to
 * <memory>), preallocation, a virtio balloon with stats, and the plan
 * element.  *changed (optional) says whether the result differs from @xml.
 * Applying the same plan to the result gives the same bytes.
 * VMEM_ERROR_UNMANAGEABLE when the domain cannot carry the plan (e.g.
 * <memballoon model='none'>). */
char           *vmem_xml_apply_plan (const char *xml, const VmemPlan *plan, gboolean *changed,
                                     GError **error);

/* Puts back what staging replaced, and drops the plan element and the
 * workload tag (restoring ends management), and a <metadata> left empty.
 * NULL without error when there is no plan to undo. */
char           *vmem_xml_restore (const char *xml, GError **error);

/* For incoming migration and restore, where libvirt checks ABI stability:
 * only preallocation changes, never <currentMemory> or the balloon, and no
 * metadata.  NULL without error when nothing changes. */
char           *vmem_xml_migrate_variant (const char *xml, const VmemPlan *plan, GError **error);

/* KiB from a libvirt scaled integer: @text and its unit attribute (b, bytes,
 * k/KiB, KB, M/MiB, MB, ... E/EiB, EB; case-insensitive; NULL = KiB),
 * rounded up to whole KiB as libvirt does. */
gboolean        vmem_xml_parse_memory_kib (const char *text, const char *unit, guint64 *kib,
                                           GError **error);

G_END_DECLS
