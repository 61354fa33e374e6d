/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-varlink.h"
#include "vmem-cleanup.h"
#include "vmem-error.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct _VmemVarlinkFramer {
  GByteArray *buf;
  gsize       start;    /* first byte not yet popped */
  gsize       tail;     /* bytes after the last NUL: the message being received */
  gsize       complete; /* NUL-terminated messages waiting to be popped */
  gsize       max;
  gboolean    broken;
};

VmemVarlinkFramer *
vmem_varlink_framer_new (gsize max_message)
{
  VmemVarlinkFramer *f = g_new0 (VmemVarlinkFramer, 1);
  f->buf = g_byte_array_new ();
  f->max = max_message;
  return f;
}

void
vmem_varlink_framer_free (VmemVarlinkFramer *f)
{
  if (f == NULL)
    return;
  g_byte_array_unref (f->buf);
  g_free (f);
}

static gboolean
framer_fail (VmemVarlinkFramer *f, GError **error)
{
  f->broken = TRUE;
  g_set_error (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL,
               "message larger than %" G_GSIZE_FORMAT " bytes", f->max);
  return FALSE;
}

gboolean
vmem_varlink_framer_feed (VmemVarlinkFramer *f, const char *data, gsize len, GError **error)
{
  if (f->broken)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL, "connection already failed");
      return FALSE;
    }
  /* Only the new bytes are scanned, so feeding a large message in small
   * pieces stays linear.  Every message must fit in the limit, including
   * ones that begin and end inside this chunk. */
  const char *p = data;
  const char *end = data + len;
  gsize run = f->tail;
  for (;;)
    {
      const char *nul = memchr (p, '\0', (gsize) (end - p));
      gsize piece = (gsize) ((nul ? nul : end) - p);
      if (run + piece > f->max)
        return framer_fail (f, error);
      if (nul == NULL)
        {
          f->tail = run + piece;
          break;
        }
      f->complete++;
      run = 0;
      p = nul + 1;
    }
  g_byte_array_append (f->buf, (const guint8 *) data, (guint) len);
  return TRUE;
}

gsize
vmem_varlink_framer_get_n_complete (VmemVarlinkFramer *f)
{
  return f->broken ? 0 : f->complete;
}

gsize
vmem_varlink_framer_get_partial (VmemVarlinkFramer *f)
{
  return f->tail;
}

static gboolean
only_space (const char *s, gsize len)
{
  for (gsize i = 0; i < len; i++)
    if (!g_ascii_isspace (s[i]))
      return FALSE;
  return TRUE;
}

static json_object *
parse_message (const char *msg, gsize len, GError **error)
{
  if (len == 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL, "malformed message: empty");
      return NULL;
    }
  if (!g_utf8_validate_len (msg, len, NULL))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL, "malformed message: not valid UTF-8");
      return NULL;
    }

  g_autoptr(json_tokener) tok = json_tokener_new ();
  json_tokener_set_flags (tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
  /* The terminating NUL goes in too: it tells json-c the input ends, so
   * that a bare number is complete rather than awaiting more digits. */
  g_autoptr(json_object) obj = json_tokener_parse_ex (tok, msg, (int) len + 1);
  enum json_tokener_error jerr = json_tokener_get_error (tok);
  if (jerr == json_tokener_continue)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL, "malformed message: truncated JSON");
      return NULL;
    }
  if (jerr != json_tokener_success)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL, "malformed message: %s",
                   json_tokener_error_desc (jerr));
      return NULL;
    }
  gsize used = MIN (json_tokener_get_parse_end (tok), len);
  if (!only_space (msg + used, len - used))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL,
                   "malformed message: trailing data after the JSON value");
      return NULL;
    }
  if (!json_object_is_type (obj, json_type_object))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL,
                   "malformed message: %s instead of a JSON object",
                   obj == NULL ? "null" : json_type_to_name (json_object_get_type (obj)));
      return NULL;
    }
  return g_steal_pointer (&obj);
}

