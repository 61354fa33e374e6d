/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Framing, builders and the bounded client, the client against small
 * servers written here with plain sockets so that each misbehaviour
 * (silence, early close, bad replies, full backlog) is exact. */
#include "vmem-cleanup.h"
#include "vmem-error.h"
#include "vmem-varlink.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- framer ----------------------------------------------------------- */

static void
feed_ok (VmemVarlinkFramer *f, const char *data, gsize len)
{
  g_autoptr(GError) error = NULL;
  gboolean ok = vmem_varlink_framer_feed (f, data, len, &error);
  if (!ok)
    fail_msg ("feed failed: %s", error->message);
}

static json_object *
pop_ok (VmemVarlinkFramer *f)
{
  g_autoptr(GError) error = NULL;
  json_object *o = vmem_varlink_framer_pop (f, &error);
  if (error != NULL)
    fail_msg ("pop failed: %s", error->message);
  return o;
}

/* The message must be rejected and the text must name why. */
static void
pop_fails (VmemVarlinkFramer *f, const char *why)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) o = vmem_varlink_framer_pop (f, &error);
  assert_null (o);
  assert_non_null (error);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL));
  if (strstr (error->message, why) == NULL)
    fail_msg ("'%s' does not mention '%s'", error->message, why);
}

static void
test_framer_split (void **state)
{
  g_autoptr(VmemVarlinkFramer) f = vmem_varlink_framer_new (1024);
  const char msg[] = "{\"method\":\"io.vmemd.Ping\",\"parameters\":{}}";

  /* One byte at a time: nothing pops before the NUL. */
  for (gsize i = 0; i < sizeof msg - 1; i++)
    {
      feed_ok (f, msg + i, 1);
      assert_null (pop_ok (f));
      assert_int_equal (vmem_varlink_framer_get_partial (f), i + 1);
    }
  feed_ok (f, "", 1);
  assert_int_equal (vmem_varlink_framer_get_partial (f), 0);
  assert_int_equal (vmem_varlink_framer_get_n_complete (f), 1);
  g_autoptr(json_object) o = pop_ok (f);
  assert_non_null (o);
  assert_string_equal (json_object_get_string (json_object_object_get (o, "method")),
                       "io.vmemd.Ping");
  assert_null (pop_ok (f));
  assert_int_equal (vmem_varlink_framer_get_n_complete (f), 0);
}

static void
test_framer_several (void **state)
{
  g_autoptr(VmemVarlinkFramer) f = vmem_varlink_framer_new (1024);
  const char data[] = "{\"a\":1}\0{\"b\":2}\0  {\"c\":3}\n\0{\"d\"";

  feed_ok (f, data, sizeof data - 1);
  assert_int_equal (vmem_varlink_framer_get_n_complete (f), 3);
  assert_int_equal (vmem_varlink_framer_get_partial (f), 4);
  const char *keys[] = { "a", "b", "c" };
  for (guint i = 0; i < 3; i++)
    {
      g_autoptr(json_object) o = pop_ok (f);
      assert_non_null (o);
      assert_int_equal (json_object_get_int (json_object_object_get (o, keys[i])), (int) i + 1);
    }
  assert_null (pop_ok (f));

  feed_ok (f, ":4}\0{\"e\":5}\0", 12);
  g_autoptr(json_object) d = pop_ok (f);
  g_autoptr(json_object) e = pop_ok (f);
  assert_int_equal (json_object_get_int (json_object_object_get (d, "d")), 4);
  assert_int_equal (json_object_get_int (json_object_object_get (e, "e")), 5);
  assert_null (pop_ok (f));
}

static void
test_framer_many_small (void **state)
{
  /* Thousands of messages in one feed pop in order, in linear time. */
  g_autoptr(VmemVarlinkFramer) f = vmem_varlink_framer_new (64);
  g_autoptr(GString) s = g_string_new (NULL);
  for (int i = 0; i < 20000; i++)
    {
      g_string_append_printf (s, "{\"i\":%d}", i);
      g_string_append_c (s, '\0');
    }
  feed_ok (f, s->str, s->len);
  for (int i = 0; i < 20000; i++)
    {
      g_autoptr(json_object) o = pop_ok (f);
      assert_non_null (o);
      assert_int_equal (json_object_get_int (json_object_object_get (o, "i")), i);
    }
  assert_null (pop_ok (f));
}

