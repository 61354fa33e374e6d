/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The io.vmemd methods of a real VmemDaemon, run in this process on the
 * main context against libvirt's in-process test driver
 * (tests/data/libvirt/methods-host.xml), with its socket and database in a
 * temporary directory.  Each call goes through the varlink client on a
 * thread of its own while this thread iterates the main loop; every wait
 * has a deadline that fails the test.  HookEvent is root's, as are the
 * children that drop to nobody: without uid 0 those tests fail. */
#include "config.h"

#include "vmem-cleanup.h"
#include "vmem-collector.h"
#include "vmem-config.h"
#include "vmem-daemon.h"
#include "vmem-error.h"
#include "vmem-log.h"
#include "vmem-profile.h"
#include "vmem-store.h"
#include "vmem-varlink.h"

#include <errno.h>
#include <fcntl.h>
#include <gio/gio.h>
#include <grp.h>
#include <math.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* The host in tests/data/libvirt/methods-host.xml. */
#define WEB_UUID "6a1e2c3d-0000-4000-8000-000000000001" /* running, 1 GiB, unmanaged */
#define ERP_UUID "6a1e2c3d-0000-4000-8000-000000000002" /* shut off, 2 GiB */
#define WEB_MIB  1024

/* Starts the hook announces; none of them exists in libvirt. */
#define UUID_A "7b5d0000-0000-4000-8000-00000000000a"
#define UUID_B "7b5d0000-0000-4000-8000-00000000000b"
#define UUID_C "7b5d0000-0000-4000-8000-00000000000c"
#define UUID_D "7b5d0000-0000-4000-8000-00000000000d"

/* Usable: 8 GiB - 1 GiB = 7 GiB; web-1 holds 1 GiB, so 6 GiB are free. */
#define CAPACITY_MIB 8192
#define RESERVE_MIB  1024
#define USABLE_MIB   (CAPACITY_MIB - RESERVE_MIB)
#define FREE_MIB     (USABLE_MIB - WEB_MIB)

#define CALL_TIMEOUT_MS  10000 /* the client's own bound on one call */
#define TICK_MS          50    /* the main loop wakes at least this often */
#define READY_TIMEOUT_MS 15000

typedef struct {
  char       *dir;
  char       *socket_path;
  char       *database;
  char       *node_xml; /* the test driver's host, copied here */
  char       *uri;
  VmemDaemon *daemon;
  guint       tick_id;
  sqlite3    *lock; /* a second connection that holds the database's write lock */
} Fixture;

/* ---- small helpers ----------------------------------------------------- */

static gint64
now_us (void)
{
  return g_get_monotonic_time ();
}

static gboolean
tick (gpointer user_data)
{
  return G_SOURCE_CONTINUE;
}

/* Runs the main loop for @ms. */
static void
iterate_for (guint ms)
{
  gint64 until = now_us () + (gint64) ms * 1000;
  while (now_us () < until)
    g_main_context_iteration (NULL, TRUE);
}

static void
require_root (void)
{
  if (geteuid () != 0)
    fail_msg ("this test needs uid 0 (HookEvent is root's and the daemon checks the peer's "
              "credentials): run the unit tests as root, as CI does");
}

static void
set_str (char **field, const char *value)
{
  g_free (*field);
  *field = g_strdup (value);
}

static void
rm_rf (const char *path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  if (dir != NULL)
    {
      const char *name;
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);
          struct stat st;
          if (lstat (child, &st) == 0 && S_ISDIR (st.st_mode))
            rm_rf (child);
          else
            unlink (child);
        }
      g_dir_close (dir);
    }
  rmdir (path);
}

/* ---- json ------------------------------------------------------------- */

static json_object *
jget (json_object *o, const char *key)
{
  json_object *v = NULL;
  if (o == NULL || !json_object_object_get_ex (o, key, &v))
    return NULL;
  return v;
}

static const char *
jstr (json_object *o, const char *key)
{
  json_object *v = jget (o, key);
  if (v == NULL || !json_object_is_type (v, json_type_string))
    fail_msg ("'%s' is not a string in %s", key, json_object_to_json_string (o));
  return json_object_get_string (v);
}

static gint64
jint (json_object *o, const char *key)
{
  json_object *v = jget (o, key);
  if (v == NULL || !json_object_is_type (v, json_type_int))
    fail_msg ("'%s' is not an integer in %s", key, json_object_to_json_string (o));
  return json_object_get_int64 (v);
}

static gboolean
jbool (json_object *o, const char *key)
{
  json_object *v = jget (o, key);
  if (v == NULL || !json_object_is_type (v, json_type_boolean))
    fail_msg ("'%s' is not a boolean in %s", key, json_object_to_json_string (o));
  return json_object_get_boolean (v);
}

static json_object *
jarr (json_object *o, const char *key)
{
  json_object *v = jget (o, key);
  if (v == NULL || !json_object_is_type (v, json_type_array))
    fail_msg ("'%s' is not an array in %s", key, json_object_to_json_string (o));
  return v;
}

/* The element of @arr whose "name" is @name, or NULL. */
static json_object *
find_named (json_object *arr, const char *name)
{
  for (size_t i = 0; i < json_object_array_length (arr); i++)
    {
      json_object *e = json_object_array_get_idx (arr, i);
      if (g_strcmp0 (json_object_get_string (jget (e, "name")), name) == 0)
        return e;
    }
  return NULL;
}

static json_object *
parse (const char *text)
{
  json_object *o = json_tokener_parse (text);
  if (o == NULL)
    fail_msg ("bad JSON in the test: %s", text);
  return o;
}

/* ---- calls: the client on a thread, the daemon on this one ------------- */

typedef struct {
  char        *socket;
  char        *method;
  char        *params; /* JSON text, NULL = none */
  json_object *reply;
  GError      *error;
  gint64       took_us;
  gint         done;
  GThread     *thread;
} Call;

static void
call_free (Call *c)
{
  g_free (c->socket);
  g_free (c->method);
  g_free (c->params);
  if (c->reply != NULL)
    json_object_put (c->reply);
  g_clear_error (&c->error);
  g_free (c);
}

static gpointer
call_thread (gpointer data)
{
  Call *c = data;
  json_object *params = c->params ? json_tokener_parse (c->params) : NULL;
  gint64 start = now_us ();
  c->reply = vmem_varlink_call (c->socket, c->method, params, CALL_TIMEOUT_MS, &c->error);
  c->took_us = now_us () - start;
  if (params != NULL)
    json_object_put (params);
  g_atomic_int_set (&c->done, 1);
  g_main_context_wakeup (NULL);
  return NULL;
}

/* Starts @method (@params: transfer none, may be NULL) on a thread. */
static Call *
call_begin_at (const char *socket, const char *method, json_object *params)
{
  Call *c = g_new0 (Call, 1);
  c->socket = g_strdup (socket);
  c->method = g_strdup (method);
  c->params = params ? g_strdup (json_object_to_json_string (params)) : NULL;
  c->thread = g_thread_new ("client", call_thread, c);
  return c;
}

static Call *
call_begin (Fixture *fx, const char *method, json_object *params)
{
  return call_begin_at (fx->socket_path, method, params);
}

/* Iterates the main loop until @c is answered; returns its reply (NULL
 * with @error set on an error reply).  The client gives up after
 * CALL_TIMEOUT_MS; should even that not happen, the test fails. */
static json_object *
call_end (Call *c, GError **error, gint64 *took_us)
{
  gint64 deadline = now_us () + (CALL_TIMEOUT_MS + 5000) * G_GINT64_CONSTANT (1000);
  while (!g_atomic_int_get (&c->done))
    {
      if (now_us () > deadline)
        {
          /* The thread still owns @c: leave both behind. */
          fail_msg ("%s: the client thread did not return within %d ms", c->method,
                    CALL_TIMEOUT_MS + 5000);
        }
      g_main_context_iteration (NULL, TRUE);
    }
  g_thread_join (c->thread);
  if (took_us != NULL)
    *took_us = c->took_us;
  json_object *reply = g_steal_pointer (&c->reply);
  if (error != NULL)
    *error = g_steal_pointer (&c->error);
  call_free (c);
  return reply;
}

static json_object *
call_ok_timed (Fixture *fx, const char *method, json_object *params, gint64 *took_us)
{
  g_autoptr(GError) error = NULL;
  json_object *r = call_end (call_begin (fx, method, params), &error, took_us);
  if (r == NULL)
    fail_msg ("%s %s: %s", method, params ? json_object_to_json_string (params) : "",
              error->message);
  return r;
}

static json_object *
call_ok (Fixture *fx, const char *method, const char *params)
{
  g_autoptr(json_object) p = params ? parse (params) : NULL;
  return call_ok_timed (fx, method, p, NULL);
}

static void
assert_error (GError *error, json_object *reply, const char *method, int code, const char *text)
{
  if (reply != NULL)
    fail_msg ("%s succeeded: %s", method, json_object_to_json_string (reply));
  if (!g_error_matches (error, VMEM_ERROR, code) ||
      (text != NULL && strstr (error->message, text) == NULL))
    fail_msg ("%s: got error %d '%s', want %d '%s'", method, error->code, error->message, code,
              text ? text : "");
}

/* @method with @params fails with @code and a message containing @text. */
static void
call_fails (Fixture *fx, const char *method, const char *params, int code, const char *text)
{
  g_autoptr(json_object) p = params ? parse (params) : NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) r = call_end (call_begin (fx, method, p), &error, NULL);
  assert_error (error, r, method, code, text);
}

/* The "status" object of a Status reply (a new reference). */
static json_object *
status_timed (Fixture *fx, gint64 *took_us)
{
  g_autoptr(json_object) r = call_ok_timed (fx, "io.vmemd.Status", NULL, took_us);
  json_object *s = jget (r, "status");
  if (s == NULL)
    fail_msg ("Status replied without a status: %s", json_object_to_json_string (r));
  return json_object_get (s);
}

static json_object *
status (Fixture *fx)
{
  return status_timed (fx, NULL);
}

typedef gboolean (*StatusCheck) (json_object *status, gconstpointer data);

/* Asks Status until @check holds, for at most @timeout_ms; returns the
 * status that passed. */
static json_object *
wait_status (Fixture *fx, StatusCheck check, gconstpointer data, guint timeout_ms, const char *what)
{
  gint64 deadline = now_us () + (gint64) timeout_ms * 1000;
  for (;;)
    {
      json_object *s = status (fx);
      if (check (s, data))
        return s;
      if (now_us () > deadline)
        {
          g_autofree char *text = g_strdup (json_object_to_json_string (s));
          json_object_put (s);
          fail_msg ("%s: not seen within %u ms; last status: %s", what, timeout_ms, text);
        }
      json_object_put (s);
      iterate_for (100);
    }
}

static gboolean
is_ready (json_object *s, gconstpointer data)
{
  return jbool (s, "ready");
}

static gboolean
has_no_reservation_of (json_object *s, gconstpointer name)
{
  return find_named (jarr (s, "reservations"), name) == NULL;
}

static void
wait_ready (Fixture *fx)
{
  json_object_put (wait_status (fx, is_ready, NULL, READY_TIMEOUT_MS, "ready"));
}

/* ---- hooks ------------------------------------------------------------- */

/* A domain definition as the hook reads it on stdin. */
static char *
domain_xml (const char *name, const char *uuid, guint memory_mib, const char *workload)
{
  g_autofree char *meta =
    workload ? g_strdup_printf ("<metadata><vmemd:workload xmlns:vmemd=\"urn:vmemd:1\" "
                                "name=\"%s\"/></metadata>", workload)
             : g_strdup ("");
  return g_strdup_printf ("<domain type='kvm'><name>%s</name><uuid>%s</uuid>%s"
                          "<memory unit='MiB'>%u</memory>"
                          "<currentMemory unit='MiB'>%u</currentMemory>"
                          "<vcpu>2</vcpu><os><type arch='x86_64'>hvm</type></os>"
                          "<devices><memballoon model='virtio'/></devices></domain>",
                          name, uuid, meta, memory_mib, memory_mib);
}

static json_object *
hook_params (const char *op, const char *subop, const char *name, const char *uuid,
             const char *xml)
{
  json_object *p = json_object_new_object ();
  json_object_object_add (p, "op", json_object_new_string (op));
  json_object_object_add (p, "subop", json_object_new_string (subop));
  json_object_object_add (p, "extra", json_object_new_string ("-"));
  json_object_object_add (p, "domain", json_object_new_string (name));
  if (uuid != NULL)
    json_object_object_add (p, "uuid", json_object_new_string (uuid));
  if (xml != NULL)
    json_object_object_add (p, "xml", json_object_new_string (xml));
  return p;
}

/* The reply of HookEvent prepare begin for a start of @mib. */
static json_object *
prepare_timed (Fixture *fx, const char *name, const char *uuid, guint mib, const char *workload,
               gint64 *took_us)
{
  g_autofree char *xml = domain_xml (name, uuid, mib, workload);
  g_autoptr(json_object) p = hook_params ("prepare", "begin", name, uuid, xml);
  return call_ok_timed (fx, "io.vmemd.HookEvent", p, took_us);
}

static void
prepare_admitted (Fixture *fx, const char *name, const char *uuid, guint mib,
                  const char *workload)
{
  g_autoptr(json_object) r = prepare_timed (fx, name, uuid, mib, workload, NULL);
  if (!jbool (r, "allow"))
    fail_msg ("start of %s (%u MiB) refused: %s", name, mib, json_object_to_json_string (r));
}

