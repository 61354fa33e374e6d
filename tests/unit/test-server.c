/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The real server, run on its own thread's main context, driven by the
 * real client and by raw sockets for what a well-behaved client never
 * sends.  Permission tests fork children that drop to nobody: they need
 * root and fail without it. */
#include "vmem-cleanup.h"
#include "vmem-error.h"
#include "vmem-server.h"
#include "vmem-varlink.h"

#include <errno.h>
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define NOBODY          65534
#define REQUEST_TIMEOUT 1 /* s */
#define IDLE_TIMEOUT    3 /* s */
#define SILENT_TIMEOUT  1 /* s */
#define MAX_CLIENTS     4
#define ROOT_CLIENTS    2
#define MAX_MESSAGE      (1024 * 1024)
#define MAX_ROOT_MESSAGE (1536 * 1024)

static const char test_idl[] =
  "interface io.vmemd.test\n"
  "method Echo(any: ?object) -> (echo: object, uid: int, gid: int, pid: int, method: string)\n";

typedef struct {
  char          *dir;
  char          *path;
  GThread       *thread;
  GMainContext  *context;
  GMainLoop     *loop;
  VmemServer    *server;
  GMutex         lock;
  GCond          cond;
  gboolean       ready;
  char          *listen_error;
  gint           count;     /* calls of Count */
  gint           late_done; /* replies sent by Later */
} Fixture;

/* ---- methods, run on the server thread -------------------------------- */

static void
method_echo (VmemCall *call, json_object *parameters, gpointer user_data)
{
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "echo", json_object_get (parameters));
  json_object_object_add (r, "uid", json_object_new_int64 (vmem_call_get_peer_uid (call)));
  json_object_object_add (r, "gid", json_object_new_int64 (vmem_call_get_peer_gid (call)));
  json_object_object_add (r, "pid", json_object_new_int64 (vmem_call_get_peer_pid (call)));
  json_object_object_add (r, "method", json_object_new_string (vmem_call_get_method (call)));
  vmem_call_reply (call, r);
}

static void
method_ok (VmemCall *call, json_object *parameters, gpointer user_data)
{
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "ok", json_object_new_boolean (TRUE));
  vmem_call_reply (call, r);
}

static void
method_fail (VmemCall *call, json_object *parameters, gpointer user_data)
{
  g_autoptr(GError) error = g_error_new (VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no profile '%s'",
                                         "db");
  vmem_call_return_error (call, error);
}

static void
method_count (VmemCall *call, json_object *parameters, gpointer user_data)
{
  Fixture *fx = user_data;
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "n", json_object_new_int (g_atomic_int_add (&fx->count, 1) + 1));
  vmem_call_reply (call, r);
}

typedef struct {
  Fixture  *fx;
  VmemCall *call;
} Later;

static gboolean
later_reply (gpointer data)
{
  Later *l = data;
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "later", json_object_new_boolean (TRUE));
  /* Counted before the reply goes out, so that a client that has its reply
   * also sees it counted. */
  g_atomic_int_inc (&l->fx->late_done);
  /* A no-op when the client is gone: must not crash or warn. */
  vmem_call_reply (l->call, r);
  vmem_call_unref (l->call);
  g_free (l);
  return G_SOURCE_REMOVE;
}

static void
method_later (VmemCall *call, json_object *parameters, gpointer user_data)
{
  Later *l = g_new0 (Later, 1);
  l->fx = user_data;
  l->call = vmem_call_ref (call);
  g_autoptr(GSource) src = g_timeout_source_new (300);
  g_source_set_callback (src, later_reply, l, NULL);
  g_source_attach (src, g_main_context_get_thread_default ());
}

/* Whether the caller is still there, 200 ms after its call. */
static gboolean
connected_reply (gpointer data)
{
  VmemCall *call = data;
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "connected", json_object_new_boolean (vmem_call_is_connected (call)));
  vmem_call_reply (call, r);
  vmem_call_unref (call);
  return G_SOURCE_REMOVE;
}

static void
method_connected (VmemCall *call, json_object *parameters, gpointer user_data)
{
  g_autoptr(GSource) src = g_timeout_source_new (200);
  g_source_set_callback (src, connected_reply, vmem_call_ref (call), NULL);
  g_source_attach (src, g_main_context_get_thread_default ());
}

static void
method_blob (VmemCall *call, json_object *parameters, gpointer user_data)
{
  json_object *size = json_object_object_get (parameters, "size");
  gsize n = (gsize) json_object_get_int64 (size);
  g_autofree char *s = g_malloc (n + 1);
  memset (s, 'b', n);
  s[n] = '\0';
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "blob", json_object_new_string_len (s, (int) n));
  vmem_call_reply (call, r);
}

/* ---- fixture ------------------------------------------------------------ */

