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
 * and what the first staging in virtio-mem mode replaced, recorded then (not
 * before: balloon mode leaves these parts alone, so until then the XML at
 * hand holds their originals) and dropped when a balloon-mode staging puts
 * them back:
 *   orig_memory          the <memory> element's original text; while it is
 *                        there, the guest NUMA cell and the virtio-mem device
 *                        aliased VMEM_XML_VIRTIO_MEM_ALIAS are vmemd's
 *   orig_maxmemory       the <maxMemory> element's original text, or "none"
 *   orig_cpu             "none"; "present" for a <cpu> with child elements
 *                        (only the <numa> vmemd added goes on restore); or the
 *                        original text of a <cpu> without any
 * A <metadata> holding only vmemd's elements goes on restore, as it came
 * with them.
 *
 * Staging in virtio-mem mode (DESIGN.md 4.6, 4.7) turns the domain's
 * original <memory>, the top, into a base the guest boots with and a
 * virtio-mem device for the rest, which QEMU leaves unplugged and unbacked
 * until its <requested> size is raised live:
 *
 *   <maxMemory slots='1' unit='KiB'>MEMORY</maxMemory>
 *   <memory unit='KiB'>MEMORY</memory>         (= BASE + SIZE <= the top)
 *   <currentMemory unit='KiB'>MEMORY</currentMemory>   (no balloon target)
 *   <cpu><numa><cell id='0' cpus='0-N' memory='BASE' unit='KiB'/></numa></cpu>
 *   <devices>... <memory model='virtio-mem'><target><size unit='KiB'>SIZE</size>
 *     <node>0</node><block unit='KiB'>2048</block><requested unit='KiB'>0</requested>
 *     </target><alias name='ua-vmemd-mem'/></memory></devices>
 *
 * with preallocation as the plan says (QEMU then preallocates the base and
 * each block as it is plugged, never the unplugged rest).  The balloon is
 * left as it is, <memballoon model='none'> included: this mode needs none.
 * vmem_xml_virtio_mem_layout() says how BASE and SIZE follow from the demand.
 * A domain with NUMA cells, memory devices or hugepages of its own is not
 * staged in this mode. */

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

/* The virtio-mem device vmemd stages: a user alias (libvirt keeps those
 * that start with "ua-"), so that it is told apart from any other device
 * in the inactive and in the live XML alike. */
#define VMEM_XML_VIRTIO_MEM_ALIAS     "ua-vmemd-mem"
/* The block it plugs in: the smallest QEMU and Linux support on x86_64. */
#define VMEM_XML_VIRTIO_MEM_BLOCK_KIB 2048
/* Its size is a whole number of Linux memory blocks (128 MiB on x86_64 and
 * arm64): the guest adds memory a memory block at a time, and the tail of
 * a device that ends inside one is unusable. */
#define VMEM_XML_VIRTIO_MEM_ALIGN_MIB 128
/* The least base memory: enough for a Linux guest to boot and to load the
 * virtio_mem driver, whatever the demand. */
#define VMEM_XML_VIRTIO_MEM_MIN_BASE_MIB 128

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
  guint    memory_devices;      /* <devices><memory> of any model, vmemd's included */
  gboolean virtio_mem_staged;   /* the plan holds orig_memory: its NUMA cell and
                                   VMEM_XML_VIRTIO_MEM_ALIAS device are vmemd's */
  /* In balloon and observe mode. */
  gboolean manageable;
  char    *unmanageable_reason; /* why not, when !manageable */
  /* In virtio-mem mode: why it cannot be staged so, NULL = it can. */
  char    *virtio_mem_unmanageable_reason;
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

/* Why @info cannot be staged in @mode, or NULL when it can. */
const char     *vmem_xml_unmanageable_reason (const VmemDomainInfo *info, VmemMode mode);

/* The inactive XML with @plan staged.  In balloon and observe mode:
 * <currentMemory> = demand (clamped to <memory>), preallocation, a virtio
 * balloon with stats, and the plan element; virtio-mem parts of an earlier
 * staging are put back first.  In virtio-mem mode: the form described at
 * the top of this file, preallocation and the plan element.
 * *changed (optional) says whether the result differs from @xml.
 * Applying the same plan to the result gives the same bytes.
 * VMEM_ERROR_UNMANAGEABLE when the domain cannot carry the plan (e.g.
 * <memballoon model='none'> in balloon mode, its own NUMA cells in
 * virtio-mem mode). */
