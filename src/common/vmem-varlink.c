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

gboolean
vmem_varlink_framer_feed (VmemVarlinkFramer *f, const char *data, gsize len, GError **error)
{
  if (f->broken)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL, "connection already failed");
      return FALSE;
    }
  g_byte_array_append (f->buf, (const guint8 *) data, (guint) len);
  /* Only the unterminated tail counts against the limit. */
  const guint8 *last_nul = memrchr (f->buf->data, '\0', f->buf->len);
  gsize tail = last_nul ? f->buf->len - (gsize) (last_nul - f->buf->data) - 1 : f->buf->len;
  if (tail > f->max)
    {
      f->broken = TRUE;
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL,
                   "message larger than %" G_GSIZE_FORMAT " bytes", f->max);
      return FALSE;
    }
  return TRUE;
}

json_object *
vmem_varlink_framer_pop (VmemVarlinkFramer *f, GError **error)
{
  const guint8 *nul = memchr (f->buf->data, '\0', f->buf->len);
  if (nul == NULL)
    return NULL;
  gsize len = (gsize) (nul - f->buf->data);
  if (len > f->max)
    {
      f->broken = TRUE;
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL,
                   "message larger than %" G_GSIZE_FORMAT " bytes", f->max);
      return NULL;
    }

  g_autoptr(json_tokener) tok = json_tokener_new ();
  json_object *obj = json_tokener_parse_ex (tok, (const char *) f->buf->data, (int) len);
  enum json_tokener_error jerr = json_tokener_get_error (tok);
  gboolean complete = obj != NULL && jerr == json_tokener_success &&
                      json_tokener_get_parse_end (tok) == len;
  g_byte_array_remove_range (f->buf, 0, (guint) len + 1);
  if (!complete || !json_object_is_type (obj, json_type_object))
    {
      vmem_json_put (obj);
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL, "malformed message: %s",
                   len == 0 ? "empty"
                   : jerr != json_tokener_success ? json_tokener_error_desc (jerr)
                   : obj == NULL ? "not JSON" : "not a JSON object");
      return NULL;
    }
  return obj;
}

GBytes *
vmem_varlink_encode (json_object *msg)
{
  size_t len = 0;
  const char *s = json_object_to_json_string_length (msg, JSON_C_TO_STRING_PLAIN, &len);
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
  gint64 left = (deadline - g_get_monotonic_time ()) / 1000;
  return left < 0 ? 0 : (int) MIN (left, G_MAXINT);
}

static gboolean
wait_fd (int fd, short events, gint64 deadline, const char *what, GError **error)
{
  for (;;)
    {
      struct pollfd p = { .fd = fd, .events = events };
      int ms = remaining_ms (deadline);
      int r = poll (&p, 1, ms);
      if (r > 0)
        return TRUE;
      if (r == 0)
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_TIMEOUT, "timed out %s", what);
          return FALSE;
        }
      if (errno != EINTR)
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE, "poll: %s", g_strerror (errno));
          return FALSE;
        }
    }
}

json_object *
vmem_varlink_call (const char *socket_path, const char *method, json_object *parameters,
                   int timeout_ms, GError **error)
{
  gint64 deadline = g_get_monotonic_time () + (gint64) MAX (timeout_ms, 1) * 1000;
  struct sockaddr_un addr = { .sun_family = AF_UNIX };

  if (strlen (socket_path) >= sizeof addr.sun_path)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "socket path too long: %s",
                   socket_path);
      return NULL;
    }
  strcpy (addr.sun_path, socket_path);

  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE, "socket: %s", g_strerror (errno));
      return NULL;
    }
  vmem_autofd int sock = fd;

  if (connect (sock, (struct sockaddr *) &addr, sizeof addr) < 0)
    {
      if (errno != EINPROGRESS && errno != EAGAIN)
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE, "cannot connect to %s: %s",
                       socket_path, g_strerror (errno));
          return NULL;
        }
      if (!wait_fd (sock, POLLOUT, deadline, "connecting to vmemd", error))
        return NULL;
      int soerr = 0;
      socklen_t sl = sizeof soerr;
      getsockopt (sock, SOL_SOCKET, SO_ERROR, &soerr, &sl);
      if (soerr != 0)
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE, "cannot connect to %s: %s",
                       socket_path, g_strerror (soerr));
          return NULL;
        }
    }

  g_autoptr(json_object) call = vmem_varlink_new_call (method, parameters ? json_object_get (parameters) : NULL);
  g_autoptr(GBytes) bytes = vmem_varlink_encode (call);
  gsize len = 0;
  const char *data = g_bytes_get_data (bytes, &len);
  gsize off = 0;
  while (off < len)
    {
      ssize_t n = send (sock, data + off, len - off, MSG_NOSIGNAL);
      if (n > 0)
        {
          off += (gsize) n;
          continue;
        }
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        {
          if (!wait_fd (sock, POLLOUT, deadline, "sending to vmemd", error))
            return NULL;
          continue;
        }
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE, "cannot send to vmemd: %s",
                   g_strerror (errno));
      return NULL;
    }

  g_autoptr(VmemVarlinkFramer) framer = vmem_varlink_framer_new (VMEM_VARLINK_MAX_MESSAGE);
  for (;;)
    {
      g_autoptr(GError) perr = NULL;
      g_autoptr(json_object) reply = vmem_varlink_framer_pop (framer, &perr);
      if (perr != NULL)
        {
          g_propagate_prefixed_error (error, g_steal_pointer (&perr), "bad reply from vmemd: ");
          return NULL;
        }
      if (reply != NULL)
        {
          json_object *err = NULL, *params = NULL;
          json_object_object_get_ex (reply, "parameters", &params);
          if (params != NULL && !json_object_is_type (params, json_type_object))
            {
              g_set_error (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL,
                           "bad reply from vmemd: parameters is not an object");
              return NULL;
            }
          if (json_object_object_get_ex (reply, "error", &err))
            {
              const char *name = json_object_get_string (err);
              json_object *msg = NULL;
              g_autofree char *text = NULL;
              if (params != NULL && json_object_object_get_ex (params, "message", &msg) &&
                  json_object_is_type (msg, json_type_string))
                text = g_strdup (json_object_get_string (msg));
              else if (params != NULL && json_object_object_get_ex (params, "parameter", &msg))
                text = g_strdup_printf ("%s: invalid parameter '%s'", name,
                                        json_object_get_string (msg));
              else if (params != NULL && json_object_object_get_ex (params, "method", &msg))
                text = g_strdup_printf ("%s: %s", name, json_object_get_string (msg));
              else
                text = g_strdup (name);
              g_set_error (error, VMEM_ERROR, vmem_error_from_varlink (name), "%s", text);
              return NULL;
            }
          return params ? json_object_get (params) : json_object_new_object ();
        }

      if (!wait_fd (sock, POLLIN, deadline, "waiting for vmemd's reply", error))
        return NULL;
      char buf[16384];
      ssize_t n = recv (sock, buf, sizeof buf, 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        continue;
      if (n < 0)
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE, "cannot read from vmemd: %s",
                       g_strerror (errno));
          return NULL;
        }
      if (n == 0)
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE,
                       "vmemd closed the connection without a reply");
          return NULL;
        }
      if (!vmem_varlink_framer_feed (framer, buf, (gsize) n, error))
        return NULL;
    }
}