static gpointer
server_thread (gpointer data)
{
  Fixture *fx = data;
  const VmemServerLimits limits = {
    .max_message = MAX_MESSAGE,
    .max_root_message = MAX_ROOT_MESSAGE,
    .max_clients = MAX_CLIENTS,
    .root_clients = ROOT_CLIENTS,
    .request_timeout_s = REQUEST_TIMEOUT,
    .idle_timeout_s = IDLE_TIMEOUT,
    .silent_timeout_s = SILENT_TIMEOUT,
  };

  g_main_context_push_thread_default (fx->context);
  fx->server = vmem_server_new (&limits);
  vmem_server_add_interface (fx->server, "io.vmemd.test", test_idl);
  vmem_server_add_method (fx->server, "io.vmemd.test.Echo", 0, method_echo, fx);
  vmem_server_add_method (fx->server, "io.vmemd.test.Admin", VMEM_METHOD_ADMIN, method_ok, fx);
  vmem_server_add_method (fx->server, "io.vmemd.test.Root", VMEM_METHOD_ROOT, method_ok, fx);
  vmem_server_add_method (fx->server, "io.vmemd.test.Fail", 0, method_fail, fx);
  vmem_server_add_method (fx->server, "io.vmemd.test.Count", 0, method_count, fx);
  vmem_server_add_method (fx->server, "io.vmemd.test.Later", 0, method_later, fx);
  vmem_server_add_method (fx->server, "io.vmemd.test.Blob", 0, method_blob, fx);
  vmem_server_add_method (fx->server, "io.vmemd.test.Connected", 0, method_connected, fx);

  /* World-connectable so that children running as nobody reach the
   * methods; the admin group is root's, which nobody is not in. */
  g_autoptr(GError) error = NULL;
  gboolean ok = vmem_server_listen (fx->server, fx->path, 0666, NULL, &error);
  struct group *gr = getgrgid (0);
  vmem_server_set_admin_group (fx->server, gr ? gr->gr_name : "root");

  g_mutex_lock (&fx->lock);
  fx->ready = TRUE;
  fx->listen_error = ok ? NULL : g_strdup (error->message);
  g_cond_signal (&fx->cond);
  g_mutex_unlock (&fx->lock);

  if (ok)
    g_main_loop_run (fx->loop);
  g_clear_pointer (&fx->server, vmem_server_free);
  /* Let sources destroyed by the free run their cleanups. */
  while (g_main_context_iteration (fx->context, FALSE))
    ;
  g_main_context_pop_thread_default (fx->context);
  return NULL;
}

static int
setup (void **state)
{
  Fixture *fx = g_new0 (Fixture, 1);
  fx->dir = g_dir_make_tmp ("vmem-server-XXXXXX", NULL);
  g_assert (fx->dir != NULL);
  chmod (fx->dir, 0755);
  fx->path = g_build_filename (fx->dir, "run", "io.vmemd", NULL);
  fx->context = g_main_context_new ();
  fx->loop = g_main_loop_new (fx->context, FALSE);
  g_mutex_init (&fx->lock);
  g_cond_init (&fx->cond);
  fx->thread = g_thread_new ("server", server_thread, fx);
  g_mutex_lock (&fx->lock);
  while (!fx->ready)
    g_cond_wait (&fx->cond, &fx->lock);
  g_mutex_unlock (&fx->lock);
  if (fx->listen_error != NULL)
    fail_msg ("listen: %s", fx->listen_error);
  *state = fx;
  return 0;
}

static int
teardown (void **state)
{
  Fixture *fx = *state;
  g_main_loop_quit (fx->loop);
  g_main_context_wakeup (fx->context);
  g_thread_join (fx->thread);
  /* The server removed the socket it created. */
  assert_false (g_file_test (fx->path, G_FILE_TEST_EXISTS));
  g_autofree char *run = g_path_get_dirname (fx->path);
  rmdir (run);
  rmdir (fx->dir);
  g_main_loop_unref (fx->loop);
  g_main_context_unref (fx->context);
  g_mutex_clear (&fx->lock);
  g_cond_clear (&fx->cond);
  g_free (fx->listen_error);
  g_free (fx->path);
  g_free (fx->dir);
  g_free (fx);
  return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static json_object *
call_ok (Fixture *fx, const char *method, json_object *params)
{
  g_autoptr(GError) error = NULL;
  json_object *r = vmem_varlink_call (fx->path, method, params, 5000, &error);
  if (r == NULL)
    fail_msg ("%s: %s", method, error->message);
  return r;
}

static void
call_fails (Fixture *fx, const char *method, json_object *params, int code, const char *text)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) r = vmem_varlink_call (fx->path, method, params, 5000, &error);
  if (r != NULL)
    fail_msg ("%s succeeded: %s", method, json_object_to_json_string (r));
  if (!g_error_matches (error, VMEM_ERROR, code) || strstr (error->message, text) == NULL)
    fail_msg ("%s: got %d '%s', want %d '%s'", method, error->code, error->message, code, text);
}

static int
raw_connect (Fixture *fx)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_strlcpy (addr.sun_path, fx->path, sizeof addr.sun_path);
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true (fd >= 0);
  assert_int_equal (connect (fd, (struct sockaddr *) &addr, sizeof addr), 0);
  /* No test may hang on a server that fails to answer. */
  struct timeval tv = { .tv_sec = 5 };
  setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt (fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return fd;
}

