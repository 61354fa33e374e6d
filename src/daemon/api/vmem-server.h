/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Varlink server on the GLib main loop (the thread-default main context of
 * the thread that calls vmem_server_listen/adopt_fd).
 *
 * Protocol: NUL-terminated JSON objects on a Unix stream socket.  Besides
 * the registered methods it answers org.varlink.service.GetInfo and
 * GetInterfaceDescription, so varlinkctl works.
 *   - A method of an interface the server does not have gets
 *     org.varlink.service.InterfaceNotFound {interface}; an unknown method
 *     of one it has gets org.varlink.service.MethodNotFound {method};
 *     a call without a string "method", with "parameters" that is not an
 *     object, or with a non-boolean flag gets
 *     org.varlink.service.InvalidParameter {parameter}.
 *   - "oneway": true runs the method and sends no reply (not even an error).
 *   - "more": true and "upgrade": true are not supported: they get
 *     org.varlink.service.InvalidParameter {parameter: "more"/"upgrade"}.
 *   - The calls of one connection are answered in order: the next message
 *     is read only once the current call has replied and the reply has been
 *     written out.  That also bounds what a client can make the daemon hold.
 *   - A message that is not a JSON object, or is longer than max_message
 *     (max_root_message for uid 0), gets io.vmemd.ProtocolError {message},
 *     then the connection is closed.
 *   - With max_clients connections open, a new one gets io.vmemd.Busy and
 *     is closed, unless it comes from root (the hook, vmemctl run as root):
 *     root_clients more are kept for root.
 *   - A client that leaves a message unfinished, or its reply unread, for
 *     request_timeout_s is dropped (an unfinished message first gets
 *     io.vmemd.Timeout); one that has sent nothing for silent_timeout_s
 *     since it connected, or nothing more for idle_timeout_s since its
 *     last call, is closed.
 *   - Method flags are checked against the peer credentials taken at
 *     accept (SO_PEERCRED, SO_PEERGROUPS); a refused call gets
 *     io.vmemd.PermissionDenied {message}.
 * No client can block the main loop: all I/O is non-blocking and buffered. */

#include <glib.h>
#include <json-c/json.h>
#include <sys/types.h>

G_BEGIN_DECLS

typedef struct _VmemServer VmemServer;
typedef struct _VmemCall   VmemCall;

typedef enum {
  /* No flag: any user who can connect (the socket is world-connectable). */
  VMEM_METHOD_ADMIN = 1 << 0, /* uid 0, or the admin group as primary or supplementary group */
  VMEM_METHOD_ROOT  = 1 << 1, /* uid 0 only */
} VmemMethodFlags;

/* Zero fields take the default. */
typedef struct {
  gsize max_message;       /* bytes of one message, NUL excluded; default 1 MiB */
  gsize max_root_message;  /* the same for uid 0 (the hook), at least max_message;
                              default VMEM_VARLINK_MAX_ROOT_MESSAGE */
  guint max_clients;       /* connections at once; default 64 */
  guint root_clients;      /* more connections kept for uid 0; default 16 */
  guint request_timeout_s; /* to finish a begun message or take a reply; default 10 */
  guint idle_timeout_s;    /* a connection doing nothing between calls is closed after;
                              default 60 */
  guint silent_timeout_s;  /* a new connection that sends nothing is closed after; default 5 */
} VmemServerLimits;

/* Called for an authorised call.  @parameters is never NULL (an empty
 * object when the call had none) and belongs to the caller of the handler:
 * take a reference to keep it.  The handler replies exactly once, before it
 * returns or later while holding a reference on @call, always from the
 * thread that runs the server's main context. */
typedef void (*VmemMethodFunc) (VmemCall *call, json_object *parameters, gpointer user_data);

VmemServer *vmem_server_new (const VmemServerLimits *limits /* may be NULL */);
/* Replaces the limits (zero fields take the default); connections already
 * open follow them from their next step on. */
void        vmem_server_set_limits (VmemServer *server, const VmemServerLimits *limits);
/* Closes every connection (pending calls stay valid; their replies go
 * nowhere) and removes the socket file that vmem_server_listen created. */
void        vmem_server_free (VmemServer *server);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemServer, vmem_server_free)

/* Binds and listens on @path with @mode, creating the parent directory.
 * When @group is given the socket is chowned to it and it becomes the
 * admin group (see vmem_server_set_admin_group).  A socket file nobody
 * answers on is replaced; one where a server answers is an error. */
gboolean vmem_server_listen (VmemServer *server, const char *path, guint mode,
                             const char *group, GError **error);
/* Serves an already listening socket (systemd socket activation); the
 * server owns @fd from then on but never removes the socket file. */
gboolean vmem_server_adopt_fd (VmemServer *server, int fd, GError **error);

/* Group whose members may call VMEM_METHOD_ADMIN methods; default "vmemd".
 * Resolved now: a group that does not exist leaves admin methods to root. */
void     vmem_server_set_admin_group (VmemServer *server, const char *group);
/* @description is the interface's varlink IDL text, returned by
 * org.varlink.service.GetInterfaceDescription. */
void     vmem_server_add_interface (VmemServer *server, const char *name, const char *description);
/* @method is the full name, "io.vmemd.Ping". */
void     vmem_server_add_method (VmemServer *server, const char *method, VmemMethodFlags flags,
                                 VmemMethodFunc func, gpointer user_data);
guint    vmem_server_n_clients (VmemServer *server);

VmemCall   *vmem_call_ref (VmemCall *call);
void        vmem_call_unref (VmemCall *call);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemCall, vmem_call_unref)

/* Replies (parameters: transfer full, NULL = empty object).  A no-op when
 * the client has gone or the call was oneway.  A reply larger than the
 * client's message limit is replaced by an io.vmemd.Failed error. */
void        vmem_call_reply (VmemCall *call, json_object *parameters);
/* Replies with the varlink name of @error and parameters {message}. */
void        vmem_call_return_error (VmemCall *call, const GError *error);
/* Replies with any varlink error (parameters: transfer full, NULL = empty). */
void        vmem_call_return_varlink_error (VmemCall *call, const char *name, json_object *parameters);

const char *vmem_call_get_method (VmemCall *call);
/* When the server took the call's message in (monotonic µs). */
gint64      vmem_call_get_received (VmemCall *call);
/* Peer credentials at connect time (still valid after the client left). */
uid_t       vmem_call_get_peer_uid (VmemCall *call);
gid_t       vmem_call_get_peer_gid (VmemCall *call);
pid_t       vmem_call_get_peer_pid (VmemCall *call);
/* FALSE once the client has disconnected, or closed its end of the
 * connection even with its call still unread: a long job may stop early,
 * and a call whose caller has given up need not act. */
gboolean    vmem_call_is_connected (VmemCall *call);

G_END_DECLS
