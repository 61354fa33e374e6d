/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The whole hook, vmem_hook_run(), on what it reads: libvirt's arguments,
 * the domain XML on standard input, and vmemd's reply, which a stand-in
 * daemon on a thread sends back as the input gives it.  The input is
 * three sections separated by a line "%%":
 *
 *     NAME\nOP\nSUBOP\nEXTRA     the arguments, one a line (fewer is fine)
 *     \n%%\n<domain .../>       standard input
 *     \n%%\n{"parameters":...}  the reply bytes, NULs included; without
 *                               this section vmemd hangs up unanswered
 *
 * The call the hook sends must be a valid io.vmemd.HookEvent whenever the
 * arguments and the XML are UTF-8; on the events vmemd does nothing with
 * it sends nothing and reads nothing. */
#include "fuzz-common.h"
#include "vmem-cleanup.h"
#include "vmem-hook-lib.h"
#include "vmem-varlink.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define SEPARATOR "\n%%\n"

static int listen_fd = -1;
static int devnull = -1;

typedef struct {
  int          wake[2];  /* the hook is done: serve what is queued and stop */
  const char  *reply;
  gsize        reply_len;
  gboolean     has_reply;
  gboolean     expect_valid;
  guint        calls;
} Daemon;

static void
serve_one (Daemon *d, int fd)
{
  g_autoptr(VmemVarlinkFramer) framer = vmem_varlink_framer_new (VMEM_VARLINK_MAX_MESSAGE);
  struct pollfd p = { .fd = fd, .events = POLLIN };

  /* The hook sends one call, then waits for the reply. */
  while (vmem_varlink_framer_get_n_complete (framer) == 0 && poll (&p, 1, 5000) > 0)
    {
      char buf[16384];
      ssize_t n = recv (fd, buf, sizeof buf, 0);
      if (n <= 0)
        break;
      g_assert (vmem_varlink_framer_feed (framer, buf, (gsize) n, NULL));
    }
  d->calls++;
  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) call = vmem_varlink_framer_pop (framer, &error);
  if (d->expect_valid)
    {
      if (call == NULL)
        g_error ("the hook sent a message vmemd cannot read: %s",
                 error ? error->message : "nothing");
      json_object *method = NULL, *params = NULL;
      g_assert (json_object_object_get_ex (call, "method", &method));
      g_assert_cmpstr (json_object_get_string (method), ==, "io.vmemd.HookEvent");
      g_assert (json_object_object_get_ex (call, "parameters", &params));
      json_object_object_foreach (params, key, value)
        {
          if (!json_object_is_type (value, json_type_string))
            g_error ("HookEvent parameter %s is not a string", key);
        }
    }
  if (d->has_reply)
    {
      gsize off = 0;
      while (off < d->reply_len)
        {
          ssize_t n = send (fd, d->reply + off, d->reply_len - off, MSG_NOSIGNAL);
          if (n <= 0)
            break;
          off += (gsize) n;
        }
    }
  close (fd);
}

static gpointer
daemon_thread (gpointer data)
{
  Daemon *d = data;
  for (;;)
    {
      struct pollfd p[2] = {
        { .fd = listen_fd, .events = POLLIN },
        { .fd = d->wake[0], .events = POLLIN },
      };
      if (poll (p, 2, -1) < 0 && errno != EINTR)
        g_error ("poll: %s", g_strerror (errno));
      int fd = accept4 (listen_fd, NULL, NULL, SOCK_CLOEXEC);
      if (fd >= 0)
        {
          serve_one (d, fd);
          continue;
        }
      if (p[1].revents & POLLIN)
        return NULL;
    }
}

static void
setup (void)
{
  static gsize once;
  if (!g_once_init_enter (&once))
    return;
  fuzz_silence_logs ();
  signal (SIGPIPE, SIG_IGN);
  g_autofree char *socket_path = g_build_filename (fuzz_tmpdir (), "io.vmemd", NULL);
  g_autofree char *conf = g_strdup_printf ("[daemon]\nsocket=%s\n[hook]\nfail_closed=true\n",
                                           socket_path);
  g_autofree char *conf_path = fuzz_write_file ("vmemd.conf", (const guint8 *) conf, strlen (conf));
  g_setenv ("VMEMD_CONFIG", conf_path, TRUE);

  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_assert (strlen (socket_path) < sizeof addr.sun_path);
  strcpy (addr.sun_path, socket_path);
  listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  g_assert (listen_fd >= 0);
  g_assert (bind (listen_fd, (struct sockaddr *) &addr, sizeof addr) == 0);
  g_assert (listen (listen_fd, 16) == 0);
  devnull = open ("/dev/null", O_WRONLY | O_CLOEXEC);
  g_assert (devnull >= 0);
  g_once_init_leave (&once, 1);
}

