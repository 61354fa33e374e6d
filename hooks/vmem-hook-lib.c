/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-hook-lib.h"
#include "vmem-cleanup.h"
#include "vmem-config.h"
#include "vmem-error.h"
#include "vmem-varlink.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#define MAX_XML (16 * 1024 * 1024)

char *
vmem_hook_find_uuid (const char *xml)
{
  const char *s = xml ? strstr (xml, "<uuid>") : NULL;
  if (s == NULL)
    return NULL;
  s += strlen ("<uuid>");
  const char *e = strstr (s, "</uuid>");
  if (e == NULL || e - s > 64)
    return NULL;
  return g_strstrip (g_strndup (s, (gsize) (e - s)));
}

/* Reads stdin until EOF or the deadline; libvirt writes the XML and closes. */
static char *
read_input (int fd, gint64 deadline)
{
  GString *s = g_string_new (NULL);
  int flags = fcntl (fd, F_GETFL);
  if (flags >= 0)
    fcntl (fd, F_SETFL, flags | O_NONBLOCK);
  for (;;)
    {
      char buf[65536];
      ssize_t n = read (fd, buf, sizeof buf);
      if (n > 0)
        {
          if (s->len + (gsize) n > MAX_XML)
            break;
          g_string_append_len (s, buf, n);
          continue;
        }
      if (n == 0)
        break;
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN)
        break;
      gint64 left = (deadline - g_get_monotonic_time ()) / 1000;
      if (left <= 0)
        break;
      struct pollfd p = { .fd = fd, .events = POLLIN };
      if (poll (&p, 1, (int) left) <= 0)
        break;
    }
  return g_string_free (s, FALSE);
}

static void
say (int fd, const char *line)
{
  g_autofree char *l = g_strdup_printf ("%s\n", line);
  gsize len = strlen (l), off = 0;
  while (off < len)
    {
      ssize_t n = write (fd, l + off, len - off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return;
      off += (gsize) n;
    }
}

int
vmem_hook_run (int argc, char **argv, int in_fd, int out_fd, int err_fd)
{
  if (argc < 3)
    {
      say (err_fd, "usage: vmem-hook DOMAIN OP SUBOP [EXTRA] < domain.xml (run by libvirtd)");
      return 2;
    }
  const char *domain = argv[1], *op = argv[2];
  const char *subop = argc > 3 ? argv[3] : "-";
  const char *extra = argc > 4 ? argv[4] : NULL;

  openlog ("vmem-hook", LOG_PID, LOG_DAEMON);
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemConfig) config = vmem_config_load (vmem_config_default_path (), FALSE, &error);
  if (config == NULL)
    {
      /* A broken config must not stop VMs: use the defaults, and say so. */
      syslog (LOG_WARNING, "%s; using defaults", error->message);
      g_clear_error (&error);
      config = vmem_config_new_default ();
    }
  gint64 deadline = g_get_monotonic_time () + (gint64) config->hook_timeout_ms * 1000;

  /* Only the start can be refused: a failing reconnect hook kills a running
   * domain, and nothing is gained by failing the others. */
  gboolean may_refuse = (g_str_equal (op, "prepare") || g_str_equal (op, "start")) &&
                        g_str_equal (subop, "begin");
  gboolean prints_xml = (g_str_equal (op, "migrate") || g_str_equal (op, "restore")) &&
                        g_str_equal (subop, "begin");

  g_autofree char *xml = read_input (in_fd, deadline);
  g_autofree char *uuid = vmem_hook_find_uuid (xml);

  g_autoptr(json_object) params = json_object_new_object ();
  json_object_object_add (params, "op", json_object_new_string (op));
  json_object_object_add (params, "subop", json_object_new_string (subop));
  if (extra != NULL)
    json_object_object_add (params, "extra", json_object_new_string (extra));
  json_object_object_add (params, "domain", json_object_new_string (domain));
  if (uuid != NULL)
    json_object_object_add (params, "uuid", json_object_new_string (uuid));
  if (xml != NULL && *xml != '\0')
    json_object_object_add (params, "xml", json_object_new_string (xml));

  int left_ms = (int) MAX ((deadline - g_get_monotonic_time ()) / 1000, 1);
  g_autoptr(json_object) reply = vmem_varlink_call (config->socket_path, "io.vmemd.HookEvent",
                                                    params, left_ms, &error);
  if (reply == NULL)
    {
      if (may_refuse && config->fail_closed)
        {
          g_autofree char *line = g_strdup_printf (
            "vmemd is not answering (%s) and fail_closed is set: refusing to start %s",
            error->message, domain);
          syslog (LOG_ERR, "%s", line);
          say (err_fd, line);
          return 1;
        }
      syslog (LOG_WARNING, "%s %s for %s: vmemd is not answering (%s); going ahead without it",
              op, subop, domain, error->message);
      return 0;
    }

  json_object *allow = NULL, *message = NULL, *out = NULL;
  json_object_object_get_ex (reply, "allow", &allow);
  json_object_object_get_ex (reply, "message", &message);
  json_object_object_get_ex (reply, "xml", &out);
  if (may_refuse && allow != NULL && !json_object_get_boolean (allow))
    {
      const char *m = message ? json_object_get_string (message) : "vmemd refused the start";
      syslog (LOG_NOTICE, "%s", m);
      say (err_fd, m);
      return 1;
    }
  if (prints_xml && out != NULL && json_object_is_type (out, json_type_string))
    {
      const char *x = json_object_get_string (out);
      gsize len = strlen (x), off = 0;
      while (off < len)
        {
          ssize_t n = write (out_fd, x + off, len - off);
          if (n < 0 && errno == EINTR)
            continue;
          if (n <= 0)
            break;
          off += (gsize) n;
        }
    }
  return 0;
}
