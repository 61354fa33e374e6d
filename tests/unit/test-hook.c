/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The real vmem-hook binary ($VMEM_HOOK) against fake vmemd sockets made
 * here with plain POSIX sockets, and vmemctl ($VMEMCTL) on its error paths. */
#include "vmem-hook-lib.h"
#include "vmem-cleanup.h"
#include "vmem-config.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#define TIMEOUT_MS 600

static const char domain_xml[] = "<domain type='kvm'>\n"
                                 "  <name>vm1</name>\n"
                                 "  <uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809</uuid>\n"
                                 "  <memory unit='KiB'>1048576</memory>\n"
                                 "  <metadata><uuid>not-this-one</uuid></metadata>\n"
                                 "</domain>\n";

/* --- a fake vmemd -------------------------------------------------------------- */

typedef struct {
  char *path;
  int fd;
  GThread *thread;
  const char *reply; /* full varlink message; NULL = accept and never answer */
  GMutex lock;
  char *received; /* the last request */
  int calls;
  volatile gint stop;
} FakeDaemon;

static char *
read_message (int fd)
{
  g_autoptr(GString) s = g_string_new (NULL);
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  for (;;)
    {
      struct pollfd p = { .fd = fd, .events = POLLIN };
      int left = (int) ((deadline - g_get_monotonic_time ()) / 1000);
      if (left <= 0 || poll (&p, 1, left) <= 0)
        return NULL;
      char buf[65536];
      ssize_t n = read (fd, buf, sizeof buf);
      if (n <= 0)
        return NULL;
      g_string_append_len (s, buf, n);
      if (memchr (buf, '\0', (size_t) n) != NULL)
        return g_strdup (s->str);
    }
}

static gpointer
fake_daemon_thread (gpointer data)
{
  FakeDaemon *d = data;
  g_autoptr(GPtrArray) held = g_ptr_array_new ();

  while (!g_atomic_int_get (&d->stop))
    {
      struct pollfd p = { .fd = d->fd, .events = POLLIN };
      if (poll (&p, 1, 50) <= 0)
        continue;
      int c = accept4 (d->fd, NULL, NULL, SOCK_CLOEXEC);
      if (c < 0)
        continue;
      if (d->reply == NULL)
        {
          /* Silent: keep the connection open and never answer. */
          g_ptr_array_add (held, GINT_TO_POINTER (c));
          continue;
        }
      g_autofree char *msg = read_message (c);
      g_mutex_lock (&d->lock);
      g_free (d->received);
      d->received = g_steal_pointer (&msg);
      d->calls++;
      g_mutex_unlock (&d->lock);
      ssize_t w = write (c, d->reply, strlen (d->reply) + 1);
      (void) w;
      close (c);
    }
  for (guint i = 0; i < held->len; i++)
    close (GPOINTER_TO_INT (g_ptr_array_index (held, i)));
  return NULL;
}

static FakeDaemon *
fake_daemon_new (const char *dir, const char *reply)
{
  FakeDaemon *d = g_new0 (FakeDaemon, 1);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };

  d->path = g_build_filename (dir, "vmemd.sock", NULL);
  d->reply = reply;
  g_mutex_init (&d->lock);
  d->fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true (d->fd >= 0);
  g_strlcpy (addr.sun_path, d->path, sizeof addr.sun_path);
  assert_int_equal (bind (d->fd, (struct sockaddr *) &addr, sizeof addr), 0);
  assert_int_equal (listen (d->fd, 16), 0);
  d->thread = g_thread_new ("fake-vmemd", fake_daemon_thread, d);
  return d;
}