static void
test_framer_empty (void **state)
{
  g_autoptr(VmemVarlinkFramer) f = vmem_varlink_framer_new (1024);

  feed_ok (f, "\0{\"a\":1}\0", 9);
  pop_fails (f, "empty");
  /* The bad message is consumed; the next one is intact. */
  g_autoptr(json_object) o = pop_ok (f);
  assert_non_null (o);
  assert_int_equal (json_object_get_int (json_object_object_get (o, "a")), 1);
}

/* A JSON object of exactly @len bytes. */
static char *
object_of_size (gsize len)
{
  g_assert (len >= 8);
  char *s = g_malloc (len + 1);
  memcpy (s, "{\"k\":\"", 6);
  memset (s + 6, 'x', len - 8);
  memcpy (s + len - 2, "\"}", 2);
  s[len] = '\0';
  return s;
}

static void
test_framer_limit (void **state)
{
  const gsize max = VMEM_VARLINK_MAX_MESSAGE;
  g_autofree char *at = object_of_size (max);
  g_autofree char *over = object_of_size (max + 1);

  /* Exactly at the limit, fed in 64 KiB pieces as a socket would. */
  g_autoptr(VmemVarlinkFramer) f = vmem_varlink_framer_new (max);
  for (gsize off = 0; off <= max; off += 65536)
    feed_ok (f, at + off, MIN (65536, max + 1 - off));
  g_autoptr(json_object) o = pop_ok (f);
  assert_non_null (o);
  assert_int_equal (json_object_get_string_len (json_object_object_get (o, "k")), max - 8);

  /* One byte more fails as soon as the byte arrives, before any NUL. */
  g_autoptr(VmemVarlinkFramer) g = vmem_varlink_framer_new (max);
  g_autoptr(GError) error = NULL;
  gboolean ok = TRUE;
  gsize off = 0;
  for (; off < max + 1 && ok; off += 65536)
    ok = vmem_varlink_framer_feed (g, over + off, MIN (65536, max + 1 - off), &error);
  assert_false (ok);
  /* It failed on the chunk holding byte max + 1, not earlier. */
  assert_int_equal (off, (max + 1 + 65535) / 65536 * 65536);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL));
  assert_non_null (strstr (error->message, "larger than"));
  /* The framer is done with: more input keeps failing, nothing pops. */
  g_clear_error (&error);
  assert_false (vmem_varlink_framer_feed (g, "\0", 1, &error));
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL));
  assert_null (pop_ok (g));
}

static void
test_framer_limit_inside_chunk (void **state)
{
  /* An oversized message that begins and ends inside one chunk, after a
   * good one, is caught too. */
  g_autoptr(VmemVarlinkFramer) f = vmem_varlink_framer_new (16);
  g_autofree char *big = object_of_size (17);
  g_autoptr(GString) s = g_string_new_len ("{}\0", 3);
  g_string_append_len (s, big, 18);
  g_autoptr(GError) error = NULL;
  assert_false (vmem_varlink_framer_feed (f, s->str, s->len, &error));
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL));

  g_autoptr(VmemVarlinkFramer) g = vmem_varlink_framer_new (16);
  g_autofree char *exact = object_of_size (16);
  feed_ok (g, exact, 17);
  g_autoptr(json_object) o = pop_ok (g);
  assert_non_null (o);
}