json_object *
vmem_varlink_framer_pop (VmemVarlinkFramer *f, GError **error)
{
  if (f->broken || f->complete == 0)
    return NULL;

  const char *msg = (const char *) f->buf->data + f->start;
  gsize len = strlen (msg); /* a NUL is known to follow */
  json_object *obj = parse_message (msg, len, error);

  f->complete--;
  f->start += len + 1;
  /* Drop consumed bytes in bulk, not per message. */
  if (f->start == f->buf->len)
    {
      g_byte_array_set_size (f->buf, 0);
      f->start = 0;
    }
  else if (f->start > 65536 && f->start > f->buf->len / 2)
    {
      g_byte_array_remove_range (f->buf, 0, (guint) f->start);
      f->start = 0;
    }
  return obj;
}

GBytes *
vmem_varlink_encode (json_object *msg)
{
  size_t len = 0;
  /* Slashes as they are: a domain XML is full of them. */
  const char *s = json_object_to_json_string_length (
    msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
  char *out = g_malloc (len + 1);
  memcpy (out, s, len);
  out[len] = '\0';
  return g_bytes_new_take (out, len + 1);
}

json_object *
vmem_varlink_new_call (const char *method, json_object *parameters)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "method", json_object_new_string (method));
  json_object_object_add (o, "parameters", parameters ? parameters : json_object_new_object ());
  return o;
}

json_object *
vmem_varlink_new_reply (json_object *parameters)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "parameters", parameters ? parameters : json_object_new_object ());
  return o;
}

json_object *
vmem_varlink_new_error (const char *error_name, const char *message)
{
  json_object *o = json_object_new_object ();
  json_object *p = json_object_new_object ();
  json_object_object_add (o, "error", json_object_new_string (error_name));
  if (message != NULL)
    json_object_object_add (p, "message", json_object_new_string (message));
  json_object_object_add (o, "parameters", p);
  return o;
}

json_object *
vmem_varlink_new_error_from_gerror (const GError *error)
{
  return vmem_varlink_new_error (vmem_error_to_varlink (error), error->message);
}

/* ---- client ----------------------------------------------------------- */

static int
remaining_ms (gint64 deadline)
{
  /* Round up so that a sub-millisecond remainder still polls once. */
  gint64 left = (deadline - g_get_monotonic_time () + 999) / 1000;
  return left < 0 ? 0 : (int) MIN (left, G_MAXINT);
}

static void
set_timeout_error (GError **error, const char *what, int timeout_ms)
{
  g_set_error (error, VMEM_ERROR, VMEM_ERROR_TIMEOUT, "no answer from vmemd within %d ms (%s)",
               timeout_ms, what);
}

/* Waits for @events until @deadline; poll's EINTR only costs a retry. */
static gboolean
wait_fd (int fd, short events, gint64 deadline, int timeout_ms, const char *what, GError **error)
{
  for (;;)
    {
      struct pollfd p = { .fd = fd, .events = events };
      int r = poll (&p, 1, remaining_ms (deadline));
      if (r > 0)
        return TRUE;
      if (r == 0)
        {
          set_timeout_error (error, what, timeout_ms);
          return FALSE;
        }
      if (errno != EINTR)
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "poll: %s", g_strerror (errno));
          return FALSE;
        }
    }
}

static void
set_errno_error (GError **error, int err, const char *what, const char *path)
{
  VmemErrorCode code = VMEM_ERROR_UNAVAILABLE;
  if (err == EACCES || err == EPERM)
    code = VMEM_ERROR_PERMISSION_DENIED;
  g_set_error (error, VMEM_ERROR, code, "%s %s: %s", what, path, g_strerror (err));
}

