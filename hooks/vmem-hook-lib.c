/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-hook-lib.h"
#include "vmem-cleanup.h"
#include "vmem-config.h"
#include "vmem-error.h"
#include "vmem-varlink.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <unistd.h>

gboolean
vmem_hook_passes_on (const char *op, const char *subop)
{
  if (strcmp (op, "stopped") == 0 || strcmp (op, "release") == 0)
    return TRUE;
  return (strcmp (op, "prepare") == 0 || strcmp (op, "migrate") == 0 ||
          strcmp (op, "restore") == 0) &&
         strcmp (subop, "begin") == 0;
}

gboolean
vmem_hook_may_refuse (const char *op, const char *subop)
{
  return (g_str_equal (op, "prepare") || g_str_equal (op, "migrate") ||
          g_str_equal (op, "restore")) &&
         g_str_equal (subop, "begin");
}

guint
vmem_hook_short_ms (guint timeout_ms)
{
  return CLAMP (timeout_ms / 10, 20, 200);
}

gboolean
vmem_hook_prints_xml (const char *op, const char *subop)
{
  return (g_str_equal (op, "migrate") || g_str_equal (op, "restore")) &&
         g_str_equal (subop, "begin");
}

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
  g_autofree char *uuid = g_strstrip (g_strndup (s, (gsize) (e - s)));
  if (!g_uuid_string_is_valid (uuid))
    return NULL;
  return g_steal_pointer (&uuid);
}

/* Decodes the five predefined entities and numeric character references
 * of XML text; NULL for anything else. */
static char *
xml_unescape (const char *s, gsize len)
{
  static const struct {
    const char *name;
    char c;
  } entities[] = {
    { "lt;", '<' }, { "gt;", '>' }, { "amp;", '&' }, { "quot;", '"' }, { "apos;", '\'' }
  };
  g_autoptr(GString) out = g_string_sized_new (len);
  const char *end = s + len;

  while (s < end)
    {
      if (*s != '&')
        {
          g_string_append_c (out, *s++);
          continue;
        }
      const char *semi = memchr (s, ';', (gsize) (end - s));
      if (semi == NULL)
        return NULL;
      gsize n = (gsize) (semi - s) + 1; /* "&...;" */
      gboolean done = FALSE;
      for (gsize i = 0; i < G_N_ELEMENTS (entities) && !done; i++)
        if (n - 1 == strlen (entities[i].name) && strncmp (s + 1, entities[i].name, n - 1) == 0)
          {
            g_string_append_c (out, entities[i].c);
            done = TRUE;
          }
      if (!done && n > 3 && s[1] == '#')
        {
          gboolean hex = s[2] == 'x';
          g_autofree char *digits = g_strndup (s + (hex ? 3 : 2), n - (hex ? 4 : 3));
          guint64 cp = 0;
          if (!g_ascii_string_to_unsigned (digits, hex ? 16 : 10, 1, 0x10FFFF, &cp, NULL) ||
              !g_unichar_validate ((gunichar) cp))
            return NULL;
          g_string_append_unichar (out, (gunichar) cp);
          done = TRUE;
        }
      if (!done)
        return NULL;
      s += n;
    }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

char *
vmem_hook_find_name (const char *xml)
{
  const char *s = xml ? strstr (xml, "<name>") : NULL;
  if (s == NULL)
    return NULL;
  s += strlen ("<name>");
  const char *e = strstr (s, "</name>");
  if (e == NULL)
    return NULL;
  return xml_unescape (s, (gsize) (e - s));
}

/* --- the backstop ---------------------------------------------------------- */

/* Whatever blocks (a config file on a stuck mount, a full syslog socket, a
 * daemon that accepted and went silent), libvirt must get an answer in time:
 * the timer's handler ends the process with the answer decided up front. */
static volatile sig_atomic_t backstop_status;
static char backstop_line[256];
static volatile sig_atomic_t backstop_line_len;

static void
backstop_fire (int sig)
{
  if (backstop_line_len > 0)
    {
      ssize_t r = write (STDERR_FILENO, backstop_line, (size_t) backstop_line_len);
      (void) r;
    }
  _exit (backstop_status);
}

static void
backstop_arm (int ms, int status, const char *line)
{
  struct itimerval it = { 0 };
  struct sigaction sa = { 0 };

  backstop_line_len = 0;
  g_strlcpy (backstop_line, line, sizeof backstop_line);
  backstop_line_len = (sig_atomic_t) strlen (backstop_line);
  backstop_status = status;
  sa.sa_handler = backstop_fire;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGALRM, &sa, NULL);
  it.it_value.tv_sec = ms / 1000;
  it.it_value.tv_usec = (ms % 1000) * 1000;
  setitimer (ITIMER_REAL, &it, NULL);
}

