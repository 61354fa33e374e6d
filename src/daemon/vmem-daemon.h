/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

#include "vmem-config.h"

G_BEGIN_DECLS

typedef struct _VmemDaemon VmemDaemon;

/* Opens the store.  Takes ownership of @config. */
VmemDaemon *vmem_daemon_new (VmemConfig *config, GError **error);
void        vmem_daemon_free (VmemDaemon *daemon);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemDaemon, vmem_daemon_free)

/* Listens (on @listen_fd when socket-activated, else on the configured
 * path) and starts connecting to libvirt. */
gboolean    vmem_daemon_start (VmemDaemon *daemon, int listen_fd, GError **error);

/* SIGHUP: applies what can change at run time (log level, intervals,
 * admission, hook and estimator settings); a change of socket, database or
 * libvirt URI needs a restart and is refused with a message. Takes
 * ownership of @config. */
gboolean    vmem_daemon_reload (VmemDaemon *daemon, VmemConfig *config, GError **error);

G_END_DECLS