/* Returns the refusal's message, which must start with "vmemd: ". */
static char *
prepare_refused (Fixture *fx, const char *name, const char *uuid, guint mib, const char *workload)
{
  g_autoptr(json_object) r = prepare_timed (fx, name, uuid, mib, workload, NULL);
  if (jbool (r, "allow"))
    fail_msg ("start of %s (%u MiB) admitted: %s", name, mib, json_object_to_json_string (r));
  const char *message = jstr (r, "message");
  if (!g_str_has_prefix (message, "vmemd: "))
    fail_msg ("refusal does not start with 'vmemd: ': %s", message);
  if (strstr (message, name) == NULL)
    fail_msg ("refusal does not name %s: %s", name, message);
  return g_strdup (message);
}

/* A hook that tells the daemon a start is over (release end, stopped end). */
static void
hook_notify (Fixture *fx, const char *op, const char *subop, const char *name, const char *uuid)
{
  g_autoptr(json_object) p = hook_params (op, subop, name, uuid, NULL);
  g_autoptr(json_object) r = call_ok_timed (fx, "io.vmemd.HookEvent", p, NULL);
  assert_true (jbool (r, "allow"));
}

/* The reservation of @name in @s, or NULL. */
static json_object *
reservation (json_object *s, const char *name)
{
  return find_named (jarr (s, "reservations"), name);
}

/* ---- the daemon --------------------------------------------------------- */

static const char *
log_level (void)
{
  const char *l = g_getenv ("VMEM_TEST_LOG");
  return l ? l : "message";
}

static VmemConfig *
make_config (Fixture *fx)
{
  VmemConfig *c = vmem_config_new_default ();
  set_str (&c->uri, fx->uri);
  set_str (&c->socket_path, fx->socket_path);
  set_str (&c->database, fx->database);
  set_str (&c->host_name, "testhost");
  set_str (&c->log_level, log_level ());
  set_str (&c->admin_group, NULL);
  c->backend = VMEM_STORE_SQLITE;
  c->capacity_mib = CAPACITY_MIB;
  c->reserve_mib = RESERVE_MIB;
  c->stats_interval = 1;
  c->admission = VMEM_ADMISSION_ENFORCE;
  c->not_ready = VMEM_NOT_READY_ADMIT;
  return c;
}

static void
start (Fixture *fx, VmemConfig *config /* transfer full */)
{
  g_autoptr(GError) error = NULL;
  fx->daemon = vmem_daemon_new (config, &error);
  if (fx->daemon == NULL)
    fail_msg ("vmem_daemon_new: %s", error->message);
  if (!vmem_daemon_start (fx->daemon, -1, &error))
    fail_msg ("vmem_daemon_start: %s", error->message);
}

static void
copy_node (Fixture *fx)
{
  const char *srcdir = g_getenv ("VMEM_TEST_SRCDIR");
  if (srcdir == NULL)
    fail_msg ("VMEM_TEST_SRCDIR is not set: run the test through meson test");
  g_autofree char *src = g_build_filename (srcdir, "data", "libvirt", "methods-host.xml", NULL);
  g_autofree char *text = NULL;
  gsize len;
  g_autoptr(GError) error = NULL;
  if (!g_file_get_contents (src, &text, &len, &error) ||
      !g_file_set_contents (fx->node_xml, text, (gssize) len, &error))
    fail_msg ("%s", error->message);
}

/* Profiles through the daemon, as vmemctl makes them. */
static void
profile_create (Fixture *fx, const char *name, guint demand_mib)
{
  g_autofree char *p = g_strdup_printf ("{\"create\":true,\"profile\":{\"name\":\"%s\","
                                        "\"demand_mib\":%u}}", name, demand_mib);
  json_object_put (call_ok (fx, "io.vmemd.ProfileSet", p));
}

/* Takes the database's write lock from a second connection, as an
 * administrator's sqlite3 shell in the middle of a transaction would. */