static void
raw_send (int fd, const char *data, gsize len)
{
  gsize off = 0;
  while (off < len)
    {
      ssize_t n = send (fd, data + off, len - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        fail_msg ("send: %s", g_strerror (errno));
      off += (gsize) n;
    }
}

#define RAW_SEND(fd, s) raw_send ((fd), (s), sizeof (s)) /* with the NUL */

/* Reads one message byte by byte, so pipelined replies stay in the socket.
 * NULL when the connection ends first. */
static json_object *
raw_recv (int fd)
{
  g_autoptr(GString) s = g_string_new (NULL);
  for (;;)
    {
      char ch;
      ssize_t n = recv (fd, &ch, 1, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        fail_msg ("no reply within 5 s");
      if (n <= 0)
        return NULL;
      if (ch == '\0')
        break;
      g_string_append_c (s, ch);
    }
  json_object *o = json_tokener_parse (s->str);
  if (o == NULL)
    fail_msg ("reply is not JSON: %s", s->str);
  return o;
}

/* The server closed the connection (possibly after a reset). */
static void
assert_closed (int fd)
{
  char buf[256];
  for (;;)
    {
      ssize_t n = recv (fd, buf, sizeof buf, 0);
      if (n == 0 || (n < 0 && errno == ECONNRESET))
        return;
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        fail_msg ("connection still open: %s", g_strerror (errno));
    }
}

static void
assert_error_reply (json_object *reply, const char *name, const char *key, const char *value)
{
  if (reply == NULL)
    fail_msg ("no reply, want %s", name);
  json_object *err = json_object_object_get (reply, "error");
  json_object *params = json_object_object_get (reply, "parameters");
  if (err == NULL || !g_str_equal (json_object_get_string (err), name))
    fail_msg ("want %s, got %s", name, json_object_to_json_string (reply));
  const char *got = json_object_get_string (json_object_object_get (params, key));
  if (got == NULL || strstr (got, value) == NULL)
    fail_msg ("want %s=%s, got %s", key, value, json_object_to_json_string (reply));
}

static const char *
get_str (json_object *o, const char *key)
{
  return json_object_get_string (json_object_object_get (o, key));
}

/* ---- tests -------------------------------------------------------------- */

static void
test_roundtrip (void **state)
{
  Fixture *fx = *state;
  g_autoptr(json_object) params = json_object_new_object ();
  json_object_object_add (params, "x", json_object_new_string ("héllo"));
  g_autoptr(json_object) r = call_ok (fx, "io.vmemd.test.Echo", params);
  assert_true (json_object_equal (json_object_object_get (r, "echo"), params));
  assert_int_equal (json_object_get_int (json_object_object_get (r, "uid")), getuid ());
  assert_int_equal (json_object_get_int (json_object_object_get (r, "gid")), getgid ());
  assert_int_equal (json_object_get_int (json_object_object_get (r, "pid")), getpid ());
  assert_string_equal (get_str (r, "method"), "io.vmemd.test.Echo");

  /* No parameters at all: the handler still gets an object. */
  int fd = raw_connect (fx);
  RAW_SEND (fd, "{\"method\":\"io.vmemd.test.Echo\"}");
  g_autoptr(json_object) r2 = raw_recv (fd);
  json_object *p = json_object_object_get (r2, "parameters");
  assert_true (json_object_is_type (json_object_object_get (p, "echo"), json_type_object));

  /* Errors from a handler keep their name and message. */
  call_fails (fx, "io.vmemd.test.Fail", NULL, VMEM_ERROR_NOT_FOUND, "no profile 'db'");
  RAW_SEND (fd, "{\"method\":\"io.vmemd.test.Fail\"}");
  g_autoptr(json_object) r3 = raw_recv (fd);
  assert_error_reply (r3, "io.vmemd.NotFound", "message", "no profile 'db'");
  close (fd);
}

static void
test_get_info (void **state)
{
  Fixture *fx = *state;
  g_autoptr(json_object) r = call_ok (fx, "org.varlink.service.GetInfo", NULL);
  assert_string_equal (get_str (r, "vendor"), "vmemd");
  assert_string_equal (get_str (r, "product"), "vmemd");
  assert_string_equal (get_str (r, "version"), VMEM_VERSION);
  assert_non_null (get_str (r, "url"));
  json_object *ifs = json_object_object_get (r, "interfaces");
  assert_int_equal (json_object_array_length (ifs), 2);
  assert_string_equal (json_object_get_string (json_object_array_get_idx (ifs, 0)),
                       "org.varlink.service");
  assert_string_equal (json_object_get_string (json_object_array_get_idx (ifs, 1)),
                       "io.vmemd.test");
}

static void
test_get_interface_description (void **state)
{
  Fixture *fx = *state;
  g_autoptr(json_object) p = json_object_new_object ();
  json_object_object_add (p, "interface", json_object_new_string ("io.vmemd.test"));
  g_autoptr(json_object) r = call_ok (fx, "org.varlink.service.GetInterfaceDescription", p);
  assert_string_equal (get_str (r, "description"), test_idl);

  json_object_object_add (p, "interface", json_object_new_string ("org.varlink.service"));
  g_autoptr(json_object) r2 = call_ok (fx, "org.varlink.service.GetInterfaceDescription", p);
  assert_non_null (strstr (get_str (r2, "description"), "method GetInfo()"));

  int fd = raw_connect (fx);
  RAW_SEND (fd, "{\"method\":\"org.varlink.service.GetInterfaceDescription\",\"parameters\":{\"interface\":\"io.nope\"}}");
  g_autoptr(json_object) r3 = raw_recv (fd);
  assert_error_reply (r3, "org.varlink.service.InterfaceNotFound", "interface", "io.nope");
  RAW_SEND (fd, "{\"method\":\"org.varlink.service.GetInterfaceDescription\",\"parameters\":{}}");
  g_autoptr(json_object) r4 = raw_recv (fd);
  assert_error_reply (r4, "org.varlink.service.InvalidParameter", "parameter", "interface");
  close (fd);
}

static void
test_method_not_found (void **state)
{
  Fixture *fx = *state;
  call_fails (fx, "io.vmemd.test.Nope", NULL, VMEM_ERROR_INVALID_ARGUMENT,
              "MethodNotFound: io.vmemd.test.Nope");
  int fd = raw_connect (fx);
  RAW_SEND (fd, "{\"method\":\"io.vmemd.test.Nope\",\"parameters\":{}}");
  g_autoptr(json_object) r = raw_recv (fd);
  assert_error_reply (r, "org.varlink.service.MethodNotFound", "method", "io.vmemd.test.Nope");
  RAW_SEND (fd, "{\"method\":\"org.varlink.service.Nope\"}");
  g_autoptr(json_object) r2 = raw_recv (fd);
  assert_error_reply (r2, "org.varlink.service.MethodNotFound", "method",
                      "org.varlink.service.Nope");

  /* An interface the server does not have is named as such. */
  RAW_SEND (fd, "{\"method\":\"io.nope.Ping\"}");
  g_autoptr(json_object) r3 = raw_recv (fd);
  assert_error_reply (r3, "org.varlink.service.InterfaceNotFound", "interface", "io.nope");
  json_object *p = json_object_object_get (r3, "parameters");
  assert_string_equal (json_object_get_string (json_object_object_get (p, "interface")), "io.nope");
  close (fd);
  call_fails (fx, "io.nope.Ping", NULL, VMEM_ERROR_INVALID_ARGUMENT, "InterfaceNotFound: io.nope");
}

static void
test_invalid_parameter (void **state)
{
  Fixture *fx = *state;
  static const struct {
    const char *msg;
    const char *parameter;
  } cases[] = {
    { "{\"parameters\":{}}", "method" },
    { "{\"method\":5}", "method" },
    { "{\"method\":\"\"}", "method" },
    { "{\"method\":\"io.vmemd.test.Echo\",\"parameters\":[1]}", "parameters" },
    { "{\"method\":\"io.vmemd.test.Echo\",\"parameters\":null}", "parameters" },
    { "{\"method\":\"io.vmemd.test.Echo\",\"more\":true}", "more" },
    { "{\"method\":\"io.vmemd.test.Echo\",\"upgrade\":true}", "upgrade" },
    { "{\"method\":\"io.vmemd.test.Echo\",\"oneway\":\"yes\"}", "oneway" },
  };

  /* Each is well-formed varlink, so the connection stays usable. */
  int fd = raw_connect (fx);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      raw_send (fd, cases[i].msg, strlen (cases[i].msg) + 1);
      g_autoptr(json_object) r = raw_recv (fd);
      assert_error_reply (r, "org.varlink.service.InvalidParameter", "parameter",
                          cases[i].parameter);
    }
  RAW_SEND (fd, "{\"method\":\"io.vmemd.test.Echo\",\"more\":false,\"oneway\":false}");
  g_autoptr(json_object) ok = raw_recv (fd);
  assert_null (json_object_object_get (ok, "error"));
  close (fd);
}

static void
test_bad_json (void **state)
{
  Fixture *fx = *state;
  static const char *const bad[] = { "{\"method\":", "[1]", "\xff\xfe", "", "{} {}" };

  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      int fd = raw_connect (fx);
      raw_send (fd, bad[i], strlen (bad[i]) + 1);
      g_autoptr(json_object) r = raw_recv (fd);
      assert_error_reply (r, "io.vmemd.ProtocolError", "message", "malformed message");
      assert_closed (fd);
      close (fd);
      /* The daemon carries on. */
      g_autoptr(json_object) ok = call_ok (fx, "io.vmemd.test.Echo", NULL);
    }

  /* A bad message after good ones: the good ones are answered first. */
  int fd = raw_connect (fx);
  RAW_SEND (fd, "{\"method\":\"io.vmemd.test.Count\"}\0oops\0{\"method\":\"io.vmemd.test.Count\"}");
  g_autoptr(json_object) r1 = raw_recv (fd);
  assert_int_equal (json_object_get_int (json_object_object_get (json_object_object_get (r1, "parameters"), "n")), 1);
  g_autoptr(json_object) r2 = raw_recv (fd);
  assert_error_reply (r2, "io.vmemd.ProtocolError", "message", "malformed");
  assert_closed (fd);
  close (fd);
  assert_int_equal (g_atomic_int_get (&fx->count), 1);
}