/* The next section of @data from *@pos, up to a separator or the end;
 * FALSE when there is none. */
static gboolean
next_section (const char *data, gsize size, gsize *pos, const char **start, gsize *len)
{
  if (*pos > size)
    return FALSE;
  const char *s = data + *pos;
  gsize left = size - *pos;
  const char *sep = g_strstr_len (s, (gssize) left, SEPARATOR);
  /* g_strstr_len stops at a NUL: look past it by hand. */
  for (gsize i = 0; sep == NULL && i + strlen (SEPARATOR) <= left; i++)
    if (memcmp (s + i, SEPARATOR, strlen (SEPARATOR)) == 0)
      sep = s + i;
  *start = s;
  *len = sep ? (gsize) (sep - s) : left;
  *pos += *len + (sep ? strlen (SEPARATOR) : 1);
  if (sep == NULL)
    *pos = size + 1;
  return TRUE;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  setup ();
  const char *text = (const char *) data;
  gsize pos = 0;
  const char *args_s = "", *xml_s = "", *reply_s = NULL;
  gsize args_len = 0, xml_len = 0, reply_len = 0;
  next_section (text, size, &pos, &args_s, &args_len);
  next_section (text, size, &pos, &xml_s, &xml_len);
  gboolean has_reply = next_section (text, size, &pos, &reply_s, &reply_len);

  g_autofree char *args_text = g_strndup (args_s, args_len);
  g_auto(GStrv) lines = g_strsplit (args_text, "\n", 5);
  guint n_lines = g_strv_length (lines);
  g_autofree char **argv = g_new0 (char *, MIN (n_lines, 4) + 2);
  int argc = 0;
  argv[argc++] = (char *) "vmem-hook";
  for (guint i = 0; i < MIN (n_lines, 4); i++)
    argv[argc++] = lines[i];

  g_autofree char *xml_path = fuzz_write_file ("domain.xml", (const guint8 *) xml_s, xml_len);
  vmem_autofd int in_fd = open (xml_path, O_RDONLY | O_CLOEXEC);
  g_assert (in_fd >= 0);

  Daemon d = {
    .reply = reply_s,
    .reply_len = reply_len,
    .has_reply = has_reply,
    .expect_valid = g_utf8_validate_len (args_text, args_len, NULL) &&
                    g_utf8_validate_len (xml_s, xml_len, NULL) &&
                    memchr (xml_s, '\0', xml_len) == NULL,
  };
  g_assert (pipe2 (d.wake, O_CLOEXEC) == 0);
  GThread *thread = g_thread_new ("vmemd", daemon_thread, &d);

  /* The hook arms SIGALRM as its backstop, and so does libFuzzer for
   * -timeout: give libFuzzer its timer back afterwards. */
  struct sigaction old_action;
  struct itimerval old_timer;
  sigaction (SIGALRM, NULL, &old_action);
  getitimer (ITIMER_REAL, &old_timer);

  int status = vmem_hook_run (argc, argv, in_fd, devnull, devnull);

  sigaction (SIGALRM, &old_action, NULL);
  setitimer (ITIMER_REAL, &old_timer, NULL);

  g_assert (write (d.wake[1], "x", 1) == 1);
  g_thread_join (thread);
  close (d.wake[0]);
  close (d.wake[1]);

  g_assert (status == 0 || status == 1 || status == 2);
  g_assert (argc >= 3 || status == 2);
  /* One call for each event vmemd acts on; none, and nothing read, for
   * the others. */
  gboolean passed_on = argc >= 3 && vmem_hook_passes_on (argv[2], argc > 3 ? argv[3] : "-");
  g_assert (argc < 3 || d.calls == (passed_on ? 1u : 0u));
  g_assert (argc < 3 || passed_on || (status == 0 && lseek (in_fd, 0, SEEK_CUR) == 0));
  return 0;
}