static void
lock_database (Fixture *fx)
{
  char *err = NULL;
  /* The daemon writes every stats interval (its heartbeat, samples):
   * wait for a write in progress, as the shell would. */
  if (sqlite3_open_v2 (fx->database, &fx->lock, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
      sqlite3_busy_timeout (fx->lock, 5000) != SQLITE_OK ||
      sqlite3_exec (fx->lock,
                    "BEGIN EXCLUSIVE; CREATE TABLE held_by_test (x);"
                    "INSERT INTO held_by_test VALUES (1);",
                    NULL, NULL, &err) != SQLITE_OK)
    fail_msg ("cannot lock %s: %s", fx->database, err ? err : sqlite3_errmsg (fx->lock));
}

static void
unlock_database (Fixture *fx)
{
  if (fx->lock == NULL)
    return;
  sqlite3_exec (fx->lock, "ROLLBACK", NULL, NULL, NULL);
  sqlite3_close (fx->lock);
  fx->lock = NULL;
}

static int
setup (void **state)
{
  Fixture *fx = g_new0 (Fixture, 1);
  fx->dir = g_dir_make_tmp ("vmem-methods-XXXXXX", NULL);
  g_assert (fx->dir != NULL);
  fx->socket_path = g_build_filename (fx->dir, "run", "io.vmemd", NULL);
  fx->database = g_build_filename (fx->dir, "lib", "vmemd.db", NULL);
  fx->node_xml = g_build_filename (fx->dir, "node.xml", NULL);
  fx->uri = g_strconcat ("test://", fx->node_xml, NULL);
  fx->tick_id = g_timeout_add (TICK_MS, tick, NULL);
  *state = fx;
  copy_node (fx);
  return 0;
}

static void
stop (Fixture *fx)
{
  g_clear_pointer (&fx->daemon, vmem_daemon_free);
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

static int
teardown (void **state)
{
  Fixture *fx = *state;
  unlock_database (fx);
  stop (fx);
  g_source_remove (fx->tick_id);
  rm_rf (fx->dir);
  g_free (fx->dir);
  g_free (fx->socket_path);
  g_free (fx->database);
  g_free (fx->node_xml);
  g_free (fx->uri);
  g_free (fx);
  return 0;
}

/* ---- 1. Ping, Status, readiness ----------------------------------------- */

static void
test_ping_status (void **state)
{
  Fixture *fx = *state;

  /* libvirt is not there yet: the test driver's file appears later. */
  unlink (fx->node_xml);
  start (fx, make_config (fx));

  g_autoptr(json_object) ping = call_ok (fx, "io.vmemd.Ping", NULL);
  assert_string_equal (jstr (ping, "version"), VMEM_VERSION);
  assert_string_equal (jstr (ping, "host"), "testhost");

  g_autoptr(json_object) before = status (fx);
  assert_false (jbool (before, "ready"));
  assert_false (jbool (before, "libvirt_connected"));
  assert_int_equal (json_object_array_length (jarr (before, "domains")), 0);
  assert_int_equal (json_object_array_length (jarr (before, "reservations")), 0);
  assert_string_equal (jstr (before, "uri"), fx->uri);
  assert_string_equal (jstr (before, "host"), "testhost");
  assert_string_equal (jstr (before, "store"), "sqlite");
  assert_string_equal (jstr (before, "database"), fx->database);
  assert_string_equal (jstr (before, "admission"), "enforce");
  assert_int_equal (jint (before, "capacity_mib"), USABLE_MIB);
  assert_int_equal (jint (before, "reserve_mib"), RESERVE_MIB);
  assert_int_equal (jint (before, "committed_mib"), 0);
  assert_int_equal (jint (before, "profiles"), 0);

  /* Once libvirt is reachable, the first full read makes it ready. */
  copy_node (fx);
  g_autoptr(json_object) after = wait_status (fx, is_ready, NULL, READY_TIMEOUT_MS, "ready");
  assert_true (jbool (after, "libvirt_connected"));
  json_object *domains = jarr (after, "domains");
  assert_int_equal (json_object_array_length (domains), 2);
  json_object *web = find_named (domains, "web-1");
  json_object *erp = find_named (domains, "erp-1");
  assert_non_null (web);
  assert_non_null (erp);
  assert_string_equal (jstr (web, "uuid"), WEB_UUID);
  assert_string_equal (jstr (web, "state"), "running");
  assert_false (jbool (web, "managed"));
  assert_int_equal (jint (web, "memory_mib"), WEB_MIB);
  assert_int_equal (jint (web, "current_mib"), WEB_MIB);
  assert_string_equal (jstr (erp, "uuid"), ERP_UUID);
  assert_string_equal (jstr (erp, "state"), "shut-off");
  assert_false (jbool (erp, "managed"));
  assert_int_equal (jint (erp, "memory_mib"), 2048);
  assert_int_equal (jint (erp, "vcpus"), 2);
  assert_int_equal (json_object_array_length (jarr (after, "reservations")), 0);
  /* The running domain, managed or not, is what is committed. */
  assert_int_equal (jint (after, "committed_mib"), WEB_MIB);
}

/* ---- 2. Profiles --------------------------------------------------------- */

static json_object *
profile_list (Fixture *fx)
{
  g_autoptr(json_object) r = call_ok (fx, "io.vmemd.ProfileList", NULL);
  return json_object_get (jarr (r, "profiles"));
}

static void
test_profiles (void **state)
{
  Fixture *fx = *state;
  start (fx, make_config (fx));

  g_autoptr(json_object) empty = profile_list (fx);
  assert_int_equal (json_object_array_length (empty), 0);

  g_autoptr(json_object) created =
    call_ok (fx, "io.vmemd.ProfileSet",
             "{\"create\":true,\"profile\":{\"name\":\"erp\",\"demand_mib\":2048,"
             "\"quantile\":0.9,\"priority\":70}}");
  json_object *p = jget (created, "profile");
  assert_string_equal (jstr (p, "name"), "erp");
  assert_int_equal (jint (p, "demand_mib"), 2048);
  assert_int_equal (jint (p, "priority"), 70);
  assert_string_equal (jstr (p, "mode"), "balloon");

  g_autoptr(json_object) got = call_ok (fx, "io.vmemd.ProfileGet", "{\"name\":\"erp\"}");
  assert_int_equal (jint (jget (got, "profile"), "demand_mib"), 2048);
  assert_true (json_object_get_double (jget (jget (got, "profile"), "quantile")) == 0.9);

  /* An update merges the fields given into the stored profile. */
  g_autoptr(json_object) updated =
    call_ok (fx, "io.vmemd.ProfileSet", "{\"profile\":{\"name\":\"erp\",\"demand_mib\":3072}}");
  assert_int_equal (jint (jget (updated, "profile"), "demand_mib"), 3072);
  assert_int_equal (jint (jget (updated, "profile"), "priority"), 70);
  profile_create (fx, "db", 512);

  g_autoptr(json_object) list = profile_list (fx);
  assert_int_equal (json_object_array_length (list), 2);
  assert_string_equal (jstr (json_object_array_get_idx (list, 0), "name"), "db");
  assert_string_equal (jstr (json_object_array_get_idx (list, 1), "name"), "erp");
  assert_int_equal (jint (find_named (list, "erp"), "demand_mib"), 3072);
  g_autoptr(json_object) st = status (fx);
  assert_int_equal (jint (st, "profiles"), 2);

  /* Bad parameters: InvalidArgument (or NotFound, Exists), and nothing
   * changes. */
  static const struct {
    const char *method;
    const char *params;
    int         code;
    const char *text;
  } bad[] = {
    { "io.vmemd.ProfileSet", "{\"profile\":{\"name\":\"erp\",\"quantile\":7}}",
      VMEM_ERROR_INVALID_ARGUMENT, "quantile" },
    { "io.vmemd.ProfileSet", "{\"profile\":{\"name\":\"erp\",\"demand_mib\":\"lots\"}}",
      VMEM_ERROR_INVALID_ARGUMENT, "demand_mib" },
    { "io.vmemd.ProfileSet", "{\"profile\":{\"name\":\"erp\",\"mode\":\"turbo\"}}",
      VMEM_ERROR_INVALID_ARGUMENT, "mode" },
    { "io.vmemd.ProfileSet", "{\"profile\":{\"name\":\"erp\",\"bogus\":1}}",
      VMEM_ERROR_INVALID_ARGUMENT, "bogus" },
    { "io.vmemd.ProfileSet", "{\"create\":true,\"profile\":{\"name\":\"bad name!\"}}",
      VMEM_ERROR_INVALID_ARGUMENT, "name" },
    { "io.vmemd.ProfileSet", "{\"create\":true,\"profile\":{\"demand_mib\":1}}",
      VMEM_ERROR_INVALID_ARGUMENT, "name" },
    { "io.vmemd.ProfileSet", "{\"profile\":\"erp\"}", VMEM_ERROR_INVALID_ARGUMENT, "profile" },
    { "io.vmemd.ProfileSet", "{}", VMEM_ERROR_INVALID_ARGUMENT, "profile" },
    { "io.vmemd.ProfileSet", "{\"create\":\"yes\",\"profile\":{\"name\":\"x\"}}",
      VMEM_ERROR_INVALID_ARGUMENT, "create" },
    { "io.vmemd.ProfileSet", "{\"profile\":{\"name\":\"x\"},\"force\":true}",
      VMEM_ERROR_INVALID_ARGUMENT, "force" },
    { "io.vmemd.ProfileSet", "{\"create\":true,\"profile\":{\"name\":\"erp\"}}",
      VMEM_ERROR_EXISTS, "erp" },
    { "io.vmemd.ProfileSet", "{\"profile\":{\"name\":\"nope\",\"demand_mib\":1}}",
      VMEM_ERROR_NOT_FOUND, "nope" },
    { "io.vmemd.ProfileGet", "{}", VMEM_ERROR_INVALID_ARGUMENT, "name" },
    { "io.vmemd.ProfileGet", "{\"name\":\"\"}", VMEM_ERROR_INVALID_ARGUMENT, "name" },
    { "io.vmemd.ProfileGet", "{\"name\":3}", VMEM_ERROR_INVALID_ARGUMENT, "name" },
    { "io.vmemd.ProfileGet", "{\"name\":\"nope\"}", VMEM_ERROR_NOT_FOUND, "nope" },
    { "io.vmemd.ProfileList", "{\"all\":true}", VMEM_ERROR_INVALID_ARGUMENT, "all" },
    { "io.vmemd.ProfileDelete", "{}", VMEM_ERROR_INVALID_ARGUMENT, "name" },
    { "io.vmemd.ProfileDelete", "{\"name\":5}", VMEM_ERROR_INVALID_ARGUMENT, "name" },
    { "io.vmemd.ProfileDelete", "{\"name\":\"erp\",\"force\":\"yes\"}",
      VMEM_ERROR_INVALID_ARGUMENT, "force" },
    { "io.vmemd.ProfileDelete", "{\"name\":\"nope\"}", VMEM_ERROR_NOT_FOUND, "nope" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
    call_fails (fx, bad[i].method, bad[i].params, bad[i].code, bad[i].text);
  g_autoptr(json_object) unchanged = profile_list (fx);
  if (!json_object_equal (unchanged, list))
    fail_msg ("bad calls changed the profiles: %s, was %s",
              json_object_to_json_string (unchanged), json_object_to_json_string (list));

  json_object_put (call_ok (fx, "io.vmemd.ProfileDelete", "{\"name\":\"erp\"}"));
  call_fails (fx, "io.vmemd.ProfileGet", "{\"name\":\"erp\"}", VMEM_ERROR_NOT_FOUND, "erp");
  g_autoptr(json_object) left = profile_list (fx);
  assert_int_equal (json_object_array_length (left), 1);
  assert_non_null (find_named (left, "db"));

  /* What the daemon answered is what it stored: a new daemon on the same
   * database reads the same profiles. */
  stop (fx);
  start (fx, make_config (fx));
  g_autoptr(json_object) reread = profile_list (fx);
  assert_true (json_object_equal (reread, left));
}

/* ---- 3. Assign, Explain ---------------------------------------------------- */

static char *vmemctl_run (Fixture *fx, const char *const *args, int *status);

/* The store for the explain tests: ten hours of erp-1 (2 GiB) at 600 MiB
 * and of a peer of 1 GiB, not defined here, at 150 MiB, and @outcomes
 * outcomes of erp-1's past starts. */
static void
seed_erp (Fixture *fx, guint outcomes)
{
  g_autoptr(GError) error = NULL;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  gint64 h0 = now - now % 3600 - 10 * 3600;
  {
    g_autoptr(VmemStore) store = vmem_store_open_sqlite (fx->database, &error);
    assert_non_null (store);
    g_autoptr(VmemProfile) p = vmem_profile_new ("erp");
    p->match = g_strdup ("erp-*");
    assert_true (vmem_store_profile_put (store, p, VMEM_STORE_PUT_CREATE, &error));
    static const char *const uuids[] = { ERP_UUID, "6a1e2c3d-0000-4000-8000-0000000000ff" };
    static const char *const names[] = { "erp-1", "erp-gone" };
    for (guint k = 0; k < 2; k++)
      {
        VmemDomainRow d = {
          .uuid = (char *) uuids[k], .name = (char *) names[k], .host = (char *) "testhost",
          .workload = (char *) "erp", .memory_mib = k == 0 ? 2048 : 1024, .vcpus = 1,
          .last_seen = now,
          .first_seen = h0,
        };
        assert_true (vmem_store_domain_upsert (store, &d, &error));
        for (gint64 t = h0; t < h0 + 10 * 3600; t += 3600)
          {
            VmemPeak peak = {
              .uuid = (char *) uuids[k], .host = (char *) "testhost", .workload = (char *) "erp",
              .interval_s = VMEM_STORE_HOUR, .start_t = t, .peak_mib = k == 0 ? 600 : 150,
              .samples = 6, .guest_samples = 6, .vcpus = 1,
            };
            assert_true (vmem_store_samples_add (store, NULL, 0, &peak, 1, &error));
            assert_null (error);
          }
      }
    /* Outcomes of erp-1's earlier starts: used / base 0.51 .. in steps of
     * 0.01, none of them under-provisioned. */
    for (guint i = 1; i <= outcomes; i++)
      {
        VmemOutcomeRow o = {
          .uuid = (char *) ERP_UUID, .host = (char *) "testhost", .workload = (char *) "erp",
          .kind = (char *) "own", .start_t = h0 + i * 60, .end_t = h0 + i * 60 + 3600,
          .base_mib = 100, .given_mib = 200, .peak_mib = 50 + i, .risk = 0.05,
        };
        assert_true (vmem_store_outcome_add (store, &o, &error));
      }
  }
}

/* A domain that has run before is sized from its own history first, its
 * peers' as the prior, and explain says so.  The store holds ten hours of
 * erp-1 (2 GiB) at 600 MiB and of a peer of 1 GiB, not defined here, at
 * 150 MiB: scaled to erp-1's size, 300 MiB.  Both from the same hour:
 * equal hours of history on each side, so the base is (600 + 300) / 2 =
 * 450, +15 % (no outcomes yet) = 517.5. */
static void
test_explain_own_history (void **state)
{
  Fixture *fx = *state;
  seed_erp (fx, 0);
  start (fx, make_config (fx));
  wait_ready (fx);

  g_autoptr(json_object) xd = call_ok (fx, "io.vmemd.Explain", "{\"domain\":\"erp-1\"}");
  json_object *plan = jget (jget (xd, "explanation"), "plan");
  assert_string_equal (jstr (plan, "source"), "own");
  json_object *est = jget (plan, "estimate");
  assert_string_equal (jstr (est, "kind"), "own");
  assert_true (json_object_get_double (jget (est, "own_level_mib")) == 600);
  assert_true (json_object_get_double (jget (est, "own_weight")) == 0.5);
  assert_true (json_object_get_double (jget (est, "quantile_mib")) == 300);
  assert_true (json_object_get_double (jget (est, "base_mib")) == 450);
  assert_int_equal (jint (plan, "demand_mib"), 518);
  /* The domain is not its own peer. */
  json_object *peers = jarr (est, "peers");
  assert_int_equal (json_object_array_length (peers), 1);
  assert_string_equal (jstr (json_object_array_get_idx (peers, 0), "name"), "erp-gone");
  assert_true (json_object_get_double (jget (json_object_array_get_idx (peers, 0), "memory_mib")) ==
               1024);
  assert_string_equal (jstr (jget (est, "calibration"), "scope"), "none");
  /* No outcomes yet: a rank at 5 % risk with 90 % confidence needs 45. */
  assert_int_equal (jint (jget (est, "calibration"), "needed"), 45);
  assert_true (fabs (json_object_get_double (jget (jget (est, "calibration"), "confidence")) - 0.9) <
               1e-9);
  assert_non_null (strstr (jstr (plan, "why"), "own history"));
}

/* With 100 outcomes of its own (used / base 0.51 .. 1.50, none under) the
 * workload's margin is calibrated: rank 99 of 100 at 5 % risk with 90 %
 * confidence (vmem-calibration.h), the score 1.49, so the base of 450 MiB
 * becomes 670.5; explain shows it, in JSON and as vmemctl prints it. */
static void
test_explain_calibrated (void **state)
{
  Fixture *fx = *state;
  seed_erp (fx, 100);
  start (fx, make_config (fx));
  wait_ready (fx);

  g_autoptr(json_object) xd = call_ok (fx, "io.vmemd.Explain", "{\"domain\":\"erp-1\"}");
  json_object *plan = jget (jget (xd, "explanation"), "plan");
  json_object *est = jget (plan, "estimate");
  json_object *cal = jget (est, "calibration");
  assert_string_equal (jstr (cal, "scope"), "workload");
  assert_string_equal (jstr (cal, "kind"), "own");
  assert_int_equal (jint (cal, "outcomes"), 100);
  assert_int_equal (jint (cal, "under"), 0);
  assert_int_equal (jint (cal, "rank"), 99);
  assert_int_equal (jint (cal, "needed"), 45);
  assert_true (fabs (json_object_get_double (jget (cal, "confidence")) - 0.9) < 1e-9);
  assert_true (fabs (json_object_get_double (jget (cal, "level")) - 0.05) < 1e-9);
  assert_true (fabs (json_object_get_double (jget (cal, "factor")) - 1.49) < 1e-9);
  assert_true (json_object_get_double (jget (est, "base_mib")) == 450);
  assert_int_equal (jint (plan, "demand_mib"), 671);

  int code = -1;
  g_autofree char *out =
    vmemctl_run (fx, (const char *const[]){ "explain", "erp-1", NULL }, &code);
  assert_int_equal (code, 0);
  if (strstr (out, "Margin:    +49.0 %, calibrated to at most 5 % risk with 90 % confidence on "
                   "100 of the workload's outcomes of own starts (0.0 % under-provisioned): "
                   "rank 99 of them at level 5 % = 671M\n") == NULL)
    fail_msg ("explain printed:\n%s", out);
}

/* A move older than raw_retention_hours keeps its figures in History and
 * has no reason: null in JSON, and vmemctl says it is no longer kept. */
static void
test_history_reason_dropped (void **state)
{
  Fixture *fx = *state;
  g_autoptr(GError) error = NULL;
  const gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  {
    g_autoptr(VmemStore) store = vmem_store_open_sqlite (fx->database, &error);
    assert_non_null (store);
    VmemDomainRow d = { .uuid = (char *) ERP_UUID, .name = (char *) "erp-1",
                        .host = (char *) "testhost", .workload = (char *) "erp",
                        .memory_mib = 2048, .vcpus = 1, .first_seen = now - 4 * 86400,
                        .last_seen = now };
    assert_true (vmem_store_domain_upsert (store, &d, &error));
    const gint64 ages[] = { 3 * 86400, 3600 };
    for (guint i = 0; i < G_N_ELEMENTS (ages); i++)
      {
        VmemMoveRow m = { (char *) ERP_UUID, (char *) "testhost", (char *) "erp",
                          now - ages[i], (char *) "shrink", (char *) "balloon", 2048 - 64 * i,
                          1984 - 64 * i, TRUE, (char *) "beyond the buffer" };
        assert_true (vmem_store_move_add (store, &m, &error));
      }
    assert_true (vmem_store_prune (store, now, 48, 6, 300, 90, &error));
    assert_null (error);
  }
  start (fx, make_config (fx));
  wait_ready (fx);

  g_autofree char *params =
    g_strdup_printf ("{\"domain\":\"erp-1\",\"since\":%" G_GINT64_FORMAT "}", now - 4 * 86400);
  g_autoptr(json_object) h = call_ok (fx, "io.vmemd.History", params);
  json_object *moves = jarr (h, "moves");
  assert_int_equal (json_object_array_length (moves), 2);
  json_object *old = json_object_array_get_idx (moves, 0);
  assert_int_equal (jint (old, "from_mib"), 2048);
  assert_int_equal (jint (old, "to_mib"), 1984);
  json_object *reason = NULL;
  assert_true (json_object_object_get_ex (old, "reason", &reason));
  assert_null (reason);
  assert_string_equal (jstr (json_object_array_get_idx (moves, 1), "reason"),
                       "beyond the buffer");

  int code = -1;
  g_autofree char *out = vmemctl_run (
    fx, (const char *const[]){ "history", "erp-1", "--since", "4d", NULL }, &code);
  assert_int_equal (code, 0);
  if (strstr (out, "(reason no longer kept: older than raw_retention_hours)\n") == NULL ||
      strstr (out, "beyond the buffer\n") == NULL)
    fail_msg ("history printed:\n%s", out);
}

static void
test_assign_explain (void **state)
{
  Fixture *fx = *state;
  start (fx, make_config (fx));
  wait_ready (fx);
  profile_create (fx, "erp", 1536);

  call_fails (fx, "io.vmemd.Assign", "{\"domain\":\"erp-1\",\"workload\":\"nope\"}",
              VMEM_ERROR_NOT_FOUND, "no profile named 'nope'");
  call_fails (fx, "io.vmemd.Assign", "{\"domain\":\"erp-1\",\"workload\":\"bad name!\"}",
              VMEM_ERROR_INVALID_ARGUMENT, "workload");
  call_fails (fx, "io.vmemd.Assign", "{\"domain\":\"erp-1\"}", VMEM_ERROR_INVALID_ARGUMENT,
              "workload");
  call_fails (fx, "io.vmemd.Assign", "{\"domain\":\"ghost\",\"workload\":\"erp\"}",
              VMEM_ERROR_NOT_FOUND, "ghost");

  g_autoptr(json_object) a =
    call_ok (fx, "io.vmemd.Assign", "{\"domain\":\"erp-1\",\"workload\":\"erp\"}");
  assert_string_equal (jstr (a, "domain"), "erp-1");
  assert_string_equal (jstr (a, "uuid"), ERP_UUID);
  assert_string_equal (jstr (a, "workload"), "erp");

  /* The cache follows at once. */
  g_autoptr(json_object) s = status (fx);
  json_object *erp = find_named (jarr (s, "domains"), "erp-1");
  assert_true (jbool (erp, "managed"));
  assert_string_equal (jstr (erp, "workload"), "erp");
  assert_false (jbool (find_named (jarr (s, "domains"), "web-1"), "managed"));

  g_autoptr(json_object) xd = call_ok (fx, "io.vmemd.Explain", "{\"domain\":\"erp-1\"}");
  json_object *x = jget (xd, "explanation");
  assert_string_equal (jstr (x, "domain"), "erp-1");
  assert_string_equal (jstr (x, "uuid"), ERP_UUID);
  assert_true (jbool (x, "managed"));
  assert_string_equal (jstr (x, "workload"), "erp");
  assert_string_equal (jstr (x, "matched_by"), "tag");
  assert_int_equal (jint (x, "memory_mib"), 2048);
  json_object *plan = jget (x, "plan");
  assert_non_null (plan);
  /* No history: the profile's manual demand. */
  assert_int_equal (jint (plan, "demand_mib"), 1536);
  assert_non_null (jstr (plan, "source"));

  /* By uuid too. */
  g_autoptr(json_object) xu = call_ok (fx, "io.vmemd.Explain", "{\"domain\":\"" ERP_UUID "\"}");
  assert_string_equal (jstr (jget (xu, "explanation"), "domain"), "erp-1");

  g_autoptr(json_object) xw = call_ok (fx, "io.vmemd.Explain", "{\"workload\":\"erp\"}");
  json_object *w = jget (xw, "explanation");
  assert_string_equal (jstr (w, "workload"), "erp");
  assert_int_equal (jint (jget (w, "plan"), "demand_mib"), 1536);
  json_object *doms = jarr (w, "domains");
  assert_int_equal (json_object_array_length (doms), 1);
  assert_string_equal (json_object_get_string (json_object_array_get_idx (doms, 0)), "erp-1");

  g_autoptr(json_object) xn = call_ok (fx, "io.vmemd.Explain", "{\"domain\":\"web-1\"}");
  assert_false (jbool (jget (xn, "explanation"), "managed"));
  assert_null (jget (jget (xn, "explanation"), "plan"));

  call_fails (fx, "io.vmemd.Explain", "{}", VMEM_ERROR_INVALID_ARGUMENT, "either");
  call_fails (fx, "io.vmemd.Explain", "{\"domain\":\"erp-1\",\"workload\":\"erp\"}",
              VMEM_ERROR_INVALID_ARGUMENT, "either");
  call_fails (fx, "io.vmemd.Explain", "{\"domain\":\"ghost\"}", VMEM_ERROR_NOT_FOUND, "ghost");
  call_fails (fx, "io.vmemd.Explain", "{\"workload\":\"nope\"}", VMEM_ERROR_NOT_FOUND, "nope");

  /* A profile in use is not deleted by accident. */
  call_fails (fx, "io.vmemd.ProfileDelete", "{\"name\":\"erp\"}", VMEM_ERROR_BUSY, "erp");
}

/* ---- 4. Admission through HookEvent -------------------------------------- */

static void
test_admission (void **state)
{
  Fixture *fx = *state;
  require_root ();
  start (fx, make_config (fx));
  wait_ready (fx);
  profile_create (fx, "erp", 1024);

  /* Too big for the free memory at all: refused, and nothing reserved. */
  g_autofree char *big = prepare_refused (fx, "big", UUID_C, FREE_MIB + 1, "erp");
  assert_non_null (strstr (big, "not enough host memory"));
  g_autoptr(json_object) s0 = status (fx);
  assert_int_equal (json_object_array_length (jarr (s0, "reservations")), 0);
  assert_int_equal (jint (s0, "committed_mib"), WEB_MIB);

  /* A fits (4 GiB of the 6 free) and is charged until its start ends. */
  prepare_admitted (fx, "dom-a", UUID_A, 4096, "erp");
  g_autoptr(json_object) s1 = status (fx);
  json_object *ra = reservation (s1, "dom-a");
  if (ra == NULL)
    fail_msg ("no reservation for dom-a: %s", json_object_to_json_string (s1));
  assert_string_equal (jstr (ra, "uuid"), UUID_A);
  assert_int_equal (jint (ra, "mib"), 4096);
  assert_int_equal (json_object_array_length (jarr (s1, "reservations")), 1);
  assert_int_equal (jint (s1, "committed_mib"), WEB_MIB + 4096);

  /* B (3 GiB) fits alone, not next to A. */
  g_autofree char *refused = prepare_refused (fx, "dom-b", UUID_B, 3072, "erp");
  assert_non_null (strstr (refused, "not enough host memory"));
  g_autoptr(json_object) s2 = status (fx);
  assert_non_null (reservation (s2, "dom-a"));
  assert_null (reservation (s2, "dom-b"));

  /* The same start asked again replaces its own reservation, not adds. */
  prepare_admitted (fx, "dom-a", UUID_A, 4096, "erp");
  g_autoptr(json_object) s3 = status (fx);
  assert_int_equal (json_object_array_length (jarr (s3, "reservations")), 1);
  assert_int_equal (jint (s3, "committed_mib"), WEB_MIB + 4096);

  /* A's release ends its reservation: now B fits. */
  hook_notify (fx, "release", "end", "dom-a", UUID_A);
  g_autoptr(json_object) s4 = status (fx);
  assert_null (reservation (s4, "dom-a"));
  assert_int_equal (jint (s4, "committed_mib"), WEB_MIB);
  prepare_admitted (fx, "dom-b", UUID_B, 3072, "erp");
  g_autoptr(json_object) s5 = status (fx);
  json_object *rb = reservation (s5, "dom-b");
  if (rb == NULL)
    fail_msg ("no reservation for dom-b: %s", json_object_to_json_string (s5));
  assert_int_equal (jint (rb, "mib"), 3072);

  /* stopped ends one too. */
  hook_notify (fx, "stopped", "end", "dom-b", UUID_B);
  g_autoptr(json_object) s6 = status (fx);
  assert_int_equal (json_object_array_length (jarr (s6, "reservations")), 0);

  /* A start the daemon does not manage is not judged, but it is charged:
   * the managed start next to it is refused. */
  g_autofree char *xml_d = domain_xml ("plain", UUID_D, FREE_MIB - 1024, NULL);
  g_autoptr(json_object) pd = hook_params ("prepare", "begin", "plain", UUID_D, xml_d);
  g_autoptr(json_object) rd = call_ok_timed (fx, "io.vmemd.HookEvent", pd, NULL);
  assert_true (jbool (rd, "allow"));
  g_autofree char *next = prepare_refused (fx, "dom-b", UUID_B, 3072, "erp");
  hook_notify (fx, "release", "end", "plain", UUID_D);

  /* Two starts at the same time: only one of them fits. */
  g_autofree char *xml_a = domain_xml ("dom-a", UUID_A, 4096, "erp");
  g_autofree char *xml_b = domain_xml ("dom-b", UUID_B, 3072, "erp");
  g_autoptr(json_object) pa = hook_params ("prepare", "begin", "dom-a", UUID_A, xml_a);
  g_autoptr(json_object) pb = hook_params ("prepare", "begin", "dom-b", UUID_B, xml_b);
  Call *ca = call_begin (fx, "io.vmemd.HookEvent", pa);
  Call *cb = call_begin (fx, "io.vmemd.HookEvent", pb);
  g_autoptr(GError) ea = NULL, eb = NULL;
  g_autoptr(json_object) ra2 = call_end (ca, &ea, NULL);
  g_autoptr(json_object) rb2 = call_end (cb, &eb, NULL);
  assert_non_null (ra2);
  assert_non_null (rb2);
  if (jbool (ra2, "allow") == jbool (rb2, "allow"))
    fail_msg ("concurrent starts: A %s, B %s", json_object_to_json_string (ra2),
              json_object_to_json_string (rb2));
  g_autoptr(json_object) s7 = status (fx);
  assert_int_equal (json_object_array_length (jarr (s7, "reservations")), 1);
  assert_non_null (reservation (s7, jbool (ra2, "allow") ? "dom-a" : "dom-b"));
  hook_notify (fx, "release", "end", "dom-a", UUID_A);
  hook_notify (fx, "release", "end", "dom-b", UUID_B);
  g_autoptr(json_object) s8 = status (fx);
  assert_int_equal (json_object_array_length (jarr (s8, "reservations")), 0);
}

static void
test_reservation_expiry (void **state)
{
  Fixture *fx = *state;
  require_root ();
  VmemConfig *c = make_config (fx);
  /* Below what the config file accepts (10 s): set on the struct. */
  c->reservation_timeout = 1;
  start (fx, c);
  wait_ready (fx);
  profile_create (fx, "erp", 1024);

  prepare_admitted (fx, "dom-a", UUID_A, 4096, "erp");
  gint64 admitted = now_us ();
  g_autoptr(json_object) s1 = status (fx);
  assert_non_null (reservation (s1, "dom-a"));
  g_free (prepare_refused (fx, "dom-b", UUID_B, 3072, "erp"));

  /* No STARTED, STOPPED or release: the reservation ends on its own. */
  g_autoptr(json_object) s2 =
    wait_status (fx, has_no_reservation_of, "dom-a", 15000, "dom-a's reservation expiring");
  gint64 took = now_us () - admitted;
  print_message ("reservation of 1 s expired after %" G_GINT64_FORMAT " ms\n", took / 1000);
  assert_true (took >= G_USEC_PER_SEC);
  assert_int_equal (jint (s2, "committed_mib"), WEB_MIB);
  prepare_admitted (fx, "dom-b", UUID_B, 3072, "erp");
}

/* ---- 5. Not ready ------------------------------------------------------- */

static void
not_ready (Fixture *fx, VmemNotReady not_ready)
{
  require_root ();
  VmemConfig *c = make_config (fx);
  set_str (&c->uri, "test:///nonexistent/vmemd-test/node.xml");
  c->not_ready = not_ready;
  start (fx, c);
  profile_create (fx, "erp", 1024);

  /* Past the first retries: still not connected, so never ready. */
  iterate_for (1500);
  g_autoptr(json_object) s = status (fx);
  assert_false (jbool (s, "ready"));
  assert_false (jbool (s, "libvirt_connected"));

  if (not_ready == VMEM_NOT_READY_REFUSE)
    {
      g_autofree char *m = prepare_refused (fx, "dom-a", UUID_A, 1024, "erp");
      if (strstr (m, "has not read every domain yet") == NULL)
        fail_msg ("refusal does not say why: %s", m);
      g_autoptr(json_object) s2 = status (fx);
      assert_int_equal (json_object_array_length (jarr (s2, "reservations")), 0);
    }
  else
    {
      prepare_admitted (fx, "dom-a", UUID_A, 1024, "erp");
      g_autoptr(json_object) s2 = status (fx);
      assert_int_equal (jint (reservation (s2, "dom-a"), "mib"), 1024);
      hook_notify (fx, "release", "end", "dom-a", UUID_A);
    }
  /* What does not fit even by the domains known so far is refused either
   * way. */
  g_autofree char *over = prepare_refused (fx, "huge", UUID_C, USABLE_MIB + 1, "erp");
  assert_non_null (strstr (over, "not enough host memory"));
  /* A start vmemd does not manage is never refused. */
  g_autofree char *xml = domain_xml ("plain", UUID_D, 1024, NULL);
  g_autoptr(json_object) p = hook_params ("prepare", "begin", "plain", UUID_D, xml);
  g_autoptr(json_object) r = call_ok_timed (fx, "io.vmemd.HookEvent", p, NULL);
  assert_true (jbool (r, "allow"));
}

static void
test_not_ready_refuse (void **state)
{
  not_ready (*state, VMEM_NOT_READY_REFUSE);
}

static void
test_not_ready_admit (void **state)
{
  not_ready (*state, VMEM_NOT_READY_ADMIT);
}

/* ---- 6. Nothing slow on the hook's loop ---------------------------------- */

static void
test_store_locked (void **state)
{
  Fixture *fx = *state;
  require_root ();
  VmemConfig *c = make_config (fx);
  guint budget_ms = c->hook_timeout_ms;
  start (fx, c);
  wait_ready (fx);
  profile_create (fx, "erp", 1024);

  lock_database (fx);
  /* A profile write waits on the store's worker for the lock... */
  g_autoptr(json_object) pset = parse ("{\"create\":true,\"profile\":{\"name\":\"late\"}}");
  gint64 set_start = now_us ();
  Call *set_call = call_begin (fx, "io.vmemd.ProfileSet", pset);
  iterate_for (200);

  /* ...while the start path and Status answer from memory. */
  gint64 hook_us = 0, status_us = 0, get_us = 0;
  g_autoptr(json_object) admitted = prepare_timed (fx, "dom-a", UUID_A, 1024, "erp", &hook_us);
  assert_true (jbool (admitted, "allow"));
  g_autoptr(json_object) s = status_timed (fx, &status_us);
  assert_non_null (reservation (s, "dom-a"));
  g_autoptr(json_object) pget = parse ("{\"name\":\"erp\"}");
  g_autoptr(json_object) got = call_ok_timed (fx, "io.vmemd.ProfileGet", pget, &get_us);
  gboolean set_pending = !g_atomic_int_get (&set_call->done);

  g_autoptr(GError) error = NULL;
  gint64 set_us = 0;
  g_autoptr(json_object) set_reply = call_end (set_call, &error, &set_us);
  gint64 set_total = now_us () - set_start;
  print_message ("database locked: HookEvent prepare %.1f ms, Status %.1f ms, ProfileGet %.1f ms "
                 "(budget %u ms); ProfileSet failed after %.1f ms%s\n",
                 hook_us / 1000.0, status_us / 1000.0, get_us / 1000.0, budget_ms,
                 set_us / 1000.0, set_pending ? " (still pending while the others answered)" : "");
  assert_true (hook_us < (gint64) budget_ms * 1000);
  assert_true (status_us < (gint64) budget_ms * 1000);
  assert_true (get_us < (gint64) budget_ms * 1000);
  assert_true (set_pending);
  assert_error (error, set_reply, "ProfileSet", VMEM_ERROR_STORE, NULL);
  /* About the store's busy timeout (1 s), not blocked for good. */
  assert_true (set_us >= 500000);
  assert_true (set_total < 4 * G_USEC_PER_SEC);
  call_fails (fx, "io.vmemd.ProfileGet", "{\"name\":\"late\"}", VMEM_ERROR_NOT_FOUND, "late");

  unlock_database (fx);
  g_autoptr(json_object) ok = call_ok (fx, "io.vmemd.ProfileSet",
                                       "{\"create\":true,\"profile\":{\"name\":\"late\"}}");
  assert_string_equal (jstr (jget (ok, "profile"), "name"), "late");
  g_autoptr(json_object) late = call_ok (fx, "io.vmemd.ProfileGet", "{\"name\":\"late\"}");
  hook_notify (fx, "release", "end", "dom-a", UUID_A);
}

/* The daemon stops while a profile write is still on the store's worker:
 * the write is kept and nothing freed is touched. */
static void
test_stop_with_write_in_flight (void **state)
{
  Fixture *fx = *state;
  start (fx, make_config (fx));
  wait_ready (fx);
  profile_create (fx, "erp", 1024);
  json_object_put (call_ok (fx, "io.vmemd.Assign", "{\"domain\":\"erp-1\",\"workload\":\"erp\"}"));

  lock_database (fx);
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_strlcpy (addr.sun_path, fx->socket_path, sizeof addr.sun_path);
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  assert_true (fd >= 0);
  assert_int_equal (connect (fd, (struct sockaddr *) &addr, sizeof addr), 0);
  static const char msg[] = "{\"method\":\"io.vmemd.ProfileSet\",\"parameters\":"
                            "{\"profile\":{\"name\":\"erp\",\"demand_mib\":2000}}}";
  assert_int_equal (send (fd, msg, sizeof msg, MSG_NOSIGNAL), (ssize_t) sizeof msg);
  /* Read and handed to the store's worker before a later client's call
   * is answered. */
  json_object_put (call_ok (fx, "io.vmemd.Ping", NULL));
  iterate_for (100);

  /* The worker gets the lock while the daemon stops. */
  unlock_database (fx);
  stop (fx);
  close (fd);

  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  assert_int_equal (sqlite3_open_v2 (fx->database, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  assert_int_equal (sqlite3_prepare_v2 (db, "SELECT demand_mib FROM profiles WHERE name = 'erp'",
                                        -1, &st, NULL), SQLITE_OK);
  assert_int_equal (sqlite3_step (st), SQLITE_ROW);
  assert_int_equal (sqlite3_column_int64 (st, 0), 2000);
  sqlite3_finalize (st);
  sqlite3_close (db);
}

/* Stopped at once, while libvirt is still being connected to and read:
 * what completes meanwhile must not reach the parts already freed. */
static void
test_stop_while_connecting (void **state)
{
  Fixture *fx = *state;
  for (guint i = 0; i < 20; i++)
    {
      start (fx, make_config (fx));
      stop (fx);
    }
  start (fx, make_config (fx));
  wait_ready (fx);
}

/* ---- 7. Reload ------------------------------------------------------------ */

/* @method with @params (JSON text, or NULL) from a child running as nobody
 * with @group as its one supplementary group: 0 answered, 1 permission
 * denied, 2 other error, 4 busy.  The error's message goes to *@message
 * when @message is not NULL. */
static int
call_as_nobody (Fixture *fx, gid_t group, const char *method, const char *params, char **message)
{
  int fds[2];
  assert_int_equal (pipe2 (fds, O_CLOEXEC), 0);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      close (fds[0]);
      if (setgroups (1, &group) < 0 || setgid (65534) < 0 || setuid (65534) < 0)
        _exit (3);
      GError *error = NULL;
      json_object *p = params ? json_tokener_parse (params) : NULL;
      json_object *r = vmem_varlink_call (fx->socket_path, method, p, 5000, &error);
      if (r != NULL)
        _exit (0);
      if (write (fds[1], error->message, strlen (error->message)) < 0)
        _exit (3);
      if (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_PERMISSION_DENIED))
        _exit (1);
      _exit (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_BUSY) ? 4 : 2);
    }
  close (fds[1]);
  gint64 deadline = now_us () + 10 * G_USEC_PER_SEC;
  int status = 0;
  for (;;)
    {
      pid_t got = waitpid (pid, &status, WNOHANG);
      if (got == pid)
        break;
      if (got < 0 && errno != EINTR)
        fail_msg ("waitpid: %s", g_strerror (errno));
      if (now_us () > deadline)
        {
          kill (pid, SIGKILL);
          waitpid (pid, &status, 0);
          fail_msg ("the child's %s did not return within 10 s", method);
        }
      g_main_context_iteration (NULL, TRUE);
    }
  char buf[1024];
  ssize_t n = read (fds[0], buf, sizeof buf - 1);
  close (fds[0]);
  buf[n > 0 ? n : 0] = '\0';
  if (message != NULL)
    *message = g_strdup (buf);
  if (!WIFEXITED (status) || WEXITSTATUS (status) == 3)
    fail_msg ("the child could not become nobody (status %d)", status);
  return WEXITSTATUS (status);
}

/* Profile changes from nobody with @group: 0 allowed (the call reached the
 * method: it answered, or refused the name as unknown), 1 denied. */
static int
change_as_nobody (Fixture *fx, gid_t group)
{
  g_autofree char *message = NULL;
  int r = call_as_nobody (fx, group, "io.vmemd.ProfileDelete", "{\"name\":\"no-such\"}",
                          &message);
  if (r == 2 && strstr (message, "no-such") != NULL)
    return 0;
  if (r != 0 && r != 1)
    fail_msg ("ProfileDelete as nobody: status %d: %s", r, message);
  return r;
}

/* The same, again while the server still counts clients that have just
 * left (under a low max_clients). */
static int
change_as_nobody_when_room (Fixture *fx, gid_t group)
{
  gint64 deadline = now_us () + 5 * G_USEC_PER_SEC;
  int r;
  while ((r = change_as_nobody (fx, group)) == 4)
    {
      if (now_us () > deadline)
        fail_msg ("still too many clients after 5 s");
      iterate_for (50);
    }
  return r;
}

/* A connection that has been answered once and stays open; retried while
 * the server still counts clients that have just left. */
static int
hold_connection (Fixture *fx)
{
  gint64 deadline = now_us () + 5 * G_USEC_PER_SEC;
  for (;;)
    {
      struct sockaddr_un addr = { .sun_family = AF_UNIX };
      g_strlcpy (addr.sun_path, fx->socket_path, sizeof addr.sun_path);
      int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      assert_true (fd >= 0);
      assert_int_equal (connect (fd, (struct sockaddr *) &addr, sizeof addr), 0);
      static const char msg[] = "{\"method\":\"io.vmemd.Ping\"}";
      assert_int_equal (send (fd, msg, sizeof msg, MSG_NOSIGNAL), (ssize_t) sizeof msg);
      char buf[4096];
      gsize have = 0;
      while (have == 0 || buf[have - 1] != '\0')
        {
          ssize_t n = recv (fd, buf + have, sizeof buf - have - 1, MSG_DONTWAIT);
          if (n > 0)
            have += (gsize) n;
          else if (n == 0 || (errno != EAGAIN && errno != EINTR))
            fail_msg ("the connection was closed before its reply: %s",
                      n == 0 ? "EOF" : g_strerror (errno));
          if (now_us () > deadline || have == sizeof buf - 1)
            fail_msg ("no Ping reply on a new connection within 5 s");
          g_main_context_iteration (NULL, TRUE);
        }
      if (strstr (buf, "io.vmemd.Busy") == NULL)
        {
          if (strstr (buf, "\"error\"") != NULL)
            fail_msg ("Ping failed: %s", buf);
          return fd;
        }
      close (fd);
      if (now_us () > deadline)
        fail_msg ("still too many clients after 5 s");
      iterate_for (50);
    }
}

/* ---- the collector's cycle, in slices ------------------------------------ */

/* Enough managed running domains for a cycle to take many slices. */
#define SLICED_DOMAINS 1000

typedef struct {
  gint64 t;        /* the time the next statistics stand for */
  gint   in_cycle; /* set once the statistics are read, cleared by the test */
  gint   reads;
} SlicedSource;

static char *
sliced_uuid (guint i)
{
  return g_strdup_printf ("5ca1ab1e-0000-4000-8000-%012x", i);
}

static GPtrArray *
sliced_source (gint64 *now, gpointer data, GError **error)
{
  SlicedSource *src = data;
  *now = src->t;
  src->t += 10;
  GPtrArray *out = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_balloon_stats_free);
  for (guint i = 0; i < SLICED_DOMAINS; i++)
    {
      VmemBalloonStats *st = g_new0 (VmemBalloonStats, 1);
      st->uuid = sliced_uuid (i);
      st->name = g_strdup_printf ("s-%04u", i);
      st->current_kib = 1024 * 1024;
      st->maximum_kib = 1024 * 1024;
      st->available_kib = 1024 * 1024;
      st->usable_kib = (guint64) (600 - i % 500) * 1024;
      st->unused_kib = st->usable_kib;
      st->rss_kib = 600 * 1024;
      st->last_update = *now;
      st->vcpus = 1;
      st->has_guest = TRUE;
      g_ptr_array_add (out, st);
    }
  g_atomic_int_inc (&src->reads);
  g_atomic_int_set (&src->in_cycle, 1);
  return out;
}

/* A daemon with SLICED_DOMAINS running domains s-NNNN of 1 GiB, all of
 * workload s, fed by @src.  The workload observes: every decision is
 * made and recorded, and no definition is rewritten (defining a thousand
 * domains in libvirt's test driver takes minutes). */
static void
start_sliced (Fixture *fx, SlicedSource *src)
{
  g_autoptr(GString) node = g_string_new ("<node>\n");
  for (guint i = 0; i < SLICED_DOMAINS; i++)
    {
      g_autofree char *uuid = sliced_uuid (i);
      g_string_append_printf (node,
                              "<domain type='test'><name>s-%04u</name><uuid>%s</uuid>"
                              "<memory unit='MiB'>1024</memory>"
                              "<currentMemory unit='MiB'>1024</currentMemory><vcpu>1</vcpu>"
                              "<os><type arch='x86_64'>hvm</type></os>"
                              "<devices><memballoon model='virtio'/></devices></domain>\n",
                              i, uuid);
    }
  g_string_append (node, "</node>\n");
  g_autoptr(GError) error = NULL;
  if (!g_file_set_contents (fx->node_xml, node->str, (gssize) node->len, &error))
    fail_msg ("%s", error->message);
  VmemConfig *c = make_config (fx);
  c->stats_interval = 3600; /* the test takes the cycles */
  c->capacity_mib = 4 * 1024 * 1024;
  start (fx, c);
  json_object_put (call_ok (fx, "io.vmemd.ProfileSet",
                            "{\"create\":true,\"profile\":{\"name\":\"s\",\"match\":\"s-*\","
                            "\"mode\":\"observe\"}}"));
  gint64 until = now_us () + 120 * G_USEC_PER_SEC;
  while (vmem_daemon_n_domains (fx->daemon) < SLICED_DOMAINS && now_us () < until)
    g_main_context_iteration (NULL, TRUE);
  assert_int_equal (vmem_daemon_n_domains (fx->daemon), SLICED_DOMAINS);
  src->t = 1700000000;
  vmem_daemon_set_stats_source (fx->daemon, sliced_source, NULL, src);
}

/* Takes a cycle and runs the main loop until the daemon handles its
 * statistics, then @slices more iterations (a slice each at most). */
static void
cycle_into (Fixture *fx, SlicedSource *src, guint slices)
{
  g_atomic_int_set (&src->in_cycle, 0);
  assert_true (vmem_daemon_collect_now (fx->daemon));
  while (!g_atomic_int_get (&src->in_cycle))
    g_main_context_iteration (NULL, TRUE);
  for (guint i = 0; i < slices; i++)
    g_main_context_iteration (NULL, FALSE);
  /* SLICED_DOMAINS take many more slices than that. */
  assert_true (vmem_daemon_cycle_running (fx->daemon));
}

static void
cycle_to_end (Fixture *fx, SlicedSource *src)
{
  while (vmem_daemon_cycle_running (fx->daemon))
    g_main_context_iteration (NULL, TRUE);
  g_atomic_int_set (&src->in_cycle, 0);
}

static gint64
samples_at (Fixture *fx, gint64 t)
{
  sqlite3 *db = NULL;
  sqlite3_stmt *st = NULL;
  gint64 n = -1;
  if (sqlite3_open_v2 (fx->database, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
      sqlite3_prepare_v2 (db, "SELECT count(*) FROM samples WHERE t = ?", -1, &st, NULL) ==
        SQLITE_OK &&
      sqlite3_bind_int64 (st, 1, t) == SQLITE_OK && sqlite3_step (st) == SQLITE_ROW)
    n = sqlite3_column_int64 (st, 0);
  if (n < 0)
    fail_msg ("cannot count the samples in %s: %s", fx->database, sqlite3_errmsg (db));
  sqlite3_finalize (st);
  sqlite3_close (db);
  return n;
}

typedef struct {
  const char   *socket;
  SlicedSource *src;
  gint          stop;
  gint          inside;  /* calls sent and answered while a cycle was handled */
  gint          answered;
  char         *error;
  gint          finished;
} HookLoop;

static gpointer
hook_loop (gpointer data)
{
  HookLoop *h = data;
  g_autofree char *xml = domain_xml ("probe", "5ca1ab1e-ffff-4000-8000-000000000001", 64, NULL);
  while (!g_atomic_int_get (&h->stop))
    {
      g_autoptr(json_object) p =
        hook_params ("prepare", "begin", "probe", "5ca1ab1e-ffff-4000-8000-000000000001", xml);
      gboolean before = g_atomic_int_get (&h->src->in_cycle);
      g_autoptr(GError) error = NULL;
      g_autoptr(json_object) r =
        vmem_varlink_call (h->socket, "io.vmemd.HookEvent", p, CALL_TIMEOUT_MS, &error);
      gboolean after = g_atomic_int_get (&h->src->in_cycle);
      if (r == NULL)
        {
          if (h->error == NULL)
            h->error = g_strdup (error->message);
          break;
        }
      g_atomic_int_inc (&h->answered);
      if (before && after)
        g_atomic_int_inc (&h->inside);
    }
  g_atomic_int_set (&h->finished, 1);
  g_main_context_wakeup (NULL);
  return NULL;
}

/* The main loop answers the hook between the slices of a cycle: calls
 * are sent and answered while the same cycle is being handled; the cycle
 * takes many slices, none of them long, and writes every sample. */
static void
test_cycle_in_slices (void **state)
{
  Fixture *fx = *state;
  require_root ();
  SlicedSource src = { 0 };
  start_sliced (fx, &src);

  HookLoop h = { .socket = fx->socket_path, .src = &src };
  GThread *t = g_thread_new ("hook", hook_loop, &h);
  VmemDaemonCycleFigures fig = { 0 };
  gint64 first = src.t;
  guint k = 0;
  for (; k < 10 && g_atomic_int_get (&h.inside) == 0 && h.error == NULL; k++)
    {
      g_atomic_int_set (&src.in_cycle, 0);
      assert_true (vmem_daemon_collect_now (fx->daemon));
      /* One at a time. */
      assert_false (vmem_daemon_collect_now (fx->daemon));
      cycle_to_end (fx, &src);
      vmem_daemon_last_cycle (fx->daemon, &fig);
      assert_true (fig.slices >= 4);
      assert_true (fig.control_steps >= 2 * SLICED_DOMAINS);
      assert_false (fig.finished_at_once);
    }
  g_atomic_int_set (&h.stop, 1);
  /* Its last call is answered by this main loop. */
  while (!g_atomic_int_get (&h.finished))
    g_main_context_iteration (NULL, TRUE);
  g_thread_join (t);
  if (h.error != NULL)
    fail_msg ("HookEvent failed: %s", h.error);
  print_message ("%d hook calls answered, %d of them sent and answered within one cycle; "
                 "last cycle: %u slices, %.1f ms CPU, longest slice %.2f ms\n",
                 g_atomic_int_get (&h.answered), g_atomic_int_get (&h.inside), fig.slices,
                 fig.cpu_us / 1000, fig.longest_slice_us / 1000);
  assert_true (g_atomic_int_get (&h.inside) > 0);
  /* Every sample of every cycle is written (the writes queued end before
   * the store closes). */
  stop (fx);
  for (guint i = 0; i < k; i++)
    assert_int_equal (samples_at (fx, first + 10 * (gint64) i), SLICED_DOMAINS);
}

/* A reload while a cycle is handled ends the cycle first, at once, on the
 * settings it began with (as a profile change or rebuilt estimator
 * aggregates do); every sample of both cycles is written. */
static void
test_cycle_reload_midway (void **state)
{
  Fixture *fx = *state;
  require_root ();
  SlicedSource src = { 0 };
  start_sliced (fx, &src);
  VmemDaemonCycleFigures fig;

  gint64 first = src.t;
  cycle_into (fx, &src, 3);
  VmemConfig *c = make_config (fx);
  c->stats_interval = 3600;
  c->capacity_mib = 4 * 1024 * 1024;
  c->min_buffer_mib = 128;
  vmem_daemon_reload (fx->daemon, c, NULL);
  assert_false (vmem_daemon_cycle_running (fx->daemon));
  vmem_daemon_last_cycle (fx->daemon, &fig);
  assert_true (fig.finished_at_once);
  assert_true (fig.control_steps >= 2 * SLICED_DOMAINS);

  /* The next cycle runs in slices again, with the new settings. */
  gint64 second = src.t;
  assert_true (vmem_daemon_collect_now (fx->daemon));
  cycle_to_end (fx, &src);
  vmem_daemon_last_cycle (fx->daemon, &fig);
  assert_false (fig.finished_at_once);
  assert_true (fig.slices >= 4);
  g_atomic_int_set (&src.in_cycle, 0);
  stop (fx);
  assert_int_equal (samples_at (fx, first), SLICED_DOMAINS);
  assert_int_equal (samples_at (fx, second), SLICED_DOMAINS);
}

/* Stopped while a cycle's samples are being taken: the cycle is dropped
 * (nothing of it written, no move), the cycles before are all there, and
 * nothing is left running. */
static void
test_cycle_stop_midway (void **state)
{
  Fixture *fx = *state;
  require_root ();
  SlicedSource src = { 0 };
  start_sliced (fx, &src);

  gint64 first = src.t;
  assert_true (vmem_daemon_collect_now (fx->daemon));
  cycle_to_end (fx, &src);
  gint64 second = src.t;
  cycle_into (fx, &src, 2);
  stop (fx);
  assert_int_equal (samples_at (fx, first), SLICED_DOMAINS);
  assert_int_equal (samples_at (fx, second), 0);
}

static void
test_reload (void **state)
{
  Fixture *fx = *state;
  require_root ();
  struct group *gr = getgrgid (65534);
  if (gr == NULL)
    fail_msg ("no group 65534 (nogroup) on this system");
  g_autofree char *group = g_strdup (gr->gr_name);
  start (fx, make_config (fx));

  /* Nobody in that group may reach the socket, but is no admin yet. */
  g_autofree char *run = g_path_get_dirname (fx->socket_path);
  chmod (fx->dir, 0755);
  chmod (run, 0755);
  assert_int_equal (change_as_nobody (fx, gr->gr_gid), 1);

  /* A new socket needs a restart; the rest applies at once. */
  VmemConfig *c = make_config (fx);
  g_autofree char *other = g_build_filename (fx->dir, "other", "io.vmemd", NULL);
  set_str (&c->socket_path, other);
  set_str (&c->admin_group, group);
  c->reserve_mib = 2048;
  c->admission = VMEM_ADMISSION_WARN;
  g_autofree char *restart = NULL;
  vmem_daemon_reload (fx->daemon, c, &restart);
  if (g_strcmp0 (restart, "[daemon] socket") != 0)
    fail_msg ("restart_needed: '%s', want '[daemon] socket'", restart ? restart : "(none)");

  /* Still on the old socket; the new one is only for the next start. */
  g_autoptr(json_object) ping = call_ok (fx, "io.vmemd.Ping", NULL);
  assert_false (g_file_test (other, G_FILE_TEST_EXISTS));
  g_autoptr(json_object) s = status (fx);
  assert_int_equal (jint (s, "reserve_mib"), 2048);
  assert_int_equal (jint (s, "capacity_mib"), CAPACITY_MIB - 2048);
  assert_string_equal (jstr (s, "admission"), "warn");
  /* The admin group applies at once. */
  assert_int_equal (change_as_nobody (fx, gr->gr_gid), 0);

  /* The client limits alone: no restart, and two clients hold the only
   * place and the one kept for root (this test runs as root). */
  g_clear_pointer (&restart, g_free);
  VmemConfig *c2 = make_config (fx);
  set_str (&c2->admin_group, group);
  c2->max_clients = 1;
  c2->root_clients = 1;
  vmem_daemon_reload (fx->daemon, c2, &restart);
  if (restart != NULL)
    fail_msg ("max_clients asked for a restart: %s", restart);
  int fd = hold_connection (fx);
  int fd2 = hold_connection (fx);
  call_fails (fx, "io.vmemd.Ping", NULL, VMEM_ERROR_BUSY, "too many clients");
  close (fd2);
  close (fd);
  /* Once the server has seen it go, there is room again. */
  gint64 deadline = now_us () + 5 * G_USEC_PER_SEC;
  for (;;)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(json_object) r = call_end (call_begin (fx, "io.vmemd.Ping", NULL), &error, NULL);
      if (r != NULL)
        break;
      assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_BUSY));
      if (now_us () > deadline)
        fail_msg ("the closed client still counts after 5 s");
      iterate_for (50);
    }
  assert_int_equal (change_as_nobody_when_room (fx, gr->gr_gid), 0);

  /* Back to the first settings: nothing needs a restart, and the admin
   * group is gone again. */
  vmem_daemon_reload (fx->daemon, make_config (fx), &restart);
  assert_null (restart);
  assert_int_equal (change_as_nobody_when_room (fx, gr->gr_gid), 1);
  g_autoptr(json_object) s2 = status (fx);
  assert_string_equal (jstr (s2, "admission"), "enforce");
  assert_int_equal (jint (s2, "reserve_mib"), RESERVE_MIB);
}