static void
test_framer_garbage (void **state)
{
  static const struct {
    const char *data;
    gsize       len;
    const char *why;
  } cases[] = {
    { "\xff\xfe{}\0", 5, "UTF-8" },
    { "{\"a\":\"\xc3\x28\"}\0", 11, "UTF-8" },
    { "not json\0", 9, "malformed message" },
    { "{\"a\":1} x\0", 10, "trailing" },
    { "{\"a\":1}{\"b\":2}\0", 15, "trailing" },
    { "{\"a\":\0", 6, "end of data" },
    { "{a:1}\0", 6, "quoted object property name" },
    { "{\"a\":1,}\0", 9, "malformed message" },
    { "[1,2]\0", 6, "array" },
    { "42\0", 3, "int" },
    { "\"s\"\0", 4, "string" },
    { "null\0", 5, "null" },
    { "true\0", 5, "boolean" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(VmemVarlinkFramer) f = vmem_varlink_framer_new (1024);
      feed_ok (f, cases[i].data, cases[i].len);
      pop_fails (f, cases[i].why);
      /* One bad message does not poison the stream for the framer. */
      feed_ok (f, "{}\0", 3);
      g_autoptr(json_object) o = pop_ok (f);
      assert_non_null (o);
    }

  /* Surrounding whitespace is JSON too. */
  g_autoptr(VmemVarlinkFramer) f = vmem_varlink_framer_new (1024);
  feed_ok (f, " \n{\"a\":1}\r\n\t\0", 13);
  g_autoptr(json_object) o = pop_ok (f);
  assert_non_null (o);
}

/* ---- builders --------------------------------------------------------- */

static char *
encoded (json_object *msg)
{
  g_autoptr(GBytes) b = vmem_varlink_encode (msg);
  gsize len;
  const char *data = g_bytes_get_data (b, &len);
  /* Exactly one NUL, at the end. */
  assert_true (len >= 1);
  assert_int_equal (data[len - 1], '\0');
  assert_int_equal (strlen (data), len - 1);
  return g_strdup (data);
}

static void
test_builders (void **state)
{
  g_autoptr(json_object) call = vmem_varlink_new_call ("io.vmemd.Ping", NULL);
  g_autofree char *s1 = encoded (call);
  assert_string_equal (s1, "{\"method\":\"io.vmemd.Ping\",\"parameters\":{}}");

  json_object *p = json_object_new_object ();
  json_object_object_add (p, "name", json_object_new_string ("db"));
  g_autoptr(json_object) call2 = vmem_varlink_new_call ("io.vmemd.ProfileGet", p);
  g_autofree char *s2 = encoded (call2);
  assert_string_equal (s2, "{\"method\":\"io.vmemd.ProfileGet\",\"parameters\":{\"name\":\"db\"}}");

  g_autoptr(json_object) reply = vmem_varlink_new_reply (NULL);
  g_autofree char *s3 = encoded (reply);
  assert_string_equal (s3, "{\"parameters\":{}}");

  g_autoptr(json_object) err = vmem_varlink_new_error ("io.vmemd.NotFound", "no profile \"x\"");
  g_autofree char *s4 = encoded (err);
  assert_string_equal (s4, "{\"error\":\"io.vmemd.NotFound\",\"parameters\":{\"message\":\"no profile \\\"x\\\"\"}}");

  g_autoptr(GError) gerr = g_error_new_literal (VMEM_ERROR, VMEM_ERROR_PERMISSION_DENIED, "no");
  g_autoptr(json_object) err2 = vmem_varlink_new_error_from_gerror (gerr);
  g_autofree char *s5 = encoded (err2);
  assert_string_equal (s5, "{\"error\":\"io.vmemd.PermissionDenied\",\"parameters\":{\"message\":\"no\"}}");

  /* Slashes are not escaped: a domain XML keeps its size. */
  g_autoptr(json_object) slashes = vmem_varlink_new_error ("io.vmemd.Failed", "</a>");
  g_autofree char *s6 = encoded (slashes);
  assert_string_equal (s6, "{\"error\":\"io.vmemd.Failed\",\"parameters\":{\"message\":\"</a>\"}}");

  /* A framed encoding parses back to the same object. */
  g_autoptr(GBytes) b = vmem_varlink_encode (call2);
  g_autoptr(VmemVarlinkFramer) f = vmem_varlink_framer_new (1024);
  feed_ok (f, g_bytes_get_data (b, NULL), g_bytes_get_size (b));
  g_autoptr(json_object) back = pop_ok (f);
  assert_true (json_object_equal (back, call2));
}

/* ---- client against hand-made servers ---------------------------------- */

typedef struct {
  char       *dir;
  char       *path;
  int         listen_fd;
  GThread    *thread;
  /* behaviour */
  const char *reply;      /* sent after the call arrived; NULL: send nothing */
  gsize       reply_len;
  guint       delay_ms;   /* before replying */
  gboolean    close_early; /* close as soon as the call arrived */
  /* observed */
  char       *call;       /* what the client sent, NUL excluded */
} Fake;

/* Signals are for the client's thread (see test_client_eintr). */
static void
block_signals (void)
{
  sigset_t set;
  sigemptyset (&set);
  sigaddset (&set, SIGALRM);
  pthread_sigmask (SIG_BLOCK, &set, NULL);
}

static gpointer
fake_thread (gpointer data)
{
  Fake *fk = data;
  block_signals ();
  int fd = accept4 (fk->listen_fd, NULL, NULL, SOCK_CLOEXEC);
  g_assert (fd >= 0);
  g_autoptr(GString) in = g_string_new (NULL);
  char buf[4096];
  while (memchr (in->str, '\0', in->len) == NULL)
    {
      ssize_t n = read (fd, buf, sizeof buf);
      if (n <= 0)
        break;
      g_string_append_len (in, buf, n);
    }
  fk->call = g_strdup (in->str);
  if (fk->close_early)
    {
      close (fd);
      return NULL;
    }
  if (fk->delay_ms > 0)
    g_usleep (fk->delay_ms * 1000);
  if (fk->reply != NULL)
    g_assert (send (fd, fk->reply, fk->reply_len, MSG_NOSIGNAL) == (ssize_t) fk->reply_len);
  /* Hold the connection until the client drops it. */
  while (read (fd, buf, sizeof buf) > 0)
    ;
  close (fd);
  return NULL;
}

static Fake *
fake_new (const char *reply, gsize reply_len)
{
  Fake *fk = g_new0 (Fake, 1);
  fk->dir = g_dir_make_tmp ("vmem-varlink-XXXXXX", NULL);
  g_assert (fk->dir != NULL);
  fk->path = g_build_filename (fk->dir, "sock", NULL);
  fk->reply = reply;
  fk->reply_len = reply_len;
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_strlcpy (addr.sun_path, fk->path, sizeof addr.sun_path);
  fk->listen_fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  g_assert (fk->listen_fd >= 0);
  g_assert (bind (fk->listen_fd, (struct sockaddr *) &addr, sizeof addr) == 0);
  g_assert (listen (fk->listen_fd, 8) == 0);
  return fk;
}

static void
fake_start (Fake *fk)
{
  fk->thread = g_thread_new ("fake", fake_thread, fk);
}

static void
fake_free (Fake *fk)
{
  if (fk->thread != NULL)
    g_thread_join (fk->thread);
  close (fk->listen_fd);
  unlink (fk->path);
  rmdir (fk->dir);
  g_free (fk->call);
  g_free (fk->path);
  g_free (fk->dir);
  g_free (fk);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Fake, fake_free)

#define REPLY(s) (s), sizeof (s) /* the literal with its NUL */

static void
test_client_roundtrip (void **state)
{
  g_autoptr(Fake) fk = fake_new (REPLY ("{\"parameters\":{\"version\":\"1\"}}"));
  fake_start (fk);
  g_autoptr(json_object) params = json_object_new_object ();
  json_object_object_add (params, "x", json_object_new_int (7));
  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) r = vmem_varlink_call (fk->path, "io.vmemd.Ping", params, 2000, &error);
  assert_null (error);
  assert_string_equal (json_object_get_string (json_object_object_get (r, "version")), "1");
  g_clear_pointer (&fk->thread, g_thread_join);
  assert_string_equal (fk->call, "{\"method\":\"io.vmemd.Ping\",\"parameters\":{\"x\":7}}");
  /* The caller's parameters are not consumed. */
  assert_int_equal (json_object_get_int (json_object_object_get (params, "x")), 7);
}

