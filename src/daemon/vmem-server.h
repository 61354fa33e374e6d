/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Varlink server on the GLib main loop: non-blocking Unix sockets, peer
 * credentials, limits on message size, clients and request time. */

#include <glib.h>
#include <json-c/json.h>

G_BEGIN_DECLS

typedef struct _VmemServer VmemServer;
typedef struct _VmemCall   VmemCall;

typedef enum {
  VMEM_METHOD_ADMIN = 1 << 0, /* uid 0 or a member of the admin group */
  VMEM_METHOD_ROOT  = 1 << 1, /* uid 0 only */
} VmemMethodFlags;

typedef struct {
  gsize max_message;       /* bytes; default 1 MiB */
  guint max_clients;       /* default 64 */
  guint request_timeout_s; /* a started message must complete within; default 10 */
} VmemServerLimits;

/* A handler replies exactly once, now or later (holding a reference). */
typedef void (*VmemMethodFunc) (VmemCall *call, json_object *parameters, gpointer user_data);

VmemServer *vmem_server_new (const VmemServerLimits *limits);
void        vmem_server_free (VmemServer *server);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemServer, vmem_server_free)

/* Binds @path (mode, and group when given and known).  A stale socket file is
 * replaced; a live one (another daemon answers) is an error. */
gboolean vmem_server_listen (VmemServer *server, const char *path, guint mode,
                             const char *group, GError **error);
/* Serves an already listening socket (systemd socket activation). */
gboolean vmem_server_adopt_fd (VmemServer *server, int fd, GError **error);

void     vmem_server_set_admin_group (VmemServer *server, const char *group);
void     vmem_server_add_interface (VmemServer *server, const char *name, const char *description);
void     vmem_server_add_method (VmemServer *server, const char *method, VmemMethodFlags flags,
                                 VmemMethodFunc func, gpointer user_data);
guint    vmem_server_n_clients (VmemServer *server);

VmemCall   *vmem_call_ref (VmemCall *call);
void        vmem_call_unref (VmemCall *call);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemCall, vmem_call_unref)
/* Reply parameters (transfer full, NULL = empty).  A no-op when the client
 * has gone or the call was oneway. */
void        vmem_call_reply (VmemCall *call, json_object *parameters);
void        vmem_call_return_error (VmemCall *call, const GError *error);
void        vmem_call_return_varlink_error (VmemCall *call, const char *name, json_object *parameters);
const char *vmem_call_get_method (VmemCall *call);
uid_t       vmem_call_get_peer_uid (VmemCall *call);
pid_t       vmem_call_get_peer_pid (VmemCall *call);

G_END_DECLS