static void
backstop_disarm (void)
{
  struct itimerval it = { 0 };
  setitimer (ITIMER_REAL, &it, NULL);
  signal (SIGALRM, SIG_DFL);
}

/* --- I/O -------------------------------------------------------------------- */

/* Reads @fd until EOF or the deadline; libvirt writes the XML and closes.
 * Sets *too_big past VMEM_HOOK_MAX_XML and returns what was read (its
 * start names the domain, but it must not be sent: a cut XML is worse
 * than none). */
static char *
read_input (int fd, gint64 deadline, gboolean *too_big, gboolean *timed_out)
{
  g_autoptr(GString) s = g_string_new (NULL);
  int flags = fcntl (fd, F_GETFL);

  *too_big = FALSE;
  *timed_out = FALSE;
  if (flags < 0)
    return NULL;
  if (!(flags & O_NONBLOCK))
    fcntl (fd, F_SETFL, flags | O_NONBLOCK);
  for (;;)
    {
      char buf[65536];
      ssize_t n = read (fd, buf, sizeof buf);
      if (n > 0)
        {
          if (s->len + (gsize) n > VMEM_HOOK_MAX_XML)
            {
              *too_big = TRUE;
              break;
            }
          g_string_append_len (s, buf, n);
          continue;
        }
      if (n == 0)
        break;
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        break;
      gint64 left = (deadline - g_get_monotonic_time ()) / 1000;
      struct pollfd p = { .fd = fd, .events = POLLIN };
      if (left <= 0 || poll (&p, 1, (int) left) == 0)
        {
          *timed_out = TRUE;
          break;
        }
    }
  return g_string_free (g_steal_pointer (&s), FALSE);
}