static void
fake_daemon_free (FakeDaemon *d)
{
  if (d == NULL)
    return;
  g_atomic_int_set (&d->stop, 1);
  g_thread_join (d->thread);
  close (d->fd);
  g_unlink (d->path);
  g_free (d->path);
  g_free (d->received);
  g_mutex_clear (&d->lock);
  g_free (d);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (FakeDaemon, fake_daemon_free)

static json_object *
fake_daemon_request (FakeDaemon *d)
{
  g_mutex_lock (&d->lock);
  json_object *o = d->received ? json_tokener_parse (d->received) : NULL;
  g_mutex_unlock (&d->lock);
  return o;
}

/* --- running a binary ---------------------------------------------------------- */

typedef struct {
  int status; /* exit status, or 128 + signal */
  char *out;
  char *err;
  gint64 elapsed_ms;
} Run;

static void
run_clear (Run *r)
{
  g_free (r->out);
  g_free (r->err);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Run, run_clear)

static void
close_fd (int *fd)
{
  if (*fd >= 0)
    close (*fd);
  *fd = -1;
}

/* Runs @argv with only the environment libvirt leaves to hooks plus @config.
 * @input NULL = a standard input that stays open and silent. */
static void
run_binary_env (char **argv, const char *config, const char *extra_env, const char *input,
                gsize input_len, Run *r)
{
  g_autofree char *env_config = g_strdup_printf ("VMEMD_CONFIG=%s", config);
  char *envp[] = { env_config, (char *) "LC_ALL=C", (char *) "PATH=/usr/bin:/bin",
                   (char *) extra_env, NULL };
  int in = -1, out = -1, err = -1;
  GPid pid;
  g_autoptr(GError) error = NULL;

  gint64 start = g_get_monotonic_time ();
  if (!g_spawn_async_with_pipes (NULL, argv, envp, G_SPAWN_DO_NOT_REAP_CHILD, NULL, NULL, &pid, &in,
                                 &out, &err, &error))
    fail_msg ("cannot run %s: %s", argv[0], error->message);

  g_autoptr(GString) o = g_string_new (NULL);
  g_autoptr(GString) e = g_string_new (NULL);
  gsize written = 0;
  fcntl (in, F_SETFL, O_NONBLOCK);
  if (input != NULL && input_len == 0)
    close_fd (&in);

  while (out >= 0 || err >= 0)
    {
      struct pollfd p[3] = {
        { .fd = out, .events = POLLIN },
        { .fd = err, .events = POLLIN },
        { .fd = input ? in : -1, .events = POLLOUT },
      };
      if (g_get_monotonic_time () - start > 20 * G_USEC_PER_SEC)
        {
          kill (pid, SIGKILL);
          fail_msg ("%s did not finish within 20 s", argv[0]);
        }
      if (poll (p, 3, 100) < 0 && errno != EINTR)
        fail_msg ("poll: %s", g_strerror (errno));
      for (int k = 0; k < 2; k++)
        if (p[k].revents)
          {
            char buf[65536];
            ssize_t n = read (p[k].fd, buf, sizeof buf);
            if (n > 0)
              g_string_append_len (k == 0 ? o : e, buf, n);
            else
              close_fd (k == 0 ? &out : &err);
          }
      if (input && in >= 0 && p[2].revents)
        {
          ssize_t n = write (in, input + written, MIN (input_len - written, 65536));
          if (n > 0)
            written += (gsize) n;
          if (n < 0 && errno != EAGAIN)
            close_fd (&in); /* the hook stopped reading */
          else if (written == input_len)
            close_fd (&in);
        }
    }
  int wstatus = 0;
  while (waitpid (pid, &wstatus, 0) < 0 && errno == EINTR)
    ;
  r->elapsed_ms = (g_get_monotonic_time () - start) / 1000;
  if (in >= 0)
    close (in);
  g_spawn_close_pid (pid);
  r->status = WIFEXITED (wstatus) ? WEXITSTATUS (wstatus) : 128 + WTERMSIG (wstatus);
  r->out = g_string_free (g_steal_pointer (&o), FALSE);
  r->err = g_string_free (g_steal_pointer (&e), FALSE);
}

static void
run_binary (char **argv, const char *config, const char *input, gsize input_len, Run *r)
{
  run_binary_env (argv, config, NULL, input, input_len, r);
}

static const char *
hook_path (void)
{
  const char *p = g_getenv ("VMEM_HOOK");
  if (p == NULL)
    fail_msg ("VMEM_HOOK is not set (run through meson test)");
  return p;
}

static void
run_hook (const char *config, const char *op, const char *subop, const char *input, Run *r)
{
  char *argv[] = { (char *) hook_path (), (char *) "vm1", (char *) op,
                   (char *) subop,        (char *) "-",   NULL };
  run_binary (argv, config, input, input ? strlen (input) : 0, r);
}

static void
assert_one_line (const char *text, const char *needle)
{
  const char *nl = strchr (text, '\n');
  if (nl == NULL || nl[1] != '\0')
    fail_msg ("expected exactly one line, got '%s'", text);
  if (needle != NULL && strstr (text, needle) == NULL)
    fail_msg ("'%s' lacks '%s'", text, needle);
}

/* --- fixture -------------------------------------------------------------------- */

typedef struct {
  char *dir;
  char *sock;
  char *config;
} Fixture;

static void
write_config (Fixture *f, const char *socket, int timeout_ms, gboolean fail_closed)
{
  g_autofree char *text = g_strdup_printf ("[daemon]\nsocket=%s\n\n[hook]\ntimeout_ms=%d\n"
                                           "fail_closed=%s\n",
                                           socket, timeout_ms, fail_closed ? "true" : "false");
  assert_true (g_file_set_contents (f->config, text, -1, NULL));
}

static int
setup (void **state)
{
  Fixture *f = g_new0 (Fixture, 1);
  f->dir = g_dir_make_tmp ("vmem-hook-XXXXXX", NULL);
  assert_non_null (f->dir);
  f->sock = g_build_filename (f->dir, "vmemd.sock", NULL);
  f->config = g_build_filename (f->dir, "vmemd.conf", NULL);
  write_config (f, f->sock, TIMEOUT_MS, FALSE);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  Fixture *f = *state;
  g_autofree char *silent = g_strconcat (f->sock, ".silent", NULL);
  g_unlink (silent);
  g_unlink (f->config);
  g_unlink (f->sock);
  g_rmdir (f->dir);
  g_free (f->dir);
  g_free (f->sock);
  g_free (f->config);
  g_free (f);
  return 0;
}

static void
assert_in_time (const Run *r, int timeout_ms)
{
  if (r->elapsed_ms > timeout_ms + 1000)
    fail_msg ("took %" G_GINT64_FORMAT " ms with a %d ms timeout", r->elapsed_ms, timeout_ms);
}

/* --- no daemon at all ------------------------------------------------------------- */

static void
test_no_daemon_fails_open (void **state)
{
  Fixture *f = *state;
  g_auto(Run) r = { 0 };
  run_hook (f->config, "prepare", "begin", domain_xml, &r);
  assert_int_equal (r.status, 0);
  assert_string_equal (r.out, "");
  assert_one_line (r.err, "goes ahead without vmemd");
  assert_in_time (&r, TIMEOUT_MS);
}

static void
test_no_daemon_fail_closed_refuses_only_the_start (void **state)
{
  Fixture *f = *state;
  write_config (f, f->sock, TIMEOUT_MS, TRUE);

  /* What starts a domain and waits for vmemd's answer. */
  static const char *const starts[][2] = {
    { "prepare", "begin" },
    { "migrate", "begin" },
    { "restore", "begin" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (starts); i++)
    {
      g_auto(Run) r = { 0 };
      run_hook (f->config, starts[i][0], starts[i][1], domain_xml, &r);
      assert_int_equal (r.status, 1);
      assert_string_equal (r.out, "");
      assert_one_line (r.err, "fail_closed");
    }

  /* Failing these would kill a running domain or gain nothing; start
   * begin comes after prepare, which was asked already. */
  static const char *const never[][2] = {
    { "reconnect", "begin" }, { "stopped", "end" },  { "release", "end" }, { "started", "begin" },
    { "start", "begin" },     { "attach", "begin" }, { "prepare", "end" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (never); i++)
    {
      g_auto(Run) r = { 0 };
      run_hook (f->config, never[i][0], never[i][1], domain_xml, &r);
      if (r.status != 0)
        fail_msg ("%s %s exited %d: %s", never[i][0], never[i][1], r.status, r.err);
      assert_string_equal (r.out, "");
    }
}

static void
test_broken_config_uses_defaults (void **state)
{
  Fixture *f = *state;
  assert_true (
    g_file_set_contents (f->config, "[hook]\ntimeout_ms=soon\nfail_closed=true\n", -1, NULL));
  g_auto(Run) r = { 0 };
  run_hook (f->config, "prepare", "begin", domain_xml, &r);
  /* The defaults: fail open, at most the default 2 s. */
  assert_int_equal (r.status, 0);
  assert_string_equal (r.out, "");
  assert_in_time (&r, 2000);

  g_autofree char *missing = g_build_filename (f->dir, "missing.conf", NULL);
  g_auto(Run) r2 = { 0 };
  run_hook (missing, "prepare", "begin", domain_xml, &r2);
  assert_int_equal (r2.status, 0);
  assert_in_time (&r2, 2000);
}

static void
test_stuck_config_is_cut_short (void **state)
{
  Fixture *f = *state;
  /* Opening a FIFO with no writer blocks: only the backstop timer can end
   * this, with the default timeout and the default answer (go ahead). */
  g_autofree char *fifo = g_build_filename (f->dir, "stuck.conf", NULL);
  assert_int_equal (mkfifo (fifo, 0600), 0);
  g_auto(Run) r = { 0 };
  run_hook (fifo, "prepare", "begin", domain_xml, &r);
  g_unlink (fifo);
  assert_int_equal (r.status, 0);
  assert_string_equal (r.out, "");
  assert_one_line (r.err, "out of time");
  assert_in_time (&r, 2000);
}

/* --- a daemon that never answers ------------------------------------------------- */

static void
test_silent_daemon_times_out_open (void **state)
{
  Fixture *f = *state;
  g_autoptr(FakeDaemon) d = fake_daemon_new (f->dir, NULL);
  g_auto(Run) r = { 0 };
  run_hook (f->config, "prepare", "begin", domain_xml, &r);
  assert_int_equal (r.status, 0);
  assert_string_equal (r.out, "");
  assert_one_line (r.err, "goes ahead without vmemd");
  assert_true (r.elapsed_ms >= TIMEOUT_MS - 50);
  assert_in_time (&r, TIMEOUT_MS);
}

static void
test_silent_daemon_fail_closed (void **state)
{
  Fixture *f = *state;
  write_config (f, f->sock, TIMEOUT_MS, TRUE);
  g_autoptr(FakeDaemon) d = fake_daemon_new (f->dir, NULL);

  g_auto(Run) r = { 0 };
  run_hook (f->config, "prepare", "begin", domain_xml, &r);
  assert_int_equal (r.status, 1);
  assert_one_line (r.err, "fail_closed");
  assert_in_time (&r, TIMEOUT_MS);

  /* A notification is never refused, even when vmemd takes it and says
   * nothing. */
  g_auto(Run) rc = { 0 };
  run_hook (f->config, "stopped", "end", domain_xml, &rc);
  assert_int_equal (rc.status, 0);
  assert_in_time (&rc, TIMEOUT_MS);
}

/* The hook timeout is a budget per start: with a vmemd that takes the
 * connections and never answers, a start waits for it once. */
static void
test_silent_daemon_costs_one_timeout (void **state)
{
  Fixture *f = *state;
  const int timeout_ms = 2000;
  write_config (f, f->sock, timeout_ms, FALSE);
  g_autoptr(FakeDaemon) d = fake_daemon_new (f->dir, NULL);

  g_auto(Run) prepare = { 0 };
  run_hook (f->config, "prepare", "begin", domain_xml, &prepare);
  assert_int_equal (prepare.status, 0);
  assert_one_line (prepare.err, "goes ahead without vmemd");
  assert_true (prepare.elapsed_ms >= timeout_ms - 50);
  assert_in_time (&prepare, timeout_ms);

  /* The rest of the start, and its stop, are notifications: never waited
   * on.  A restore (which asks again at prepare) and a refusal under
   * fail_closed do not wait the whole timeout again either. */
  static const char *const after[][2] = {
    { "start", "begin" }, { "started", "begin" }, { "stopped", "end" },
    { "release", "end" }, { "restore", "begin" }, { "prepare", "begin" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (after); i++)
    {
      g_auto(Run) r = { 0 };
      run_hook (f->config, after[i][0], after[i][1], domain_xml, &r);
      assert_int_equal (r.status, 0);
      assert_string_equal (r.out, "");
      if (r.elapsed_ms > timeout_ms / 2)
        fail_msg ("%s %s took %" G_GINT64_FORMAT " ms", after[i][0], after[i][1], r.elapsed_ms);
    }
  write_config (f, f->sock, timeout_ms, TRUE);
  g_auto(Run) closed = { 0 };
  run_hook (f->config, "prepare", "begin", domain_xml, &closed);
  assert_int_equal (closed.status, 1);
  assert_one_line (closed.err, "fail_closed");
  assert_true (closed.elapsed_ms < timeout_ms / 2);
  g_clear_pointer (&d, fake_daemon_free);

  /* Once vmemd answers again, it is given the whole timeout again. */
  write_config (f, f->sock, timeout_ms, FALSE);
  g_autoptr(FakeDaemon) ok = fake_daemon_new (f->dir, "{\"parameters\":{\"allow\":true}}");
  g_auto(Run) answered = { 0 };
  run_hook (f->config, "prepare", "begin", domain_xml, &answered);
  assert_int_equal (answered.status, 0);
  assert_string_equal (answered.err, "");
  g_clear_pointer (&ok, fake_daemon_free);
  g_autoptr(FakeDaemon) silent = fake_daemon_new (f->dir, NULL);
  g_auto(Run) again = { 0 };
  run_hook (f->config, "prepare", "begin", domain_xml, &again);
  assert_int_equal (again.status, 0);
  assert_true (again.elapsed_ms >= timeout_ms - 50);
}

/* The events vmemd only logs end before the hook reads anything: a config
 * that would block (a FIFO with no writer: the backstop would end the
 * hook after 600 ms with "out of time"), a standard input that never
 * closes, no vmemd at all.  Nothing on standard output or error. */
static void
test_ignored_events_exit_at_once (void **state)
{
  Fixture *f = *state;
  static const char *const ignored[][2] = {
    { "start", "begin" },  { "started", "begin" }, { "reconnect", "begin" },
    { "attach", "begin" }, { "prepare", "end" },   { "migrate", "end" },
  };
  g_autofree char *fifo = g_build_filename (f->dir, "stuck.conf", NULL);
  assert_int_equal (mkfifo (fifo, 0600), 0);
  for (gsize i = 0; i < G_N_ELEMENTS (ignored); i++)
    {
      g_auto(Run) r = { 0 };
      run_hook (fifo, ignored[i][0], ignored[i][1], NULL, &r);
      if (r.status != 0 || *r.out != '\0' || *r.err != '\0' || r.elapsed_ms >= 500)
        fail_msg ("%s %s: exit %d after %" G_GINT64_FORMAT " ms, out '%s', err '%s'", ignored[i][0],
                  ignored[i][1], r.status, r.elapsed_ms, r.out, r.err);
    }
  /* An event vmemd acts on, the same way, does read the config. */
  g_auto(Run) stopped = { 0 };
  run_hook (fifo, "stopped", "end", NULL, &stopped);
  g_unlink (fifo);
  assert_int_equal (stopped.status, 0);
  assert_one_line (stopped.err, "out of time");

  /* With no vmemd on the configured socket, a notification says it went
   * ahead without it; an ignored event never tried. */
  g_auto(Run) alone = { 0 };
  run_hook (f->config, "started", "begin", domain_xml, &alone);
  assert_int_equal (alone.status, 0);
  assert_string_equal (alone.err, "");
  g_auto(Run) release = { 0 };
  run_hook (f->config, "release", "end", domain_xml, &release);
  assert_int_equal (release.status, 0);
  assert_one_line (release.err, "goes ahead without vmemd");

  /* A vmemd there is not called either. */
  g_autoptr(FakeDaemon) d = fake_daemon_new (f->dir, "{\"parameters\":{\"allow\":true}}");
  for (gsize i = 0; i < G_N_ELEMENTS (ignored); i++)
    {
      g_auto(Run) r = { 0 };
      run_hook (f->config, ignored[i][0], ignored[i][1], domain_xml, &r);
      assert_int_equal (r.status, 0);
      assert_string_equal (r.err, "");
    }
  g_auto(Run) prepare = { 0 };
  run_hook (f->config, "prepare", "begin", domain_xml, &prepare);
  assert_int_equal (prepare.status, 0);
  g_mutex_lock (&d->lock);
  int calls = d->calls;
  g_mutex_unlock (&d->lock);
  assert_int_equal (calls, 1);
}

/* Notifications go oneway, with the domain and its uuid but no XML. */
static void
test_notifications_are_oneway (void **state)
{
  Fixture *f = *state;
  g_autoptr(FakeDaemon) d = fake_daemon_new (f->dir, "{\"parameters\":{\"allow\":false}}");
  g_auto(Run) r = { 0 };
  run_hook (f->config, "release", "end", domain_xml, &r);
  assert_int_equal (r.status, 0);
  assert_string_equal (r.err, "");
  json_object *p = NULL, *v = NULL;
  g_autoptr(json_object) req = NULL;
  gint64 until = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;
  while ((req = fake_daemon_request (d)) == NULL && g_get_monotonic_time () < until)
    g_usleep (10000);
  assert_non_null (req);
  assert_true (json_object_object_get_ex (req, "oneway", &v));
  assert_true (json_object_get_boolean (v));
  assert_true (json_object_object_get_ex (req, "parameters", &p));
  assert_false (json_object_object_get_ex (p, "xml", &v));
  assert_true (json_object_object_get_ex (p, "uuid", &v));
  assert_string_equal (json_object_get_string (v), "c7a5fdbd-edaf-9455-926a-d65c16db1809");
  assert_true (json_object_object_get_ex (p, "op", &v));
  assert_string_equal (json_object_get_string (v), "release");
}

static void
test_hung_stdin_does_not_hang (void **state)
{
  Fixture *f = *state;
  g_autoptr(FakeDaemon) d = fake_daemon_new (f->dir, "{\"parameters\":{\"allow\":true}}");

  g_auto(Run) r = { 0 };
  run_hook (f->config, "prepare", "begin", NULL, &r);
  assert_int_equal (r.status, 0);
  assert_string_equal (r.out, "");
  assert_in_time (&r, TIMEOUT_MS);

  write_config (f, f->sock, TIMEOUT_MS, TRUE);
  g_auto(Run) closed = { 0 };
  run_hook (f->config, "prepare", "begin", NULL, &closed);
  assert_int_equal (closed.status, 1);
  assert_one_line (closed.err, "fail_closed");
  assert_in_time (&closed, TIMEOUT_MS);
}

/* --- a daemon that answers -------------------------------------------------------- */

static void
test_refusal_exits_1_with_the_message (void **state)
{
  Fixture *f = *state;
  g_autoptr(FakeDaemon) d = fake_daemon_new (
    f->dir, "{\"parameters\":{\"allow\":false,\"message\":\"vmemd: vm1 needs 4G, the host has 1G "
            "free\"}}");

  g_auto(Run) r = { 0 };
  run_hook (f->config, "prepare", "begin", domain_xml, &r);
  assert_int_equal (r.status, 1);
  assert_string_equal (r.out, "");
  assert_string_equal (r.err, "vmemd: vm1 needs 4G, the host has 1G free\n");

  /* What the daemon was told. */
  g_autoptr(json_object) req = fake_daemon_request (d);
  assert_non_null (req);
  json_object *m = NULL, *p = NULL, *v = NULL;
  assert_true (json_object_object_get_ex (req, "method", &m));
  assert_string_equal (json_object_get_string (m), "io.vmemd.HookEvent");
  assert_true (json_object_object_get_ex (req, "parameters", &p));
  static const char *const want[][2] = {
    { "op", "prepare" },
    { "subop", "begin" },
    { "extra", "-" },
    { "domain", "vm1" },
    { "uuid", "c7a5fdbd-edaf-9455-926a-d65c16db1809" },
    { "xml", domain_xml },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (want); i++)
    {
      if (!json_object_object_get_ex (p, want[i][0], &v))
        fail_msg ("no %s in the request", want[i][0]);
      assert_string_equal (json_object_get_string (v), want[i][1]);
    }

  /* An event that cannot be refused goes ahead anyway. */
  g_auto(Run) stopped = { 0 };
  run_hook (f->config, "stopped", "end", domain_xml, &stopped);
  assert_int_equal (stopped.status, 0);
  assert_string_equal (stopped.out, "");
}

static void
test_refusal_is_one_line (void **state)
{
  Fixture *f = *state;
  g_autoptr(FakeDaemon) d = fake_daemon_new (
    f->dir, "{\"parameters\":{\"allow\":false,\"message\":\"first\\nsecond\"}}");
  g_auto(Run) r = { 0 };
  run_hook (f->config, "prepare", "begin", domain_xml, &r);
  assert_int_equal (r.status, 1);
  assert_string_equal (r.err, "first second\n");
}

static void
test_restore_prints_the_xml (void **state)
{
  Fixture *f = *state;
  g_autoptr(FakeDaemon) d = fake_daemon_new (
    f->dir, "{\"parameters\":{\"allow\":true,\"xml\":\"<domain><name>vm1</name></domain>\\n\"}}");

  g_auto(Run) r = { 0 };
  run_hook (f->config, "restore", "begin", domain_xml, &r);
  assert_int_equal (r.status, 0);
  assert_string_equal (r.out, "<domain><name>vm1</name></domain>\n");
  assert_string_equal (r.err, "");

  g_auto(Run) m = { 0 };
  run_hook (f->config, "migrate", "begin", domain_xml, &m);
  assert_int_equal (m.status, 0);
  assert_string_equal (m.out, "<domain><name>vm1</name></domain>\n");

  /* libvirt ignores the output of every other event: print nothing. */
  static const char *const quiet[][2] = {
    { "prepare", "begin" },
    { "start", "begin" },
    { "started", "begin" },
    { "release", "end" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (quiet); i++)
    {
      g_auto(Run) q = { 0 };
      run_hook (f->config, quiet[i][0], quiet[i][1], domain_xml, &q);
      assert_int_equal (q.status, 0);
      if (*q.out != '\0')
        fail_msg ("%s %s printed '%s'", quiet[i][0], quiet[i][1], q.out);
      assert_string_equal (q.err, "");
    }
}

static void
test_daemon_error_reply_fails_open (void **state)
{
  Fixture *f = *state;
  g_autoptr(FakeDaemon) d = fake_daemon_new (
    f->dir, "{\"error\":\"io.vmemd.PermissionDenied\",\"parameters\":{\"message\":\"root only\"}}");
  g_auto(Run) r = { 0 };
  run_hook (f->config, "prepare", "begin", domain_xml, &r);
  assert_int_equal (r.status, 0);
  assert_one_line (r.err, "root only");

  write_config (f, f->sock, TIMEOUT_MS, TRUE);
  g_auto(Run) c = { 0 };
  run_hook (f->config, "prepare", "begin", domain_xml, &c);
  assert_int_equal (c.status, 1);
  assert_one_line (c.err, "root only");
}

/* --- the hook's own reader of vmemd.conf ---------------------------------------- */

typedef struct {
  const char *text;
  gboolean ok;             /* the hook takes it */
  const char *socket;      /* then these */
  unsigned timeout_ms;
  gboolean fail_closed;
  const char *error;       /* otherwise its error holds this */
} ConfigCase;

static void
test_config_reader (void **state)
{
  Fixture *f = *state;
  static const ConfigCase cases[] = {
    /* vmemd's other keys and sections are vmemd's to check. */
    { "[daemon]\nsocket=/run/x.sock\nmystery=1\n[store]\nbackend=sqlite\n[hook]\ntimeout_ms=150\n"
      "fail_closed=yes\n[nowhere]\nx=y\n",
      TRUE, "/run/x.sock", 150, TRUE, NULL },
    { "# only a comment\n\n   \n", TRUE, VMEM_DEFAULT_SOCKET, 2000, FALSE, NULL },
    { "", TRUE, VMEM_DEFAULT_SOCKET, 2000, FALSE, NULL },
    /* GKeyFile's escapes and white space, vmemd's strip. */
    { "[daemon]\n  socket =  /run/a\\sb\\\\c\\t  \n", TRUE, "/run/a b\\c", 2000, FALSE, NULL },
    /* GLib's white space has no vertical tab: a key "\vsocket" (which
     * vmemd refuses as unknown), and a socket ending in one. */
    { "[daemon]\n\vsocket=/a\n", TRUE, VMEM_DEFAULT_SOCKET, 2000, FALSE, NULL },
    { "[daemon]\nsocket=/a\v\n", TRUE, "/a\v", 2000, FALSE, NULL },
    /* The last value wins, across repeated sections too. */
    { "[hook]\ntimeout_ms=300\n[daemon]\nsocket=/a\n[hook]\ntimeout_ms=400\nfail_closed=TRUE\n"
      "fail_closed=0\n",
      TRUE, "/a", 400, FALSE, NULL },
    { "[hook]\r\ntimeout_ms=60000\r\nfail_closed=No\r\n", TRUE, VMEM_DEFAULT_SOCKET, 60000, FALSE,
      NULL },
    { "[hook]\ntimeout_ms=100\nfail_closed=1", TRUE, VMEM_DEFAULT_SOCKET, 100, TRUE, NULL },
    { "[hook] \t\ntimeout_ms[de]=5\ntimeout_ms=2500\n", TRUE, VMEM_DEFAULT_SOCKET, 2500, FALSE,
      NULL },
    /* Not a key file: the defaults, and where. */
    { "[hook]\nfail_closed=true\njust words\n", FALSE, NULL, 0, FALSE, ":3: line is not" },
    { "fail_closed=true\n[hook]\n", FALSE, NULL, 0, FALSE, ":1: a key before" },
    { "[hook\nfail_closed=true\n", FALSE, NULL, 0, FALSE, ":1: invalid group" },
    { "[hook]x\n", FALSE, NULL, 0, FALSE, "invalid group" },
    { "[hook]\nfail_closed=true\nfa]il=1\n", FALSE, NULL, 0, FALSE, ":3: invalid key" },
    { "[hook]\nfail_closed=true\n=1\n", FALSE, NULL, 0, FALSE, ":3: line is not" },
    { "[hook]\nfail_closed=true\n\xff\n", FALSE, NULL, 0, FALSE, "not a UTF-8 text file" },
    /* A bad value of one of the three: all three are the defaults. */
    { "[daemon]\nsocket=/s\n[hook]\nfail_closed=true\ntimeout_ms=99\n", FALSE, NULL, 0, FALSE,
      ":5: [hook] timeout_ms: '99' is not a whole number from 100 to 60000" },
    { "[hook]\ntimeout_ms=60001\n", FALSE, NULL, 0, FALSE, "not a whole number" },
    { "[hook]\ntimeout_ms=+500\n", FALSE, NULL, 0, FALSE, "not a whole number" },
    { "[hook]\ntimeout_ms=2 s\n", FALSE, NULL, 0, FALSE, "not a whole number" },
    { "[hook]\ntimeout_ms=99999999999999999999999\n", FALSE, NULL, 0, FALSE,
      "not a whole number" },
    { "[hook]\ntimeout_ms=\n", FALSE, NULL, 0, FALSE, "not a whole number" },
    { "[hook]\nfail_closed=maybe\n", FALSE, NULL, 0, FALSE, "'maybe' is not a boolean" },
    { "[daemon]\nsocket=run/vmemd\n", FALSE, NULL, 0, FALSE, "is not an absolute path" },
    { "[daemon]\nsocket=  \n", FALSE, NULL, 0, FALSE, "must not be empty" },
    { "[daemon]\nsocket=/a\\qb\n", FALSE, NULL, 0, FALSE, "invalid escape sequence" },
    { "[daemon]\nsocket=/a\\\n", FALSE, NULL, 0, FALSE, "escape character at end of line" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const ConfigCase *c = &cases[i];
      assert_true (g_file_set_contents (f->config, c->text, -1, NULL));
      char *socket = NULL, *error = NULL;
      unsigned timeout_ms = 0;
      bool fail_closed = false;
      bool ok = vmem_hook_read_config (f->config, &socket, &timeout_ms, &fail_closed, &error);
      if (ok != c->ok)
        fail_msg ("case %zu: the hook %s it (%s)", i, ok ? "takes" : "refuses",
                  error ? error : "no error");
      if (ok)
        {
          assert_null (error);
          assert_string_equal (socket, c->socket);
          assert_int_equal (timeout_ms, c->timeout_ms);
          assert_int_equal (fail_closed, c->fail_closed);
        }
      else
        {
          if (strstr (error, c->error) == NULL || !g_str_has_prefix (error, f->config))
            fail_msg ("case %zu: '%s' lacks '%s'", i, error, c->error);
          assert_string_equal (socket, VMEM_DEFAULT_SOCKET);
          assert_int_equal (timeout_ms, VMEM_HOOK_DEFAULT_TIMEOUT_MS);
          assert_false (fail_closed);
        }

      /* Whatever vmemd takes, the hook takes with the same values. */
      g_autoptr(GError) daemon_error = NULL;
      g_autoptr(VmemConfig) daemon = vmem_config_load (f->config, TRUE, &daemon_error);
      if (daemon != NULL)
        {
          if (!ok)
            fail_msg ("case %zu: vmemd takes it, the hook does not: %s", i, error);
          assert_string_equal (socket, daemon->socket_path);
          assert_int_equal (timeout_ms, daemon->hook_timeout_ms);
          assert_int_equal (fail_closed, daemon->fail_closed);
        }
      free (socket);
      free (error);
    }

  /* Missing: the defaults, no error.  Unreadable: the defaults, said. */
  g_autofree char *missing = g_build_filename (f->dir, "missing.conf", NULL);
  char *socket = NULL, *error = NULL;
  unsigned timeout_ms = 0;
  bool fail_closed = true;
  assert_true (vmem_hook_read_config (missing, &socket, &timeout_ms, &fail_closed, &error));
  assert_null (error);
  assert_string_equal (socket, VMEM_DEFAULT_SOCKET);
  assert_int_equal (timeout_ms, VMEM_HOOK_DEFAULT_TIMEOUT_MS);
  assert_false (fail_closed);
  free (socket);
  assert_false (vmem_hook_read_config (f->dir, &socket, &timeout_ms, &fail_closed, &error));
  if (strstr (error, "cannot read") == NULL)
    fail_msg ("'%s'", error);
  free (socket);
  free (error);
}

/* The hook run with a config vmemd would refuse for another key still
 * honours its own keys: here fail_closed, with no vmemd to ask. */
static void
test_config_other_keys_are_vmemds (void **state)
{
  Fixture *f = *state;
  g_autofree char *text = g_strdup_printf ("[daemon]\nsocket=%s\nnot_a_key=1\n[hook]\n"
                                           "timeout_ms=300\nfail_closed=true\n",
                                           f->sock);
  assert_true (g_file_set_contents (f->config, text, -1, NULL));
  g_auto(Run) r = { 0 };
  run_hook (f->config, "prepare", "begin", domain_xml, &r);
  assert_int_equal (r.status, 1);
  assert_one_line (r.err, "fail_closed is set");
}

/* --- the hook's JSON, both ways ---------------------------------------------------- */

static void
test_call_encodes_every_byte (void **state)
{
  Fixture *f = *state;
  write_config (f, f->sock, 5000, FALSE);
  g_autoptr(FakeDaemon) d = fake_daemon_new (f->dir, "{\"parameters\":{\"allow\":true}}");
  /* Quotes, backslashes, every control character but NUL, slashes,
   * non-ASCII: the call carries the XML exactly. */
  g_autoptr(GString) xml = g_string_new ("<domain><name>vm1</name><description>\"\\/");
  for (int c = 1; c < 0x20; c++)
    g_string_append_c (xml, (char) c);
  g_string_append (xml, "\x7f é 😀 &amp;</description></domain>");
  char *argv[] = { (char *) hook_path (), (char *) "vm1", (char *) "prepare",
                   (char *) "begin",      (char *) "a \"b\"\\c", NULL };
  g_auto(Run) r = { 0 };
  run_binary (argv, f->config, xml->str, xml->len, &r);
  assert_int_equal (r.status, 0);
  assert_string_equal (r.err, "");
  g_autoptr(json_object) req = fake_daemon_request (d);
  assert_non_null (req);
  json_object *m = NULL, *p = NULL, *v = NULL;
  assert_true (json_object_object_get_ex (req, "method", &m));
  assert_string_equal (json_object_get_string (m), "io.vmemd.HookEvent");
  assert_true (json_object_object_get_ex (req, "parameters", &p));
  assert_true (json_object_object_get_ex (p, "xml", &v));
  assert_string_equal (json_object_get_string (v), xml->str);
  assert_true (json_object_object_get_ex (p, "extra", &v));
  assert_string_equal (json_object_get_string (v), "a \"b\"\\c");
  assert_false (json_object_object_get_ex (p, "uuid", &v));
  assert_false (json_object_object_get_ex (req, "oneway", &v));
}

typedef struct {
  const char *reply;
  int status;        /* with fail_closed off */
  const char *err;   /* in the one line on standard error; NULL: none */
  const char *out;   /* what a restore prints */
} ReplyCase;

static void
test_replies (void **state)
{
  Fixture *f = *state;
  g_autoptr(GString) deep = g_string_new ("{\"parameters\":{\"allow\":true,\"x\":");
  for (int i = 0; i < 40; i++)
    g_string_append_c (deep, '[');
  for (int i = 0; i < 40; i++)
    g_string_append_c (deep, ']');
  g_string_append (deep, "}}");
  const ReplyCase cases[] = {
    { "{\"parameters\":{\"allow\":true,\"xml\":\"<a>\\u00e9\\ud83d\\ude00\\\"\\\\\\/\\n</a>\"}}",
      0, NULL, "<a>é😀\"\\/\n</a>" },
    { " {\"parameters\" : { \"n\" : [1, -2.5e+3, 0.1E2, null, false, {}], \"allow\" : true } } \n",
      0, NULL, "" },
    { "{\"parameters\":{\"allow\":false,\"message\":\"no \\u00e9\"}}", 1, "no é", "" },
    /* The last of a repeated member, as json-c. */
    { "{\"parameters\":{\"allow\":true,\"allow\":false}}", 1, "vmemd refused", "" },
    { "{\"parameters\":{\"allow\":true,\"message\":\"\\ud800 alone\"}}", 0, "\xef\xbf\xbd alone",
      "" },
    { "{\"parameters\":{\"allow\":\"yes\"}}", 0, "its reply has no allow field", "" },
    { "{}", 0, "its reply has no allow field", "" },
    { "{\"error\":\"org.varlink.service.InvalidParameter\",\"parameters\":{\"parameter\":\"xml\"}}",
      0, "org.varlink.service.InvalidParameter: invalid parameter 'xml'", "" },
    { "{\"error\":\"io.vmemd.X\"}", 0, "io.vmemd.X", "" },
    { "{\"error\":5}", 0, "\"error\" is not an error name", "" },
    { "{\"parameters\":[]}", 0, "\"parameters\" is not an object", "" },
    { "{\"parameters\":{\"allow\":true},\"continues\":true}", 0, "\"continues\"", "" },
    { "{\"parameters\":{\"allow\":true}} x", 0, "trailing data", "" },
    { "[1]", 0, "array instead of a JSON object", "" },
    { "{\"parameters\":{\"allow\":true}", 0, "truncated JSON", "" },
    { "{\"parameters\":{\"allow\":tru}}", 0, "malformed message", "" },
    { "{\"parameters\":{\"allow\":true,}}", 0, "malformed message", "" },
    { "{\"parameters\":{\"allow\":true,\"x\":01}}", 0, "malformed message", "" },
    { "{\"parameters\":{\"allow\":true,\"x\":\"a\tb\"}}", 0, "control character", "" },
    { "{\"parameters\":{\"allow\":true,\"x\":\"\\x\"}}", 0, "invalid escape", "" },
    { "{\"parameters\":{\"allow\":true,\"x\":\"\\u12\"}}", 0, "invalid \\u escape", "" },
    { "{\"parameters\":{\"allow\":true,\"x\":\"\xff\"}}", 0, "not valid UTF-8", "" },
    { "", 0, "malformed message: empty", "" },
    { deep->str, 0, "nested too deep", "" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      const ReplyCase *c = &cases[i];
      g_autoptr(FakeDaemon) d = fake_daemon_new (f->dir, c->reply);
      g_auto(Run) r = { 0 };
      run_hook (f->config, "restore", "begin", domain_xml, &r);
      if (r.status != c->status)
        fail_msg ("reply %zu: exit %d, not %d (%s)", i, r.status, c->status, r.err);
      assert_string_equal (r.out, c->out);
      if (c->err == NULL)
        assert_string_equal (r.err, "");
      else
        assert_one_line (r.err, c->err);
    }
}

/* Sends @len bytes of XML padded with @pad; returns the request's
 * parameters, which always name the domain and its uuid. */
static json_object *
send_padded_xml (Fixture *f, gsize len, char pad)
{
  write_config (f, f->sock, 10000, FALSE);
  g_autoptr(FakeDaemon) d = fake_daemon_new (f->dir, "{\"parameters\":{\"allow\":true}}");
  g_autofree char *big = g_malloc (len);
  memset (big, pad, len);
  memcpy (big, domain_xml, strlen (domain_xml));

  g_auto(Run) r = { 0 };
  char *argv[] = { (char *) hook_path (), (char *) "vm1", (char *) "prepare",
                   (char *) "begin",      (char *) "-",   NULL };
  run_binary (argv, f->config, big, len, &r);
  assert_int_equal (r.status, 0);
  assert_string_equal (r.err, "");
  g_autoptr(json_object) req = fake_daemon_request (d);
  if (req == NULL)
    fail_msg ("vmemd got no event for %zu bytes of XML", len);
  json_object *p = NULL, *v = NULL;
  assert_true (json_object_object_get_ex (req, "parameters", &p));
  assert_true (json_object_object_get_ex (p, "domain", &v));
  assert_true (json_object_object_get_ex (p, "uuid", &v));
  assert_string_equal (json_object_get_string (v), "c7a5fdbd-edaf-9455-926a-d65c16db1809");
  return json_object_get (p);
}

static void
assert_xml_missing (json_object *p, const char *why)
{
  json_object *v = NULL;
  assert_false (json_object_object_get_ex (p, "xml", &v));
  assert_true (json_object_object_get_ex (p, "xml_missing", &v));
  if (strstr (json_object_get_string (v), why) == NULL)
    fail_msg ("xml_missing '%s' lacks '%s'", json_object_get_string (v), why);
}

static void
test_oversized_xml_is_not_sent (void **state)
{
  /* Larger than the hook reads at all: the event arrives, and says why it
   * comes without the XML. */
  g_autoptr(json_object) huge = send_padded_xml (*state, VMEM_HOOK_MAX_XML + 4096, ' ');
  assert_xml_missing (huge, "larger than the 16 MiB the hook reads");
  /* Within what the hook reads, but not into one message once escaped. */
  g_autoptr(json_object) escaped = send_padded_xml (*state, 6 * 1024 * 1024, '\001');
  assert_xml_missing (escaped, "does not fit into one message");
}

/* What the hook reads, vmemd gets: the limits agree (a 1 MiB message
 * limit used to drop a domain XML with a large <description>). */
static void
test_large_xml_is_sent (void **state)
{
  static const gsize sizes[] = { 2 * 1024 * 1024, VMEM_HOOK_MAX_XML };
  for (gsize i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      g_autoptr(json_object) p = send_padded_xml (*state, sizes[i], '\n');
      json_object *v = NULL;
      assert_true (json_object_object_get_ex (p, "xml", &v));
      assert_int_equal (json_object_get_string_len (v), sizes[i]);
      assert_false (json_object_object_get_ex (p, "xml_missing", &v));
    }
}

/* A start vmemd admits with a warning: the hook shows it, and goes on. */
static void
test_warning_is_shown (void **state)
{
  Fixture *f = *state;
  g_autoptr(FakeDaemon) d = fake_daemon_new (
    f->dir, "{\"parameters\":{\"allow\":true,\"message\":\"vmemd: the start of vm1 was not "
            "checked\"}}");
  g_auto(Run) r = { 0 };
  run_hook (f->config, "prepare", "begin", domain_xml, &r);
  assert_int_equal (r.status, 0);
  assert_string_equal (r.out, "");
  assert_string_equal (r.err, "vmemd: the start of vm1 was not checked\n");
}

/* --- pure helpers ------------------------------------------------------------------ */

static void
test_find_uuid (void **state)
{
  g_autofree char *u = vmem_hook_find_uuid (domain_xml);
  assert_string_equal (u, "c7a5fdbd-edaf-9455-926a-d65c16db1809");
  g_autofree char *spaced =
    vmem_hook_find_uuid ("<uuid>\n  c7a5fdbd-edaf-9455-926a-d65c16db1809 </uuid>");
  assert_string_equal (spaced, "c7a5fdbd-edaf-9455-926a-d65c16db1809");
  assert_null (vmem_hook_find_uuid (NULL));
  assert_null (vmem_hook_find_uuid (""));
  assert_null (vmem_hook_find_uuid ("<domain><name>x</name></domain>"));
  assert_null (vmem_hook_find_uuid ("<uuid>c7a5fdbd-edaf-9455-926a-d65c16db1809"));
  assert_null (vmem_hook_find_uuid ("<uuid>garbage</uuid>"));
}

static void
test_find_name (void **state)
{
  g_autofree char *n = vmem_hook_find_name (domain_xml);
  assert_string_equal (n, "vm1");
  g_autofree char *esc =
    vmem_hook_find_name ("<domain><name>a&amp;b&lt;&gt;&quot;&apos;&#233;&#x41;"
                         "</name><name>second</name></domain>");
  assert_string_equal (esc, "a&b<>\"'\xc3\xa9"
                            "A");
  g_autofree char *spaced = vmem_hook_find_name ("<name> vm1 </name>");
  assert_string_equal (spaced, " vm1 ");
  assert_null (vmem_hook_find_name (NULL));
  assert_null (vmem_hook_find_name ("<domain><uuid>x</uuid></domain>"));
  assert_null (vmem_hook_find_name ("<name>vm1"));
  assert_null (vmem_hook_find_name ("<name>a&bogus;b</name>"));
  assert_null (vmem_hook_find_name ("<name>a&b</name>"));
  assert_null (vmem_hook_find_name ("<name>&#0;</name>"));
}

/* The XML on standard input must be the domain's the arguments name:
 * another's is not sent, nor its uuid, and vmemd is told why. */
static void
test_xml_of_another_domain_is_not_sent (void **state)
{
  Fixture *f = *state;
  g_autoptr(FakeDaemon) d = fake_daemon_new (f->dir, "{\"parameters\":{\"allow\":true}}");
  g_auto(Run) r = { 0 };
  char *argv[] = { (char *) hook_path (), (char *) "vm2", (char *) "prepare",
                   (char *) "begin",      (char *) "-",   NULL };
  run_binary (argv, f->config, domain_xml, strlen (domain_xml), &r);
  assert_int_equal (r.status, 0);
  g_autoptr(json_object) req = fake_daemon_request (d);
  assert_non_null (req);
  json_object *p = NULL, *v = NULL;
  assert_true (json_object_object_get_ex (req, "parameters", &p));
  assert_true (json_object_object_get_ex (p, "domain", &v));
  assert_string_equal (json_object_get_string (v), "vm2");
  assert_false (json_object_object_get_ex (p, "uuid", &v));
  assert_false (json_object_object_get_ex (p, "xml", &v));
  assert_true (json_object_object_get_ex (p, "xml_missing", &v));
  assert_string_equal (json_object_get_string (v),
                       "the domain XML the hook was given is that of 'vm1'");
}

static void
test_which_events (void **state)
{
  /* What vmemd acts on: admission, the XML of an incoming domain, the end
   * of a start's reservation. */
  assert_true (vmem_hook_passes_on ("prepare", "begin"));
  assert_true (vmem_hook_passes_on ("migrate", "begin"));
  assert_true (vmem_hook_passes_on ("restore", "begin"));
  assert_true (vmem_hook_passes_on ("stopped", "end"));
  assert_true (vmem_hook_passes_on ("release", "end"));
  assert_true (vmem_hook_passes_on ("release", "-"));
  /* What vmemd would only log. */
  assert_false (vmem_hook_passes_on ("start", "begin"));
  assert_false (vmem_hook_passes_on ("started", "begin"));
  assert_false (vmem_hook_passes_on ("reconnect", "begin"));
  assert_false (vmem_hook_passes_on ("attach", "begin"));
  assert_false (vmem_hook_passes_on ("prepare", "end"));
  assert_false (vmem_hook_passes_on ("migrate", "end"));
  assert_false (vmem_hook_passes_on ("Prepare", "begin"));
  assert_false (vmem_hook_passes_on ("", "begin"));
  assert_true (vmem_hook_may_refuse ("prepare", "begin"));
  assert_true (vmem_hook_may_refuse ("migrate", "begin"));
  assert_true (vmem_hook_may_refuse ("restore", "begin"));
  assert_false (vmem_hook_may_refuse ("start", "begin"));
  assert_false (vmem_hook_may_refuse ("prepare", "end"));
  assert_false (vmem_hook_may_refuse ("reconnect", "begin"));
  assert_false (vmem_hook_may_refuse ("started", "begin"));
  assert_false (vmem_hook_may_refuse ("release", "end"));
  assert_true (vmem_hook_prints_xml ("restore", "begin"));
  assert_true (vmem_hook_prints_xml ("migrate", "begin"));
  assert_false (vmem_hook_prints_xml ("prepare", "begin"));
  assert_false (vmem_hook_prints_xml ("restore", "end"));
}

/* --- vmemctl's error paths ---------------------------------------------------------- */

static const char *
vmemctl_path (void)
{
  const char *p = g_getenv ("VMEMCTL");
  if (p == NULL)
    fail_msg ("VMEMCTL is not set (run through meson test)");
  return p;
}

static void
run_vmemctl (Fixture *f, const char *a1, const char *a2, const char *a3, Run *r)
{
  char *argv[] = { (char *) vmemctl_path (),
                   (char *) "--timeout",
                   (char *) "1",
                   (char *) a1,
                   (char *) a2,
                   (char *) a3,
                   NULL };
  run_binary (argv, f->config, "", 0, r);
}

static void
test_vmemctl_unreachable (void **state)
{
  Fixture *f = *state;
  /* The socket comes from the config, as for the hook. */
  g_auto(Run) r = { 0 };
  run_vmemctl (f, "status", NULL, NULL, &r);
  assert_int_equal (r.status, 4);
  assert_string_equal (r.out, "");
  assert_one_line (r.err, "vmemctl: cannot reach vmemd");
  assert_non_null (strstr (r.err, f->sock));

  /* $VMEMD_SOCKET wins over the config, --socket over both. */
  g_autofree char *env_sock = g_build_filename (f->dir, "from-env.sock", NULL);
  g_autofree char *env = g_strdup_printf ("VMEMD_SOCKET=%s", env_sock);
  char *argv[] = { (char *) vmemctl_path (), (char *) "status", NULL };
  g_auto(Run) e = { 0 };
  run_binary_env (argv, f->config, env, "", 0, &e);
  assert_int_equal (e.status, 4);
  assert_one_line (e.err, "from-env.sock");
  char *argv2[] = { (char *) vmemctl_path (), (char *) "status", (char *) "--socket",
                    (char *) "/nonexistent/opt.sock", NULL };
  g_auto(Run) o = { 0 };
  run_binary_env (argv2, f->config, env, "", 0, &o);
  assert_int_equal (o.status, 4);
  assert_one_line (o.err, "/nonexistent/opt.sock");

  /* A daemon that never answers is unreachable too, after --timeout. */
  g_autoptr(FakeDaemon) d = fake_daemon_new (f->dir, NULL);
  g_auto(Run) t = { 0 };
  run_vmemctl (f, "profile", "list", NULL, &t);
  assert_int_equal (t.status, 4);
  assert_one_line (t.err, "vmemctl: ");
  assert_in_time (&t, 1000);
}

static void
test_vmemctl_usage_errors (void **state)
{
  Fixture *f = *state;
  g_auto(Run) r = { 0 };
  run_vmemctl (f, "profile", "add", "--demand=lots", &r);
  assert_int_equal (r.status, 2);
  assert_one_line (r.err, "vmemctl: profile add: ");

  g_auto(Run) u = { 0 };
  run_vmemctl (f, "frobnicate", NULL, NULL, &u);
  assert_int_equal (u.status, 2);
  assert_one_line (u.err, "unknown command 'frobnicate'");

  g_auto(Run) h = { 0 };
  run_vmemctl (f, "--help", NULL, NULL, &h);
  assert_int_equal (h.status, 0);
  assert_non_null (strstr (h.out, "Exit status:"));
  assert_string_equal (h.err, "");
}

static void
test_vmemctl_daemon_errors (void **state)
{
  Fixture *f = *state;
  static const struct {
    const char *reply;
    int status;
    const char *message;
  } cases[] = {
    { "{\"error\":\"io.vmemd.NotFound\",\"parameters\":{\"message\":\"no profile named 'erp'\"}}",
      3, "vmemctl: no profile named 'erp'\n" },
    { "{\"error\":\"io.vmemd.PermissionDenied\",\"parameters\":{\"message\":\"admin only\"}}", 5,
      "vmemctl: admin only\n" },
    { "{\"error\":\"io.vmemd.Busy\",\"parameters\":{\"message\":\"2 domains use it\"}}", 1,
      "vmemctl: 2 domains use it\n" },
    { "{\"error\":\"io.vmemd.InvalidArgument\",\"parameters\":{\"message\":\"floor: above\"}}", 1,
      "vmemctl: floor: above\n" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(FakeDaemon) d = fake_daemon_new (f->dir, cases[i].reply);
      g_auto(Run) r = { 0 };
      run_vmemctl (f, "profile", "show", "erp", &r);
      assert_int_equal (r.status, cases[i].status);
      assert_string_equal (r.err, cases[i].message);
      assert_string_equal (r.out, "");
    }

  /* And a success, printed as a table and as JSON. */
  g_autoptr(FakeDaemon) ok = fake_daemon_new (
    f->dir, "{\"parameters\":{\"profile\":{\"name\":\"erp\",\"demand_mib\":2048,"
            "\"ceiling_mib\":4096,\"prealloc\":true}}}");
  g_auto(Run) t = { 0 };
  run_vmemctl (f, "profile", "show", "erp", &t);
  assert_int_equal (t.status, 0);
  assert_non_null (strstr (t.out, "Demand:    2G\n"));
  assert_non_null (strstr (t.out, "Ceiling:   4G\n"));
  g_autoptr(json_object) req = fake_daemon_request (ok);
  json_object *p = NULL, *n = NULL;
  assert_true (json_object_object_get_ex (req, "parameters", &p));
  assert_true (json_object_object_get_ex (p, "name", &n));
  assert_string_equal (json_object_get_string (n), "erp");

  g_auto(Run) j = { 0 };
  run_vmemctl (f, "--json", "profile", "show", &j);
  assert_int_equal (j.status, 2); /* no NAME: refused before any call */
  g_auto(Run) j2 = { 0 };
  char *argv[] = { (char *) vmemctl_path (), (char *) "profile", (char *) "show",
                   (char *) "erp",           (char *) "--json",  NULL };
  run_binary (argv, f->config, "", 0, &j2);
  assert_int_equal (j2.status, 0);
  g_autoptr(json_object) shown = json_tokener_parse (j2.out);
  assert_non_null (shown);
  json_object *dm = NULL;
  assert_true (json_object_object_get_ex (shown, "demand_mib", &dm));
  assert_int_equal (json_object_get_int64 (dm), 2048);
}

/* vmemctl replay: a bad trace is a usage error (2), and prints no estimate
 * even when good lines came before the bad one; options must be numbers. */
static void
test_vmemctl_replay_errors (void **state)
{
  Fixture *f = *state;
  g_autoptr(GString) trace = g_string_new ("time,domain,workload,vcpus,ceiling_kib,used_kib\n");
  for (int h = 0; h <= 72; h++)
    g_string_append_printf (trace, "%d,a,web,1,1048576,%d\n", h * 3600, 102400 + h * 1024);
  g_autofree char *good = g_build_filename (f->dir, "good.csv", NULL);
  assert_true (g_file_set_contents (good, trace->str, -1, NULL));
  g_string_append (trace, "266400,a,web,one,1048576,1024\n");
  g_autofree char *bad = g_build_filename (f->dir, "bad.csv", NULL);
  assert_true (g_file_set_contents (bad, trace->str, -1, NULL));

  char *ok_argv[] = { (char *) vmemctl_path (), (char *) "replay", good, NULL };
  g_auto(Run) ok = { 0 };
  run_binary (ok_argv, f->config, "", 0, &ok);
  assert_int_equal (ok.status, 0);
  assert_true (g_str_has_prefix (ok.out, "time,domain,estimate_kib,source\n"));
  assert_non_null (strstr (ok.out, "\n172800,a,"));

  char *bad_argv[] = { (char *) vmemctl_path (), (char *) "replay", bad, NULL };
  g_auto(Run) r = { 0 };
  run_binary (bad_argv, f->config, "", 0, &r);
  assert_int_equal (r.status, 2);
  assert_string_equal (r.out, "");
  assert_one_line (r.err, "bad.csv:75: vcpus");

  static const char *const numbers[][2] = {
    { "--quantile", "nan" },
    { "--margin", "inf" },
    { "--half-life", "soon" },
    { "--quantile", "" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (numbers); i++)
    {
      char *argv[] = { (char *) vmemctl_path (), (char *) "replay",      good,
                       (char *) numbers[i][0],   (char *) numbers[i][1], NULL };
      g_auto(Run) n = { 0 };
      run_binary (argv, f->config, "", 0, &n);
      if (n.status != 2)
        fail_msg ("%s %s: exit %d", numbers[i][0], numbers[i][1], n.status);
      assert_string_equal (n.out, "");
      assert_one_line (n.err, numbers[i][0]);
      assert_non_null (strstr (n.err, "is not a number"));
    }
  char *q_argv[] = { (char *) vmemctl_path (), (char *) "replay", good,
                     (char *) "--quantile",    (char *) "0.9",    NULL };
  g_auto(Run) q = { 0 };
  run_binary (q_argv, f->config, "", 0, &q);
  assert_int_equal (q.status, 0);
  g_unlink (good);
  g_unlink (bad);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_find_uuid),
    cmocka_unit_test (test_find_name),
    cmocka_unit_test (test_which_events),
    cmocka_unit_test_setup_teardown (test_no_daemon_fails_open, setup, teardown),
    cmocka_unit_test_setup_teardown (test_no_daemon_fail_closed_refuses_only_the_start, setup,
                                     teardown),
    cmocka_unit_test_setup_teardown (test_broken_config_uses_defaults, setup, teardown),
    cmocka_unit_test_setup_teardown (test_config_reader, setup, teardown),
    cmocka_unit_test_setup_teardown (test_config_other_keys_are_vmemds, setup, teardown),
    cmocka_unit_test_setup_teardown (test_call_encodes_every_byte, setup, teardown),
    cmocka_unit_test_setup_teardown (test_replies, setup, teardown),
    cmocka_unit_test_setup_teardown (test_stuck_config_is_cut_short, setup, teardown),
    cmocka_unit_test_setup_teardown (test_silent_daemon_times_out_open, setup, teardown),
    cmocka_unit_test_setup_teardown (test_silent_daemon_fail_closed, setup, teardown),
    cmocka_unit_test_setup_teardown (test_silent_daemon_costs_one_timeout, setup, teardown),
    cmocka_unit_test_setup_teardown (test_ignored_events_exit_at_once, setup, teardown),
    cmocka_unit_test_setup_teardown (test_notifications_are_oneway, setup, teardown),
    cmocka_unit_test_setup_teardown (test_hung_stdin_does_not_hang, setup, teardown),
    cmocka_unit_test_setup_teardown (test_refusal_exits_1_with_the_message, setup, teardown),
    cmocka_unit_test_setup_teardown (test_refusal_is_one_line, setup, teardown),
    cmocka_unit_test_setup_teardown (test_restore_prints_the_xml, setup, teardown),
    cmocka_unit_test_setup_teardown (test_daemon_error_reply_fails_open, setup, teardown),
    cmocka_unit_test_setup_teardown (test_oversized_xml_is_not_sent, setup, teardown),
    cmocka_unit_test_setup_teardown (test_large_xml_is_sent, setup, teardown),
    cmocka_unit_test_setup_teardown (test_xml_of_another_domain_is_not_sent, setup, teardown),
    cmocka_unit_test_setup_teardown (test_warning_is_shown, setup, teardown),
    cmocka_unit_test_setup_teardown (test_vmemctl_unreachable, setup, teardown),
    cmocka_unit_test_setup_teardown (test_vmemctl_usage_errors, setup, teardown),
    cmocka_unit_test_setup_teardown (test_vmemctl_daemon_errors, setup, teardown),
    cmocka_unit_test_setup_teardown (test_vmemctl_replay_errors, setup, teardown),
  };
  signal (SIGPIPE, SIG_IGN);
  return cmocka_run_group_tests (tests, NULL, NULL);
}