static void
test_client_empty_reply (void **state)
{
  g_autoptr(Fake) fk = fake_new (REPLY ("{}"));
  fake_start (fk);
  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) r = vmem_varlink_call (fk->path, "io.vmemd.X", NULL, 2000, &error);
  assert_null (error);
  assert_true (json_object_is_type (r, json_type_object));
  assert_int_equal (json_object_object_length (r), 0);
}

static void
client_expect_error (const char *reply, gsize len, int code, const char *text)
{
  g_autoptr(Fake) fk = fake_new (reply, len);
  fake_start (fk);
  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) r = vmem_varlink_call (fk->path, "io.vmemd.X", NULL, 2000, &error);
  assert_null (r);
  assert_non_null (error);
  if (!g_error_matches (error, VMEM_ERROR, code) || strstr (error->message, text) == NULL)
    fail_msg ("reply %s: got code %d '%s', want %d '%s'", reply, error->code, error->message,
              code, text);
}

static void
test_client_error_replies (void **state)
{
  client_expect_error (REPLY ("{\"error\":\"io.vmemd.NotFound\",\"parameters\":{\"message\":\"no profile db\"}}"),
                       VMEM_ERROR_NOT_FOUND, "no profile db");
  client_expect_error (REPLY ("{\"error\":\"io.vmemd.PermissionDenied\",\"parameters\":{\"message\":\"root only\"}}"),
                       VMEM_ERROR_PERMISSION_DENIED, "root only");
  client_expect_error (REPLY ("{\"error\":\"org.varlink.service.MethodNotFound\",\"parameters\":{\"method\":\"io.vmemd.X\"}}"),
                       VMEM_ERROR_INVALID_ARGUMENT, "MethodNotFound: io.vmemd.X");
  client_expect_error (REPLY ("{\"error\":\"org.varlink.service.InvalidParameter\",\"parameters\":{\"parameter\":\"name\"}}"),
                       VMEM_ERROR_INVALID_ARGUMENT, "'name'");
  client_expect_error (REPLY ("{\"error\":\"com.example.Odd\"}"), VMEM_ERROR_FAILED, "com.example.Odd");
}