static void
write_all (int fd, const char *data, gsize len)
{
  gsize off = 0;
  while (off < len)
    {
      ssize_t n = write (fd, data + off, len - off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return;
      off += (gsize) n;
    }
}

/* One line on @fd, whatever the message holds: libvirt shows it verbatim. */
static void
say (int fd, const char *text)
{
  g_autofree char *line = g_strdup_printf ("%s\n", text);
  for (char *c = line; *c; c++)
    if (*c == '\n' && c[1] != '\0')
      *c = ' ';
  write_all (fd, line, strlen (line));
}

/* --- vmemd known to be silent ------------------------------------------------ */

/* A file beside vmemd's socket holds the monotonic time at which a call
 * last went unanswered for the whole timeout. */
static char *
silent_path (const VmemConfig *config)
{
  return g_strconcat (config->socket_path, ".silent", NULL);
}

static gboolean
silent_recently (const char *path)
{
  char buf[64] = "";
  int fd = open (path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return FALSE;
  ssize_t n = read (fd, buf, sizeof buf - 1);
  close (fd);
  gint64 t = 0;
  if (n <= 0 || !g_ascii_string_to_signed (g_strstrip (buf), 10, 0, G_MAXINT64, &t, NULL))
    return FALSE;
  gint64 age = g_get_monotonic_time () - t;
  return age >= 0 && age < (gint64) VMEM_HOOK_SILENT_WINDOW_S * G_USEC_PER_SEC;
}

static void
silent_mark (const char *path)
{
  g_autofree char *text = g_strdup_printf ("%" G_GINT64_FORMAT "\n", g_get_monotonic_time ());
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
  if (fd < 0)
    return;
  write_all (fd, text, strlen (text));
  close (fd);
}

/* --- the hook --------------------------------------------------------------- */

/* vmemd could not be asked.  Only a start may be refused for that, and only
 * when the administrator asked for it. */
static int
without_daemon (const VmemConfig *config, const char *domain, const char *op, const char *subop,
                const char *why, int err_fd)
{
  if (vmem_hook_may_refuse (op, subop) && config->fail_closed)
    {
      g_autofree char *line = g_strdup_printf (
        "vmem-hook: refusing to start %s: vmemd did not answer (%s) and fail_closed is set", domain,
        why);
      syslog (LOG_ERR, "%s", line);
      say (err_fd, line);
      return 1;
    }
  g_autofree char *line =
    g_strdup_printf ("vmem-hook: %s %s of %s goes ahead without vmemd: %s", op, subop, domain, why);
  syslog (LOG_WARNING, "%s", line);
  say (err_fd, line);
  return 0;
}

static int
hook_run (int argc, char **argv, int in_fd, int out_fd, int err_fd, gint64 start)
{
  if (argc < 3)
    {
      say (err_fd, "usage: vmem-hook DOMAIN OP SUBOP [EXTRA] < domain.xml (run by libvirt)");
      return 2;
    }
  const char *domain = argv[1], *op = argv[2];
  const char *subop = argc > 3 ? argv[3] : "-";
  const char *extra = argc > 4 ? argv[4] : NULL;
  /* Only the events that need an answer wait for one. */
  gboolean waits = vmem_hook_may_refuse (op, subop);

  /* Until the config says otherwise: the default timeout, fail open. */
  backstop_arm ((int) (waits ? 2000 : vmem_hook_short_ms (2000)) + VMEM_HOOK_GRACE_MS, 0,
                "vmem-hook: out of time; going ahead without vmemd\n");

  g_autoptr(GError) error = NULL;
  g_autoptr(VmemConfig) config = vmem_config_load (vmem_config_default_path (), FALSE, &error);
  if (config == NULL)
    {
      /* A broken config must not stop VMs: use the defaults, and say so. */
      syslog (LOG_WARNING, "%s; using the defaults", error->message);
      g_clear_error (&error);
      config = vmem_config_new_default ();
    }

  /* The whole timeout for an event that needs an answer, unless vmemd
   * left one unanswered a moment ago; a small part of it otherwise. */
  g_autofree char *silent = silent_path (config);
  gboolean hurried = waits && silent_recently (silent);
  guint budget_ms =
    waits && !hurried ? config->hook_timeout_ms : vmem_hook_short_ms (config->hook_timeout_ms);
  gint64 deadline = start + (gint64) budget_ms * 1000;
  int refuse = waits && config->fail_closed;
  g_autofree char *last_word =
    refuse
      ? g_strdup_printf ("vmem-hook: refusing to start %s: vmemd did not answer in %u ms and "
                         "fail_closed is set\n",
                         domain, budget_ms)
      : g_strdup_printf ("vmem-hook: %s %s of %s goes ahead without vmemd: no answer in %u ms\n",
                         op, subop, domain, budget_ms);
  int backstop_ms = (int) MAX ((deadline - g_get_monotonic_time ()) / 1000, 0) + VMEM_HOOK_GRACE_MS;
  backstop_arm (backstop_ms, refuse ? 1 : 0, last_word);

  gboolean too_big = FALSE, timed_out = FALSE;
  g_autofree char *xml = read_input (in_fd, deadline, &too_big, &timed_out);
  /* A notification goes with what was read: the uuid comes first. */
  if (timed_out && waits)
    return without_daemon (config, domain, op, subop,
                           "libvirt did not finish writing the domain XML in time", err_fd);
  /* Why vmemd cannot have the XML, when it cannot: it says so rather than
   * admit the start unchecked and silently. */
  g_autofree char *xml_missing = NULL;
  g_autofree char *named = vmem_hook_find_name (xml);
  if (xml != NULL && *xml != '\0' && g_strcmp0 (named, domain) != 0)
    {
      /* Not this domain's XML (or not one): neither it nor its uuid go. */
      xml_missing = named != NULL
                      ? g_strdup_printf ("the domain XML the hook was given is that of '%s'", named)
                      : g_strdup ("the domain XML the hook was given names no domain");
      g_clear_pointer (&xml, g_free);
    }
  else if (too_big)
    xml_missing = g_strdup_printf ("its domain XML is larger than the %d MiB the hook reads",
                                   VMEM_HOOK_MAX_XML / (1024 * 1024));
  else if (xml == NULL || *xml == '\0')
    xml_missing = g_strdup ("libvirt gave the hook no domain XML");
  g_autofree char *uuid = vmem_hook_find_uuid (xml);

  g_autoptr(json_object) params = json_object_new_object ();
  json_object_object_add (params, "op", json_object_new_string (op));
  json_object_object_add (params, "subop", json_object_new_string (subop));
  if (extra != NULL)
    json_object_object_add (params, "extra", json_object_new_string (extra));
  json_object_object_add (params, "domain", json_object_new_string (domain));
  if (uuid != NULL)
    json_object_object_add (params, "uuid", json_object_new_string (uuid));
  /* vmemd needs the XML only to answer. */
  if (waits && xml_missing == NULL)
    {
      json_object_object_add (params, "xml", json_object_new_string (xml));
      /* vmemd drops a message over its limit, and the event with it: send
       * the event without the XML rather than lose it.  Any XML the hook
       * reads fits, unless it is full of control characters. */
      const int flags = JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE;
      gsize encoded = strlen (json_object_to_json_string_ext (params, flags));
      if (encoded + 256 > VMEM_VARLINK_MAX_ROOT_MESSAGE)
        {
          json_object_object_del (params, "xml");
          xml_missing = g_strdup ("its domain XML does not fit into one message to vmemd");
        }
    }
  if (waits && xml_missing != NULL)
    {
      syslog (LOG_WARNING, "%s %s of %s: %s; not sent", op, subop, domain, xml_missing);
      json_object_object_add (params, "xml_missing", json_object_new_string (xml_missing));
    }

  int left_ms = (int) MAX ((deadline - g_get_monotonic_time ()) / 1000, 1);
  if (!waits)
    {
      /* A notification: handed to vmemd's socket, never waited on. */
      if (!vmem_varlink_send_oneway (config->socket_path, "io.vmemd.HookEvent", params,
                                     MAX (left_ms, 20), VMEM_VARLINK_MAX_MESSAGE, &error))
        return without_daemon (config, domain, op, subop, error->message, err_fd);
      return 0;
    }
  g_autoptr(json_object) reply = NULL;
  reply = vmem_varlink_call_sized (config->socket_path, "io.vmemd.HookEvent", params, left_ms,
                                   VMEM_VARLINK_MAX_ROOT_MESSAGE, &error);
  if (reply == NULL)
    {
      /* Silent for the whole timeout: the calls that follow, those of
       * this very start among them, do not wait that long again. */
      if (!hurried && g_error_matches (error, VMEM_ERROR, VMEM_ERROR_TIMEOUT))
        silent_mark (silent);
      return without_daemon (config, domain, op, subop, error->message, err_fd);
    }
  if (hurried)
    unlink (silent);

  json_object *allow = NULL, *message = NULL, *out = NULL;
  json_object_object_get_ex (reply, "allow", &allow);
  json_object_object_get_ex (reply, "message", &message);
  json_object_object_get_ex (reply, "xml", &out);
  if (allow == NULL || !json_object_is_type (allow, json_type_boolean))
    return without_daemon (config, domain, op, subop, "its reply has no allow field", err_fd);

  const char *m = message && json_object_is_type (message, json_type_string)
                    ? json_object_get_string (message)
                    : NULL;
  if (!json_object_get_boolean (allow))
    {
      g_autofree char *line =
        g_strdup_printf ("%s", m && *m ? m : "vmemd refused to start the domain");
      syslog (LOG_NOTICE, "%s: %s", domain, line);
      say (err_fd, line);
      return 1;
    }
  /* Allowed with a warning (not checked, over capacity in warn mode). */
  if (m != NULL && *m != '\0')
    {
      syslog (LOG_WARNING, "%s: %s", domain, m);
      say (err_fd, m);
    }

  if (vmem_hook_prints_xml (op, subop) && out != NULL &&
      json_object_is_type (out, json_type_string))
    {
      const char *x = json_object_get_string (out);
      write_all (out_fd, x, strlen (x));
    }
  return 0;
}

int
vmem_hook_run (int argc, char **argv, int in_fd, int out_fd, int err_fd)
{
  /* libvirt waits for every run of every hook: what vmemd would only log
   * costs no more than an exec. */
  if (argc >= 3 && !vmem_hook_passes_on (argv[2], argc > 3 ? argv[3] : "-"))
    return 0;

  gint64 start = g_get_monotonic_time ();

  openlog ("vmem-hook", LOG_PID, LOG_DAEMON);
  int status = hook_run (argc, argv, in_fd, out_fd, err_fd, start);
  backstop_disarm ();
  closelog ();
  return status;
}
