/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Reads every running domain's balloon statistics once per stats interval
 * (one virConnectGetAllDomainStats call) and records a sample per managed
 * domain.  Used memory is the guest's view (balloon.current −
 * balloon.usable) when the guest reported within two periods, otherwise the
 * host's (QEMU RSS), flagged as lower quality. */

#include "vmem-virt.h"

G_BEGIN_DECLS

typedef struct _VmemCollector VmemCollector;

typedef struct {
  /* Main context, before each cycle: the uuids (strings, transfer full) of
   * running managed domains that still need a stats period; may be NULL. */
  GPtrArray *(*want_period) (gpointer user_data);
  /* Main context: one cycle's statistics (VmemBalloonStats, transfer none),
   * read at @now (unix seconds), one per running domain. */
  void (*collected) (GPtrArray *stats, gint64 now, gpointer user_data);
  /* Main context: a cycle failed. */
  void (*failed) (const GError *error, gpointer user_data);
  /* Main context: whether the owner is still handling the last cycle's
   * statistics (it may take them in steps); may be NULL (never). */
  gboolean (*handling) (gpointer user_data);
} VmemCollectorCallbacks;

/* Takes one cycle every @interval seconds, while @virt is connected and the
 * previous cycle has finished: its statistics read and handled.  A cycle
 * due while the previous one has not finished is skipped, and counted. */
VmemCollector *vmem_collector_new (VmemVirt *virt, guint interval,
                                   const VmemCollectorCallbacks *callbacks, gpointer user_data);

/* Where a cycle's statistics come from.  By default one
 * virConnectGetAllDomainStats call on the libvirt worker, read at the
 * current time.  A source set here replaces it: it runs on a thread of its
 * own (one call at a time, never during a cycle's handling) and returns the cycle's statistics (VmemBalloonStats, transfer full) and
 * sets *@now to the time (unix seconds) they stand for, or sets @error;
 * want_period is not asked (nothing is asked of libvirt).  NULL sets
 * libvirt back.  bench/scale replays a usage trace through it. */
typedef GPtrArray *(*VmemStatsSourceFunc) (gint64 *now, gpointer data, GError **error);
void           vmem_collector_set_source (VmemCollector *collector, VmemStatsSourceFunc source,
                                          gpointer data);
/* Takes one cycle at once, unless one is running; FALSE when it could not
 * (a cycle running, or libvirt not connected). */
gboolean       vmem_collector_cycle_now (VmemCollector *collector);
/* Whether a cycle is running: its statistics being read or handled. */
gboolean       vmem_collector_is_busy (VmemCollector *collector);
/* Cycles that fell due while the one before had not finished, and were
 * skipped. */
guint64        vmem_collector_skipped (VmemCollector *collector);
void           vmem_collector_free (VmemCollector *collector);
void           vmem_collector_set_interval (VmemCollector *collector, guint seconds);
guint          vmem_collector_get_interval (VmemCollector *collector);
/* When the latest cycle began (its statistics call was queued), monotonic
 * µs: in the collected and failed callbacks, the cycle they end. */
gint64         vmem_collector_cycle_started (VmemCollector *collector);

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

/* The stats period, in seconds, the collector gives a managed guest. */
#define VMEM_COLLECTOR_STATS_PERIOD_S 5

/* Pure: the used memory in MiB and whether it is the guest's own figure:
 * a guest's report counts when it is at most two periods old, the period
 * being the longer of @interval and VMEM_COLLECTOR_STATS_PERIOD_S. */
guint64 vmem_collector_used_mib (const VmemBalloonStats *s, gint64 now, guint interval,
                                 gboolean *guest_quality);

/* Seconds after a start during which host-side samples are not recorded:
 * right after a preallocated boot QEMU's RSS is the whole <memory>, not what
 * the workload uses. */
#define VMEM_COLLECTOR_STARTUP_GRACE_S 120

/* Pure: whether a sample is worth keeping.  A guest's own figure always is;
 * a host-side one only once the domain has run for the grace period
 * (@active_since and @now are monotonic µs; 0 = not known running). */
gboolean vmem_collector_keep_sample (gboolean guest_quality, gint64 active_since, gint64 now);

G_END_DECLS