static void
test_client_bad_replies (void **state)
{
  client_expect_error (REPLY ("{\"parameters\":[1]}"), VMEM_ERROR_PROTOCOL, "not an object");
  client_expect_error (REPLY ("{\"error\":5}"), VMEM_ERROR_PROTOCOL, "error name");
  client_expect_error (REPLY ("{\"error\":\"\"}"), VMEM_ERROR_PROTOCOL, "error name");
  client_expect_error (REPLY ("{\"parameters\":{},\"continues\":true}"), VMEM_ERROR_PROTOCOL, "continues");
  client_expect_error (REPLY ("[1]"), VMEM_ERROR_PROTOCOL, "bad reply");
  client_expect_error (REPLY ("garbage"), VMEM_ERROR_PROTOCOL, "bad reply");
  client_expect_error (REPLY ("\xff"), VMEM_ERROR_PROTOCOL, "UTF-8");
}

static void
test_client_no_socket (void **state)
{
  g_autofree char *dir = g_dir_make_tmp ("vmem-varlink-XXXXXX", NULL);
  g_autofree char *path = g_build_filename (dir, "missing", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) r = vmem_varlink_call (path, "io.vmemd.Ping", NULL, 1000, &error);
  assert_null (r);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE));
  assert_non_null (strstr (error->message, path));
  assert_non_null (strstr (error->message, g_strerror (ENOENT)));

  /* A socket file nobody listens on any more. */
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_strlcpy (addr.sun_path, path, sizeof addr.sun_path);
  int fd = socket (AF_UNIX, SOCK_STREAM, 0);
  assert_int_equal (bind (fd, (struct sockaddr *) &addr, sizeof addr), 0);
  close (fd);
  g_clear_error (&error);
  r = vmem_varlink_call (path, "io.vmemd.Ping", NULL, 1000, &error);
  assert_null (r);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE));
  assert_non_null (strstr (error->message, g_strerror (ECONNREFUSED)));
  unlink (path);
  rmdir (dir);

  /* A path that cannot be a socket address. */
  g_autofree char *longpath = g_strnfill (200, 'a');
  g_clear_error (&error);
  r = vmem_varlink_call (longpath, "io.vmemd.Ping", NULL, 1000, &error);
  assert_null (r);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
}

static void
assert_elapsed (gint64 start, int timeout_ms)
{
  gint64 ms = (g_get_monotonic_time () - start) / 1000;
  if (ms < timeout_ms - 5 || ms > timeout_ms + 500)
    fail_msg ("took %" G_GINT64_FORMAT " ms for a %d ms timeout", ms, timeout_ms);
}

static void
test_client_timeout_silent (void **state)
{
  g_autoptr(Fake) fk = fake_new (NULL, 0);
  fake_start (fk);
  g_autoptr(GError) error = NULL;
  gint64 start = g_get_monotonic_time ();
  g_autoptr(json_object) r = vmem_varlink_call (fk->path, "io.vmemd.Ping", NULL, 300, &error);
  assert_null (r);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_TIMEOUT));
  assert_elapsed (start, 300);
  assert_non_null (strstr (error->message, "300 ms"));
}