static void
test_oversized (void **state)
{
  Fixture *fx = *state;
  int fd = raw_connect (fx);
  gsize len = 2 * 1024 * 1024;
  g_autofree char *big = g_malloc (len);
  memset (big, ' ', len);
  big[0] = '{';
  /* The server stops reading after the limit: later sends may fail. */
  gsize off = 0;
  while (off < len)
    {
      ssize_t n = send (fd, big + off, len - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          assert_true (errno == EPIPE || errno == ECONNRESET);
          break;
        }
      off += (gsize) n;
    }
  g_autoptr(json_object) r = raw_recv (fd);
  assert_error_reply (r, "io.vmemd.ProtocolError", "message", "larger than 1572864 bytes");
  assert_closed (fd);
  close (fd);
  g_autoptr(json_object) ok = call_ok (fx, "io.vmemd.test.Echo", NULL);

  /* A reply over the limit becomes an error instead. */
  g_autoptr(json_object) p = json_object_new_object ();
  json_object_object_add (p, "size", json_object_new_int (2 * 1024 * 1024));
  call_fails (fx, "io.vmemd.test.Blob", p, VMEM_ERROR_FAILED, "reply is larger than");
}

/* Root (the hook) may send and get larger messages than others: a domain
 * XML over the general limit still reaches the daemon. */