static gboolean
client_connect (int sock, const char *path, const struct sockaddr_un *addr, gint64 deadline,
                int timeout_ms, GError **error)
{
  for (;;)
    {
      if (connect (sock, (const struct sockaddr *) addr, sizeof *addr) == 0)
        return TRUE;
      /* A Unix socket answers EAGAIN when the listener's backlog is full:
       * the daemon is alive but busy, so retry until the deadline. */
      if (errno == EAGAIN)
        {
          if (remaining_ms (deadline) == 0)
            {
              set_timeout_error (error, "connection backlog full", timeout_ms);
              return FALSE;
            }
          g_usleep (MIN (10, remaining_ms (deadline)) * 1000);
          continue;
        }
      if (errno == EINPROGRESS || errno == EINTR)
        {
          if (!wait_fd (sock, POLLOUT, deadline, timeout_ms, "connecting", error))
            return FALSE;
          int soerr = 0;
          socklen_t sl = sizeof soerr;
          if (getsockopt (sock, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
          if (soerr == 0)
            return TRUE;
          set_errno_error (error, soerr, "cannot connect to", path);
          return FALSE;
        }
      set_errno_error (error, errno, "cannot connect to", path);
      return FALSE;
    }
}

static gboolean
client_send_all (int sock, const char *data, gsize len, gint64 deadline, int timeout_ms,
                 GError **error)
{
  gsize off = 0;
  while (off < len)
    {
      ssize_t n = send (sock, data + off, len - off, MSG_NOSIGNAL);
      if (n >= 0)
        {
          off += (gsize) n;
          continue;
        }
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        {
          if (!wait_fd (sock, POLLOUT, deadline, timeout_ms, "sending the call", error))
            return FALSE;
          continue;
        }
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE, "cannot send to vmemd: %s",
                   g_strerror (errno));
      return FALSE;
    }
  return TRUE;
}

/* Turns one reply message into the call's result. */
static json_object *
reply_to_result (json_object *reply, GError **error)
{
  json_object *err = NULL, *params = NULL, *more = NULL;

  if (json_object_object_get_ex (reply, "parameters", &params) &&
      !json_object_is_type (params, json_type_object))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL,
                   "bad reply from vmemd: \"parameters\" is not an object");
      return NULL;
    }
  if (json_object_object_get_ex (reply, "continues", &more) && json_object_get_boolean (more))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL,
                   "bad reply from vmemd: \"continues\" on a call that did not ask for more");
      return NULL;
    }
  if (!json_object_object_get_ex (reply, "error", &err))
    return params ? json_object_get (params) : json_object_new_object ();

  if (!json_object_is_type (err, json_type_string) || *json_object_get_string (err) == '\0')
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL,
                   "bad reply from vmemd: \"error\" is not an error name");
      return NULL;
    }
  const char *name = json_object_get_string (err);
  json_object *field = NULL;
  g_autofree char *text = NULL;
  if (params != NULL && json_object_object_get_ex (params, "message", &field) &&
      json_object_is_type (field, json_type_string))
    text = g_strdup (json_object_get_string (field));
  /* org.varlink.service errors carry the name of what was wrong instead. */
  else if (params != NULL && json_object_object_get_ex (params, "parameter", &field))
    text = g_strdup_printf ("%s: invalid parameter '%s'", name, json_object_get_string (field));
  else if (params != NULL && json_object_object_get_ex (params, "method", &field))
    text = g_strdup_printf ("%s: %s", name, json_object_get_string (field));
  else if (params != NULL && json_object_object_get_ex (params, "interface", &field))
    text = g_strdup_printf ("%s: %s", name, json_object_get_string (field));
  else
    text = g_strdup (name);
  g_set_error (error, VMEM_ERROR, vmem_error_from_varlink (name), "%s", text);
  return NULL;
}

/* Connects to @socket_path and sends @method with @parameters, both
 * within @deadline; returns the socket, or -1 with @error set.  A send
 * cut short because the server hung up is left in *send_error: the
 * server may have said why before it did. */