/* Any local user reads; only root and the admin group change anything,
 * and a refusal names the method and the group and changes nothing. */
static void
test_read_without_group (void **state)
{
  Fixture *fx = *state;
  require_root ();
  struct group *admin = getgrgid (0);
  if (admin == NULL)
    fail_msg ("no group 0 on this system");
  g_autofree char *admin_name = g_strdup (admin->gr_name);
  VmemConfig *c = make_config (fx);
  set_str (&c->admin_group, admin_name);
  start (fx, c);
  wait_ready (fx);
  profile_create (fx, "erp", 1536);
  profile_create (fx, "web", 512);
  json_object_put (call_ok (fx, "io.vmemd.Assign", "{\"domain\":\"erp-1\",\"workload\":\"erp\"}"));

  /* The daemon's own socket is world-connectable. */
  struct stat st;
  assert_int_equal (stat (fx->socket_path, &st), 0);
  if ((st.st_mode & 0777) != 0666)
    fail_msg ("the socket's mode is %o, want 666", (unsigned) (st.st_mode & 0777));
  g_autofree char *run = g_path_get_dirname (fx->socket_path);
  chmod (fx->dir, 0755);
  chmod (run, 0755);

  static const struct {
    const char *method, *params;
  } reads[] = {
    { "io.vmemd.Ping", NULL },
    { "io.vmemd.Status", NULL },
    { "io.vmemd.Explain", "{\"domain\":\"erp-1\"}" },
    { "io.vmemd.Explain", "{\"workload\":\"erp\"}" },
    { "io.vmemd.History", "{\"domain\":\"erp-1\"}" },
    { "io.vmemd.ProfileList", NULL },
    { "io.vmemd.ProfileGet", "{\"name\":\"erp\"}" },
    { "io.vmemd.Metrics", NULL },
    { "io.vmemd.Hosts", NULL },
    { "io.vmemd.Place", "{\"workload\":\"erp\"}" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (reads); i++)
    {
      g_autofree char *message = NULL;
      int r = call_as_nobody (fx, 65534, reads[i].method, reads[i].params, &message);
      if (r != 0)
        fail_msg ("%s as nobody: status %d: %s", reads[i].method, r, message);
    }

  static const char *const writes[][2] = {
    { "io.vmemd.ProfileSet", "{\"create\":false,\"profile\":{\"name\":\"erp\",\"demand_mib\":4096}}" },
    { "io.vmemd.ProfileSet", "{\"create\":true,\"profile\":{\"name\":\"new\",\"demand_mib\":256}}" },
    { "io.vmemd.ProfileDelete", "{\"name\":\"web\"}" },
    { "io.vmemd.ProfileImport", "{\"profiles\":[],\"replace\":true}" },
    { "io.vmemd.Assign", "{\"domain\":\"web-1\",\"workload\":\"web\"}" },
    { "io.vmemd.Unassign", "{\"domain\":\"erp-1\"}" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (writes); i++)
    {
      g_autofree char *message = NULL;
      int r = call_as_nobody (fx, 65534, writes[i][0], writes[i][1], &message);
      g_autofree char *want = g_strdup_printf ("%s is for root and members of group %s "
                                               "(caller uid 65534 is neither)",
                                               writes[i][0], admin_name);
      if (r != 1 || g_strcmp0 (message, want) != 0)
        fail_msg ("%s as nobody: status %d, message '%s'; want refused with '%s'", writes[i][0],
                  r, message, want);
    }
  /* The hook's method stays root's. */
  g_autofree char *hook_message = NULL;
  assert_int_equal (call_as_nobody (fx, 65534, "io.vmemd.HookEvent",
                                    "{\"name\":\"erp-1\",\"op\":\"release\",\"subop\":\"end\"}",
                                    &hook_message),
                    1);
  assert_non_null (strstr (hook_message, "root only"));

  /* Nothing changed. */
  g_autoptr(json_object) erp = call_ok (fx, "io.vmemd.ProfileGet", "{\"name\":\"erp\"}");
  assert_int_equal (jint (jget (erp, "profile"), "demand_mib"), 1536);
  json_object_put (call_ok (fx, "io.vmemd.ProfileGet", "{\"name\":\"web\"}"));
  call_fails (fx, "io.vmemd.ProfileGet", "{\"name\":\"new\"}", VMEM_ERROR_NOT_FOUND, "new");
  g_autoptr(json_object) s = status (fx);
  json_object *d = find_named (jarr (s, "domains"), "erp-1");
  assert_true (jbool (d, "managed"));
  assert_string_equal (jstr (d, "workload"), "erp");
  assert_false (jbool (find_named (jarr (s, "domains"), "web-1"), "managed"));

  /* In the admin group, the same change goes through. */
  assert_int_equal (change_as_nobody (fx, 0), 0);
}

/* ---- 12. Metrics ----------------------------------------------------------- */

typedef struct {
  gboolean done;
  char    *out;
  char    *err;
  GError  *error;
} Spawned;

static void
communicated (GObject *source, GAsyncResult *result, gpointer data)
{
  Spawned *sp = data;
  g_subprocess_communicate_utf8_finish (G_SUBPROCESS (source), result, &sp->out, &sp->err,
                                        &sp->error);
  sp->done = TRUE;
}

/* Runs vmemctl --socket SOCKET @args while the daemon serves on this
 * thread; its standard output, and its exit status in @status. */
static char *
vmemctl_run (Fixture *fx, const char *const *args, int *status)
{
  const char *vmemctl = g_getenv ("VMEMCTL");
  if (vmemctl == NULL)
    fail_msg ("VMEMCTL is not set: run the test through meson test");
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  g_ptr_array_add (argv, (gpointer) vmemctl);
  g_ptr_array_add (argv, (gpointer) "--socket");
  g_ptr_array_add (argv, fx->socket_path);
  for (guint i = 0; args[i] != NULL; i++)
    g_ptr_array_add (argv, (gpointer) args[i]);
  g_ptr_array_add (argv, NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(GSubprocess) p = g_subprocess_newv ((const char *const *) argv->pdata,
                                                G_SUBPROCESS_FLAGS_STDOUT_PIPE |
                                                  G_SUBPROCESS_FLAGS_STDERR_PIPE,
                                                &error);
  if (p == NULL)
    fail_msg ("%s: %s", vmemctl, error->message);
  Spawned sp = { 0 };
  g_subprocess_communicate_utf8_async (p, NULL, NULL, communicated, &sp);
  gint64 deadline = now_us () + (CALL_TIMEOUT_MS + 5000) * G_GINT64_CONSTANT (1000);
  while (!sp.done)
    {
      if (now_us () > deadline)
        fail_msg ("vmemctl %s did not end in time", args[0]);
      g_main_context_iteration (NULL, TRUE);
    }
  if (sp.error != NULL)
    fail_msg ("vmemctl %s: %s", args[0], sp.error->message);
  *status = g_subprocess_get_exit_status (p);
  if (*status != 0)
    g_printerr ("vmemctl %s: %s", args[0], sp.err);
  g_free (sp.err);
  return sp.out;
}

/* tests/unit/check_metrics.py: the real parsers read @path, or fail. */
static void
check_metrics (const char *form, const char *path)
{
  const char *python = g_getenv ("VMEM_PYTHON3");
  const char *script = g_getenv ("VMEM_CHECK_METRICS");
  if (python == NULL || script == NULL)
    fail_msg ("VMEM_PYTHON3 or VMEM_CHECK_METRICS is not set: run the test through meson test");
  g_autofree char *option = g_strconcat ("--", form, NULL);
  const char *argv[] = { python, script, option, path, NULL };
  g_autofree char *out = NULL;
  int status = -1;
  g_autoptr(GError) error = NULL;
  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &out,
                     NULL, &status, &error))
    fail_msg ("%s: %s", script, error->message);
  if (!g_spawn_check_wait_status (status, NULL))
    fail_msg ("%s %s %s:\n%s", script, option, path, out);
}

static gboolean
has_line (const char *text, const char *line)
{
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  return g_strv_contains ((const char *const *) lines, line);
}

static void
assert_line (const char *text, const char *line)
{
  if (!has_line (text, line))
    fail_msg ("no line '%s' in:\n%s", line, text);
}

/* The value of the sample that @prefix (name and labels) starts, or -1. */
static double
sample_value (const char *text, const char *prefix)
{
  g_auto(GStrv) lines = g_strsplit (text, "\n", -1);
  for (guint i = 0; lines[i] != NULL; i++)
    if (g_str_has_prefix (lines[i], prefix) && lines[i][strlen (prefix)] == ' ')
      return g_ascii_strtod (lines[i] + strlen (prefix) + 1, NULL);
  return -1;
}

static char *
metrics_text (Fixture *fx, const char *format)
{
  g_autofree char *params = g_strdup_printf ("{\"format\":\"%s\"}", format);
  g_autoptr(json_object) r = call_ok (fx, "io.vmemd.Metrics", params);
  assert_string_equal (jstr (r, "format"), format);
  return g_strdup (jstr (r, "text"));
}

static char *
read_file (const char *path)
{
  g_autoptr(GError) error = NULL;
  char *text = NULL;
  if (!g_file_get_contents (path, &text, NULL, &error))
    fail_msg ("%s", error->message);
  return text;
}

/* Waits for @path to hold @line, rewritten every stats interval. */
static char *
wait_textfile (const char *path, const char *line)
{
  gint64 deadline = now_us () + 10 * G_USEC_PER_SEC;
  for (;;)
    {
      g_autofree char *text = NULL;
      if (g_file_get_contents (path, &text, NULL, NULL) && has_line (text, line))
        return g_steal_pointer (&text);
      if (now_us () > deadline)
        fail_msg ("%s: no line '%s' within 10 s:\n%s", path, line, text ? text : "(no file)");
      iterate_for (100);
    }
}

static void
test_metrics (void **state)
{
  Fixture *fx = *state;
  require_root ();
  VmemConfig *c = make_config (fx);
  g_autofree char *textfile = g_build_filename (fx->dir, "vmemd.prom", NULL);
  g_autofree char *tmp = g_strconcat (textfile, ".tmp", NULL);
  c->metrics_textfile = g_strdup (textfile);
  start (fx, c);
  wait_ready (fx);

  /* web-1 (running) is managed by its name; two hook calls and a bad one. */
  json_object_put (call_ok (fx, "io.vmemd.ProfileSet",
                            "{\"create\":true,\"profile\":{\"name\":\"web\",\"demand_mib\":512,"
                            "\"match\":\"web-*\"}}"));
  prepare_admitted (fx, "new-1", UUID_A, 512, "web");
  hook_notify (fx, "release", "end", "new-1", UUID_A);
  call_fails (fx, "io.vmemd.HookEvent", "{\"op\":\"prepare\",\"domain\":\"x\"}",
              VMEM_ERROR_INVALID_ARGUMENT, "subop");

  /* Once a collector cycle has ended (one every second here). */
  gint64 deadline = now_us () + 10 * G_USEC_PER_SEC;
  for (;;)
    {
      g_autofree char *text = metrics_text (fx, "openmetrics");
      if (sample_value (text, "vmemd_collector_cycles_total{result=\"read\"}") >= 1)
        break;
      if (now_us () > deadline)
        fail_msg ("no collector cycle counted within 10 s:\n%s", text);
      iterate_for (200);
    }
  g_autoptr(json_object) r = call_ok (fx, "io.vmemd.Metrics", NULL);
  assert_string_equal (jstr (r, "format"), "openmetrics");
  const char *om = jstr (r, "text");
  assert_true (g_str_has_suffix (om, "\n# EOF\n"));
  assert_line (om, "vmemd_build_info{version=\"" VMEM_VERSION "\"} 1");
  assert_line (om, "vmemd_ready 1");
  assert_line (om, "vmemd_libvirt_connected 1");
  g_autofree char *capacity = g_strdup_printf ("vmemd_host_capacity_bytes %" G_GUINT64_FORMAT,
                                               (guint64) USABLE_MIB * 1048576);
  assert_line (om, capacity);
  g_autofree char *committed = g_strdup_printf ("vmemd_host_committed_bytes %" G_GUINT64_FORMAT,
                                                (guint64) WEB_MIB * 1048576);
  assert_line (om, committed);
  assert_line (om, "vmemd_host_boot_reservations 0");
  assert_line (om, "vmemd_hook_requests_total{op=\"prepare\",result=\"allowed\"} 1");
  assert_line (om, "vmemd_hook_requests_total{op=\"prepare\",result=\"error\"} 1");
  assert_line (om, "vmemd_hook_requests_total{op=\"release\",result=\"allowed\"} 1");
  assert_line (om, "vmemd_hook_request_duration_seconds_count{op=\"prepare\"} 2");
  assert_line (om, "vmemd_hook_request_duration_seconds_bucket{op=\"release\",le=\"+Inf\"} 1");
  assert_line (om, "vmemd_domain_running{domain=\"web-1\",workload=\"web\"} 1");
  assert_line (om, "vmemd_domain_memory_bytes{domain=\"web-1\",workload=\"web\"} 1073741824");
  assert_line (om, "vmemd_domain_actual_bytes{domain=\"web-1\",workload=\"web\"} 1073741824");
  assert_line (om, "vmemd_workload_domains{workload=\"web\"} 1");
  /* No history yet: the profile's demand. */
  assert_line (om, "vmemd_workload_estimate_bytes{workload=\"web\"} 536870912");
  assert_line (om, "vmemd_workload_estimate_source{workload=\"web\",source=\"profile\"} 1");
  assert_true (sample_value (om, "vmemd_collector_cycles_total{result=\"read\"}") >= 1);
  assert_true (sample_value (om, "vmemd_collector_cycle_duration_seconds_count") >= 1);
  assert_true (sample_value (om, "vmemd_store_writes_total{write=\"heartbeat\"}") >= 1);
  assert_line (om, "vmemd_store_write_errors_total{write=\"heartbeat\"} 0");

  /* The textfile's form, and JSON. */
  g_autofree char *prom = metrics_text (fx, "prometheus");
  assert_line (prom, "# TYPE vmemd_hook_requests_total counter");
  assert_line (prom, "vmemd_hook_requests_total{op=\"prepare\",result=\"allowed\"} 1");
  g_autoptr(json_object) j = call_ok (fx, "io.vmemd.Metrics", "{\"format\":\"json\"}");
  assert_string_equal (jstr (j, "format"), "json");
  assert_true (json_object_array_length (jarr (j, "families")) > 20);
  assert_null (jget (j, "text"));
  call_fails (fx, "io.vmemd.Metrics", "{\"format\":\"xml\"}", VMEM_ERROR_INVALID_ARGUMENT,
              "'xml' is not one of openmetrics, prometheus, json");
  call_fails (fx, "io.vmemd.Metrics", "{\"since\":1}", VMEM_ERROR_INVALID_ARGUMENT, "since");

  /* vmemctl prints them as they are, for the real parsers. */
  int code = -1;
  g_autofree char *printed = vmemctl_run (fx, (const char *const[]){ "metrics", NULL }, &code);
  assert_int_equal (code, 0);
  assert_true (g_str_has_suffix (printed, "\n# EOF\n"));
  assert_line (printed, "vmemd_hook_requests_total{op=\"prepare\",result=\"allowed\"} 1");
  g_autofree char *printed_path = g_build_filename (fx->dir, "vmemctl.txt", NULL);
  assert_true (g_file_set_contents (printed_path, printed, -1, NULL));
  check_metrics ("openmetrics", printed_path);
  g_autofree char *printed_prom =
    vmemctl_run (fx, (const char *const[]){ "metrics", "--format", "prometheus", NULL }, &code);
  assert_int_equal (code, 0);
  assert_true (g_file_set_contents (printed_path, printed_prom, -1, NULL));
  check_metrics ("prometheus", printed_path);
  g_autofree char *printed_json =
    vmemctl_run (fx, (const char *const[]){ "metrics", "--json", NULL }, &code);
  assert_int_equal (code, 0);
  g_autoptr(json_object) families = parse (printed_json);
  assert_true (json_object_is_type (families, json_type_array));

  /* The textfile: rewritten every stats interval, readable by all, in the
   * form promtool and node exporter read. */
  g_autofree char *file = wait_textfile (
    textfile, "vmemd_hook_requests_total{op=\"prepare\",result=\"allowed\"} 1");
  assert_line (file, "# TYPE vmemd_hook_requests_total counter");
  assert_line (file, "vmemd_domain_running{domain=\"web-1\",workload=\"web\"} 1");
  struct stat st;
  assert_int_equal (stat (textfile, &st), 0);
  assert_int_equal (st.st_mode & 07777, 0644);
  assert_false (g_file_test (tmp, G_FILE_TEST_EXISTS));
  check_metrics ("prometheus", textfile);

  /* Another path: the old file goes; none: the file goes. */
  VmemConfig *c2 = make_config (fx);
  g_autofree char *other = g_build_filename (fx->dir, "other.prom", NULL);
  c2->metrics_textfile = g_strdup (other);
  vmem_daemon_reload (fx->daemon, c2, NULL);
  assert_false (g_file_test (textfile, G_FILE_TEST_EXISTS));
  g_autofree char *moved = read_file (other);
  assert_line (moved, "vmemd_ready 1");
  vmem_daemon_reload (fx->daemon, make_config (fx), NULL);
  assert_false (g_file_test (other, G_FILE_TEST_EXISTS));
  iterate_for (1500);
  assert_false (g_file_test (other, G_FILE_TEST_EXISTS));

  /* A directory that is not there: counted, warned, and the daemon goes on. */
  VmemConfig *c3 = make_config (fx);
  g_autofree char *nowhere = g_build_filename (fx->dir, "nowhere", "vmemd.prom", NULL);
  c3->metrics_textfile = g_strdup (nowhere);
  vmem_daemon_reload (fx->daemon, c3, NULL);
  g_autofree char *after = metrics_text (fx, "openmetrics");
  assert_true (sample_value (after, "vmemd_textfile_write_errors_total") >= 1);

  /* Written again, then removed when vmemd stops. */
  VmemConfig *c4 = make_config (fx);
  c4->metrics_textfile = g_strdup (textfile);
  vmem_daemon_reload (fx->daemon, c4, NULL);
  assert_true (g_file_test (textfile, G_FILE_TEST_EXISTS));
  stop (fx);
  assert_false (g_file_test (textfile, G_FILE_TEST_EXISTS));
}

/* Hosts lists every host sharing the store, this one from its own
 * heartbeat; Place ranks the live ones for a new domain of a workload by
 * what it holds at boot. */
static void
test_hosts_place (void **state)
{
  Fixture *fx = *state;
  g_autoptr(GError) error = NULL;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  {
    g_autoptr(VmemStore) store = vmem_store_open_sqlite_as (fx->database, "host-self", &error);
    if (store == NULL)
      fail_msg ("%s", error->message);
    const VmemHostRow rows[] = {
      { .id = "host-big", .name = "big", .capacity_mib = 65536, .reserved_mib = 1024,
        .overcommit = 1.0, .committed_mib = 1000, .interval_s = 10, .heartbeat = now },
      { .id = "host-full", .name = "full", .capacity_mib = 4096, .reserved_mib = 1024,
        .overcommit = 1.0, .committed_mib = 4000, .reservations_mib = 500, .reservations = 1,
        .domains = 3, .interval_s = 10, .heartbeat = now },
      { .id = "host-gone", .name = "gone", .capacity_mib = 999999, .reserved_mib = 0,
        .overcommit = 1.0, .interval_s = 10, .heartbeat = now - 3600 },
    };
    for (guint i = 0; i < G_N_ELEMENTS (rows); i++)
      if (!vmem_store_host_heartbeat (store, &rows[i], &error))
        fail_msg ("%s", error->message);
  }
  VmemConfig *c = make_config (fx);
  set_str (&c->host_id, "host-self");
  start (fx, c);

  g_autoptr(json_object) r = call_ok (fx, "io.vmemd.Hosts", NULL);
  json_object *hosts = jarr (r, "hosts");
  assert_int_equal (json_object_array_length (hosts), 4);
  json_object *self = NULL, *gone = NULL, *full = NULL;
  for (size_t i = 0; i < json_object_array_length (hosts); i++)
    {
      json_object *h = json_object_array_get_idx (hosts, i);
      if (g_str_equal (jstr (h, "id"), "host-self"))
        self = h;
      else if (g_str_equal (jstr (h, "id"), "host-gone"))
        gone = h;
      else if (g_str_equal (jstr (h, "id"), "host-full"))
        full = h;
    }
  assert_non_null (self);
  assert_string_equal (jstr (self, "name"), "testhost");
  assert_true (jbool (self, "self"));
  assert_true (jbool (self, "alive"));
  assert_int_equal (jint (self, "capacity_mib"), USABLE_MIB);
  assert_int_equal (jint (self, "reserve_mib"), RESERVE_MIB);
  assert_int_equal (jint (self, "interval_s"), 1);
  assert_false (jbool (gone, "alive"));
  assert_false (jbool (gone, "self"));
  assert_int_equal (jint (full, "free_mib"), 96);
  assert_int_equal (jint (full, "reservations"), 1);
  assert_int_equal (jint (full, "reservations_mib"), 500);
  assert_int_equal (jint (full, "domains"), 3);

  /* Balloon with preallocation holds its whole <memory> at boot. */
  profile_create (fx, "web", 2048);
  g_autoptr(json_object) pl =
    call_ok (fx, "io.vmemd.Place", "{\"workload\":\"web\",\"memory_mib\":3072}");
  assert_int_equal (jint (pl, "demand_mib"), 2048);
  assert_int_equal (jint (pl, "boot_mib"), 3072);
  json_object *ranked = jarr (pl, "hosts");
  assert_int_equal (json_object_array_length (ranked), 3); /* not the one gone */
  json_object *first = json_object_array_get_idx (ranked, 0);
  json_object *second = json_object_array_get_idx (ranked, 1);
  json_object *last = json_object_array_get_idx (ranked, 2);
  assert_string_equal (jstr (first, "id"), "host-big");
  assert_true (jbool (first, "fits"));
  assert_int_equal (jint (first, "room_mib"), 65536 - 1000 - 3072);
  assert_int_equal (jint (first, "rank"), 1);
  assert_string_equal (jstr (second, "id"), "host-self");
  assert_int_equal (jint (second, "room_mib"), USABLE_MIB - 3072);
  assert_string_equal (jstr (last, "id"), "host-full");
  assert_false (jbool (last, "fits"));
  assert_int_equal (jint (last, "room_mib"), 96 - 3072);

  /* Without preallocation it boots at its demand. */
  json_object_put (call_ok (fx, "io.vmemd.ProfileSet",
                            "{\"profile\":{\"name\":\"web\",\"prealloc\":false}}"));
  g_autoptr(json_object) lazy =
    call_ok (fx, "io.vmemd.Place", "{\"workload\":\"web\",\"memory_mib\":3072}");
  assert_int_equal (jint (lazy, "boot_mib"), 2048);

  call_fails (fx, "io.vmemd.Place", "{\"workload\":\"nope\"}", VMEM_ERROR_NOT_FOUND, "nope");
  call_fails (fx, "io.vmemd.Place", "{\"workload\":\"web\",\"memory_mib\":0}",
              VMEM_ERROR_INVALID_ARGUMENT, "memory_mib");
  call_fails (fx, "io.vmemd.Place", "{}", VMEM_ERROR_INVALID_ARGUMENT, "workload");
  call_fails (fx, "io.vmemd.Hosts", "{\"x\":1}", VMEM_ERROR_INVALID_ARGUMENT, "x");
}

#if HAVE_LIBPQ
static void
psql_admin (const char *sql)
{
  const char *admin = g_getenv ("VMEM_TEST_PG");
  if (admin == NULL || *admin == '\0')
    fail_msg ("VMEM_TEST_PG is not set: start a server with tools/test-postgres "
              "(HACKING.md) and run the tests again");
  g_autoptr(GError) error = NULL;
  int status = 0;
  g_autofree char *err = NULL;
  const char *argv[] = { "psql", "-qX", "-v", "ON_ERROR_STOP=1", admin, "-c", sql, NULL };
  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_SEARCH_PATH | G_SPAWN_STDOUT_TO_DEV_NULL,
                     NULL, NULL, NULL, &err, &status, &error) ||
      !g_spawn_check_wait_status (status, &error))
    fail_msg ("psql %s: %s %s", sql, error->message, err ? err : "");
}