static void
test_root_message_limit (void **state)
{
  Fixture *fx = *state;
  if (getuid () != 0)
    fail_msg ("this test must run as root (it drops to uid %d)", NOBODY);
  gsize len = MAX_MESSAGE + 200 * 1024;
  g_autofree char *text = g_malloc (len + 1);
  memset (text, 'x', len);
  text[len] = '\0';
  g_autoptr(json_object) params = json_object_new_object ();
  json_object_object_add (params, "text", json_object_new_string (text));

  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) r = vmem_varlink_call_sized (fx->path, "io.vmemd.test.Echo", params, 5000,
                                                      MAX_ROOT_MESSAGE, &error);
  if (r == NULL)
    fail_msg ("root: %s", error->message);
  json_object *echo = json_object_object_get (r, "echo");
  assert_int_equal (json_object_get_string_len (json_object_object_get (echo, "text")), len);

  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      if (setgroups (0, NULL) < 0 || setgid (NOBODY) < 0 || setuid (NOBODY) < 0)
        _exit (3);
      g_autoptr(GError) child_error = NULL;
      g_autoptr(json_object) cr = vmem_varlink_call_sized (fx->path, "io.vmemd.test.Echo", params,
                                                           5000, MAX_ROOT_MESSAGE, &child_error);
      _exit (cr == NULL && strstr (child_error->message, "larger than 1048576 bytes") ? 0 : 2);
    }
  int status = 0;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFEXITED (status));
  assert_int_equal (WEXITSTATUS (status), 0);
}

static void
test_max_clients (void **state)
{
  Fixture *fx = *state;
  int fds[MAX_CLIENTS + ROOT_CLIENTS];

  /* Root's own places too: this test runs as root. */
  for (guint i = 0; i < G_N_ELEMENTS (fds); i++)
    {
      fds[i] = raw_connect (fx);
      /* An answer proves the server took this connection. */
      RAW_SEND (fds[i], "{\"method\":\"org.varlink.service.GetInfo\"}");
      g_autoptr(json_object) r = raw_recv (fds[i]);
      assert_null (json_object_object_get (r, "error"));
    }
  call_fails (fx, "io.vmemd.test.Echo", NULL, VMEM_ERROR_BUSY, "too many clients");

  int extra = raw_connect (fx);
  g_autoptr(json_object) busy = raw_recv (extra);
  assert_error_reply (busy, "io.vmemd.Busy", "message", "too many clients");
  assert_closed (extra);
  close (extra);

  /* One leaves: room for one more. */
  close (fds[0]);
  gint64 until = g_get_monotonic_time () + 2 * G_USEC_PER_SEC;
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(json_object) r = vmem_varlink_call (fx->path, "io.vmemd.test.Echo", NULL, 2000, &error);
      if (r != NULL)
        break;
      assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_BUSY));
      assert_true (g_get_monotonic_time () < until);
      g_usleep (20000);
    }
  for (guint i = 1; i < G_N_ELEMENTS (fds); i++)
    close (fds[i]);
}

/* Others filling every place leave root (the hook) places of its own. */
static void
test_root_keeps_places (void **state)
{
  Fixture *fx = *state;
  if (getuid () != 0)
    fail_msg ("this test must run as root (it drops to uid %d)", NOBODY);
  int ready[2], done[2];
  assert_int_equal (pipe (ready), 0);
  assert_int_equal (pipe (done), 0);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      close (ready[0]);
      close (done[1]);
      if (setgroups (0, NULL) < 0 || setgid (NOBODY) < 0 || setuid (NOBODY) < 0)
        _exit (3);
      int fds[MAX_CLIENTS];
      for (guint i = 0; i < MAX_CLIENTS; i++)
        {
          fds[i] = raw_connect (fx);
          RAW_SEND (fds[i], "{\"method\":\"org.varlink.service.GetInfo\"}");
          g_autoptr(json_object) r = raw_recv (fds[i]);
          if (r == NULL || json_object_object_get (r, "error") != NULL)
            _exit (4);
        }
      /* Every place others may take is taken. */
      g_autoptr(GError) error = NULL;
      g_autoptr(json_object) r = vmem_varlink_call (fx->path, "io.vmemd.test.Echo", NULL, 2000,
                                                    &error);
      char verdict = r == NULL && g_error_matches (error, VMEM_ERROR, VMEM_ERROR_BUSY) ? 'y' : 'n';
      if (write (ready[1], &verdict, 1) != 1)
        _exit (5);
      char c;
      if (read (done[0], &c, 1) < 0)
        _exit (6);
      _exit (0);
    }
  close (ready[1]);
  close (done[0]);
  char verdict = 0;
  assert_int_equal (read (ready[0], &verdict, 1), 1);
  assert_int_equal (verdict, 'y');
  /* Root still gets in, for every call of a start. */
  for (guint i = 0; i < 3; i++)
    {
      g_autoptr(json_object) r = call_ok (fx, "io.vmemd.test.Echo", NULL);
    }
  close (done[1]);
  close (ready[0]);
  int status = 0;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFEXITED (status));
  assert_int_equal (WEXITSTATUS (status), 0);
}

/* Runs @method in a child with the given credentials.  Returns 0 when it
 * succeeded, 1 when refused with PermissionDenied naming @method, 2 for
 * anything else. */