static void
test_client_timeout_partial (void **state)
{
  /* Half a reply, then silence: the deadline still holds. */
  g_autoptr(Fake) fk = fake_new ("{\"parameters\":", 14);
  fake_start (fk);
  g_autoptr(GError) error = NULL;
  gint64 start = g_get_monotonic_time ();
  g_autoptr(json_object) r = vmem_varlink_call (fk->path, "io.vmemd.Ping", NULL, 300, &error);
  assert_null (r);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_TIMEOUT));
  assert_elapsed (start, 300);
}

static void
test_client_timeout_backlog (void **state)
{
  /* A daemon that accepts nothing: its backlog fills, and connect itself
   * must be bounded by the same deadline. */
  g_autoptr(Fake) fk = fake_new (NULL, 0);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_strlcpy (addr.sun_path, fk->path, sizeof addr.sun_path);
  int fds[64];
  guint n = 0;
  for (; n < G_N_ELEMENTS (fds); n++)
    {
      fds[n] = socket (AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (connect (fds[n], (struct sockaddr *) &addr, sizeof addr) < 0)
        {
          assert_int_equal (errno, EAGAIN);
          close (fds[n]);
          break;
        }
    }
  assert_true (n < G_N_ELEMENTS (fds));

  g_autoptr(GError) error = NULL;
  gint64 start = g_get_monotonic_time ();
  g_autoptr(json_object) r = vmem_varlink_call (fk->path, "io.vmemd.Ping", NULL, 250, &error);
  assert_null (r);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_TIMEOUT));
  assert_elapsed (start, 250);
  for (guint i = 0; i < n; i++)
    close (fds[i]);
}

static void
test_client_oneway (void **state)
{
  /* Handed over without waiting for a reply (this server sends none). */
  g_autoptr(Fake) fk = fake_new (NULL, 0);
  fake_start (fk);
  g_autoptr(json_object) params = json_object_new_object ();
  json_object_object_add (params, "op", json_object_new_string ("release"));
  g_autoptr(GError) error = NULL;
  gint64 start = g_get_monotonic_time ();
  assert_true (vmem_varlink_send_oneway (fk->path, "io.vmemd.HookEvent", params, 200,
                                         VMEM_VARLINK_MAX_MESSAGE, &error));
  assert_null (error);
  assert_true (g_get_monotonic_time () - start < 150000);
  g_clear_pointer (&fk->thread, g_thread_join);
  assert_string_equal (fk->call, "{\"method\":\"io.vmemd.HookEvent\",\"parameters\":{\"op\":"
                                 "\"release\"},\"oneway\":true}");

  /* Nobody there: said at once. */
  g_autofree char *missing = g_build_filename (fk->dir, "missing", NULL);
  assert_false (vmem_varlink_send_oneway (missing, "io.vmemd.HookEvent", params, 200,
                                          VMEM_VARLINK_MAX_MESSAGE, &error));
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE));
  g_clear_error (&error);

  /* Over the limit given: nothing is sent. */
  assert_false (vmem_varlink_send_oneway (fk->path, "io.vmemd.HookEvent", params, 200, 16,
                                          &error));
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
}

static void
test_client_closed_early (void **state)
{
  g_autoptr(Fake) fk = fake_new (NULL, 0);
  fk->close_early = TRUE;
  fake_start (fk);
  g_autoptr(GError) error = NULL;
  gint64 start = g_get_monotonic_time ();
  g_autoptr(json_object) r = vmem_varlink_call (fk->path, "io.vmemd.Ping", NULL, 5000, &error);
  assert_null (r);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE));
  assert_non_null (strstr (error->message, "without a reply"));
  /* Noticed at once, not at the deadline. */
  assert_true (g_get_monotonic_time () - start < 2 * G_USEC_PER_SEC);
}

static gpointer
half_reply_thread (gpointer data)
{
  Fake *fk = data;
  block_signals ();
  int fd = accept4 (fk->listen_fd, NULL, NULL, SOCK_CLOEXEC);
  char buf[4096];
  g_assert (read (fd, buf, sizeof buf) > 0);
  g_assert (send (fd, "{\"param", 7, MSG_NOSIGNAL) == 7);
  close (fd);
  return NULL;
}

static void
test_client_closed_mid_reply (void **state)
{
  g_autoptr(Fake) fk = fake_new (NULL, 0);
  fk->thread = g_thread_new ("half", half_reply_thread, fk);
  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) r = vmem_varlink_call (fk->path, "io.vmemd.Ping", NULL, 5000, &error);
  assert_null (r);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE));
  assert_non_null (strstr (error->message, "middle of its reply"));
}

