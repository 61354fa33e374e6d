/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Varlink wire format shared by the daemon, vmemctl and the hook:
 * NUL-terminated JSON objects over a Unix stream socket.
 *   call:  {"method":"io.vmemd.ProfileGet","parameters":{...}}
 *   reply: {"parameters":{...}}  or  {"error":"io.vmemd.NotFound","parameters":{"message":"..."}}
 * Every vmemd error reply carries parameters.message, one human line. */

#include <glib.h>
#include <json-c/json.h>

#include "vmem-shared.h"

G_BEGIN_DECLS

/* Incremental framing: feed bytes as they arrive, pop complete messages. */
typedef struct _VmemVarlinkFramer VmemVarlinkFramer;

VmemVarlinkFramer *vmem_varlink_framer_new (gsize max_message);
void               vmem_varlink_framer_free (VmemVarlinkFramer *framer);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemVarlinkFramer, vmem_varlink_framer_free)

/* Appends bytes.  Fails (VMEM_ERROR_PROTOCOL) once the pending, unterminated
 * message exceeds the limit; the framer is then unusable. */
gboolean vmem_varlink_framer_feed (VmemVarlinkFramer *framer,
                                   const char        *data,
                                   gsize              len,
                                   GError           **error);

/* Pops the next complete message as a parsed JSON object.  Returns NULL with
 * no error when no complete message is pending; NULL with
 * VMEM_ERROR_PROTOCOL when the message is not a JSON object (empty, not
 * UTF-8, not JSON, or another JSON value).  A bad message is consumed: the
 * framer stays usable, but the caller should drop the connection. */
json_object *vmem_varlink_framer_pop (VmemVarlinkFramer *framer, GError **error);

/* Complete messages waiting to be popped. */
gsize vmem_varlink_framer_get_n_complete (VmemVarlinkFramer *framer);
/* Bytes of a message begun but not yet terminated (0 between messages). */
gsize vmem_varlink_framer_get_partial (VmemVarlinkFramer *framer);

/* Serialises @msg (not consumed) plus the terminating NUL. */
GBytes *vmem_varlink_encode (json_object *msg);

/* Builders (return new references). */
json_object *vmem_varlink_new_call (const char *method, json_object *parameters /* transfer full, may be NULL */);
json_object *vmem_varlink_new_reply (json_object *parameters /* transfer full, may be NULL */);
json_object *vmem_varlink_new_error (const char *error_name, const char *message);
json_object *vmem_varlink_new_error_from_gerror (const GError *error);

/* Client: connect to @socket_path, send one call, wait for its reply.  The
 * whole exchange (connect, send, receive) is bounded by @timeout_ms
 * (VMEM_ERROR_TIMEOUT).  A varlink error reply becomes a GError whose code is
 * vmem_error_from_varlink(name) and whose message is parameters.message (or
 * the error name).  Returns the reply's parameters (a new reference; an
 * empty object when the reply had none).  Plain POSIX: no main loop, usable
 * from the hook. */
json_object *vmem_varlink_call (const char  *socket_path,
                                const char  *method,
                                json_object *parameters /* transfer none, may be NULL */,
                                int          timeout_ms,
                                GError     **error);

/* The same with a size limit other than VMEM_VARLINK_MAX_MESSAGE, for the
 * call (VMEM_ERROR_INVALID_ARGUMENT when it is longer) and for the reply. */
json_object *vmem_varlink_call_sized (const char  *socket_path,
                                      const char  *method,
                                      json_object *parameters,
                                      int          timeout_ms,
                                      gsize        max_message,
                                      GError     **error);

/* Sends one call marked "oneway": the server runs it and answers nothing,
 * and nothing is waited for here: connecting and handing the call to the
 * socket are bounded by @timeout_ms (VMEM_ERROR_TIMEOUT), then the
 * connection is closed.  Success means the whole call reached the
 * server's socket, not that the server has read it, or ever will. */
gboolean     vmem_varlink_send_oneway (const char  *socket_path,
                                       const char  *method,
                                       json_object *parameters /* transfer none, may be NULL */,
                                       int          timeout_ms,
                                       gsize        max_message,
                                       GError     **error);

G_END_DECLS