static int
call_as (Fixture *fx, const char *method, gid_t gid, const gid_t *groups, int n_groups)
{
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      if (setgroups (n_groups, groups) < 0 || setgid (gid) < 0 || setuid (NOBODY) < 0 ||
          getuid () != NOBODY)
        _exit (3);
      g_autoptr(GError) error = NULL;
      g_autoptr(json_object) r = vmem_varlink_call (fx->path, method, NULL, 5000, &error);
      if (r != NULL)
        _exit (0);
      if (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_PERMISSION_DENIED) &&
          strstr (error->message, method) != NULL && strstr (error->message, "65534") != NULL)
        _exit (1);
      g_printerr ("child: %s\n", error->message);
      _exit (2);
    }
  int status = 0;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFEXITED (status));
  assert_int_not_equal (WEXITSTATUS (status), 3);
  return WEXITSTATUS (status);
}

static void
test_permission (void **state)
{
  Fixture *fx = *state;
  if (getuid () != 0)
    fail_msg ("the permission test must run as root (it drops to uid %d)", NOBODY);

  const gid_t admin[] = { 0 };
  const gid_t other[] = { 100 };

  /* Nobody, in no useful group: only methods without flags. */
  assert_int_equal (call_as (fx, "io.vmemd.test.Echo", NOBODY, NULL, 0), 0);
  assert_int_equal (call_as (fx, "io.vmemd.test.Admin", NOBODY, NULL, 0), 1);
  assert_int_equal (call_as (fx, "io.vmemd.test.Admin", NOBODY, other, 1), 1);
  assert_int_equal (call_as (fx, "io.vmemd.test.Root", NOBODY, NULL, 0), 1);
  /* The admin group as a supplementary group, or as the primary one. */
  assert_int_equal (call_as (fx, "io.vmemd.test.Admin", NOBODY, admin, 1), 0);
  assert_int_equal (call_as (fx, "io.vmemd.test.Admin", 0, NULL, 0), 0);
  /* Root-only methods stay root-only for the admin group. */
  assert_int_equal (call_as (fx, "io.vmemd.test.Root", 0, admin, 1), 1);
  /* Built-in introspection is open to anyone who can connect. */
  assert_int_equal (call_as (fx, "org.varlink.service.GetInfo", NOBODY, NULL, 0), 0);

  /* Root itself may do everything. */
  g_autoptr(json_object) a = call_ok (fx, "io.vmemd.test.Admin", NULL);
  g_autoptr(json_object) b = call_ok (fx, "io.vmemd.test.Root", NULL);

  /* The refusal is io.vmemd.PermissionDenied and names the group. */
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      if (setgroups (0, NULL) < 0 || setgid (NOBODY) < 0 || setuid (NOBODY) < 0)
        _exit (3);
      int fd = raw_connect (fx);
      RAW_SEND (fd, "{\"method\":\"io.vmemd.test.Admin\"}");
      g_autoptr(json_object) r = raw_recv (fd);
      struct group *gr = getgrgid (0);
      if (r == NULL || !g_str_equal (get_str (r, "error"), "io.vmemd.PermissionDenied") ||
          strstr (get_str (json_object_object_get (r, "parameters"), "message"),
                  gr ? gr->gr_name : "root") == NULL)
        _exit (2);
      _exit (0);
    }
  int status = 0;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFEXITED (status));
  assert_int_equal (WEXITSTATUS (status), 0);
}

typedef struct {
  Fixture *fx;
  gint64   done_at;
  gboolean ok;
} LaterCall;

static gpointer
later_thread (gpointer data)
{
  LaterCall *lc = data;
  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) r = vmem_varlink_call (lc->fx->path, "io.vmemd.test.Later", NULL, 5000, &error);
  lc->ok = r != NULL && json_object_get_boolean (json_object_object_get (r, "later"));
  lc->done_at = g_get_monotonic_time ();
  return NULL;
}

static void
test_async_reply (void **state)
{
  Fixture *fx = *state;
  LaterCall lc = { .fx = fx };
  gint64 start = g_get_monotonic_time ();
  GThread *t = g_thread_new ("later", later_thread, &lc);

  /* While Later waits, other clients are served at once. */
  g_usleep (50000);
  g_autoptr(json_object) r = call_ok (fx, "io.vmemd.test.Echo", NULL);
  gint64 echo_at = g_get_monotonic_time ();
  g_thread_join (t);
  assert_true (lc.ok);
  assert_true (echo_at < lc.done_at);
  assert_true (lc.done_at - start >= 300000);

  /* Pipelined on one connection, replies keep the order of the calls. */
  int fd = raw_connect (fx);
  RAW_SEND (fd, "{\"method\":\"io.vmemd.test.Later\"}\0{\"method\":\"io.vmemd.test.Count\"}");
  g_autoptr(json_object) r1 = raw_recv (fd);
  g_autoptr(json_object) r2 = raw_recv (fd);
  assert_true (json_object_get_boolean (json_object_object_get (json_object_object_get (r1, "parameters"), "later")));
  assert_int_equal (json_object_get_int (json_object_object_get (json_object_object_get (r2, "parameters"), "n")), 1);
  close (fd);

  /* A client that leaves before its reply: the late reply goes nowhere. */
  int gone = raw_connect (fx);
  RAW_SEND (gone, "{\"method\":\"io.vmemd.test.Later\"}");
  close (gone);
  gint done = g_atomic_int_get (&fx->late_done);
  gint64 until = g_get_monotonic_time () + 3 * G_USEC_PER_SEC;
  while (g_atomic_int_get (&fx->late_done) == done)
    {
      assert_true (g_get_monotonic_time () < until);
      g_usleep (20000);
    }
  g_autoptr(json_object) after = call_ok (fx, "io.vmemd.test.Echo", NULL);
}

