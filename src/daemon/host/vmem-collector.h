/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Reads every running domain's balloon statistics once per stats interval
 * (one virConnectGetAllDomainStats call) and records a sample per managed
 * domain.  Used memory is the guest's view (balloon.current −
 * balloon.usable) when the guest reported within two periods, otherwise the
 * host's (QEMU RSS), flagged as lower quality. */

#include "vmem-daemon-private.h"

G_BEGIN_DECLS

typedef struct _VmemCollector VmemCollector;

VmemCollector *vmem_collector_new (VmemDaemon *daemon);
void           vmem_collector_free (VmemCollector *collector);
void           vmem_collector_set_interval (VmemCollector *collector, guint seconds);

/* One domain's balloon statistics, as libvirt reports them (KiB). */
typedef struct {
  char   *uuid;
  char   *name;
  guint64 current_kib;
  guint64 maximum_kib;
  guint64 rss_kib;
  guint64 available_kib;  /* guest MemTotal */
  guint64 usable_kib;     /* guest MemAvailable */
  guint64 unused_kib;
  guint64 swap_in_kib;
  guint64 major_fault;
  gint64  last_update;    /* seconds; 0 = the guest never reported */
  guint   vcpus;
  gboolean has_guest;     /* usable and available present */
} VmemBalloonStats;

void vmem_balloon_stats_free (VmemBalloonStats *s);

/* Pure: the used memory in MiB and whether it is the guest's own figure. */
guint64 vmem_collector_used_mib (const VmemBalloonStats *s, gint64 now, guint interval,
                                 gboolean *guest_quality);

G_END_DECLS