static int
client_open (const char *socket_path, const char *method, json_object *parameters, gboolean oneway,
             gint64 deadline, int timeout_ms, gsize max_message, GError **send_error,
             GError **error)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };

  if (*socket_path == '\0' || strlen (socket_path) >= sizeof addr.sun_path)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "socket path is empty or longer than %zu bytes: '%s'",
                   sizeof addr.sun_path - 1, socket_path);
      return -1;
    }
  strcpy (addr.sun_path, socket_path);

  g_autoptr(json_object) call =
    vmem_varlink_new_call (method, parameters ? json_object_get (parameters) : NULL);
  if (oneway)
    json_object_object_add (call, "oneway", json_object_new_boolean (TRUE));
  g_autoptr(GBytes) bytes = vmem_varlink_encode (call);
  gsize len = 0;
  const char *data = g_bytes_get_data (bytes, &len);
  if (len - 1 > max_message)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s: call is %zu bytes, more than the %zu byte limit", method, len - 1,
                   max_message);
      return -1;
    }

  vmem_autofd int sock = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (sock < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "socket: %s", g_strerror (errno));
      return -1;
    }
  if (!client_connect (sock, socket_path, &addr, deadline, timeout_ms, error))
    return -1;
  if (!client_send_all (sock, data, len, deadline, timeout_ms, send_error) &&
      !g_error_matches (*send_error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE))
    {
      g_propagate_error (error, g_steal_pointer (send_error));
      return -1;
    }
  return g_steal_fd (&sock);
}

gboolean
vmem_varlink_send_oneway (const char *socket_path, const char *method, json_object *parameters,
                          int timeout_ms, gsize max_message, GError **error)
{
  g_return_val_if_fail (socket_path != NULL && method != NULL, FALSE);

  timeout_ms = MAX (timeout_ms, 1);
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  g_autoptr(GError) send_error = NULL;
  vmem_autofd int sock = client_open (socket_path, method, parameters, TRUE, deadline, timeout_ms,
                                      max_message, &send_error, error);
  if (sock < 0)
    return FALSE;
  if (send_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&send_error));
      return FALSE;
    }
  return TRUE;
}

json_object *
vmem_varlink_call (const char *socket_path, const char *method, json_object *parameters,
                   int timeout_ms, GError **error)
{
  return vmem_varlink_call_sized (socket_path, method, parameters, timeout_ms,
                                  VMEM_VARLINK_MAX_MESSAGE, error);
}

json_object *
vmem_varlink_call_sized (const char *socket_path, const char *method, json_object *parameters,
                         int timeout_ms, gsize max_message, GError **error)
{
  g_return_val_if_fail (socket_path != NULL && method != NULL, NULL);

  timeout_ms = MAX (timeout_ms, 1);
  gint64 deadline = g_get_monotonic_time () + (gint64) timeout_ms * 1000;
  /* A server that turns a client away (too many clients, bad message) says
   * why and hangs up, maybe before the call is out: read its reason rather
   * than report a broken pipe. */
  g_autoptr(GError) send_error = NULL;
  vmem_autofd int sock = client_open (socket_path, method, parameters, FALSE, deadline, timeout_ms,
                                      max_message, &send_error, error);
  if (sock < 0)
    return NULL;

  g_autoptr(VmemVarlinkFramer) framer = vmem_varlink_framer_new (max_message);
  for (;;)
    {
      if (vmem_varlink_framer_get_n_complete (framer) > 0)
        {
          g_autoptr(GError) perr = NULL;
          g_autoptr(json_object) reply = vmem_varlink_framer_pop (framer, &perr);
          if (reply == NULL)
            {
              g_propagate_prefixed_error (error, g_steal_pointer (&perr), "bad reply from vmemd: ");
              return NULL;
            }
          return reply_to_result (reply, error);
        }

      if (!wait_fd (sock, POLLIN, deadline, timeout_ms, "waiting for the reply", error))
        return NULL;
      char buf[16384];
      ssize_t n = recv (sock, buf, sizeof buf, 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        continue;
      if (n <= 0 && send_error != NULL)
        {
          g_propagate_error (error, g_steal_pointer (&send_error));
          return NULL;
        }
      if (n < 0)
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE, "cannot read from vmemd: %s",
                       g_strerror (errno));
          return NULL;
        }
      if (n == 0)
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE,
                       vmem_varlink_framer_get_partial (framer) > 0
                         ? "vmemd closed the connection in the middle of its reply"
                         : "vmemd closed the connection without a reply");
          return NULL;
        }
      if (!vmem_varlink_framer_feed (framer, buf, (gsize) n, error))
        {
          g_prefix_error (error, "bad reply from vmemd: ");
          return NULL;
        }
    }
}