/* A caller that has closed its end, its call still unread, has gone as
 * far as a method can tell. */
static void
test_caller_gone (void **state)
{
  Fixture *fx = *state;
  g_autoptr(json_object) r = call_ok (fx, "io.vmemd.test.Connected", NULL);
  assert_true (json_object_get_boolean (json_object_object_get (r, "connected")));

  int fd = raw_connect (fx);
  RAW_SEND (fd, "{\"method\":\"io.vmemd.test.Connected\"}");
  assert_int_equal (shutdown (fd, SHUT_WR), 0);
  g_autoptr(json_object) gone = raw_recv (fd);
  json_object *p = json_object_object_get (gone, "parameters");
  assert_false (json_object_get_boolean (json_object_object_get (p, "connected")));
  close (fd);
}

static void
test_oneway (void **state)
{
  Fixture *fx = *state;
  int fd = raw_connect (fx);
  /* The oneway call runs but sends nothing, error or not: the first
   * reply read is the one of the last call. */
  RAW_SEND (fd, "{\"method\":\"io.vmemd.test.Count\",\"oneway\":true}\0"
                "{\"method\":\"io.vmemd.test.Nope\",\"oneway\":true}\0"
                "{\"method\":\"io.vmemd.test.Count\"}");
  g_autoptr(json_object) r = raw_recv (fd);
  assert_null (json_object_object_get (r, "error"));
  assert_int_equal (json_object_get_int (json_object_object_get (json_object_object_get (r, "parameters"), "n")), 2);
  close (fd);
}

typedef struct {
  int    fd;
  gint64 first_byte;
} Trickle;

/* Sends a byte every 200 ms, as long as the server takes them. */
static gpointer
trickle_thread (gpointer data)
{
  Trickle *t = data;
  const char msg[] = "{\"method\":\"io.vmemd.test.Echo\"}";
  t->first_byte = g_get_monotonic_time ();
  for (guint i = 0; i < 10; i++)
    {
      if (send (t->fd, msg + i, 1, MSG_NOSIGNAL) < 0)
        break;
      g_usleep (200000);
    }
  return NULL;
}

static void
assert_took (gint64 start, guint seconds)
{
  gint64 took = g_get_monotonic_time () - start;
  if (took < seconds * G_USEC_PER_SEC - 100000 || took > seconds * G_USEC_PER_SEC + 1500000)
    fail_msg ("took %" G_GINT64_FORMAT " ms, want about %u s", took / 1000, seconds);
}

static void
test_slow_client (void **state)
{
  Fixture *fx = *state;

  /* Half a message, then silence. */
  int slow = raw_connect (fx);
  gint64 start = g_get_monotonic_time ();
  raw_send (slow, "{\"method\":", 10);

  /* A client that trickles a byte every 200 ms is held to the same time,
   * counted from its first byte. */
  Trickle t = { .fd = raw_connect (fx) };
  GThread *thread = g_thread_new ("trickle", trickle_thread, &t);

  /* Others are served meanwhile. */
  for (guint i = 0; i < 3; i++)
    {
      g_autoptr(json_object) r = call_ok (fx, "io.vmemd.test.Echo", NULL);
      g_usleep (100000);
    }

  g_autoptr(json_object) e1 = raw_recv (slow);
  assert_took (start, REQUEST_TIMEOUT);
  assert_error_reply (e1, "io.vmemd.Timeout", "message", "not completed in time");
  assert_closed (slow);
  close (slow);

  g_autoptr(json_object) e2 = raw_recv (t.fd);
  assert_took (t.first_byte, REQUEST_TIMEOUT);
  assert_error_reply (e2, "io.vmemd.Timeout", "message", "not completed in time");
  assert_closed (t.fd);
  g_thread_join (thread);
  close (t.fd);

  g_autoptr(json_object) r2 = call_ok (fx, "io.vmemd.test.Echo", NULL);
}

/* A connection that says nothing is closed long before an idle one. */
static void
test_silent_client (void **state)
{
  Fixture *fx = *state;
  int fd = raw_connect (fx);
  gint64 start = g_get_monotonic_time ();
  assert_closed (fd);
  assert_took (start, SILENT_TIMEOUT);
  close (fd);

  /* Having said something, it has the idle time between calls. */
  int talker = raw_connect (fx);
  RAW_SEND (talker, "{\"method\":\"io.vmemd.test.Echo\"}");
  g_autoptr(json_object) r = raw_recv (talker);
  start = g_get_monotonic_time ();
  assert_closed (talker);
  assert_took (start, IDLE_TIMEOUT);
  close (talker);
}

static void
test_idle_client (void **state)
{
  Fixture *fx = *state;
  int fd = raw_connect (fx);
  RAW_SEND (fd, "{\"method\":\"io.vmemd.test.Echo\"}");
  g_autoptr(json_object) r = raw_recv (fd);
  gint64 start = g_get_monotonic_time ();
  /* Complete messages do not count as a request in progress: only the
   * idle time closes this one, quietly. */
  assert_closed (fd);
  assert_took (start, IDLE_TIMEOUT);
  close (fd);
}