/* With a PostgreSQL store another host's writes reach this daemon within
 * a heartbeat or two: its profile change (and the mirror re-read), the
 * hourly peaks of its domains (peers of this host's estimates, named by
 * the other host's name), and its heartbeat (in Hosts). */
static void
test_other_hosts_pg (void **state)
{
  Fixture *fx = *state;
  g_autoptr(GError) error = NULL;
  g_autofree char *db = g_strdup_printf ("vmem_methods_%d", (int) getpid ());
  g_autofree char *drop = g_strdup_printf ("DROP DATABASE IF EXISTS %s", db);
  g_autofree char *create = g_strdup_printf ("CREATE DATABASE %s", db);
  psql_admin (drop);
  psql_admin (create);
  g_autofree char *conninfo = g_strdup_printf ("%s dbname=%s", g_getenv ("VMEM_TEST_PG"), db);

  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  gint64 hour = now - now % 3600;
  g_autoptr(VmemStore) other = vmem_store_open_pg (conninfo, &error);
  if (other == NULL)
    fail_msg ("%s", error->message);
  g_autoptr(VmemProfile) web = vmem_profile_new ("web");
  web->demand_mib = 1024;
  if (!vmem_store_profile_put (other, web, VMEM_STORE_PUT_CREATE, &error))
    fail_msg ("%s", error->message);
  VmemHostRow row = { .id = "host-other", .name = "other", .capacity_mib = 16384,
                      .overcommit = 1.0, .interval_s = 1, .heartbeat = now };
  if (!vmem_store_host_heartbeat (other, &row, &error))
    fail_msg ("%s", error->message);
  /* Eight hours of one peer, read when the daemon starts. */
  for (gint64 h = 8; h >= 1; h--)
    {
      VmemPeak pk = { .uuid = "aaaaaaaa-0000-4000-8000-000000000001", .host = "host-other",
                      .workload = "web", .interval_s = 3600, .start_t = hour - h * 3600,
                      .peak_mib = 700, .samples = 360, .guest_samples = 360, .vcpus = 1 };
      if (!vmem_store_samples_add (other, NULL, 0, &pk, 1, &error))
        fail_msg ("%s", error->message);
    }

  VmemConfig *c = make_config (fx);
  c->backend = VMEM_STORE_POSTGRES;
  set_str (&c->postgres, conninfo);
  set_str (&c->host_id, "host-self");
  start (fx, c);
  g_autoptr(json_object) first = call_ok (fx, "io.vmemd.Explain", "{\"workload\":\"web\"}");

  /* Then the other host changes the profile and a second peer starts. */
  web->demand_mib = 3072;
  if (!vmem_store_profile_put (other, web, VMEM_STORE_PUT_UPDATE, &error))
    fail_msg ("%s", error->message);
  VmemPeak fresh = { .uuid = "aaaaaaaa-0000-4000-8000-000000000002", .host = "host-other",
                     .workload = "web", .interval_s = 3600, .start_t = hour, .peak_mib = 900,
                     .samples = 10, .guest_samples = 10, .vcpus = 1 };
  if (!vmem_store_samples_add (other, NULL, 0, &fresh, 1, &error))
    fail_msg ("%s", error->message);

  gint64 deadline = now_us () + 10 * G_USEC_PER_SEC;
  gboolean profile_seen = FALSE, peer_seen = FALSE;
  while (!(profile_seen && peer_seen) && now_us () < deadline)
    {
      iterate_for (200);
      g_autoptr(json_object) pr = call_ok (fx, "io.vmemd.ProfileGet", "{\"name\":\"web\"}");
      profile_seen = jint (jget (pr, "profile"), "demand_mib") == 3072;
      g_autoptr(json_object) x = call_ok (fx, "io.vmemd.Explain", "{\"workload\":\"web\"}");
      json_object *peers = jarr (jget (jget (jget (x, "explanation"), "plan"), "estimate"),
                                 "peers");
      for (size_t i = 0; i < json_object_array_length (peers); i++)
        {
          json_object *p = json_object_array_get_idx (peers, i);
          if (g_str_equal (jstr (p, "uuid"), fresh.uuid))
            {
              assert_string_equal (jstr (p, "host"), "host-other");
              assert_string_equal (jstr (p, "host_name"), "other");
              peer_seen = TRUE;
            }
        }
    }
  if (!profile_seen)
    fail_msg ("the other host's profile change did not reach the daemon");
  if (!peer_seen)
    fail_msg ("the other host's new peer did not reach the daemon's estimate");

  g_autoptr(json_object) hosts = call_ok (fx, "io.vmemd.Hosts", NULL);
  assert_int_equal (json_object_array_length (jarr (hosts, "hosts")), 2);
  stop (fx);
  g_clear_pointer (&other, vmem_store_free);
  psql_admin (drop);
}
#endif