static gpointer
refuse_thread (gpointer data)
{
  Fake *fk = data;
  block_signals ();
  int fd = accept4 (fk->listen_fd, NULL, NULL, SOCK_CLOEXEC);
  const char busy[] = "{\"error\":\"io.vmemd.Busy\",\"parameters\":{\"message\":\"too many clients\"}}";
  g_assert (send (fd, busy, sizeof busy, MSG_NOSIGNAL) == sizeof busy);
  close (fd);
  return NULL;
}

static void
test_client_turned_away (void **state)
{
  /* The server answers and hangs up without reading a large call: the
   * client reports the server's reason, not the broken pipe. */
  g_autoptr(Fake) fk = fake_new (NULL, 0);
  fk->thread = g_thread_new ("refuse", refuse_thread, fk);
  g_autoptr(json_object) params = json_object_new_object ();
  g_autofree char *big = g_strnfill (900000, 'x');
  json_object_object_add (params, "big", json_object_new_string (big));
  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) r = vmem_varlink_call (fk->path, "io.vmemd.Ping", params, 5000, &error);
  assert_null (r);
  if (!g_error_matches (error, VMEM_ERROR, VMEM_ERROR_BUSY))
    fail_msg ("got '%s'", error->message);
  assert_string_equal (error->message, "too many clients");
}

static volatile sig_atomic_t n_alarms;

static void
on_alarm (int sig)
{
  n_alarms++;
}

static void
test_client_eintr (void **state)
{
  /* Signals without SA_RESTART interrupt poll every 10 ms; the call
   * neither fails nor stretches its deadline. */
  struct sigaction sa = { .sa_handler = on_alarm }, old;
  sigaction (SIGALRM, &sa, &old);
  struct itimerval it = { .it_interval = { 0, 10000 }, .it_value = { 0, 10000 } };
  setitimer (ITIMER_REAL, &it, NULL);

  g_autoptr(Fake) fk = fake_new (REPLY ("{\"parameters\":{\"ok\":true}}"));
  fk->delay_ms = 200;
  fake_start (fk);
  g_autoptr(GError) error = NULL;
  n_alarms = 0;
  g_autoptr(json_object) r = vmem_varlink_call (fk->path, "io.vmemd.Ping", NULL, 3000, &error);
  assert_null (error);
  assert_true (json_object_get_boolean (json_object_object_get (r, "ok")));

  g_autoptr(Fake) silent = fake_new (NULL, 0);
  fake_start (silent);
  gint64 start = g_get_monotonic_time ();
  g_autoptr(json_object) r2 = vmem_varlink_call (silent->path, "io.vmemd.Ping", NULL, 300, &error);
  assert_null (r2);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_TIMEOUT));
  assert_elapsed (start, 300);

  struct itimerval off = { { 0, 0 }, { 0, 0 } };
  setitimer (ITIMER_REAL, &off, NULL);
  sigaction (SIGALRM, &old, NULL);
  assert_true (n_alarms > 10);
}

int
main (void)
{
  /* A client whose server vanished must get EPIPE, not die. */
  signal (SIGPIPE, SIG_DFL);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_framer_split),
    cmocka_unit_test (test_framer_several),
    cmocka_unit_test (test_framer_many_small),
    cmocka_unit_test (test_framer_empty),
    cmocka_unit_test (test_framer_limit),
    cmocka_unit_test (test_framer_limit_inside_chunk),
    cmocka_unit_test (test_framer_garbage),
    cmocka_unit_test (test_builders),
    cmocka_unit_test (test_client_roundtrip),
    cmocka_unit_test (test_client_empty_reply),
    cmocka_unit_test (test_client_error_replies),
    cmocka_unit_test (test_client_bad_replies),
    cmocka_unit_test (test_client_no_socket),
    cmocka_unit_test (test_client_timeout_silent),
    cmocka_unit_test (test_client_timeout_partial),
    cmocka_unit_test (test_client_timeout_backlog),
    cmocka_unit_test (test_client_oneway),
    cmocka_unit_test (test_client_closed_early),
    cmocka_unit_test (test_client_closed_mid_reply),
    cmocka_unit_test (test_client_turned_away),
    cmocka_unit_test (test_client_eintr),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