char           *vmem_xml_apply_plan (const char *xml, const VmemPlan *plan, gboolean *changed,
                                     GError **error);

/* How a top (the domain's original <memory>) is split in virtio-mem mode,
 * all in KiB.  The base is the demand rounded up to the block, at least
 * VMEM_XML_VIRTIO_MEM_MIN_BASE_MIB and at least a quarter of the top: a
 * guest that onlines plugged memory movable (as it must, for it to be
 * unplugged again) keeps every kernel allocation, the plugged memory's own
 * page structures included, in its base, and Linux documents a movable to
 * kernel memory ratio of 3:1 as safe (oVirt never hotplugs more than three
 * times the boot memory, for that reason).  The device takes the rest in
 * whole VMEM_XML_VIRTIO_MEM_ALIGN_MIB; when the demand leaves less than
 * that, the device is one such unit below the top and <requested> covers
 * what the base lacks of the demand, so the guest still gets the demand,
 * plugged (and preallocated) at boot. */
typedef struct {
  guint64 top_kib;       /* the top, rounded down to the block */
  guint64 base_kib;      /* the NUMA cell: the memory the guest boots with */
  guint64 size_kib;      /* the device's <size> */
  guint64 requested_kib; /* the device's <requested> at boot */
  guint64 memory_kib;    /* <memory> = base + size, never above the top */
} VmemVirtioMemLayout;

/* VMEM_ERROR_UNMANAGEABLE when @top_kib is below a minimum base and one
 * device unit (256 MiB). */
gboolean        vmem_xml_virtio_mem_layout (guint64 top_kib, guint64 demand_kib,
                                            VmemVirtioMemLayout *layout, GError **error);

/* For a running domain in virtio-mem form: vmemd's device in @live_xml
 * (VMEM_XML_VIRTIO_MEM_ALIAS, with the alias and address libvirt gave it),
 * as the device XML for virDomainUpdateDeviceFlags with <requested> set to
 * @requested_mib rounded up to its block and clamped to its size.  The
 * rest of the element is the live XML's, byte for byte.  @request
 * (optional) gets the figures.  VMEM_ERROR_NOT_FOUND when the domain has no
 * such device (it did not start in virtio-mem form); VMEM_ERROR_INVALID_ARGUMENT
 * for bad XML or a device without a size, block or <requested>. */
typedef struct {
  guint64  size_kib;
  guint64  block_kib;
  guint64  previous_kib;  /* <requested> in @live_xml */
  guint64  requested_kib; /* the new one */
  guint64  current_kib;   /* <current>, what the guest has plugged; 0 when absent */
  gboolean changed;       /* requested_kib != previous_kib */
} VmemVirtioMemRequest;

char           *vmem_xml_virtio_mem_request (const char *live_xml, guint64 requested_mib,
                                             VmemVirtioMemRequest *request, GError **error);

/* Puts back what staging replaced, and drops the plan element and the
 * workload tag (restoring ends management), and a <metadata> left empty.
 * From virtio-mem form too: <memory> and <maxMemory> as they were written,
 * vmemd's NUMA cell and device taken out.  What vmemd never touched comes
 * out byte for byte, and so does what it did where the recorded original
 * is the element's text (<memory>, <maxMemory>, <memballoon>, a <cpu>
 * without children); <currentMemory> comes back in KiB.
 * NULL without error when there is no plan to undo. */
char           *vmem_xml_restore (const char *xml, GError **error);

/* For incoming migration and restore, where libvirt checks ABI stability:
 * only preallocation changes, never <currentMemory> or the balloon, and no
 * metadata.  The same in virtio-mem mode: <memory>, the NUMA layout and
 * the device are guest ABI, so a domain runs on in the form it started
 * with; its live <requested> is not touched either.  NULL without error
 * when nothing changes. */
char           *vmem_xml_migrate_variant (const char *xml, const VmemPlan *plan, GError **error);

/* KiB from a libvirt scaled integer: @text and its unit attribute (b, bytes,
 * k/KiB, KB, M/MiB, MB, ... E/EiB, EB; case-insensitive; NULL = KiB),
 * rounded up to whole KiB as libvirt does. */
gboolean        vmem_xml_parse_memory_kib (const char *text, const char *unit, guint64 *kib,
                                           GError **error);

G_END_DECLS