int
main (void)
{
  signal (SIGPIPE, SIG_IGN);
  vmem_log_setup (log_level ());
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_ping_status, setup, teardown),
    cmocka_unit_test_setup_teardown (test_hosts_place, setup, teardown),
#if HAVE_LIBPQ
    cmocka_unit_test_setup_teardown (test_other_hosts_pg, setup, teardown),
#endif
    cmocka_unit_test_setup_teardown (test_profiles, setup, teardown),
    cmocka_unit_test_setup_teardown (test_assign_explain, setup, teardown),
    cmocka_unit_test_setup_teardown (test_explain_own_history, setup, teardown),
    cmocka_unit_test_setup_teardown (test_history_reason_dropped, setup, teardown),
    cmocka_unit_test_setup_teardown (test_explain_calibrated, setup, teardown),
    cmocka_unit_test_setup_teardown (test_admission, setup, teardown),
    cmocka_unit_test_setup_teardown (test_reservation_expiry, setup, teardown),
    cmocka_unit_test_setup_teardown (test_not_ready_refuse, setup, teardown),
    cmocka_unit_test_setup_teardown (test_not_ready_admit, setup, teardown),
    cmocka_unit_test_setup_teardown (test_store_locked, setup, teardown),
    cmocka_unit_test_setup_teardown (test_stop_with_write_in_flight, setup, teardown),
    cmocka_unit_test_setup_teardown (test_stop_while_connecting, setup, teardown),
    cmocka_unit_test_setup_teardown (test_reload, setup, teardown),
    cmocka_unit_test_setup_teardown (test_cycle_in_slices, setup, teardown),
    cmocka_unit_test_setup_teardown (test_cycle_reload_midway, setup, teardown),
    cmocka_unit_test_setup_teardown (test_cycle_stop_midway, setup, teardown),
    cmocka_unit_test_setup_teardown (test_read_without_group, setup, teardown),
    cmocka_unit_test_setup_teardown (test_metrics, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
