/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* VmemDaemon owns and wires every part of vmemd: the store and its worker,
 * the libvirt connection and its worker, the domain cache, the collector,
 * the per-workload demand, the stager and the varlink server with its
 * methods.  The parts never call up into it except through the callbacks
 * it hands them. */

#include <glib.h>

#include "vmem-config.h"

G_BEGIN_DECLS

typedef struct _VmemDaemon VmemDaemon;

/* Opens the store and loads profiles and peaks.  Takes ownership of
 * @config. */
VmemDaemon *vmem_daemon_new (VmemConfig *config, GError **error);
void        vmem_daemon_free (VmemDaemon *daemon);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemDaemon, vmem_daemon_free)

/* Listens (on @listen_fd when socket-activated, else on the configured
 * path) and starts connecting to libvirt. */
gboolean    vmem_daemon_start (VmemDaemon *daemon, int listen_fd, GError **error);

/* SIGHUP: applies every setting that can change at run time (log level,
 * intervals, admission, hook, estimator, admin group, client limits) and
 * names in @restart_needed (a comma-separated list, NULL when none) those
 * that differ but need a restart (socket, store, libvirt URI, host name).
 * Takes ownership of @config. */
void        vmem_daemon_reload (VmemDaemon *daemon, VmemConfig *config, char **restart_needed);

/* Replaces libvirt's statistics call by @source (VmemStatsSourceFunc of
 * vmem-collector.h: the cycle's statistics and the time they stand for);
 * after vmem_daemon_start.  @moved (may be NULL) is told each balloon or
 * virtio-mem target the controller set, so that the source's guests can
 * follow it.  bench/scale feeds the daemon a trace this way. */
void        vmem_daemon_set_stats_source (VmemDaemon *daemon,
                                          GPtrArray *(*source) (gint64 *now, gpointer data,
                                                                GError **error),
                                          void (*moved) (const char *uuid, guint64 to_mib,
                                                         gpointer data),
                                          gpointer data);
/* Takes one collection cycle now; FALSE when one is running or libvirt is
 * not connected.  The cycle's statistics are handled in slices on the main
 * loop, between which it answers its clients. */
gboolean    vmem_daemon_collect_now (VmemDaemon *daemon);
/* Whether a collection cycle is running: its statistics being read or
 * handled. */
gboolean    vmem_daemon_cycle_running (VmemDaemon *daemon);

/* The handling of the last collection cycle that ended (zero before one). */
typedef struct {
  double   cpu_us;           /* main thread CPU, all its slices */
  guint    slices;           /* main loop dispatches it took */
  double   longest_slice_us; /* wall time */
  double   trim_us;          /* malloc_trim's wall time, on a thread of its own */
  guint    control_steps;    /* the controller's: decisions, arbitration, moves */
  gboolean finished_at_once; /* a change of profiles or settings ended it at once */
} VmemDaemonCycleFigures;
void        vmem_daemon_last_cycle (VmemDaemon *daemon, VmemDaemonCycleFigures *figures);
/* Writes queued for the store and not yet done. */
guint       vmem_daemon_store_pending (VmemDaemon *daemon);
/* Domains known, once the first full read of libvirt's is done; 0 before. */
guint       vmem_daemon_n_domains (VmemDaemon *daemon);

G_END_DECLS