static void
test_reader_stalls (void **state)
{
  Fixture *fx = *state;
  /* A client that asks for big replies and never reads them: the server
   * neither blocks nor buffers without end, and drops it. */
  int fd = raw_connect (fx);
  int small = 4096;
  setsockopt (fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  for (guint i = 0; i < 4; i++)
    RAW_SEND (fd, "{\"method\":\"io.vmemd.test.Blob\",\"parameters\":{\"size\":900000}}");

  gint64 start = g_get_monotonic_time ();
  for (guint i = 0; i < 5; i++)
    {
      g_autoptr(json_object) r = call_ok (fx, "io.vmemd.test.Echo", NULL);
      g_usleep (100000);
    }
  gint64 left = REQUEST_TIMEOUT * G_USEC_PER_SEC + 500000 - (g_get_monotonic_time () - start);
  if (left > 0)
    g_usleep ((gulong) left);

  /* Whatever was written before the drop, the stream then ends, well
   * before all four replies (3.6 MB) could have been sent. */
  gsize total = 0;
  char buf[65536];
  for (;;)
    {
      ssize_t n = recv (fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        fail_msg ("the stalled reader was not dropped");
      if (n <= 0)
        break;
      total += (gsize) n;
    }
  assert_true (total < 2 * 900000);
  close (fd);
}

static void
test_listen_socket_file (void **state)
{
  Fixture *fx = *state;
  g_autoptr(GError) error = NULL;

  /* A live server on the path: refused, and its socket left alone. */
  g_autoptr(VmemServer) second = vmem_server_new (NULL);
  assert_false (vmem_server_listen (second, fx->path, 0660, NULL, &error));
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_EXISTS));
  g_clear_pointer (&second, vmem_server_free);
  g_autoptr(json_object) r = call_ok (fx, "io.vmemd.test.Echo", NULL);

  /* A stale socket file is replaced; the new socket has the mode asked. */
  g_autofree char *stale = g_build_filename (fx->dir, "stale.sock", NULL);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_strlcpy (addr.sun_path, stale, sizeof addr.sun_path);
  int fd = socket (AF_UNIX, SOCK_STREAM, 0);
  assert_int_equal (bind (fd, (struct sockaddr *) &addr, sizeof addr), 0);
  close (fd);
  g_autoptr(VmemServer) third = vmem_server_new (NULL);
  g_clear_error (&error);
  assert_true (vmem_server_listen (third, stale, 0640, NULL, &error));
  struct stat st;
  assert_int_equal (stat (stale, &st), 0);
  assert_int_equal (st.st_mode & 07777, 0640);
  g_clear_pointer (&third, vmem_server_free);
  assert_false (g_file_test (stale, G_FILE_TEST_EXISTS));

  /* Something that is not a socket is never removed. */
  g_autofree char *plain = g_build_filename (fx->dir, "plain", NULL);
  assert_true (g_file_set_contents (plain, "x", 1, NULL));
  g_autoptr(VmemServer) fourth = vmem_server_new (NULL);
  assert_false (vmem_server_listen (fourth, plain, 0660, NULL, &error));
  assert_true (g_file_test (plain, G_FILE_TEST_IS_REGULAR));
  unlink (plain);

  /* An adopted socket is served, and its file is not ours to remove. */
  g_autofree char *adopted = g_build_filename (fx->dir, "adopted.sock", NULL);
  g_strlcpy (addr.sun_path, adopted, sizeof addr.sun_path);
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_int_equal (bind (fd, (struct sockaddr *) &addr, sizeof addr), 0);
  assert_int_equal (listen (fd, 8), 0);
  g_autoptr(VmemServer) fifth = vmem_server_new (NULL);
  g_clear_error (&error);
  assert_true (vmem_server_adopt_fd (fifth, fd, &error));
  g_clear_pointer (&fifth, vmem_server_free);
  assert_true (g_file_test (adopted, G_FILE_TEST_EXISTS));
  unlink (adopted);

  /* A descriptor that is no stream socket is refused. */
  g_autoptr(VmemServer) sixth = vmem_server_new (NULL);
  g_clear_error (&error);
  int dgram = socket (AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  assert_false (vmem_server_adopt_fd (sixth, dgram, &error));
  close (dgram);
}

int
main (void)
{
  /* A missing MSG_NOSIGNAL anywhere would kill the test. */
  signal (SIGPIPE, SIG_DFL);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_roundtrip, setup, teardown),
    cmocka_unit_test_setup_teardown (test_get_info, setup, teardown),
    cmocka_unit_test_setup_teardown (test_get_interface_description, setup, teardown),
    cmocka_unit_test_setup_teardown (test_method_not_found, setup, teardown),
    cmocka_unit_test_setup_teardown (test_invalid_parameter, setup, teardown),
    cmocka_unit_test_setup_teardown (test_bad_json, setup, teardown),
    cmocka_unit_test_setup_teardown (test_oversized, setup, teardown),
    cmocka_unit_test_setup_teardown (test_root_message_limit, setup, teardown),
    cmocka_unit_test_setup_teardown (test_max_clients, setup, teardown),
    cmocka_unit_test_setup_teardown (test_root_keeps_places, setup, teardown),
    cmocka_unit_test_setup_teardown (test_permission, setup, teardown),
    cmocka_unit_test_setup_teardown (test_async_reply, setup, teardown),
    cmocka_unit_test_setup_teardown (test_caller_gone, setup, teardown),
    cmocka_unit_test_setup_teardown (test_oneway, setup, teardown),
    cmocka_unit_test_setup_teardown (test_slow_client, setup, teardown),
    cmocka_unit_test_setup_teardown (test_silent_client, setup, teardown),
    cmocka_unit_test_setup_teardown (test_idle_client, setup, teardown),
    cmocka_unit_test_setup_teardown (test_reader_stalls, setup, teardown),
    cmocka_unit_test_setup_teardown (test_listen_socket_file, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
