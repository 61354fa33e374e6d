/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store against real databases, on either backend: SQLite database
 * files (the test 'store'), or PostgreSQL databases made fresh for each
 * test on the server VMEM_TEST_PG names (the test 'store-pg', run with
 * --backend=postgres; tools/test-postgres starts a private server).  Most
 * tests run on both, unchanged; the ones about files (backups, a file that
 * is not a database, a crash mid-write) are SQLite's, and the ones about a
 * server (migrations racing, a lost connection, the connection string)
 * PostgreSQL's.  Checks that look behind the API (row counts, the schema)
 * use a second connection, as an administrator with the sqlite3 shell or
 * psql would. */
#include "config.h"

#include "vmem-store-private.h"
#include "vmem-store-buffer.h"
#include "vmem-error.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#if HAVE_LIBPQ
#include <libpq-fe.h>
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define UUID_A "11111111-1111-1111-1111-111111111111"
#define UUID_B "22222222-2222-2222-2222-222222222222"
#define UUID_C "33333333-3333-3333-3333-333333333333"

/* 2023-11-15 00:00:00 UTC, a whole day: hourly and daily interval starts
 * fall on it. */
#define DAY0 G_GINT64_CONSTANT (1700006400)

typedef enum {
  BACKEND_SQLITE,
  BACKEND_PG,
} Backend;

/* The backend this run tests, from the command line. */
static Backend backend = BACKEND_SQLITE;

/* One of two SQL texts, when the dialects differ. */
#define DIALECT(sqlite, pg) (backend == BACKEND_PG ? (pg) : (sqlite))

typedef struct {
  char *dir;      /* a temporary directory, on either backend */
  char *target;   /* where the store is: the SQLite file, or a libpq conninfo */
  GPtrArray *dbs; /* PostgreSQL databases made for this test, dropped after it */
  VmemStore *store;
} Fixture;

#define assert_error(err, want)                                                     \
  do                                                                                \
    {                                                                               \
      if ((err) == NULL)                                                            \
        fail_msg ("expected error %d, got success", (int) (want));                  \
      if (!g_error_matches ((err), VMEM_ERROR, (want)))                             \
        fail_msg ("expected error %d, got %d: %s", (int) (want), (int) (err)->code, \
                  (err)->message);                                                  \
    }                                                                               \
  while (0)

#define assert_no_error(err)                               \
  do                                                       \
    {                                                      \
      if ((err) != NULL)                                   \
        fail_msg ("unexpected error: %s", (err)->message); \
    }                                                      \
  while (0)

#define assert_contains(haystack, needle)                              \
  do                                                                   \
    {                                                                  \
      if (strstr ((haystack), (needle)) == NULL)                       \
        fail_msg ("'%s' does not contain '%s'", (haystack), (needle)); \
    }                                                                  \
  while (0)

#define assert_not_contains(haystack, needle)                  \
  do                                                           \
    {                                                          \
      if (strstr ((haystack), (needle)) != NULL)               \
        fail_msg ("'%s' contains '%s'", (haystack), (needle)); \
    }                                                          \
  while (0)

static void
rm_rf (const char *path)
{
  GDir *d = g_dir_open (path, 0, NULL);
  if (d != NULL)
    {
      const char *name;
      while ((name = g_dir_read_name (d)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);
          rm_rf (child);
        }
      g_dir_close (d);
      g_rmdir (path);
    }
  else
    g_unlink (path);
}

/* ---- raw access, from outside the store ---------------------------------- */

static sqlite3 *
sq_raw_open (const char *path)
{
  sqlite3 *db = NULL;
  if (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
    fail_msg ("raw open %s: %s", path, sqlite3_errmsg (db));
  sqlite3_busy_timeout (db, 5000);
  return db;
}

static void
sq_raw_exec (const char *path, const char *sql)
{
  sqlite3 *db = sq_raw_open (path);
  char *msg = NULL;
  if (sqlite3_exec (db, sql, NULL, NULL, &msg) != SQLITE_OK)
    fail_msg ("raw exec on %s: %s", path, msg);
  sqlite3_close (db);
}

static char *
sq_raw_text (const char *path, const char *sql)
{
  sqlite3 *db = sq_raw_open (path);
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2 (db, sql, -1, &st, NULL) != SQLITE_OK)
    fail_msg ("raw prepare %s: %s", sql, sqlite3_errmsg (db));
  if (sqlite3_step (st) != SQLITE_ROW)
    fail_msg ("raw query %s returned no row: %s", sql, sqlite3_errmsg (db));
  char *out = g_strdup ((const char *) sqlite3_column_text (st, 0));
  sqlite3_finalize (st);
  sqlite3_close (db);
  return out;
}

#if HAVE_LIBPQ
static void
pg_quiet (void *arg, const char *message)
{
}

/* A connection of the tests' own, named so that it can be told from the
 * store's ("vmemd"). */
static PGconn *
pg_raw_open (const char *conninfo)
{
  const char *const keys[] = { "application_name", "dbname", NULL };
  const char *const values[] = { "vmem-test", conninfo, NULL };
  PGconn *c = PQconnectdbParams (keys, values, 1);
  if (PQstatus (c) != CONNECTION_OK)
    fail_msg ("raw connection to %s: %s", conninfo, PQerrorMessage (c));
  PQsetNoticeProcessor (c, pg_quiet, NULL);
  return c;
}

static PGresult *
pg_raw_query (PGconn *c, const char *sql)
{
  PGresult *r = PQexec (c, sql);
  if (PQresultStatus (r) != PGRES_COMMAND_OK && PQresultStatus (r) != PGRES_TUPLES_OK)
    fail_msg ("raw query %s: %s", sql, PQerrorMessage (c));
  return r;
}

static void
pg_raw_exec (const char *conninfo, const char *sql)
{
  PGconn *c = pg_raw_open (conninfo);
  PQclear (pg_raw_query (c, sql));
  PQfinish (c);
}

static char *
pg_raw_text (const char *conninfo, const char *sql)
{
  PGconn *c = pg_raw_open (conninfo);
  PGresult *r = pg_raw_query (c, sql);
  if (PQntuples (r) < 1)
    fail_msg ("raw query %s returned no row", sql);
  char *out = PQgetisnull (r, 0, 0) ? NULL : g_strdup (PQgetvalue (r, 0, 0));
  PQclear (r);
  PQfinish (c);
  return out;
}

/* @conninfo with its dbname replaced, every value quoted. */
static char *
conninfo_with_dbname (const char *conninfo, const char *dbname)
{
  char *err = NULL;
  PQconninfoOption *opts = PQconninfoParse (conninfo, &err);
  if (opts == NULL)
    fail_msg ("VMEM_TEST_PG is not a libpq connection string: %s", err);
  GString *out = g_string_new (NULL);
  for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
    {
      const char *v = g_str_equal (o->keyword, "dbname") ? dbname : o->val;
      if (v == NULL)
        continue;
      g_string_append_printf (out, "%s%s='", out->len ? " " : "", o->keyword);
      for (const char *c = v; *c != '\0'; c++)
        {
          if (*c == '\'' || *c == '\\')
            g_string_append_c (out, '\\');
          g_string_append_c (out, *c);
        }
      g_string_append_c (out, '\'');
    }
  PQconninfoFree (opts);
  return g_string_free (out, FALSE);
}

static const char *
pg_admin (void)
{
  return g_getenv ("VMEM_TEST_PG");
}

static void
pg_drop_database (const char *name)
{
  g_autofree char *sql = g_strdup_printf ("DROP DATABASE IF EXISTS \"%s\" WITH (FORCE)", name);
  pg_raw_exec (pg_admin (), sql);
}
#endif

/* Runs @sql (any number of statements) on the database at @target. */
static void
raw_exec (const char *target, const char *sql)
{
#if HAVE_LIBPQ
  if (backend == BACKEND_PG)
    {
      pg_raw_exec (target, sql);
      return;
    }
#endif
  sq_raw_exec (target, sql);
}

/* The first column of the first row @sql returns. */
static char *
raw_text (const char *target, const char *sql)
{
#if HAVE_LIBPQ
  if (backend == BACKEND_PG)
    return pg_raw_text (target, sql);
#endif
  return sq_raw_text (target, sql);
}

static gint64
raw_int (const char *target, const char *sql)
{
  g_autofree char *t = raw_text (target, sql);
  return t ? g_ascii_strtoll (t, NULL, 10) : 0;
}

/* The query plan, its steps joined by " | ". */
static char *
raw_plan (const char *target, const char *query)
{
  GString *out = g_string_new (NULL);
#if HAVE_LIBPQ
  if (backend == BACKEND_PG)
    {
      /* The tables are small enough for a scan to be cheaper than any
       * index: forbid scans, to see which index the query can use. */
      PGconn *c = pg_raw_open (target);
      PQclear (pg_raw_query (c, "SET enable_seqscan = off"));
      g_autofree char *sql = g_strconcat ("EXPLAIN ", query, NULL);
      PGresult *r = pg_raw_query (c, sql);
      for (int i = 0; i < PQntuples (r); i++)
        g_string_append_printf (out, "%s%s", out->len ? " | " : "", PQgetvalue (r, i, 0));
      PQclear (r);
      PQfinish (c);
      return g_string_free (out, FALSE);
    }
#endif
  sqlite3 *db = sq_raw_open (target);
  sqlite3_stmt *st = NULL;
  g_autofree char *sql = g_strconcat ("EXPLAIN QUERY PLAN ", query, NULL);
  if (sqlite3_prepare_v2 (db, sql, -1, &st, NULL) != SQLITE_OK)
    fail_msg ("raw prepare %s: %s", sql, sqlite3_errmsg (db));
  while (sqlite3_step (st) == SQLITE_ROW)
    g_string_append_printf (out, "%s%s", out->len ? " | " : "",
                            (const char *) sqlite3_column_text (st, 3));
  sqlite3_finalize (st);
  sqlite3_close (db);
  return g_string_free (out, FALSE);
}

static char *
file_checksum (const char *path)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!g_file_get_contents (path, &data, &len, NULL))
    fail_msg ("cannot read %s", path);
  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) data, len);
}

/* ---- databases and stores ----------------------------------------------- */

/* A new, empty database named after @name: a file in the fixture's
 * directory, or a database on the server dropped with the fixture. */
static char *
fresh_target (Fixture *f, const char *name)
{
#if HAVE_LIBPQ
  if (backend == BACKEND_PG)
    {
      static guint counter;
      g_autofree char *db =
        g_strdup_printf ("vmem_test_%d_%u_%s", (int) getpid (), ++counter, name);
      for (char *c = db; *c != '\0'; c++)
        if (!g_ascii_isalnum (*c))
          *c = '_';
      g_autofree char *sql = g_strdup_printf ("CREATE DATABASE \"%s\"", db);
      pg_raw_exec (pg_admin (), sql);
      g_ptr_array_add (f->dbs, g_strdup (db));
      return conninfo_with_dbname (pg_admin (), db);
    }
#endif
  return g_build_filename (f->dir, name, NULL);
}

static VmemStore *
store_open_at_version (const char *target, int version, GError **error)
{
#if HAVE_LIBPQ
  if (backend == BACKEND_PG)
    return vmem_store_pg_open_at_version (target, version, error);
#endif
  return vmem_store_sqlite_open_at_version (target, version, error);
}

static int
latest_version (void)
{
#if HAVE_LIBPQ
  if (backend == BACKEND_PG)
    return vmem_store_pg_latest_version ();
#endif
  return vmem_store_sqlite_latest_version ();
}

static VmemStore *
store_open (const char *target, GError **error)
{
  return store_open_at_version (target, latest_version (), error);
}

static int
setup (void **state)
{
  g_autoptr(GError) error = NULL;
  Fixture *f = g_new0 (Fixture, 1);

  f->dir = g_dir_make_tmp ("vmemd-store-XXXXXX", &error);
  if (f->dir == NULL)
    fail_msg ("temporary directory: %s", error->message);
  f->dbs = g_ptr_array_new_with_free_func (g_free);
  /* SQLite: a subdirectory that does not exist yet: opening makes it. */
  f->target = backend == BACKEND_PG ? fresh_target (f, "main")
                                    : g_build_filename (f->dir, "state", "vmemd.db", NULL);
  f->store = store_open (f->target, &error);
  assert_no_error (error);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  Fixture *f = *state;

  vmem_store_sqlite_sample_hook = NULL;
  vmem_store_free (f->store);
#if HAVE_LIBPQ
  for (guint i = 0; i < f->dbs->len; i++)
    pg_drop_database (g_ptr_array_index (f->dbs, i));
#endif
  g_ptr_array_unref (f->dbs);
  rm_rf (f->dir);
  g_free (f->target);
  g_free (f->dir);
  g_free (f);
  return 0;
}

static void
reopen (Fixture *f)
{
  g_autoptr(GError) error = NULL;

  g_clear_pointer (&f->store, vmem_store_free);
  f->store = store_open (f->target, &error);
  assert_no_error (error);
}

/* How the store's messages name its database: the SQLite file's path, or
 * the PostgreSQL database's name. */
static const char *
target_name (Fixture *f)
{
  static char buf[256];
  if (backend == BACKEND_SQLITE)
    return f->target;
  g_snprintf (buf, sizeof buf, "dbname=%s", (const char *) g_ptr_array_index (f->dbs, 0));
  return buf;
}

/* ---- builders ------------------------------------------------------------ */

static VmemProfile *
profile (const char *name, guint64 demand)
{
  VmemProfile *p = vmem_profile_new (name);
  p->demand_mib = demand;
  return p;
}

static VmemSample
sample (const char *uuid, const char *workload, gint64 t, guint64 used, gboolean guest, guint vcpus)
{
  VmemSample s = {
    .uuid = uuid,
    .host = "hostA",
    .workload = workload,
    .t = t,
    .used_mib = used,
    .rss_mib = used + 100,
    .current_mib = 4096,
    .available_mib = 4096 - used,
    .usable_mib = 4096 - used,
    .guest_quality = guest,
    .vcpus = vcpus,
  };
  return s;
}

static VmemPeak
peak (const char *uuid, const char *workload, guint interval_s, gint64 start_t, guint64 peak_mib,
      guint samples, guint guest_samples, guint vcpus)
{
  VmemPeak p = {
    .uuid = (char *) uuid,
    .host = (char *) "hostA",
    .workload = (char *) workload,
    .interval_s = interval_s,
    .start_t = start_t,
    .peak_mib = peak_mib,
    .samples = samples,
    .guest_samples = guest_samples,
    .vcpus = vcpus,
  };
  return p;
}

/* The hourly and daily peaks of one batch, as the peak tracker makes them
 * from nothing: max used_mib, the vCPUs of the sample that set it (the
 * first, on a tie), the counts.  The strings are the samples'. */
static GArray *
batch_peaks (const VmemSample *v, guint n)
{
  static const guint intervals[] = { VMEM_STORE_HOUR, VMEM_STORE_DAY };
  g_autoptr(GHashTable) index = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  GArray *out = g_array_new (FALSE, TRUE, sizeof (VmemPeak));

  for (guint i = 0; i < n; i++)
    for (guint k = 0; k < G_N_ELEMENTS (intervals); k++)
      {
        const VmemSample *x = &v[i];
        gint64 start = x->t - x->t % intervals[k];
        char *key = g_strdup_printf ("%s/%u/%" G_GINT64_FORMAT, x->uuid, intervals[k], start);
        gpointer at;
        if (!g_hash_table_lookup_extended (index, key, NULL, &at))
          {
            VmemPeak p =
              peak (x->uuid, x->workload, intervals[k], start, x->used_mib, 0, 0, x->vcpus);
            p.host = (char *) x->host;
            g_array_append_val (out, p);
            at = GUINT_TO_POINTER (out->len - 1);
            g_hash_table_insert (index, key, at);
          }
        else
          g_free (key);
        VmemPeak *p = &g_array_index (out, VmemPeak, GPOINTER_TO_UINT (at));
        if (x->used_mib > p->peak_mib)
          {
            p->peak_mib = x->used_mib;
            p->vcpus = x->vcpus;
          }
        p->samples++;
        p->guest_samples += x->guest_quality ? 1 : 0;
      }
  return out;
}

static void
add_batch (Fixture *f, const VmemSample *v, guint n, const VmemPeak *peaks, guint n_peaks)
{
  g_autoptr(GError) error = NULL;
  assert_true (vmem_store_samples_add (f->store, v, n, peaks, n_peaks, &error));
  assert_no_error (error);
}

/* Samples and the peaks the tracker would make of them alone. */
static void
add_samples (Fixture *f, const VmemSample *v, guint n)
{
  g_autoptr(GArray) peaks = batch_peaks (v, n);
  add_batch (f, v, n, (VmemPeak *) peaks->data, peaks->len);
}

static void
assert_peak_equal (const VmemPeak *want, const VmemPeak *got)
{
  assert_string_equal (got->uuid, want->uuid);
  assert_string_equal (got->host, want->host);
  assert_string_equal (got->workload, want->workload);
  assert_int_equal (got->interval_s, want->interval_s);
  assert_int_equal (got->start_t, want->start_t);
  assert_int_equal (got->peak_mib, want->peak_mib);
  assert_int_equal (got->samples, want->samples);
  assert_int_equal (got->guest_samples, want->guest_samples);
  assert_int_equal (got->vcpus, want->vcpus);
}

static const VmemPeak *
find_peak (GPtrArray *peaks, const char *uuid, gint64 start_t)
{
  for (guint i = 0; i < peaks->len; i++)
    {
      const VmemPeak *p = g_ptr_array_index (peaks, i);
      if (g_str_equal (p->uuid, uuid) && p->start_t == start_t)
        return p;
    }
  fail_msg ("no peak for %s at %" G_GINT64_FORMAT, uuid, start_t);
  return NULL;
}

/* ---- opening ------------------------------------------------------------- */

/* The tables and indexes of the schema, as "table.column" and
 * "index:name" lines: the same in both dialects. */
static const char sqlite_schema_sql[] =
  "SELECT group_concat(line, char(10)) FROM (SELECT m.name || '.' || p.name AS line"
  "  FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type = 'table'"
  "  UNION ALL SELECT 'index:' || name FROM sqlite_master"
  "  WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'"
  "  ORDER BY line)";
static const char pg_schema_sql[] =
  "SELECT string_agg(line, chr(10) ORDER BY line COLLATE \"C\") FROM ("
  "  SELECT table_name || '.' || column_name AS line FROM information_schema.columns"
  "  WHERE table_schema = current_schema()"
  "  UNION ALL SELECT 'index:' || indexname FROM pg_indexes"
  "  WHERE schemaname = current_schema() AND indexname NOT LIKE '%\\_pkey') s";

static void
test_open_fresh (void **state)
{
  Fixture *f = *state;

  assert_int_equal (vmem_store_schema_version (f->store), latest_version ());
  assert_string_equal (vmem_store_backend_name (f->store), DIALECT ("sqlite", "postgres"));
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM schema_version"), latest_version ());
  assert_int_equal (raw_int (f->target, "SELECT max(version) FROM schema_version"),
                    latest_version ());
  if (backend == BACKEND_SQLITE)
    {
      g_autofree char *dir = g_path_get_dirname (f->target);
      struct stat st;
      assert_int_equal (stat (dir, &st), 0);
      assert_int_equal (st.st_mode & 0777, 0750);
      assert_int_equal (stat (f->target, &st), 0);
      assert_int_equal (st.st_mode & 0777, 0640);

      g_autofree char *mode = raw_text (f->target, "PRAGMA journal_mode");
      assert_string_equal (mode, "wal");
      g_autofree char *check = raw_text (f->target, "PRAGMA integrity_check");
      assert_string_equal (check, "ok");
      /* No backup for a database that was just made. */
      g_autofree char *bak = g_strdup_printf ("%s.bak-v0", f->target);
      assert_false (g_file_test (bak, G_FILE_TEST_EXISTS));
    }

  /* Reopening an up-to-date database changes nothing and backs up nothing. */
  g_autofree char *schema = raw_text (f->target, DIALECT (sqlite_schema_sql, pg_schema_sql));
  reopen (f);
  assert_int_equal (vmem_store_schema_version (f->store), latest_version ());
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM schema_version"), latest_version ());
  g_autofree char *schema2 = raw_text (f->target, DIALECT (sqlite_schema_sql, pg_schema_sql));
  assert_string_equal (schema, schema2);
  if (backend == BACKEND_SQLITE)
    {
      g_autofree char *bak_latest =
        g_strdup_printf ("%s.bak-v%d", f->target, vmem_store_sqlite_latest_version ());
      assert_false (g_file_test (bak_latest, G_FILE_TEST_EXISTS));
    }
}

/* Both dialects have the same migrations, tables, columns and indexes. */
static void
test_same_schema (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;

#if HAVE_LIBPQ
  assert_int_equal (vmem_store_pg_latest_version (), vmem_store_sqlite_latest_version ());
#endif
  if (backend == BACKEND_SQLITE)
    return;
  g_autofree char *path = g_build_filename (f->dir, "same.db", NULL);
  g_autoptr(VmemStore) sq = vmem_store_open_sqlite (path, &error);
  assert_no_error (error);
  g_autofree char *want = sq_raw_text (path, sqlite_schema_sql);
  g_autofree char *got = raw_text (f->target, pg_schema_sql);
  assert_string_equal (got, want);
}

/* The database and its journal files take their directory's group when
 * the directory is setgid (as the packaged state directory is), whoever
 * runs vmemd: members of that group may read them, nobody else. */
static void
test_database_group_follows_directory (void **state)
{
  Fixture *f = *state;
  const gid_t group = 65534; /* nogroup: not this process's */
  if (getuid () != 0)
    fail_msg ("this test must run as root (it gives a directory to gid %u)", (unsigned) group);
  assert_int_not_equal (getgid (), group);
  g_autofree char *dir = g_build_filename (f->dir, "shared", NULL);
  assert_int_equal (g_mkdir (dir, 0750), 0);
  assert_int_equal (chown (dir, 0, group), 0);
  assert_int_equal (chmod (dir, 02750), 0);
  g_autofree char *path = g_build_filename (dir, "vmemd.db", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemStore) store = vmem_store_open_sqlite (path, &error);
  assert_no_error (error);
  static const char *const suffixes[] = { "", "-wal", "-shm" };
  for (gsize i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *file = g_strconcat (path, suffixes[i], NULL);
      struct stat st;
      if (stat (file, &st) < 0)
        fail_msg ("%s: %s", file, g_strerror (errno));
      assert_int_equal (st.st_gid, group);
      assert_int_equal (st.st_mode & 0777, 0640);
    }
}

static void
test_open_from_config (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemConfig) config = vmem_config_new_default ();

  g_free (config->database);
  config->database = g_build_filename (f->dir, "other", "v.db", NULL);
  g_autoptr(VmemStore) store = vmem_store_open (config, &error);
  assert_no_error (error);
  assert_non_null (store);
  assert_string_equal (vmem_store_backend_name (store), "sqlite");
  assert_true (g_file_test (config->database, G_FILE_TEST_IS_REGULAR));
  assert_true (vmem_store_check_config (config, &error));

  config->backend = VMEM_STORE_POSTGRES;
#if HAVE_LIBPQ
  if (backend == BACKEND_PG)
    {
      config->postgres = g_strdup (f->target);
      g_autoptr(VmemStore) pg = vmem_store_open (config, &error);
      assert_no_error (error);
      assert_string_equal (vmem_store_backend_name (pg), "postgres");
      assert_int_equal (vmem_store_schema_version (pg), latest_version ());
      return;
    }
#else
  config->postgres = g_strdup ("dbname=vmemd");
  g_autoptr(VmemStore) pg = vmem_store_open (config, &error);
  assert_null (pg);
  assert_error (error, VMEM_ERROR_CONFIG);
  assert_contains (error->message, "PostgreSQL backend not built");
  g_clear_error (&error);
  assert_false (vmem_store_check_config (config, &error));
  assert_error (error, VMEM_ERROR_CONFIG);
  assert_contains (error->message, "PostgreSQL backend not built");
#endif
}

/* SQLite only: a file that is not a database at all. */
static void
test_not_a_database (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename (f->dir, "garbage.db", NULL);
  char junk[8192];

  for (guint i = 0; i < sizeof junk; i++)
    junk[i] = (char) (i * 7 + 3);
  assert_true (g_file_set_contents (path, junk, sizeof junk, NULL));
  g_autofree char *before = file_checksum (path);

  g_autoptr(VmemStore) store = vmem_store_open_sqlite (path, &error);
  assert_null (store);
  assert_error (error, VMEM_ERROR_STORE);
  assert_contains (error->message, path);
  assert_contains (error->message, "not a usable vmemd database");
  g_autofree char *after = file_checksum (path);
  assert_string_equal (before, after);
  g_autofree char *wal = g_strdup_printf ("%s-wal", path);
  assert_false (g_file_test (wal, G_FILE_TEST_EXISTS));
}

static void
test_foreign_database (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autofree char *target = fresh_target (f, "foreign.db");

  raw_exec (target, "CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT);"
                    "INSERT INTO accounts (id, owner) VALUES (1, 'alice');");
  g_autofree char *before = backend == BACKEND_SQLITE ? file_checksum (target) : NULL;
  g_autoptr(VmemStore) store = store_open (target, &error);
  assert_null (store);
  assert_error (error, VMEM_ERROR_STORE);
  assert_contains (error->message, "not a vmemd database");
  if (backend == BACKEND_SQLITE)
    {
      g_autofree char *after = file_checksum (target);
      assert_string_equal (before, after);
      g_autofree char *journal = raw_text (target, "PRAGMA journal_mode");
      assert_string_equal (journal, "delete");
    }
  else
    {
      g_autofree char *schema = raw_text (target, pg_schema_sql);
      assert_string_equal (schema, "accounts.id\naccounts.owner");
    }
}

static void
test_newer_schema_refused (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  int newer = latest_version () + 1;
  g_autofree char *sql =
    g_strdup_printf ("INSERT INTO schema_version (version, applied) VALUES (%d, 0)", newer);

  g_clear_pointer (&f->store, vmem_store_free);
  raw_exec (f->target, sql);
  g_autofree char *before = backend == BACKEND_SQLITE ? file_checksum (f->target) : NULL;
  g_autofree char *schema = raw_text (f->target, DIALECT (sqlite_schema_sql, pg_schema_sql));

  f->store = store_open (f->target, &error);
  assert_null (f->store);
  assert_error (error, VMEM_ERROR_STORE);
  assert_contains (error->message, "newer than this vmemd knows");
  g_autofree char *want = g_strdup_printf ("schema version %d", newer);
  assert_contains (error->message, want);

  assert_int_equal (raw_int (f->target, "SELECT max(version) FROM schema_version"), newer);
  g_autofree char *schema2 = raw_text (f->target, DIALECT (sqlite_schema_sql, pg_schema_sql));
  assert_string_equal (schema, schema2);
  if (backend == BACKEND_SQLITE)
    {
      g_autofree char *after = file_checksum (f->target);
      assert_string_equal (before, after);
      g_autofree char *bak = g_strdup_printf ("%s.bak-v%d", f->target, newer);
      assert_false (g_file_test (bak, G_FILE_TEST_EXISTS));
    }
}

/* ---- migrations ---------------------------------------------------------- */

/* Rows every schema since version 1 can hold, written with plain SQL as an
 * old vmemd would have left them. */
#define OLD_ROWS OLD_HEAD OLD_SAMPLES_PEAKS OLD_RUNS
#define OLD_HEAD \
  "INSERT INTO profiles (name, demand_mib, floor_mib, ceiling_mib, margin_pct, quantile," \
  "  buffer_pct, mode, prealloc, scale, priority, match, created, updated) VALUES" \
  "  ('erp', 2048, 1024, 8192, 15, 0.95, 20, 'balloon', 1, 'absolute', 50, 'erp-*'," \
  "   1700000000, 1700000100)," \
  "  ('pg', 0, 0, 0, 10, 0.99, 25, 'observe', 0, 'per-vcpu', 80, NULL, 1700000000, 1700000000);" \
  "INSERT INTO domains VALUES ('" UUID_A "', 'erp-1', 'hostA', 'erp', 4096, 2," \
  "  1700000000, 1700003600);" \
  "INSERT INTO domains VALUES ('" UUID_B "', 'pg-1', 'hostB', 'pg', 8192, 4," \
  "  1700000000, 1700003600);"

/* The same samples and peaks before and from schema 7 (integer ids). */
#define OLD_SAMPLES_PEAKS \
  "INSERT INTO samples (uuid, host, workload, t, used_mib, rss_mib, current_mib, available_mib," \
  "  usable_mib, quality, swap_in, major_fault, vcpus) VALUES" \
  "  ('" UUID_A "', 'hostA', 'erp', 1700000010, 1500, 1600, 4096, 2500, 2596, 'guest', 0, 0, 2);" \
  "INSERT INTO peaks VALUES ('" UUID_A "', 'erp', 'hostA', 3600, 1699999200, 1500, 1, 1, 2);" \
  "INSERT INTO peaks VALUES ('" UUID_A "', 'erp', 'hostA', 86400, 1699920000, 1500, 1, 1, 2);"
#define OLD_SAMPLES_PEAKS_V7 \
  "INSERT INTO domain_ids (uuid) VALUES ('" UUID_A "'), ('" UUID_B "');" \
  "INSERT INTO host_ids (host) VALUES ('hostA');" \
  "INSERT INTO workload_ids (name) VALUES ('erp');" \
  "INSERT INTO samples SELECT d.id, 1700000010, h.id, 1500, 4096, 2500, 2596, 1600, 1" \
  "  FROM domain_ids d, host_ids h WHERE d.uuid = '" UUID_A "' AND h.host = 'hostA';" \
  "INSERT INTO peaks SELECT d.id, x.i, x.s, h.id, w.id, 1500, 1, 1, 2" \
  "  FROM domain_ids d, host_ids h, workload_ids w," \
  "  (SELECT 3600 AS i, 1699999200 AS s UNION ALL SELECT 86400, 1699920000) x" \
  "  WHERE d.uuid = '" UUID_A "' AND h.host = 'hostA' AND w.name = 'erp';"
#define OLD_RUNS \
  "INSERT INTO runs (uuid, host, workload, started, stopped, stop_reason, demand_mib) VALUES" \
  "  ('" UUID_A "', 'hostA', 'erp', 1700000000, 1700003000, 'stopped', 2048)," \
  "  ('" UUID_A "', 'hostA', 'erp', 1700003600, NULL, NULL, 2048);" \
  ""

/* Moves, from schema 4 on: two of one domain at the same time that differ
 * only in their reason, one not applied, one of a host and workload that
 * no sample or peak names. */
#define OLD_MOVES \
  "INSERT INTO moves (uuid, host, workload, t, action, mode, from_mib, to_mib, applied, reason)" \
  "  VALUES ('" UUID_A "', 'hostA', 'erp', 1700001000, 'shrink', 'balloon', 4096, 3584, 1," \
  "   'shrink 4096M -> 3584M: 1100M beyond the buffer')," \
  "  ('" UUID_A "', 'hostA', 'erp', 1700001000, 'shrink', 'balloon', 4096, 3584, 1," \
  "   'shrink 4096M -> 3584M: again')," \
  "  ('" UUID_A "', 'hostA', 'erp', 1700002000, 'grow', 'balloon', 3584, 4096, 0," \
  "   'grow 3584M -> 4096M: swapping')," \
  "  ('" UUID_B "', 'hostB', 'pg', 1700001500, 'shrink', 'observe', 8192, 7168, 0," \
  "   'observe only');"

/* Rows as vmemd wrote them at schema @v: plans name their host and hosts
 * are keyed by id from schema 5 on; moves exist from schema 4 on. */
static const char *
old_rows_at (int v)
{
#define PLANS_HOSTS_V5 \
  "INSERT INTO plans (uuid, workload, t, demand_mib, source, reasons, host) VALUES" \
  "  ('" UUID_A "', 'erp', 1700003500, 2048, 'manual', '{\"source\":\"manual\"}', 'hostA');" \
  "INSERT INTO hosts (id, name, capacity_mib, reserved_mib, overcommit, committed_mib, heartbeat)" \
  "  VALUES ('hostA', 'hostA', 65536, 1024, 1.0, 6144, 1700003600);"
  if (v < 4)
    return OLD_ROWS
      "INSERT INTO plans (uuid, workload, t, demand_mib, source, reasons) VALUES"
      "  ('" UUID_A "', 'erp', 1700003500, 2048, 'manual', '{\"source\":\"manual\"}');"
      "INSERT INTO hosts VALUES ('hostA', 65536, 1024, 1.0, 6144, 1700003600);";
  if (v < 5)
    return OLD_ROWS OLD_MOVES
      "INSERT INTO plans (uuid, workload, t, demand_mib, source, reasons) VALUES"
      "  ('" UUID_A "', 'erp', 1700003500, 2048, 'manual', '{\"source\":\"manual\"}');"
      "INSERT INTO hosts VALUES ('hostA', 65536, 1024, 1.0, 6144, 1700003600);";
  if (v < 7)
    return OLD_ROWS OLD_MOVES PLANS_HOSTS_V5;
  return OLD_HEAD OLD_SAMPLES_PEAKS_V7 OLD_RUNS OLD_MOVES PLANS_HOSTS_V5;
#undef PLANS_HOSTS_V5
}

/* What a current store must read from old_rows, and that it can go on
 * writing to them. */
static void
check_old_rows (VmemStore *store)
{
  g_autoptr(GError) error = NULL;

  g_autoptr(GPtrArray) profiles = vmem_store_profile_list (store, &error);
  assert_no_error (error);
  assert_int_equal (profiles->len, 2);
  const VmemProfile *erp = g_ptr_array_index (profiles, 0);
  const VmemProfile *pg = g_ptr_array_index (profiles, 1);
  assert_string_equal (erp->name, "erp");
  assert_int_equal (erp->demand_mib, 2048);
  assert_int_equal (erp->floor_mib, 1024);
  assert_int_equal (erp->ceiling_mib, 8192);
  assert_string_equal (erp->match, "erp-*");
  assert_int_equal (erp->created, 1700000000);
  assert_int_equal (erp->updated, 1700000100);
  assert_string_equal (pg->name, "pg");
  assert_int_equal (pg->mode, VMEM_MODE_OBSERVE);
  assert_int_equal (pg->scale, VMEM_SCALE_PER_VCPU);
  assert_false (pg->prealloc);
  assert_int_equal (pg->priority, 80);
  assert_null (pg->match);

  g_autoptr(VmemDomainRow) dom = vmem_store_domain_get (store, UUID_B, &error);
  assert_no_error (error);
  assert_string_equal (dom->name, "pg-1");
  assert_int_equal (dom->memory_mib, 8192);

  g_autoptr(GPtrArray) peaks =
               vmem_store_peaks_for_workload (store, "erp", VMEM_STORE_HOUR, 0, &error);
  assert_no_error (error);
  assert_int_equal (peaks->len, 1);
  const VmemPeak *pk = g_ptr_array_index (peaks, 0);
  assert_string_equal (pk->domain, "erp-1");
  assert_string_equal (pk->workload, "erp");
  assert_int_equal (pk->interval_s, VMEM_STORE_HOUR);
  assert_int_equal (pk->samples, 1);
  assert_int_equal (pk->vcpus, 2);
  assert_int_equal (pk->peak_mib, 1500);
  assert_int_equal (pk->start_t, 1699999200);

  g_autoptr(GPtrArray) daily =
               vmem_store_peaks_for_workload (store, "erp", VMEM_STORE_DAY, 0, &error);
  assert_no_error (error);
  assert_int_equal (daily->len, 1);
  const VmemPeak *dk = g_ptr_array_index (daily, 0);
  assert_string_equal (dk->uuid, UUID_A);
  assert_string_equal (dk->host, "hostA");
  assert_int_equal (dk->start_t, 1699920000);
  assert_int_equal (dk->peak_mib, 1500);
  assert_int_equal (dk->guest_samples, 1);

  /* The raw sample, every figure the history reads. */
  g_autoptr(GPtrArray) history = vmem_store_sample_list (store, UUID_A, 0, 0, &error);
  assert_no_error (error);
  assert_int_equal (history->len, 1);
  const VmemSampleRow *sr = g_ptr_array_index (history, 0);
  assert_int_equal (sr->t, 1700000010);
  assert_int_equal (sr->used_mib, 1500);
  assert_int_equal (sr->rss_mib, 1600);
  assert_int_equal (sr->current_mib, 4096);
  assert_int_equal (sr->available_mib, 2500);
  assert_int_equal (sr->usable_mib, 2596);
  assert_true (sr->guest_quality);

  g_autoptr(GPtrArray) runs = vmem_store_run_list (store, UUID_A, 0, &error);
  assert_no_error (error);
  assert_int_equal (runs->len, 2);
  const VmemRun *open = g_ptr_array_index (runs, 0);
  const VmemRun *closed = g_ptr_array_index (runs, 1);
  assert_int_equal (open->stopped, 0);
  assert_int_equal (open->startup_peak_mib, 0);
  assert_string_equal (closed->stop_reason, "stopped");
  assert_int_equal (closed->demand_mib, 2048);

  g_autoptr(VmemPlanRow) plan = vmem_store_plan_latest (store, UUID_A, &error);
  assert_no_error (error);
  assert_string_equal (plan->source, "manual");
  assert_string_equal (plan->reasons_json, "{\"source\":\"manual\"}");

  g_autoptr(GPtrArray) hosts = vmem_store_host_list (store, &error);
  assert_no_error (error);
  assert_int_equal (hosts->len, 1);
  assert_int_equal (((VmemHostRow *) g_ptr_array_index (hosts, 0))->committed_mib, 6144);
  /* Opened without a host id, a host keeps its name as its id, and a
   * plan takes its domain's host. */
  assert_string_equal (((VmemHostRow *) g_ptr_array_index (hosts, 0))->id, "hostA");
  assert_string_equal (((VmemHostRow *) g_ptr_array_index (hosts, 0))->name, "hostA");
  assert_string_equal (plan->host, "hostA");

  /* The columns later migrations added work on the old rows. */
  VmemSample s = sample (UUID_A, "erp", 1700003700, 3000, TRUE, 2);
  assert_true (vmem_store_samples_add (store, &s, 1, NULL, 0, &error));
  assert_no_error (error);
  g_autoptr(GPtrArray) runs2 = vmem_store_run_list (store, UUID_A, 1, &error);
  assert_no_error (error);
  assert_int_equal (((VmemRun *) g_ptr_array_index (runs2, 0))->peak_mib, 3000);
  assert_int_equal (((VmemRun *) g_ptr_array_index (runs2, 0))->startup_peak_mib, 3000);
  g_autoptr(GPtrArray) history2 = vmem_store_sample_list (store, UUID_A, 0, 0, &error);
  assert_no_error (error);
  assert_int_equal (history2->len, 2);
  assert_int_equal (((VmemSampleRow *) g_ptr_array_index (history2, 1))->used_mib, 3000);
}

/* The moves of old_rows (schema 4 on), every one with its figures and
 * reason, in the order written; and that new ones go on from them. */
static void
check_old_moves (VmemStore *store)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) a = vmem_store_move_list (store, UUID_A, 0, 0, &error);
  assert_no_error (error);
  assert_int_equal (a->len, 3);
  static const struct {
    gint64 t;
    const char *action;
    guint64 from, to;
    gboolean applied;
    const char *reason;
  } want[] = {
    { 1700001000, "shrink", 4096, 3584, TRUE, "shrink 4096M -> 3584M: 1100M beyond the buffer" },
    { 1700001000, "shrink", 4096, 3584, TRUE, "shrink 4096M -> 3584M: again" },
    { 1700002000, "grow", 3584, 4096, FALSE, "grow 3584M -> 4096M: swapping" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (want); i++)
    {
      const VmemMoveRow *m = g_ptr_array_index (a, i);
      assert_string_equal (m->uuid, UUID_A);
      assert_string_equal (m->host, "hostA");
      assert_string_equal (m->workload, "erp");
      assert_int_equal (m->t, want[i].t);
      assert_string_equal (m->action, want[i].action);
      assert_string_equal (m->mode, "balloon");
      assert_int_equal (m->from_mib, want[i].from);
      assert_int_equal (m->to_mib, want[i].to);
      assert_int_equal (m->applied, want[i].applied);
      assert_string_equal (m->reason, want[i].reason);
    }
  g_autoptr(GPtrArray) b = vmem_store_move_list (store, UUID_B, 0, 0, &error);
  assert_no_error (error);
  assert_int_equal (b->len, 1);
  const VmemMoveRow *mb = g_ptr_array_index (b, 0);
  assert_string_equal (mb->workload, "pg");
  assert_string_equal (mb->mode, "observe");
  assert_int_equal (mb->t, 1700001500);
  assert_int_equal (mb->to_mib, 7168);
  assert_string_equal (mb->reason, "observe only");

  /* The first again adds nothing; a third at the same second comes after
   * the two. */
  VmemMoveRow again = *(const VmemMoveRow *) g_ptr_array_index (a, 0);
  assert_true (vmem_store_move_add (store, &again, &error));
  again.reason = "a third";
  assert_true (vmem_store_move_add (store, &again, &error));
  assert_no_error (error);
  g_autoptr(GPtrArray) a2 = vmem_store_move_list (store, UUID_A, 0, 0, &error);
  assert_int_equal (a2->len, 4);
  assert_string_equal (((VmemMoveRow *) g_ptr_array_index (a2, 2))->reason, "a third");
}

static void
migrate_and_check (const char *target, int from, gboolean with_moves)
{
  g_autoptr(GError) error = NULL;

  g_autoptr(VmemStore) store = store_open (target, &error);
  assert_no_error (error);
  assert_int_equal (vmem_store_schema_version (store), latest_version ());
  assert_int_equal (raw_int (target, "SELECT max(version) FROM schema_version"), latest_version ());

  /* SQLite: the backup is the database as it was, at its old version.
   * (PostgreSQL's backups are the server's business.) */
  if (backend == BACKEND_SQLITE)
    {
      g_autofree char *bak = g_strdup_printf ("%s.bak-v%d", target, from);
      struct stat st;
      assert_int_equal (stat (bak, &st), 0);
      assert_int_equal (st.st_mode & 0777, 0640);
      assert_int_equal (raw_int (bak, "SELECT max(version) FROM schema_version"), from);
      assert_int_equal (raw_int (bak, "SELECT count(*) FROM runs"), 2);
      g_autofree char *check = raw_text (bak, "PRAGMA integrity_check");
      assert_string_equal (check, "ok");
    }

  check_old_rows (store);
  if (with_moves)
    check_old_moves (store);
}

/* Every earlier version made by this code's own migrations. */
static void
test_migrate_every_version (void **state)
{
  Fixture *f = *state;

  for (int v = 1; v < latest_version (); v++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *name = g_strdup_printf ("v%d.db", v);
      g_autofree char *target = fresh_target (f, name);

      VmemStore *old = store_open_at_version (target, v, &error);
      assert_no_error (error);
      assert_int_equal (vmem_store_schema_version (old), v);
      vmem_store_free (old);
      raw_exec (target, old_rows_at (v));
      migrate_and_check (target, v, v >= 4);
    }
}

/* Databases as earlier releases made them, kept as SQL dumps: they catch
 * a migration edited after it shipped, which the test above cannot. */
static void
test_migrate_fixtures (void **state)
{
  Fixture *f = *state;
  const char *srcdir = g_getenv ("VMEM_TEST_SRCDIR");
  if (srcdir == NULL)
    fail_msg ("VMEM_TEST_SRCDIR is not set (run the tests with meson test)");

  for (int v = 1; v < vmem_store_sqlite_latest_version (); v++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *name = g_strdup_printf ("v%d.sql", v);
      g_autofree char *fixture = g_build_filename (srcdir, "data", "db", name, NULL);
      g_autofree char *sql = NULL;
      if (!g_file_get_contents (fixture, &sql, NULL, &error))
        fail_msg ("every earlier schema needs a fixture: %s", error->message);

      g_autofree char *dbname = g_strdup_printf ("fixture-v%d.db", v);
      g_autofree char *path = g_build_filename (f->dir, dbname, NULL);
      raw_exec (path, sql);
      assert_int_equal (raw_int (path, "SELECT max(version) FROM schema_version"), v);
      /* The fixtures hold moves from schema 7 on. */
      migrate_and_check (path, v, v >= 7);
    }
}

/* PostgreSQL only: its databases as earlier releases made them
 * (pg-vN.sql, pg_dump --inserts), from schema 4, the first it shipped. */
static void
test_pg_migrate_fixtures (void **state)
{
  Fixture *f = *state;
  const char *srcdir = g_getenv ("VMEM_TEST_SRCDIR");
  if (srcdir == NULL)
    fail_msg ("VMEM_TEST_SRCDIR is not set (run the tests with meson test)");

  for (int v = 4; v < latest_version (); v++)
    {
      g_autoptr(GError) error = NULL;
      g_autofree char *name = g_strdup_printf ("pg-v%d.sql", v);
      g_autofree char *fixture = g_build_filename (srcdir, "data", "db", name, NULL);
      g_autofree char *sql = NULL;
      if (!g_file_get_contents (fixture, &sql, NULL, &error))
        fail_msg ("every earlier schema needs a fixture: %s", error->message);
      g_autofree char *dbname = g_strdup_printf ("fixture-v%d", v);
      g_autofree char *target = fresh_target (f, dbname);
      raw_exec (target, sql);
      assert_int_equal (raw_int (target, "SELECT max(version) FROM public.schema_version"), v);
      migrate_and_check (target, v, v >= 7);
    }
}

static void
test_failed_migration_rolls_back (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autofree char *target = fresh_target (f, "clash.db");

  VmemStore *old = store_open_at_version (target, 1, &error);
  assert_no_error (error);
  vmem_store_free (old);
  raw_exec (target, old_rows_at (1));
  /* An object migration 2 wants to create is already there: its second
   * half fails after its first half (the new run columns) ran. */
  raw_exec (target, "CREATE INDEX runs_open ON runs(started)");

  g_autoptr(VmemStore) store = store_open (target, &error);
  assert_null (store);
  assert_error (error, VMEM_ERROR_STORE);
  assert_contains (error->message, "migration to schema 2 failed");
  assert_contains (error->message, "runs_open");

  assert_int_equal (raw_int (target, "SELECT max(version) FROM schema_version"), 1);
  assert_int_equal (raw_int (target, DIALECT ("SELECT count(*) FROM pragma_table_info('runs')"
                                              " WHERE name = 'peak_mib'",
                                              "SELECT count(*) FROM information_schema.columns"
                                              " WHERE table_schema = current_schema()"
                                              " AND table_name = 'runs'"
                                              " AND column_name = 'peak_mib'")),
                    0);
  assert_int_equal (raw_int (target, "SELECT count(*) FROM runs"), 2);
  if (backend == BACKEND_SQLITE)
    {
      g_autofree char *bak = g_strdup_printf ("%s.bak-v1", target);
      assert_int_equal (raw_int (bak, "SELECT count(*) FROM profiles"), 2);
    }

  /* Once the clash is removed the same database migrates. */
  g_clear_error (&error);
  raw_exec (target, "DROP INDEX runs_open");
  migrate_and_check (target, 1, FALSE);
}

/* ---- profiles ------------------------------------------------------------ */

static void
test_profile_crud (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemProfile) erp = profile ("erp", 2048);
  gint64 before = g_get_real_time () / G_USEC_PER_SEC;

  erp->match = g_strdup ("erp-*");
  erp->scale = VMEM_SCALE_PER_VCPU;
  erp->quantile = 0.9;
  erp->risk_pct = 2.5;
  assert_true (vmem_store_profile_put (f->store, erp, VMEM_STORE_PUT_CREATE, &error));
  assert_no_error (error);

  g_autoptr(VmemProfile) got = vmem_store_profile_get (f->store, "erp", &error);
  assert_no_error (error);
  assert_int_equal (got->demand_mib, 2048);
  assert_string_equal (got->match, "erp-*");
  assert_int_equal (got->scale, VMEM_SCALE_PER_VCPU);
  assert_true (got->quantile == 0.9);
  assert_true (got->risk_pct == 2.5);
  assert_true (got->created >= before);
  assert_int_equal (got->created, got->updated);

  assert_false (vmem_store_profile_put (f->store, erp, VMEM_STORE_PUT_CREATE, &error));
  assert_error (error, VMEM_ERROR_EXISTS);
  assert_contains (error->message, "'erp'");
  g_clear_error (&error);

  g_autoptr(VmemProfile) ghost = profile ("ghost", 0);
  assert_false (vmem_store_profile_put (f->store, ghost, VMEM_STORE_PUT_UPDATE, &error));
  assert_error (error, VMEM_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* An update keeps the creation time. */
  raw_exec (f->target, "UPDATE profiles SET created = 1000, updated = 1000");
  erp->demand_mib = 4096;
  assert_true (vmem_store_profile_put (f->store, erp, VMEM_STORE_PUT_UPDATE, &error));
  assert_no_error (error);
  g_autoptr(VmemProfile) got2 = vmem_store_profile_get (f->store, "erp", &error);
  assert_int_equal (got2->demand_mib, 4096);
  assert_int_equal (got2->created, 1000);
  assert_true (got2->updated >= before);

  assert_true (vmem_store_profile_put (f->store, ghost, VMEM_STORE_PUT_UPSERT, &error));
  g_autoptr(VmemProfile) alpha = profile ("alpha", 1);
  assert_true (vmem_store_profile_put (f->store, alpha, VMEM_STORE_PUT_UPSERT, &error));
  assert_no_error (error);
  g_autoptr(GPtrArray) list = vmem_store_profile_list (f->store, &error);
  assert_no_error (error);
  assert_int_equal (list->len, 3);
  assert_string_equal (((VmemProfile *) g_ptr_array_index (list, 0))->name, "alpha");
  assert_string_equal (((VmemProfile *) g_ptr_array_index (list, 1))->name, "erp");
  assert_string_equal (((VmemProfile *) g_ptr_array_index (list, 2))->name, "ghost");

  assert_true (vmem_store_profile_delete (f->store, "ghost", &error));
  assert_no_error (error);
  assert_false (vmem_store_profile_delete (f->store, "ghost", &error));
  assert_error (error, VMEM_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_autoptr(VmemProfile) none = vmem_store_profile_get (f->store, "ghost", &error);
  assert_null (none);
  assert_error (error, VMEM_ERROR_NOT_FOUND);
  assert_string_equal (error->message, "no profile named 'ghost'");
}

static void
test_profile_invalid (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemProfile) bad = profile ("erp", 2048);

  bad->quantile = 1.5;
  assert_false (vmem_store_profile_put (f->store, bad, VMEM_STORE_PUT_UPSERT, &error));
  assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
  assert_contains (error->message, "quantile");
  g_clear_error (&error);

  g_autoptr(VmemProfile) badname = profile ("a b", 0);
  assert_false (vmem_store_profile_put (f->store, badname, VMEM_STORE_PUT_UPSERT, &error));
  assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM profiles"), 0);

  /* A row changed behind vmemd's back is reported, not used. */
  g_clear_error (&error);
  g_autoptr(VmemProfile) good = profile ("erp", 2048);
  assert_true (vmem_store_profile_put (f->store, good, VMEM_STORE_PUT_CREATE, &error));
  raw_exec (f->target, "UPDATE profiles SET mode = 'turbo'");
  g_autoptr(VmemProfile) got = vmem_store_profile_get (f->store, "erp", &error);
  assert_null (got);
  assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
  assert_contains (error->message, "profile 'erp' in the database");
}

static void
test_profile_import (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  guint c = 99, u = 99, d = 99;

  g_autoptr(GPtrArray) first = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_profile_free);
  g_ptr_array_add (first, profile ("a", 1));
  g_ptr_array_add (first, profile ("b", 2));
  assert_true (vmem_store_profile_import (f->store, first, FALSE, &c, &u, &d, &error));
  assert_no_error (error);
  assert_int_equal (c, 2);
  assert_int_equal (u, 0);
  assert_int_equal (d, 0);

  g_autoptr(GPtrArray) second =
               g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_profile_free);
  g_ptr_array_add (second, profile ("b", 20));
  g_ptr_array_add (second, profile ("c", 3));
  assert_true (vmem_store_profile_import (f->store, second, FALSE, &c, &u, &d, &error));
  assert_int_equal (c, 1);
  assert_int_equal (u, 1);
  assert_int_equal (d, 0);
  g_autoptr(VmemProfile) b = vmem_store_profile_get (f->store, "b", &error);
  assert_int_equal (b->demand_mib, 20);

  /* Replace deletes what the import does not name. */
  g_autoptr(GPtrArray) third = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_profile_free);
  g_ptr_array_add (third, profile ("c", 30));
  g_ptr_array_add (third, profile ("d", 4));
  assert_true (vmem_store_profile_import (f->store, third, TRUE, &c, &u, &d, &error));
  assert_no_error (error);
  assert_int_equal (c, 1);
  assert_int_equal (u, 1);
  assert_int_equal (d, 2);
  g_autoptr(GPtrArray) list = vmem_store_profile_list (f->store, &error);
  assert_int_equal (list->len, 2);
  assert_string_equal (((VmemProfile *) g_ptr_array_index (list, 0))->name, "c");
  assert_string_equal (((VmemProfile *) g_ptr_array_index (list, 1))->name, "d");

  /* Replace with nothing empties the table. */
  g_autoptr(GPtrArray) empty = g_ptr_array_new ();
  assert_true (vmem_store_profile_import (f->store, empty, TRUE, &c, &u, &d, &error));
  assert_int_equal (d, 2);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM profiles"), 0);
}

static const char *
profiles_digest_sql (void)
{
  return DIALECT ("SELECT group_concat(name || demand_mib) FROM profiles",
                  "SELECT string_agg(name || demand_mib, ',' ORDER BY name) FROM profiles");
}

static void
test_profile_import_all_or_nothing (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  guint c = 0, u = 0, d = 0;

  g_autoptr(VmemProfile) keep = profile ("keep", 512);
  assert_true (vmem_store_profile_put (f->store, keep, VMEM_STORE_PUT_CREATE, &error));
  g_autofree char *before = raw_text (f->target, profiles_digest_sql ());

  g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_profile_free);
  g_ptr_array_add (batch, profile ("new1", 1));
  g_ptr_array_add (batch, profile ("keep", 1024));
  VmemProfile *bad = profile ("bad", 0);
  bad->floor_mib = 4096;
  bad->ceiling_mib = 1024;
  g_ptr_array_add (batch, bad);
  g_ptr_array_add (batch, profile ("new2", 2));
  assert_false (vmem_store_profile_import (f->store, batch, TRUE, &c, &u, &d, &error));
  assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
  assert_contains (error->message, "profiles[2]");
  g_autofree char *after = raw_text (f->target, profiles_digest_sql ());
  assert_string_equal (before, after);
  g_clear_error (&error);

  /* A name given twice is refused too, before anything is written. */
  g_autoptr(GPtrArray) twice = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_profile_free);
  g_ptr_array_add (twice, profile ("x", 1));
  g_ptr_array_add (twice, profile ("x", 2));
  assert_false (vmem_store_profile_import (f->store, twice, FALSE, &c, &u, &d, &error));
  assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
  assert_contains (error->message, "profiles[1]");
  g_autofree char *after2 = raw_text (f->target, profiles_digest_sql ());
  assert_string_equal (before, after2);
}

/* ---- domains ------------------------------------------------------------- */

static void
test_domains (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VmemDomainRow a = { .uuid = UUID_A,
                      .name = "erp-1",
                      .host = "hostA",
                      .workload = "erp",
                      .memory_mib = 4096,
                      .vcpus = 2,
                      .last_seen = 100 };
  VmemDomainRow b = { .uuid = UUID_B,
                      .name = "db-1",
                      .host = "hostA",
                      .workload = "pg",
                      .memory_mib = 8192,
                      .vcpus = 4,
                      .last_seen = 100 };
  VmemDomainRow c = { .uuid = UUID_C,
                      .name = "alpha",
                      .host = "hostB",
                      .workload = "erp",
                      .memory_mib = 2048,
                      .vcpus = 1,
                      .last_seen = 100 };

  assert_true (vmem_store_domain_upsert (f->store, &a, &error));
  assert_true (vmem_store_domain_upsert (f->store, &b, &error));
  assert_true (vmem_store_domain_upsert (f->store, &c, &error));
  assert_no_error (error);
  a.name = "erp-renamed";
  a.memory_mib = 6144;
  a.last_seen = 200;
  assert_true (vmem_store_domain_upsert (f->store, &a, &error));

  g_autoptr(VmemDomainRow) got = vmem_store_domain_get (f->store, UUID_A, &error);
  assert_no_error (error);
  assert_string_equal (got->name, "erp-renamed");
  assert_string_equal (got->workload, "erp");
  assert_int_equal (got->memory_mib, 6144);
  assert_int_equal (got->first_seen, 100);
  assert_int_equal (got->last_seen, 200);

  g_autoptr(GPtrArray) erp = vmem_store_domain_list (f->store, "erp", &error);
  assert_int_equal (erp->len, 2);
  assert_string_equal (((VmemDomainRow *) g_ptr_array_index (erp, 0))->name, "alpha");
  assert_string_equal (((VmemDomainRow *) g_ptr_array_index (erp, 1))->name, "erp-renamed");
  g_autoptr(GPtrArray) all = vmem_store_domain_list (f->store, NULL, &error);
  assert_int_equal (all->len, 3);

  g_autoptr(VmemDomainRow) none = vmem_store_domain_get (f->store, "nope", &error);
  assert_null (none);
  assert_error (error, VMEM_ERROR_NOT_FOUND);
  g_clear_error (&error);

  VmemDomainRow bad = { .uuid = UUID_A, .name = NULL, .host = "hostA" };
  assert_false (vmem_store_domain_upsert (f->store, &bad, &error));
  assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
  assert_contains (error->message, "domain name");
}

/* ---- samples and peaks --------------------------------------------------- */

/* Samples and peaks as rows naming their domain, host and workload, for
 * raw queries: the tables hold integer ids. */
#define SAMPLES_NAMED                                                                   \
  "(SELECT d.uuid AS uuid, h.host AS host, s.* FROM samples s"                         \
  " JOIN domain_ids d ON d.id = s.domain_id JOIN host_ids h ON h.id = s.host_id) x"
#define PEAKS_NAMED                                                                     \
  "(SELECT d.uuid AS uuid, h.host AS host, w.name AS workload, p.* FROM peaks p"        \
  " JOIN domain_ids d ON d.id = p.domain_id JOIN host_ids h ON h.id = p.host_id"        \
  " JOIN workload_ids w ON w.id = p.workload_id) x"

/* Moves as rows naming their domain, host, workload, action and mode,
 * with their reason while it is kept. */
#define MOVES_NAMED                                                                       \
  "(SELECT d.uuid AS uuid, h.host AS host, w.name AS workload, a.word AS action,"        \
  " o.word AS mode, r.reason AS reason, m.t, m.seq, m.from_mib, m.to_mib, m.applied"      \
  " FROM moves m JOIN domain_ids d ON d.id = m.domain_id JOIN host_ids h ON h.id = m.host_id" \
  " JOIN workload_ids w ON w.id = m.workload_id JOIN move_words a ON a.id = m.action_id"   \
  " JOIN move_words o ON o.id = m.mode_id LEFT JOIN move_reasons r"                        \
  " ON r.domain_id = m.domain_id AND r.t = m.t AND r.seq = m.seq) x"

static const char *
peaks_workloads_sql (void)
{
  return DIALECT ("SELECT count(*) || '/' || sum(peak_mib) || '/' || sum(samples) || '/'"
                  " || group_concat(workload) FROM " PEAKS_NAMED,
                  "SELECT count(*) || '/' || sum(peak_mib) || '/' || sum(samples) || '/'"
                  " || string_agg(workload, ',' ORDER BY uuid, interval_s, start_t) FROM " PEAKS_NAMED);
}

static void
test_samples_peaks (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VmemDomainRow a = { .uuid = UUID_A,
                      .name = "erp-1",
                      .host = "hostA",
                      .workload = "erp",
                      .memory_mib = 4096,
                      .vcpus = 2,
                      .last_seen = DAY0 };
  assert_true (vmem_store_domain_upsert (f->store, &a, &error));

  /* Raw samples alone make no peaks: the store computes none of its own. */
  VmemSample cycle1[] = {
    sample (UUID_A, "erp", DAY0 + 10, 1000, TRUE, 2),
    sample (UUID_B, "erp", DAY0 + 10, 700, TRUE, 2),
    sample (UUID_C, "other", DAY0 + 10, 9000, TRUE, 8),
  };
  add_batch (f, cycle1, G_N_ELEMENTS (cycle1), NULL, 0);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM samples"), 3);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM peaks"), 0);

  /* Peaks are written as given, even where they disagree with the raw
   * samples: the tracker has seen samples the store never had.  B is a
   * domain the store has not been told the name of; D one it has never
   * seen at all. */
  VmemPeak given[] = {
    peak (UUID_A, "erp", VMEM_STORE_HOUR, DAY0, 1800, 3, 2, 4),
    peak (UUID_A, "erp", VMEM_STORE_HOUR, DAY0 + 3600, 2500, 2, 1, 4),
    peak (UUID_A, "erp", VMEM_STORE_HOUR, DAY0 + 86400, 900, 1, 1, 4),
    peak (UUID_A, "erp", VMEM_STORE_DAY, DAY0, 2500, 5, 3, 4),
    peak (UUID_A, "erp", VMEM_STORE_DAY, DAY0 + 86400, 900, 1, 1, 4),
    peak (UUID_B, "erp", VMEM_STORE_HOUR, DAY0, 700, 1, 1, 2),
    peak (UUID_B, "erp", VMEM_STORE_DAY, DAY0, 700, 1, 1, 2),
    peak (UUID_C, "other", VMEM_STORE_DAY, DAY0, 9000, 1, 0, 8),
    peak ("44444444-4444-4444-4444-444444444444", "erp", VMEM_STORE_HOUR, DAY0 + 7200, 64, 1, 1, 1),
  };
  given[8].host = (char *) "hostB";
  VmemSample cycle2[] = {
    sample (UUID_A, "erp", DAY0 + 1800, 1800, TRUE, 4),
  };
  add_batch (f, cycle2, G_N_ELEMENTS (cycle2), given, G_N_ELEMENTS (given));
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM samples"), 4);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM peaks"), G_N_ELEMENTS (given));

  /* Read back identical. */
  g_autoptr(GPtrArray) hourly =
               vmem_store_peaks_for_workload (f->store, "erp", VMEM_STORE_HOUR, 0, &error);
  assert_no_error (error);
  assert_int_equal (hourly->len, 5);
  assert_peak_equal (&given[0], find_peak (hourly, UUID_A, DAY0));
  assert_peak_equal (&given[1], find_peak (hourly, UUID_A, DAY0 + 3600));
  assert_peak_equal (&given[2], find_peak (hourly, UUID_A, DAY0 + 86400));
  assert_peak_equal (&given[5], find_peak (hourly, UUID_B, DAY0));
  const VmemPeak *hd = find_peak (hourly, given[8].uuid, DAY0 + 7200);
  assert_peak_equal (&given[8], hd);
  assert_string_equal (find_peak (hourly, UUID_A, DAY0)->domain, "erp-1");
  /* A domain first seen in a sample or a peak is named by its uuid until
   * told, and gets a row without changing a known one. */
  assert_string_equal (find_peak (hourly, UUID_B, DAY0)->domain, UUID_B);
  assert_string_equal (hd->domain, given[8].uuid);
  g_autoptr(VmemDomainRow) da = vmem_store_domain_get (f->store, UUID_A, &error);
  assert_no_error (error);
  assert_string_equal (da->name, "erp-1");
  assert_int_equal (da->last_seen, DAY0 + 1800);
  g_autoptr(VmemDomainRow) dd = vmem_store_domain_get (f->store, given[8].uuid, &error);
  assert_no_error (error);
  assert_string_equal (dd->host, "hostB");
  assert_string_equal (dd->workload, "erp");
  /* Oldest first. */
  for (guint i = 1; i < hourly->len; i++)
    assert_true (((VmemPeak *) g_ptr_array_index (hourly, i - 1))->start_t <=
                 ((VmemPeak *) g_ptr_array_index (hourly, i))->start_t);

  g_autoptr(GPtrArray) daily =
               vmem_store_peaks_for_workload (f->store, "erp", VMEM_STORE_DAY, 0, &error);
  assert_int_equal (daily->len, 3);
  assert_peak_equal (&given[3], find_peak (daily, UUID_A, DAY0));
  assert_peak_equal (&given[4], find_peak (daily, UUID_A, DAY0 + 86400));
  assert_peak_equal (&given[6], find_peak (daily, UUID_B, DAY0));

  g_autoptr(GPtrArray) recent = vmem_store_peaks_for_workload (f->store, "erp", VMEM_STORE_HOUR,
                                                                DAY0 + 3600, &error);
  assert_int_equal (recent->len, 3);
  g_autoptr(GPtrArray) other =
               vmem_store_peaks_for_workload (f->store, "other", VMEM_STORE_DAY, 0, &error);
  assert_int_equal (other->len, 1);
  assert_peak_equal (&given[7], g_ptr_array_index (other, 0));

  /* A row given again is replaced whole, lower peak and all, and the last
   * of the same row in one batch wins. */
  VmemPeak again[] = {
    peak (UUID_A, "erp", VMEM_STORE_HOUR, DAY0, 5000, 9, 9, 8),
    peak (UUID_A, "erp-new", VMEM_STORE_HOUR, DAY0, 1200, 4, 1, 16),
  };
  again[1].host = (char *) "hostB";
  add_batch (f, NULL, 0, again, G_N_ELEMENTS (again));
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM peaks"), G_N_ELEMENTS (given));
  g_autoptr(GPtrArray) moved =
               vmem_store_peaks_for_workload (f->store, "erp-new", VMEM_STORE_HOUR, 0, &error);
  assert_int_equal (moved->len, 1);
  assert_peak_equal (&again[1], g_ptr_array_index (moved, 0));
  g_autoptr(GPtrArray) hourly2 =
               vmem_store_peaks_for_workload (f->store, "erp", VMEM_STORE_HOUR, 0, &error);
  assert_int_equal (hourly2->len, 4);
  /* The other interval of the same start is a row of its own. */
  g_autoptr(GPtrArray) daily2 =
               vmem_store_peaks_for_workload (f->store, "erp", VMEM_STORE_DAY, 0, &error);
  assert_peak_equal (&given[3], find_peak (daily2, UUID_A, DAY0));

  g_autoptr(GPtrArray) bad = vmem_store_peaks_for_workload (f->store, "erp", 600, 0, &error);
  assert_null (bad);
  assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);

  /* The estimator's read uses the index, not a scan of raw samples. */
  g_autofree char *plan =
    raw_plan (f->target, "SELECT p.domain_id FROM peaks p WHERE p.workload_id ="
                         " (SELECT id FROM workload_ids WHERE name = 'erp')"
                         " AND p.interval_s = 3600 AND p.start_t >= 0");
  assert_contains (plan, "peaks_workload");
  if (strstr (plan, "samples") != NULL)
    fail_msg ("the peaks query reads raw samples: %s", plan);

  /* One bad sample in a batch: nothing of the batch is written. */
  g_autofree char *before = raw_text (f->target, peaks_workloads_sql ());
  VmemSample mixed[] = {
    sample (UUID_A, "erp", DAY0 + 20, 3999, TRUE, 2),
    sample (UUID_A, NULL, DAY0 + 20, 1, TRUE, 2),
  };
  VmemPeak fine = peak (UUID_A, "erp", VMEM_STORE_HOUR, DAY0, 3999, 1, 1, 2);
  assert_false (vmem_store_samples_add (f->store, mixed, 2, &fine, 1, &error));
  assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
  assert_contains (error->message, "samples[1]");
  g_clear_error (&error);

  /* Nor one bad peak: each check names the peak and the field. */
  static const char *const fields[] = { "uuid",       "host",    "workload",
                                        "interval_s", "start_t", "guest_samples" };
  for (guint i = 0; i < G_N_ELEMENTS (fields); i++)
    {
      VmemPeak batch[] = {
        peak (UUID_A, "erp", VMEM_STORE_HOUR, DAY0, 3999, 1, 1, 2),
        peak (UUID_B, "erp", VMEM_STORE_DAY, DAY0, 3999, 2, 1, 2),
      };
      VmemPeak *p = &batch[1];
      if (g_str_equal (fields[i], "uuid"))
        p->uuid = NULL;
      else if (g_str_equal (fields[i], "host"))
        p->host = (char *) "";
      else if (g_str_equal (fields[i], "workload"))
        p->workload = NULL;
      else if (g_str_equal (fields[i], "interval_s"))
        p->interval_s = 600;
      else if (g_str_equal (fields[i], "start_t"))
        p->start_t = DAY0 + 3600;
      else
        p->guest_samples = 3;
      g_autofree char *want = g_strdup_printf ("peaks[1]: %s", fields[i]);
      assert_false (vmem_store_samples_add (f->store, mixed, 1, batch, 2, &error));
      assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
      assert_contains (error->message, want);
      g_clear_error (&error);
    }

  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM samples"), 4);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM domains"), 4);
  g_autofree char *after = raw_text (f->target, peaks_workloads_sql ());
  assert_string_equal (before, after);

  /* An empty batch touches nothing. */
  assert_true (vmem_store_samples_add (f->store, NULL, 0, NULL, 0, &error));
  assert_no_error (error);
}

static void
test_peaks_latest (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VmemPeak given[] = {
    /* A: hours before and after @since, and its day. */
    peak (UUID_A, "erp", VMEM_STORE_HOUR, DAY0 - 3600, 100, 1, 1, 2),
    peak (UUID_A, "erp", VMEM_STORE_HOUR, DAY0 + 7200, 300, 1, 1, 2),
    peak (UUID_A, "erp", VMEM_STORE_HOUR, DAY0, 200, 1, 1, 2),
    peak (UUID_A, "erp", VMEM_STORE_DAY, DAY0, 300, 3, 3, 2),
    peak (UUID_A, "erp", VMEM_STORE_DAY, DAY0 - 86400, 100, 1, 1, 2),
    /* B: nothing since. */
    peak (UUID_B, "erp", VMEM_STORE_HOUR, DAY0 - 3600, 700, 1, 1, 2),
    peak (UUID_B, "erp", VMEM_STORE_DAY, DAY0 - 86400, 700, 1, 1, 2),
    /* C: another workload and host, an hour only. */
    peak (UUID_C, "other", VMEM_STORE_HOUR, DAY0 + 3600, 9000, 2, 0, 8),
  };
  given[7].host = (char *) "hostB";
  add_batch (f, NULL, 0, given, G_N_ELEMENTS (given));

  g_autoptr(GPtrArray) latest = vmem_store_peaks_latest (f->store, DAY0, &error);
  assert_no_error (error);
  assert_int_equal (latest->len, 3);
  assert_peak_equal (&given[1], g_ptr_array_index (latest, 0));
  assert_peak_equal (&given[3], g_ptr_array_index (latest, 1));
  assert_peak_equal (&given[7], g_ptr_array_index (latest, 2));
  assert_string_equal (((VmemPeak *) g_ptr_array_index (latest, 2))->domain, UUID_C);

  g_autoptr(GPtrArray) all = vmem_store_peaks_latest (f->store, G_MININT64, &error);
  assert_int_equal (all->len, 5);
  assert_peak_equal (&given[5], g_ptr_array_index (all, 2));
  assert_peak_equal (&given[6], g_ptr_array_index (all, 3));

  g_autoptr(GPtrArray) none = vmem_store_peaks_latest (f->store, DAY0 + 86400, &error);
  assert_no_error (error);
  assert_int_equal (none->len, 0);
}

/* Samples of one domain as constructed for the thinning test, with the
 * host each came from (0 = hostA, 1 = hostB: ids in that order). */
typedef struct {
  VmemSample s;
  int host;
} Taken;

/* What thinning at @before with @period must leave of @all, computed
 * here by the rule: every sample at or after @before, and of those before
 * it one per @period, the highest used_mib, then the earliest, then the
 * first host.  Sorted by time, then host, as vmem_store_sample_list(). */
static GArray *
thinned (const GArray *all, gint64 before, gint64 since, guint period)
{
  GArray *out = g_array_new (FALSE, FALSE, sizeof (Taken));
  for (guint i = 0; i < all->len; i++)
    {
      const Taken *x = &g_array_index (all, Taken, i);
      if (x->s.t < since)
        continue;
      gboolean keep = TRUE;
      for (guint j = 0; keep && x->s.t < before && j < all->len; j++)
        {
          const Taken *y = &g_array_index (all, Taken, j);
          if (j == i || y->s.t < since || y->s.t / period != x->s.t / period)
            continue;
          if (y->s.used_mib > x->s.used_mib ||
              (y->s.used_mib == x->s.used_mib &&
               (y->s.t < x->s.t || (y->s.t == x->s.t && y->host < x->host))))
            keep = FALSE;
        }
      if (keep)
        g_array_append_val (out, *x);
    }
  for (guint i = 1; i < out->len; i++)
    for (guint j = i; j > 0; j--)
      {
        Taken *a = &g_array_index (out, Taken, j - 1), *b = &g_array_index (out, Taken, j);
        if (a->s.t < b->s.t || (a->s.t == b->s.t && a->host < b->host))
          break;
        Taken tmp = *a;
        *a = *b;
        *b = tmp;
      }
  return out;
}

static void
assert_history (Fixture *f, const char *uuid, const GArray *want)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) got = vmem_store_sample_list (f->store, uuid, 0, 0, &error);
  assert_no_error (error);
  if (got->len != want->len)
    fail_msg ("%s: %u samples kept, want %u", uuid, got->len, want->len);
  for (guint i = 0; i < want->len; i++)
    {
      const VmemSample *w = &g_array_index (want, Taken, i).s;
      const VmemSampleRow *r = g_ptr_array_index (got, i);
      if (r->t != w->t || r->used_mib != w->used_mib || r->current_mib != w->current_mib ||
          r->available_mib != w->available_mib || r->usable_mib != w->usable_mib ||
          r->rss_mib != w->rss_mib || r->guest_quality != w->guest_quality)
        fail_msg ("%s: sample %u: got t %" G_GINT64_FORMAT " used %" G_GUINT64_FORMAT
                  " rss %" G_GUINT64_FORMAT ", want t %" G_GINT64_FORMAT " used %"
                  G_GUINT64_FORMAT " rss %" G_GUINT64_FORMAT,
                  uuid, i, r->t, r->used_mib, r->rss_mib, w->t, w->used_mib, w->rss_mib);
    }
}

/* Past raw_full_hours each domain keeps one sample per period, the one
 * of the highest used memory, whole; a domain's peak over whole periods
 * is unchanged; thinning again changes nothing. */
static void
test_thinning (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) a = g_array_new (FALSE, FALSE, sizeof (Taken));
  g_autoptr(GArray) b = g_array_new (FALSE, FALSE, sizeof (Taken));
  g_autoptr(GArray) batch = g_array_new (FALSE, FALSE, sizeof (VmemSample));
  const guint period = 300;

  /* Three hours at 10 s: A's use moves with ties inside periods, B's is
   * flat (the earliest of each period stays); a sample of A from hostB
   * at the same time as hostA's, once where it is the period's highest,
   * once among the samples kept whole. */
  for (guint i = 0; i < 3 * 360; i++)
    {
      gint64 t = DAY0 + 10 * (gint64) i;
      Taken x = { sample (UUID_A, "erp", t, 1000 + (i * 37) % 50, i % 3 != 0, 2), 0 };
      x.s.rss_mib = 2000 + i; /* tells apart samples of equal use */
      Taken y = { sample (UUID_B, "pg", t, 700, i % 2 == 0, 4), 0 };
      y.s.rss_mib = 3000 + i;
      g_array_append_val (a, x);
      g_array_append_val (b, y);
    }
  Taken other = { sample (UUID_A, "erp", DAY0 + 40, 5000, TRUE, 2), 1 };
  other.s.host = "hostB";
  other.s.rss_mib = 9999;
  Taken late = { sample (UUID_A, "erp", DAY0 + 10 * 1070, 1001, FALSE, 2), 1 };
  late.s.host = "hostB";
  g_array_append_val (a, other);
  g_array_append_val (a, late);
  /* hostA writes first, so that it has the lower host id. */
  for (guint i = 0; i < 3 * 360; i++)
    {
      g_array_append_val (batch, g_array_index (a, Taken, i).s);
      g_array_append_val (batch, g_array_index (b, Taken, i).s);
    }
  add_samples (f, (VmemSample *) batch->data, batch->len);
  add_samples (f, &other.s, 1);
  add_samples (f, &late.s, 1);
  gint64 peaks_before = raw_int (f->target, "SELECT count(*) FROM peaks");

  /* Nothing is thinned with a period of 0, or with every sample kept
   * as long as samples are kept at all. */
  gint64 now = DAY0 + 3 * 3600 + 100;
  assert_true (vmem_store_prune (f->store, now, 48, 1, 0, 90, &error));
  assert_true (vmem_store_prune (f->store, now, 48, 48, period, 90, &error));
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM samples"), 2 * 3 * 360 + 2);

  /* Kept whole for the last hour: thinned before DAY0 + 2 h + 0 s. */
  assert_true (vmem_store_prune (f->store, now, 48, 1, period, 90, &error));
  assert_no_error (error);
  gint64 before = now - 3600 - (now - 3600) % period;
  assert_int_equal (before, DAY0 + 7200);
  g_autoptr(GArray) want_a = thinned (a, before, 0, period);
  g_autoptr(GArray) want_b = thinned (b, before, 0, period);
  assert_history (f, UUID_A, want_a);
  assert_history (f, UUID_B, want_b);
  /* 24 periods thinned to one sample each (hostB's 5000 in A's first),
   * an hour whole (A also has hostB's sample there). */
  assert_int_equal (want_a->len, 24 + 360 + 1);
  assert_int_equal (g_array_index (want_a, Taken, 0).s.used_mib, 5000);
  assert_int_equal (g_array_index (want_a, Taken, 0).s.rss_mib, 9999);
  assert_int_equal (want_b->len, 24 + 360);
  assert_int_equal (g_array_index (want_b, Taken, 1).s.t, DAY0 + period);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM peaks"), peaks_before);

  /* The largest use of every whole period is still there. */
  for (gint64 p = DAY0; p < before; p += period)
    {
      guint64 max_all = 0, max_kept = 0;
      for (guint i = 0; i < a->len; i++)
        if (g_array_index (a, Taken, i).s.t / period == p / period)
          max_all = MAX (max_all, g_array_index (a, Taken, i).s.used_mib);
      for (guint i = 0; i < want_a->len; i++)
        if (g_array_index (want_a, Taken, i).s.t / period == p / period)
          max_kept = MAX (max_kept, g_array_index (want_a, Taken, i).s.used_mib);
      assert_int_equal (max_kept, max_all);
    }

  /* Again at the same time: nothing changes.  Half an hour later: the
   * same as thinning the samples as taken at that time. */
  assert_true (vmem_store_prune (f->store, now, 48, 1, period, 90, &error));
  assert_history (f, UUID_A, want_a);
  assert_true (vmem_store_prune (f->store, now + 1800, 48, 1, period, 90, &error));
  g_autoptr(GArray) want_a2 = thinned (a, before + 1800, 0, period);
  g_autoptr(GArray) want_b2 = thinned (b, before + 1800, 0, period);
  assert_history (f, UUID_A, want_a2);
  assert_history (f, UUID_B, want_b2);

  /* Retention still ends the oldest: at DAY0 + 4 h with 3 h kept, those
   * before DAY0 + 1 h go, the rest is thinned up to DAY0 + 3 h. */
  assert_true (vmem_store_prune (f->store, DAY0 + 4 * 3600, 3, 1, period, 90, &error));
  g_autoptr(GArray) want_a3 = thinned (a, DAY0 + 3 * 3600, DAY0 + 3600, period);
  g_autoptr(GArray) want_b3 = thinned (b, DAY0 + 3 * 3600, DAY0 + 3600, period);
  assert_int_equal (want_b3->len, 24);
  assert_history (f, UUID_A, want_a3);
  assert_history (f, UUID_B, want_b3);
  assert_true (vmem_store_prune (f->store, DAY0 + 4 * 3600, 1, 0, period, 90, &error));
  assert_no_error (error);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM samples"), 0);

  /* A domain's history and retention's deletes go through the key. */
  static const char *const queries[] = {
    "SELECT t FROM samples WHERE domain_id = (SELECT id FROM domain_ids WHERE uuid = 'x')"
    " AND t >= 0 ORDER BY t DESC, host_id DESC LIMIT 5",
    "DELETE FROM samples WHERE domain_id IN (SELECT id FROM domain_ids) AND t < 5",
  };
  for (guint i = 0; i < G_N_ELEMENTS (queries); i++)
    {
      g_autofree char *plan = raw_plan (f->target, queries[i]);
      if (strstr (plan, DIALECT ("USING PRIMARY KEY", "samples_pkey")) == NULL)
        fail_msg ("%s: not through the key: %s", queries[i], plan);
    }
}

static void
test_prune (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  gint64 now = DAY0 + 100 * 86400;

  VmemSample v[] = {
    sample (UUID_A, "erp", now - 100 * 3600, 1000, TRUE, 2), /* raw gone, peaks kept */
    sample (UUID_A, "erp", now - 10 * 3600, 1100, TRUE, 2),  /* all kept */
    sample (UUID_A, "erp", now - 95 * 86400, 1200, TRUE, 2), /* everything gone */
  };
  add_samples (f, v, G_N_ELEMENTS (v));
  for (gint64 t = 1; t <= 3; t++)
    {
      VmemPlanRow p = { .uuid = UUID_A,
                        .host = "hostA",
                        .workload = "erp",
                        .t = now - 95 * 86400 + t,
                        .demand_mib = 1000 + t,
                        .source = "manual" };
      assert_true (vmem_store_plan_add (f->store, &p, &error));
    }
  VmemPlanRow other = {
    .uuid = UUID_B, .host = "hostA", .workload = "erp", .t = now - 95 * 86400, .demand_mib = 7,
    .source = "peers"
  };
  assert_true (vmem_store_plan_add (f->store, &other, &error));
  VmemPlanRow fresh = {
    .uuid = UUID_B, .host = "hostA", .workload = "erp", .t = now, .demand_mib = 8,
    .source = "peers"
  };
  assert_true (vmem_store_plan_add (f->store, &fresh, &error));

  assert_true (vmem_store_prune (f->store, now, 48, 48, 0, 90, &error));
  assert_no_error (error);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM samples"), 1);
  assert_int_equal (raw_int (f->target, "SELECT min(t) FROM samples"), now - 10 * 3600);
  g_autofree char *old_peaks = g_strdup_printf (
    "SELECT count(*) FROM peaks WHERE start_t < %" G_GINT64_FORMAT, now - 90 * 86400);
  assert_int_equal (raw_int (f->target, old_peaks), 0);
  g_autoptr(GPtrArray) hourly =
               vmem_store_peaks_for_workload (f->store, "erp", VMEM_STORE_HOUR, 0, &error);
  assert_int_equal (hourly->len, 2);

  /* Old plans go, except each domain's latest. */
  g_autoptr(GPtrArray) plans = vmem_store_plan_list (f->store, UUID_A, 0, &error);
  assert_int_equal (plans->len, 1);
  assert_int_equal (((VmemPlanRow *) g_ptr_array_index (plans, 0))->demand_mib, 1003);
  g_autoptr(GPtrArray) plans_b = vmem_store_plan_list (f->store, UUID_B, 0, &error);
  assert_int_equal (plans_b->len, 1);
  assert_int_equal (((VmemPlanRow *) g_ptr_array_index (plans_b, 0))->demand_mib, 8);
}

/* ---- runs, plans, hosts -------------------------------------------------- */

static void
test_runs (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  gint64 t0 = DAY0;

  gint64 id1 = vmem_store_run_open (f->store, UUID_A, "hostA", "erp", t0, 2048, &error);
  assert_no_error (error);
  assert_true (id1 > 0);

  /* A sample from before the start (a late cycle) does not count. */
  VmemSample v[] = {
    sample (UUID_A, "erp", t0 - 5, 3900, TRUE, 2),
    sample (UUID_A, "erp", t0 + 30, 3000, TRUE, 2),
    sample (UUID_A, "erp", t0 + 600, 3100, TRUE, 2),
    sample (UUID_A, "erp", t0 + 601, 3500, TRUE, 2),
    sample (UUID_A, "erp", t0 + 2000, 1000, TRUE, 2),
  };
  add_samples (f, v, G_N_ELEMENTS (v));

  assert_true (vmem_store_run_close (f->store, UUID_A, "hostA", t0 + 3000, "stopped", &error));
  assert_no_error (error);
  assert_false (vmem_store_run_close (f->store, UUID_A, "hostA", t0 + 3001, "stopped", &error));
  assert_error (error, VMEM_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* Samples after the stop touch no run. */
  VmemSample after = sample (UUID_A, "erp", t0 + 3100, 3999, TRUE, 2);
  add_samples (f, &after, 1);

  /* A run left open (vmemd was down at the stop) is closed as lost by the
   * next start, which has its own start-up window, set shorter here. */
  vmem_store_set_startup_window (f->store, 60);
  gint64 id2 = vmem_store_run_open (f->store, UUID_A, "hostA", "erp", t0 + 5000, 1024, &error);
  assert_true (id2 > id1);
  VmemSample v2[] = {
    sample (UUID_A, "erp", t0 + 5060, 1500, TRUE, 2),
    sample (UUID_A, "erp", t0 + 5061, 1700, TRUE, 2),
  };
  add_samples (f, v2, G_N_ELEMENTS (v2));
  gint64 id3 = vmem_store_run_open (f->store, UUID_A, "hostB", "erp", t0 + 9000, 512, &error);
  assert_true (id3 > id2);
  assert_no_error (error);
  /* A stop on hostA (the domain migrated to hostB) leaves hostB's run open. */
  assert_false (vmem_store_run_close (f->store, UUID_A, "hostA", t0 + 9100, "stopped", &error));
  assert_error (error, VMEM_ERROR_NOT_FOUND);
  g_clear_error (&error);

  g_autoptr(GPtrArray) runs = vmem_store_run_list (f->store, UUID_A, 0, &error);
  assert_no_error (error);
  assert_int_equal (runs->len, 3);
  const VmemRun *r3 = g_ptr_array_index (runs, 0);
  const VmemRun *r2 = g_ptr_array_index (runs, 1);
  const VmemRun *r1 = g_ptr_array_index (runs, 2);

  assert_int_equal (r1->id, id1);
  assert_int_equal (r1->started, t0);
  assert_int_equal (r1->stopped, t0 + 3000);
  assert_string_equal (r1->stop_reason, "stopped");
  assert_int_equal (r1->demand_mib, 2048);
  assert_int_equal (r1->startup_peak_mib, 3100);
  assert_int_equal (r1->peak_mib, 3500);

  assert_int_equal (r2->id, id2);
  assert_int_equal (r2->stopped, t0 + 9000);
  assert_string_equal (r2->stop_reason, "lost");
  assert_int_equal (r2->startup_peak_mib, 1500);
  assert_int_equal (r2->peak_mib, 1700);

  assert_int_equal (r3->id, id3);
  assert_int_equal (r3->stopped, 0);
  assert_null (r3->stop_reason);
  assert_string_equal (r3->host, "hostB");
  assert_int_equal (r3->peak_mib, 0);

  g_autoptr(GPtrArray) last = vmem_store_run_list (f->store, UUID_A, 1, &error);
  assert_int_equal (last->len, 1);
  assert_int_equal (((VmemRun *) g_ptr_array_index (last, 0))->id, id3);
  g_autoptr(GPtrArray) none = vmem_store_run_list (f->store, UUID_B, 0, &error);
  assert_int_equal (none->len, 0);

  assert_false (vmem_store_run_close (f->store, UUID_A, "hostB", t0 + 9999, "", &error));
  assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  assert_false (vmem_store_run_close (f->store, UUID_A, NULL, t0 + 9999, "stopped", &error));
  assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  assert_int_equal (vmem_store_run_open (f->store, UUID_A, "hostA", NULL, t0, 0, &error), -1);
  assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM runs"), 3);
}

/* Outcomes of past starts: written, listed by end since a time, oldest
 * first, pruned with the peaks; a bad one changes nothing. */
static void
test_outcomes (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  gint64 t0 = DAY0;

  for (guint i = 0; i < 3; i++)
    {
      VmemOutcomeRow o = {
        .uuid = i == 1 ? UUID_B : UUID_A,
        .host = "hostA",
        .workload = "erp",
        .kind = i == 2 ? "first-start" : "own",
        .start_t = t0 + 86400 * i,
        .end_t = t0 + 86400 * (i + 1) - 60 * i,
        .base_mib = 1000.5 + i,
        .given_mib = 1100.25,
        .peak_mib = 900 + 200 * i,
        .risk = 0.05,
        .censored = i == 1,
      };
      assert_true (vmem_store_outcome_add (f->store, &o, &error));
      assert_no_error (error);
    }
  g_autoptr(GPtrArray) all = vmem_store_outcome_list (f->store, 0, &error);
  assert_no_error (error);
  assert_int_equal (all->len, 3);
  const VmemOutcomeRow *o1 = g_ptr_array_index (all, 1);
  assert_string_equal (o1->uuid, UUID_B);
  assert_string_equal (o1->host, "hostA");
  assert_string_equal (o1->workload, "erp");
  assert_string_equal (o1->kind, "own");
  assert_int_equal (o1->start_t, t0 + 86400);
  assert_int_equal (o1->end_t, t0 + 2 * 86400 - 60);
  assert_true (o1->base_mib == 1001.5);
  assert_true (o1->given_mib == 1100.25);
  assert_true (o1->peak_mib == 1100);
  assert_true (o1->risk == 0.05);
  assert_true (o1->censored);
  assert_string_equal (((const VmemOutcomeRow *) g_ptr_array_index (all, 2))->kind,
                       "first-start");
  g_autoptr(GPtrArray) late = vmem_store_outcome_list (f->store, t0 + 86400 + 1, &error);
  assert_int_equal (late->len, 2);

  VmemOutcomeRow bad = {
    .uuid = UUID_A, .host = "hostA", .workload = "erp", .kind = "own", .base_mib = 0,
    .risk = 0.05,
  };
  assert_false (vmem_store_outcome_add (f->store, &bad, &error));
  assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  bad.base_mib = 1;
  bad.kind = NULL;
  assert_false (vmem_store_outcome_add (f->store, &bad, &error));
  g_clear_error (&error);
  g_autoptr(GPtrArray) still = vmem_store_outcome_list (f->store, 0, &error);
  assert_int_equal (still->len, 3);

  /* Kept as long as peaks: one day's retention at t0 + 3 days keeps the
   * outcomes that ended at or after t0 + 2 days. */
  assert_true (vmem_store_prune (f->store, t0 + 86400 * 3, 1, 1, 0, 1, &error));
  assert_no_error (error);
  g_autoptr(GPtrArray) kept = vmem_store_outcome_list (f->store, 0, &error);
  assert_int_equal (kept->len, 1);
  assert_string_equal (((const VmemOutcomeRow *) g_ptr_array_index (kept, 0))->kind,
                       "first-start");
}

static void
test_moves_and_history (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  gint64 t0 = DAY0;

  for (guint i = 0; i < 5; i++)
    {
      g_autofree char *reason = g_strdup_printf ("step %u", i);
      VmemMoveRow m = {
        .uuid = UUID_A,
        .host = "hostA",
        .workload = "erp",
        .t = t0 + 10 * i,
        .action = i % 2 ? "shrink" : "grow",
        .mode = "balloon",
        .from_mib = 1000 + i,
        .to_mib = 2000 + i,
        .applied = i != 3,
        .reason = reason,
      };
      assert_true (vmem_store_move_add (f->store, &m, &error));
      assert_no_error (error);
    }
  /* Since a time, oldest first; a limit keeps the newest. */
  g_autoptr(GPtrArray) moves = vmem_store_move_list (f->store, UUID_A, t0 + 10, 0, &error);
  assert_no_error (error);
  assert_int_equal (moves->len, 4);
  const VmemMoveRow *first = g_ptr_array_index (moves, 0);
  assert_int_equal (first->t, t0 + 10);
  assert_string_equal (first->action, "shrink");
  assert_int_equal (first->from_mib, 1001);
  assert_int_equal (first->to_mib, 2001);
  assert_true (first->applied);
  assert_string_equal (first->reason, "step 1");
  assert_false (((const VmemMoveRow *) g_ptr_array_index (moves, 2))->applied);
  g_autoptr(GPtrArray) last2 = vmem_store_move_list (f->store, UUID_A, 0, 2, &error);
  assert_int_equal (last2->len, 2);
  assert_int_equal (((const VmemMoveRow *) g_ptr_array_index (last2, 0))->t, t0 + 30);
  g_autoptr(GPtrArray) other = vmem_store_move_list (f->store, UUID_B, 0, 0, &error);
  assert_int_equal (other->len, 0);

  /* A move missing a field changes nothing. */
  VmemMoveRow bad = {
    .uuid = UUID_A, .host = "hostA", .workload = "erp", .action = "grow", .mode = "balloon"
  };
  assert_false (vmem_store_move_add (f->store, &bad, &error));
  assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  g_autoptr(GPtrArray) all = vmem_store_move_list (f->store, UUID_A, 0, 0, &error);
  assert_int_equal (all->len, 5);

  VmemSample v[] = {
    sample (UUID_A, "erp", t0, 300, TRUE, 2),
    sample (UUID_A, "erp", t0 + 10, 320, FALSE, 2),
    sample (UUID_B, "erp", t0 + 10, 999, TRUE, 2),
  };
  add_samples (f, v, G_N_ELEMENTS (v));
  g_autoptr(GPtrArray) samples = vmem_store_sample_list (f->store, UUID_A, 0, 0, &error);
  assert_no_error (error);
  assert_int_equal (samples->len, 2);
  const VmemSampleRow *s0 = g_ptr_array_index (samples, 0);
  const VmemSampleRow *s1 = g_ptr_array_index (samples, 1);
  assert_int_equal (s0->t, t0);
  assert_int_equal (s0->used_mib, 300);
  assert_true (s0->guest_quality);
  assert_int_equal (s1->used_mib, 320);
  assert_false (s1->guest_quality);

  /* Moves are pruned with the peaks. */
  assert_true (vmem_store_prune (f->store, t0 + 86400 * 3, 1, 1, 0, 1, &error));
  g_autoptr(GPtrArray) pruned = vmem_store_move_list (f->store, UUID_A, 0, 0, &error);
  assert_int_equal (pruned->len, 0);
}

/* A move round-trips exactly through its compact row: every figure (the
 * largest MiB values too), words the store has not seen before, another
 * host, several moves of one domain in one second in the order written,
 * and since/limit across them. */
static void
test_moves_compact (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  const gint64 t0 = DAY0 + 7;
  const VmemMoveRow in[] = {
    { UUID_A, "hostA", "erp", t0, "grow", "balloon", 1024, 2048, TRUE, "first" },
    { UUID_A, "hostA", "erp", t0 + 10, "shrink", "balloon", G_GUINT64_CONSTANT (1) << 40,
      (G_GUINT64_CONSTANT (1) << 40) - 64, FALSE, "the largest" },
    { UUID_A, "hostB", "web", t0 + 10, "no-driver", "virtio-mem", 0, 0, TRUE, "." },
    { UUID_A, "hostA", "erp", t0 + 10, "shrink", "balloon", G_GUINT64_CONSTANT (1) << 40,
      (G_GUINT64_CONSTANT (1) << 40) - 64, FALSE, "the same figures, another reason" },
    { UUID_A, "hostA", "erp", t0 + 20, "stuck", "observe", 4096, 4096, FALSE,
      "a reason with 'quotes', \"double\" ones and a new\nline" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (in); i++)
    {
      assert_true (vmem_store_move_add (f->store, &in[i], &error));
      assert_no_error (error);
    }
  g_autoptr(GPtrArray) out = vmem_store_move_list (f->store, UUID_A, 0, 0, &error);
  assert_no_error (error);
  assert_int_equal (out->len, G_N_ELEMENTS (in));
  for (guint i = 0; i < G_N_ELEMENTS (in); i++)
    {
      const VmemMoveRow *m = g_ptr_array_index (out, i);
      assert_string_equal (m->uuid, in[i].uuid);
      assert_string_equal (m->host, in[i].host);
      assert_string_equal (m->workload, in[i].workload);
      assert_int_equal (m->t, in[i].t);
      assert_string_equal (m->action, in[i].action);
      assert_string_equal (m->mode, in[i].mode);
      assert_true (m->from_mib == in[i].from_mib);
      assert_true (m->to_mib == in[i].to_mib);
      assert_int_equal (m->applied, in[i].applied);
      assert_string_equal (m->reason, in[i].reason);
    }
  /* The newest two: the last of the second t0 + 10 and the one after. */
  g_autoptr(GPtrArray) last = vmem_store_move_list (f->store, UUID_A, t0 + 10, 2, &error);
  assert_int_equal (last->len, 2);
  assert_string_equal (((VmemMoveRow *) g_ptr_array_index (last, 0))->reason,
                       "the same figures, another reason");
  assert_int_equal (((VmemMoveRow *) g_ptr_array_index (last, 1))->t, t0 + 20);
  g_autoptr(GPtrArray) since = vmem_store_move_list (f->store, UUID_A, t0 + 1, 0, &error);
  assert_int_equal (since->len, 4);

  /* Each written again adds nothing. */
  for (guint i = 0; i < G_N_ELEMENTS (in); i++)
    assert_true (vmem_store_move_add (f->store, &in[i], &error));
  assert_no_error (error);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM moves"), G_N_ELEMENTS (in));
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM move_reasons"), G_N_ELEMENTS (in));
  /* Four words, each stored once, however many moves name them. */
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM move_words"), 7);
}

/* Retention keeps a move's figures as long as peaks and its reason as long
 * as raw samples; the history then has the move without a reason.  A move
 * written again after its reason went is still the same move. */
static void
test_move_reasons_retention (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  const gint64 now = DAY0 + 100 * 86400;
  const gint64 ages[] = { 95 * 86400, 89 * 86400, 49 * 3600, 48 * 3600 + 1, 48 * 3600,
                          47 * 3600, 60 };
  for (guint i = 0; i < G_N_ELEMENTS (ages); i++)
    {
      g_autofree char *reason = g_strdup_printf ("age %" G_GINT64_FORMAT, ages[i]);
      VmemMoveRow m = { UUID_A, "hostA", "erp", now - ages[i], "shrink", "balloon",
                        2000 + i, 1900 + i, TRUE, reason };
      assert_true (vmem_store_move_add (f->store, &m, &error));
      VmemMoveRow other = m;
      other.uuid = UUID_B;
      assert_true (vmem_store_move_add (f->store, &other, &error));
    }
  assert_no_error (error);
  assert_true (vmem_store_prune (f->store, now, 48, 6, 300, 90, &error));
  assert_no_error (error);

  g_autoptr(GPtrArray) kept = vmem_store_move_list (f->store, UUID_A, 0, 0, &error);
  assert_no_error (error);
  /* The move of 95 days went with its reason; those older than 48 h kept
   * their figures only; the rest are whole. */
  assert_int_equal (kept->len, G_N_ELEMENTS (ages) - 1);
  for (guint i = 1; i < G_N_ELEMENTS (ages); i++)
    {
      const VmemMoveRow *m = g_ptr_array_index (kept, i - 1);
      assert_int_equal (m->t, now - ages[i]);
      assert_int_equal (m->from_mib, 2000 + i);
      assert_int_equal (m->to_mib, 1900 + i);
      if (ages[i] > 48 * 3600)
        assert_null (m->reason);
      else
        {
          g_autofree char *want = g_strdup_printf ("age %" G_GINT64_FORMAT, ages[i]);
          assert_string_equal (m->reason, want);
        }
    }
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM moves"),
                    2 * (G_N_ELEMENTS (ages) - 1));
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM move_reasons"), 2 * 3);

  /* The move of 49 h written again (a batch kept through an outage) is
   * the one stored: it adds nothing, and its reason stays gone. */
  VmemMoveRow again = { UUID_A, "hostA", "erp", now - ages[2], "shrink", "balloon",
                        2002, 1902, TRUE, "age 176400" };
  assert_true (vmem_store_move_add (f->store, &again, &error));
  assert_no_error (error);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM moves"),
                    2 * (G_N_ELEMENTS (ages) - 1));
  /* One that differs in a figure is another move. */
  again.to_mib = 1903;
  assert_true (vmem_store_move_add (f->store, &again, &error));
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM moves"),
                    2 * (G_N_ELEMENTS (ages) - 1) + 1);

  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM move_reasons"), 2 * 3 + 1);

  /* Reasons kept longer than moves go with their moves. */
  VmemMoveRow late = { UUID_A, "hostA", "erp", now - 40 * 86400, "grow", "balloon",
                       1, 2, TRUE, "written late" };
  assert_true (vmem_store_move_add (f->store, &late, &error));
  assert_true (vmem_store_prune (f->store, now, 24 * 200, 6, 300, 30, &error));
  assert_no_error (error);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM moves"),
                    2 * (G_N_ELEMENTS (ages) - 2) + 1);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM move_reasons"), 2 * 3 + 1);
}

static void
test_plans (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;

  g_autoptr(VmemPlanRow) none = vmem_store_plan_latest (f->store, UUID_A, &error);
  assert_null (none);
  assert_error (error, VMEM_ERROR_NOT_FOUND);
  g_clear_error (&error);

  /* Recorded order decides "latest", not the clock (it may step back). */
  const gint64 times[] = { 300, 100, 200 };
  for (guint i = 0; i < G_N_ELEMENTS (times); i++)
    {
      g_autofree char *reasons = g_strdup_printf ("{\"i\":%u}", i);
      VmemPlanRow p = { .uuid = UUID_A,
                        .host = i ? "hostB" : "hostA",
                        .workload = "erp",
                        .t = times[i],
                        .demand_mib = 1000 + i,
                        .source = i ? "peers" : "manual",
                        .reasons_json = reasons };
      assert_true (vmem_store_plan_add (f->store, &p, &error));
      assert_no_error (error);
    }
  VmemPlanRow nojson = {
    .uuid = UUID_B, .host = "hostA", .workload = "pg", .t = 5, .demand_mib = 1, .source = "floor"
  };
  assert_true (vmem_store_plan_add (f->store, &nojson, &error));

  g_autoptr(VmemPlanRow) latest = vmem_store_plan_latest (f->store, UUID_A, &error);
  assert_no_error (error);
  assert_int_equal (latest->demand_mib, 1002);
  assert_int_equal (latest->t, 200);
  assert_string_equal (latest->source, "peers");
  assert_string_equal (latest->reasons_json, "{\"i\":2}");
  assert_string_equal (latest->workload, "erp");
  assert_string_equal (latest->host, "hostB");

  g_autoptr(GPtrArray) two = vmem_store_plan_list (f->store, UUID_A, 2, &error);
  assert_int_equal (two->len, 2);
  assert_int_equal (((VmemPlanRow *) g_ptr_array_index (two, 1))->demand_mib, 1001);
  g_autoptr(VmemPlanRow) b = vmem_store_plan_latest (f->store, UUID_B, &error);
  assert_null (b->reasons_json);

  VmemPlanRow bad = { .uuid = UUID_A, .host = "hostA", .workload = "erp", .t = 1, .source = NULL };
  assert_false (vmem_store_plan_add (f->store, &bad, &error));
  assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
  g_clear_error (&error);
  VmemPlanRow nohost = { .uuid = UUID_A, .workload = "erp", .t = 1, .source = "manual" };
  assert_false (vmem_store_plan_add (f->store, &nohost, &error));
  assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
  assert_contains (error->message, "plan host");
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM plans"), 4);
}

/* Hosts are keyed by id; a heartbeat replaces the host's row, name
 * included; liveness is a few of the host's own intervals. */
static void
test_hosts (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VmemHostRow b = { .id = "b0b0b0b0",
                    .name = "hostB",
                    .capacity_mib = 32768,
                    .reserved_mib = 1024,
                    .overcommit = 1.0,
                    .committed_mib = 100,
                    .interval_s = 10,
                    .heartbeat = 10 };
  VmemHostRow a = { .id = "a0a0a0a0",
                    .name = "hostA",
                    .capacity_mib = 65536,
                    .reserved_mib = 2048,
                    .overcommit = 1.5,
                    .committed_mib = 200,
                    .reservations_mib = 150,
                    .reservations = 2,
                    .domains = 7,
                    .interval_s = 30,
                    .heartbeat = 10 };

  assert_true (vmem_store_host_heartbeat (f->store, &b, &error));
  assert_true (vmem_store_host_heartbeat (f->store, &a, &error));
  b.committed_mib = 4096;
  b.heartbeat = 20;
  b.name = "hostB-renamed";
  assert_true (vmem_store_host_heartbeat (f->store, &b, &error));
  assert_no_error (error);
  /* Two hosts of one name are two hosts. */
  VmemHostRow twin = b;
  twin.id = "c0c0c0c0";
  twin.heartbeat = 5;
  assert_true (vmem_store_host_heartbeat (f->store, &twin, &error));
  assert_no_error (error);

  g_autoptr(GPtrArray) hosts = vmem_store_host_list (f->store, &error);
  assert_no_error (error);
  assert_int_equal (hosts->len, 3);
  const VmemHostRow *ha = g_ptr_array_index (hosts, 0);
  const VmemHostRow *hb = g_ptr_array_index (hosts, 1);
  const VmemHostRow *hc = g_ptr_array_index (hosts, 2);
  assert_string_equal (ha->id, "a0a0a0a0");
  assert_string_equal (ha->name, "hostA");
  assert_true (ha->overcommit == 1.5);
  assert_int_equal (ha->reserved_mib, 2048);
  assert_int_equal (ha->reservations_mib, 150);
  assert_int_equal (ha->reservations, 2);
  assert_int_equal (ha->domains, 7);
  assert_int_equal (ha->interval_s, 30);
  assert_string_equal (hb->id, "b0b0b0b0");
  assert_string_equal (hb->name, "hostB-renamed");
  assert_int_equal (hb->committed_mib, 4096);
  assert_int_equal (hb->heartbeat, 20);
  assert_int_equal (hb->capacity_mib, 32768);
  assert_string_equal (hc->id, "c0c0c0c0");
  assert_int_equal (hc->heartbeat, 5);

  /* Alive within VMEM_STORE_HOST_ALIVE_INTERVALS of its own interval. */
  assert_true (vmem_store_host_alive (hb, 20));
  assert_true (vmem_store_host_alive (hb, 20 + 3 * 10));
  assert_false (vmem_store_host_alive (hb, 20 + 3 * 10 + 1));
  assert_true (vmem_store_host_alive (ha, 10 + 3 * 30));
  assert_false (vmem_store_host_alive (ha, 10 + 3 * 30 + 1));
  /* A heartbeat from far in the future (a clock gone wrong) is not life. */
  assert_false (vmem_store_host_alive (hb, 20 - 3 * 10 - 1));

  VmemHostRow bad = { .id = "d0", .name = "hostC", .overcommit = 0, .interval_s = 10 };
  assert_false (vmem_store_host_heartbeat (f->store, &bad, &error));
  assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
  assert_contains (error->message, "overcommit");
  g_clear_error (&error);
  const char *bad_ids[] = { "", "has space", "semi;colon", "x'y",
                            "0123456789012345678901234567890123456789012345678901234567890123456789" };
  for (guint i = 0; i < G_N_ELEMENTS (bad_ids); i++)
    {
      VmemHostRow r = a;
      r.id = (char *) bad_ids[i];
      assert_false (vmem_store_host_heartbeat (f->store, &r, &error));
      assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
      g_clear_error (&error);
    }
  VmemHostRow noint = a;
  noint.id = "e0";
  noint.interval_s = 0;
  assert_false (vmem_store_host_heartbeat (f->store, &noint, &error));
  assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM hosts"), 3);
}

/* ---- several hosts -------------------------------------------------------- */

static gint64
count_samples (Fixture *f)
{
  return raw_int (f->target, "SELECT count(*) FROM samples");
}

/* A batch written again (its commit lost with the connection, say) adds
 * no sample; the same domain and time from another host is another
 * sample. */
static void
test_samples_idempotent (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VmemSample v[] = {
    sample (UUID_A, "erp", DAY0 + 10, 1000, TRUE, 2),
    sample (UUID_A, "erp", DAY0 + 20, 1500, TRUE, 2),
    sample (UUID_B, "erp", DAY0 + 10, 700, FALSE, 4),
  };
  add_samples (f, v, G_N_ELEMENTS (v));
  add_samples (f, v, G_N_ELEMENTS (v));
  assert_int_equal (count_samples (f), 3);
  g_autoptr(GPtrArray) runs = vmem_store_run_list (f->store, UUID_A, 0, &error);
  assert_no_error (error);

  VmemSample other = v[0];
  other.host = "hostB";
  other.used_mib = 1100;
  add_samples (f, &other, 1);
  assert_int_equal (count_samples (f), 4);
  g_autofree char *q = g_strdup_printf ("SELECT count(*) FROM " SAMPLES_NAMED " WHERE uuid = '%s' AND t = %"
                                        G_GINT64_FORMAT, UUID_A, DAY0 + 10);
  assert_int_equal (raw_int (f->target, q), 2);
  /* The first write of a key is kept, not replaced. */
  g_autofree char *used = g_strdup_printf ("SELECT used_mib FROM " SAMPLES_NAMED " WHERE uuid = '%s' AND t = %"
                                           G_GINT64_FORMAT " AND host = 'hostA'",
                                           UUID_A, DAY0 + 10);
  assert_int_equal (raw_int (f->target, used), 1000);
}

/* The peers of a workload are every host's domains, each peak naming its
 * host; a host that no longer beats keeps its peaks until they age out. */
static void
test_peers_across_hosts (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  const char *hosts[] = { "hostA", "hostB", "hostC" };
  const char *uuids[] = { UUID_A, UUID_B, UUID_C };
  for (guint h = 0; h < G_N_ELEMENTS (hosts); h++)
    {
      VmemHostRow row = { .id = (char *) hosts[h], .name = (char *) hosts[h],
                          .capacity_mib = 4096, .overcommit = 1.0, .interval_s = 10,
                          .heartbeat = DAY0 + 3600 };
      assert_true (vmem_store_host_heartbeat (f->store, &row, &error));
      assert_no_error (error);
      VmemSample v = sample (uuids[h], "erp", DAY0 + 10 + h, 1000 + 100 * h, TRUE, 2);
      v.host = hosts[h];
      add_samples (f, &v, 1);
    }
  /* hostC stops beating; hostA and hostB go on. */
  for (guint h = 0; h < 2; h++)
    {
      VmemHostRow row = { .id = (char *) hosts[h], .name = (char *) hosts[h],
                          .capacity_mib = 4096, .overcommit = 1.0, .interval_s = 10,
                          .heartbeat = DAY0 + 7200 };
      assert_true (vmem_store_host_heartbeat (f->store, &row, &error));
    }
  g_autoptr(GPtrArray) list = vmem_store_host_list (f->store, &error);
  assert_no_error (error);
  assert_int_equal (list->len, 3);
  assert_true (vmem_store_host_alive (g_ptr_array_index (list, 0), DAY0 + 7200));
  assert_true (vmem_store_host_alive (g_ptr_array_index (list, 1), DAY0 + 7200));
  assert_false (vmem_store_host_alive (g_ptr_array_index (list, 2), DAY0 + 7200));

  g_autoptr(GPtrArray) peaks =
               vmem_store_peaks_for_workload (f->store, "erp", VMEM_STORE_HOUR, 0, &error);
  assert_no_error (error);
  assert_int_equal (peaks->len, 3);
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < peaks->len; i++)
    {
      const VmemPeak *p = g_ptr_array_index (peaks, i);
      g_hash_table_add (seen, p->host);
    }
  assert_int_equal (g_hash_table_size (seen), 3);

  /* Retention, not liveness, removes the departed host's history. */
  assert_true (vmem_store_prune (f->store, DAY0 + 7200, 48, 48, 0, 90, &error));
  g_autoptr(GPtrArray) kept =
               vmem_store_peaks_for_workload (f->store, "erp", VMEM_STORE_HOUR, 0, &error);
  assert_int_equal (kept->len, 3);
  assert_true (vmem_store_prune (f->store, DAY0 + 91 * 86400, 48, 48, 0, 90, &error));
  g_autoptr(GPtrArray) gone =
               vmem_store_peaks_for_workload (f->store, "erp", VMEM_STORE_HOUR, 0, &error);
  assert_int_equal (gone->len, 0);
}

/* Makes the store's database unreachable, or reachable again: on SQLite
 * another connection holding the write lock (a call fails after the busy
 * timeout), on PostgreSQL the database refusing connections and its
 * sessions ended, as when the server goes away. */
typedef struct {
  sqlite3 *holder;
  char *dbname;
} Outage;

static void
outage_begin (Fixture *f, Outage *o)
{
  if (backend == BACKEND_SQLITE)
    {
      o->holder = sq_raw_open (f->target);
      char *msg = NULL;
      if (sqlite3_exec (o->holder, "BEGIN EXCLUSIVE", NULL, NULL, &msg) != SQLITE_OK)
        fail_msg ("cannot lock %s: %s", f->target, msg);
      return;
    }
#if HAVE_LIBPQ
  o->dbname = raw_text (f->target, "SELECT current_database()");
  g_autofree char *off = g_strdup_printf ("ALTER DATABASE \"%s\" ALLOW_CONNECTIONS false", o->dbname);
  pg_raw_exec (pg_admin (), off);
  g_autofree char *kill = g_strdup_printf (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s'",
    o->dbname);
  pg_raw_exec (pg_admin (), kill);
#endif
}

static void
outage_end (Fixture *f, Outage *o)
{
  if (o->holder != NULL)
    {
      sqlite3_exec (o->holder, "ROLLBACK", NULL, NULL, NULL);
      sqlite3_close (o->holder);
      o->holder = NULL;
    }
#if HAVE_LIBPQ
  if (o->dbname != NULL)
    {
      g_autofree char *on =
        g_strdup_printf ("ALTER DATABASE \"%s\" ALLOW_CONNECTIONS true", o->dbname);
      pg_raw_exec (pg_admin (), on);
      g_clear_pointer (&o->dbname, g_free);
    }
#endif
}

/* While the database cannot be reached, batches are kept in order within
 * the bound (the oldest dropped and counted); once it can, they are all
 * written, each sample once. */
static void
test_buffer_while_away (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemStoreBuffer) buf = vmem_store_buffer_new (5, 100);
  VmemSample v[9];
  for (guint i = 0; i < G_N_ELEMENTS (v); i++)
    v[i] = sample (i % 2 ? UUID_B : UUID_A, "erp", DAY0 + 10 * (i + 1), 1000 + i, TRUE, 2);
  g_autoptr(GArray) p01 = batch_peaks (v, 2);

  assert_true (vmem_store_buffer_write (buf, f->store, v, 2, (VmemPeak *) p01->data, p01->len,
                                        &error));
  assert_no_error (error);
  assert_int_equal (count_samples (f), 2);

  Outage o = { 0 };
  outage_begin (f, &o);
  for (guint b = 1; b <= 3; b++)
    {
      g_autoptr(GArray) pk = batch_peaks (&v[2 * b], 2);
      assert_false (vmem_store_buffer_write (buf, f->store, &v[2 * b], 2, (VmemPeak *) pk->data,
                                             pk->len, &error));
      assert_error (error, VMEM_ERROR_STORE_UNAVAILABLE);
      g_clear_error (&error);
    }
  /* Six samples kept would pass the bound of five: the oldest batch went. */
  assert_int_equal (vmem_store_buffer_pending (buf), 4);
  assert_int_equal (vmem_store_buffer_dropped (buf), 2);
  outage_end (f, &o);
  assert_int_equal (count_samples (f), 2);

  g_autoptr(GArray) p8 = batch_peaks (&v[8], 1);
  assert_true (vmem_store_buffer_write (buf, f->store, &v[8], 1, (VmemPeak *) p8->data, p8->len,
                                        &error));
  assert_no_error (error);
  assert_int_equal (vmem_store_buffer_pending (buf), 0);
  assert_int_equal (count_samples (f), 7);
  for (guint i = 0; i < G_N_ELEMENTS (v); i++)
    {
      g_autofree char *q = g_strdup_printf (
        "SELECT count(*) FROM " SAMPLES_NAMED " WHERE host = 'hostA' AND uuid = '%s' AND t = %"
        G_GINT64_FORMAT, v[i].uuid, v[i].t);
      assert_int_equal (raw_int (f->target, q), i == 2 || i == 3 ? 0 : 1);
    }
  /* The peaks of the last batch kept are the stored ones. */
  g_autoptr(GPtrArray) latest = vmem_store_peaks_latest (f->store, 0, &error);
  assert_no_error (error);
  assert_true (latest->len > 0);

  /* A batch written again adds nothing. */
  assert_true (vmem_store_buffer_write (buf, f->store, v, 2, (VmemPeak *) p01->data, p01->len,
                                        &error));
  assert_int_equal (count_samples (f), 7);

  /* Bad input is never kept: it would hold up every later batch. */
  VmemSample bad = v[0];
  bad.host = NULL;
  assert_false (vmem_store_buffer_write (buf, f->store, &bad, 1, NULL, 0, &error));
  assert_error (error, VMEM_ERROR_INVALID_ARGUMENT);
  assert_int_equal (vmem_store_buffer_pending (buf), 0);
  assert_int_equal (vmem_store_buffer_dropped (buf), 3);
}

/* What a domain's start and stop write, in the daemon's order: its row,
 * its plan, the run opened, a batch of samples, two moves, the run closed,
 * the outcome. */
typedef struct {
  VmemDomainRow domain;
  VmemPlanRow plan;
  VmemSample samples[2];
  GArray *peaks;
  VmemMoveRow moves[2];
  VmemOutcomeRow outcome;
  gint64 started, stopped;
} Life;

static void
life_init (Life *l, const char *uuid, gint64 t0)
{
  *l = (Life){
    .domain = { .uuid = (char *) uuid, .name = (char *) "web1", .host = (char *) "hostA",
                .workload = (char *) "erp", .memory_mib = 4096, .vcpus = 2, .last_seen = t0 },
    .plan = { .uuid = (char *) uuid, .host = (char *) "hostA", .workload = (char *) "erp",
              .t = t0, .demand_mib = 1500, .source = (char *) "peers",
              .reasons_json = (char *) "{\"peers\":3}" },
    .samples = { sample (uuid, "erp", t0 + 20, 1300, TRUE, 2),
                 sample (uuid, "erp", t0 + 30, 1700, TRUE, 2) },
    .outcome = { .uuid = (char *) uuid, .host = (char *) "hostA", .workload = (char *) "erp",
                 .kind = (char *) "own", .start_t = t0 + 1, .end_t = t0 + 900, .base_mib = 1400.5,
                 .given_mib = 1500, .peak_mib = 1700, .risk = 0.05 },
    .started = t0 + 1,
    .stopped = t0 + 900,
  };
  l->peaks = batch_peaks (l->samples, 2);
  for (guint i = 0; i < 2; i++)
    l->moves[i] = (VmemMoveRow){ .uuid = (char *) uuid, .host = (char *) "hostA",
                                 .workload = (char *) "erp", .t = t0 + 40 + i,
                                 .action = (char *) (i ? "shrink" : "grow"),
                                 .mode = (char *) "balloon", .from_mib = 1500 + 300 * i,
                                 .to_mib = 1800 - 100 * i, .applied = TRUE,
                                 .reason = (char *) (i ? "surplus" : "pressure") };
}

/* Writes @l through @buf; each call's result is checked against @away:
 * kept (VMEM_ERROR_STORE_UNAVAILABLE) or written. */
static void
life_write (Life *l, VmemStoreBuffer *buf, VmemStore *store, gboolean away)
{
  gboolean ok[8];
  GError *errors[8] = { NULL };
  guint n = 0;
  ok[n] = vmem_store_buffer_domain_upsert (buf, store, &l->domain, &errors[n]), n++;
  ok[n] = vmem_store_buffer_plan_add (buf, store, &l->plan, &errors[n]), n++;
  ok[n] = vmem_store_buffer_run_open (buf, store, l->domain.uuid, "hostA", "erp", l->started,
                                      l->plan.demand_mib, &errors[n]), n++;
  ok[n] = vmem_store_buffer_write (buf, store, l->samples, 2, (VmemPeak *) l->peaks->data,
                                   l->peaks->len, &errors[n]), n++;
  for (guint i = 0; i < 2; i++)
    ok[n] = vmem_store_buffer_move_add (buf, store, &l->moves[i], &errors[n]), n++;
  ok[n] = vmem_store_buffer_run_close (buf, store, l->domain.uuid, "hostA", l->stopped,
                                       "stopped", &errors[n]), n++;
  ok[n] = vmem_store_buffer_outcome_add (buf, store, &l->outcome, &errors[n]), n++;
  for (guint i = 0; i < n; i++)
    {
      if (away)
        {
          assert_false (ok[i]);
          assert_error (errors[i], VMEM_ERROR_STORE_UNAVAILABLE);
        }
      else
        {
          assert_no_error (errors[i]);
          assert_true (ok[i]);
        }
      g_clear_error (&errors[i]);
    }
}

/* Everything @l wrote is in the store exactly once, as written: one
 * closed run that the samples raised (so it was open when they were
 * written), its plan, both moves in order, the outcome. */
static void
life_check (Fixture *f, Life *l)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemDomainRow) d = vmem_store_domain_get (f->store, l->domain.uuid, &error);
  assert_no_error (error);
  assert_string_equal (d->name, "web1");
  assert_int_equal (d->memory_mib, 4096);

  g_autoptr(GPtrArray) runs = vmem_store_run_list (f->store, l->domain.uuid, 0, &error);
  assert_no_error (error);
  assert_int_equal (runs->len, 1);
  const VmemRun *r = g_ptr_array_index (runs, 0);
  assert_int_equal (r->started, l->started);
  assert_int_equal (r->stopped, l->stopped);
  assert_string_equal (r->stop_reason, "stopped");
  assert_int_equal (r->demand_mib, 1500);
  assert_int_equal (r->startup_peak_mib, 1700);
  assert_int_equal (r->peak_mib, 1700);

  g_autoptr(GPtrArray) plans = vmem_store_plan_list (f->store, l->domain.uuid, 0, &error);
  assert_no_error (error);
  assert_int_equal (plans->len, 1);
  const VmemPlanRow *p = g_ptr_array_index (plans, 0);
  assert_int_equal (p->demand_mib, 1500);
  assert_string_equal (p->reasons_json, "{\"peers\":3}");

  g_autoptr(GPtrArray) moves = vmem_store_move_list (f->store, l->domain.uuid, 0, 0, &error);
  assert_no_error (error);
  assert_int_equal (moves->len, 2);
  assert_string_equal (((VmemMoveRow *) g_ptr_array_index (moves, 0))->action, "grow");
  assert_string_equal (((VmemMoveRow *) g_ptr_array_index (moves, 1))->action, "shrink");
  g_autofree char *q = g_strdup_printf ("SELECT count(*) FROM " MOVES_NAMED
                                        " WHERE uuid = '%s' AND reason IS NOT NULL",
                                        l->domain.uuid);
  assert_int_equal (raw_int (f->target, q), 2);

  g_autoptr(GPtrArray) outcomes = vmem_store_outcome_list (f->store, 0, &error);
  assert_no_error (error);
  guint mine = 0;
  for (guint i = 0; i < outcomes->len; i++)
    {
      const VmemOutcomeRow *o = g_ptr_array_index (outcomes, i);
      if (g_str_equal (o->uuid, l->domain.uuid))
        {
          mine++;
          assert_true (o->base_mib == 1400.5);
          assert_int_equal (o->end_t, l->stopped);
        }
    }
  assert_int_equal (mine, 1);

  g_autofree char *sq = g_strdup_printf ("SELECT count(*) FROM " SAMPLES_NAMED " WHERE uuid = '%s'",
                                         l->domain.uuid);
  assert_int_equal (raw_int (f->target, sq), 2);
}

/* A domain started and stopped while the database cannot be reached: its
 * row, plan, run (opened, raised by its samples, closed), moves and
 * outcome are kept in order, and once the database is back they are all
 * there exactly once, before the writes made after. */
static void
test_writes_kept_while_away (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemStoreBuffer) buf = vmem_store_buffer_new (100, 100);
  Life l;
  life_init (&l, UUID_A, DAY0);

  Outage o = { 0 };
  outage_begin (f, &o);
  life_write (&l, buf, f->store, TRUE);
  assert_int_equal (vmem_store_buffer_pending_writes (buf), 7);
  assert_int_equal (vmem_store_buffer_pending (buf), 2);
  outage_end (f, &o);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM runs"), 0);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM plans"), 0);

  /* The next write goes in after them: the domain's next start, written
   * through, finds its first run closed rather than closing it as lost. */
  assert_true (vmem_store_buffer_run_open (buf, f->store, UUID_A, "hostA", "erp", DAY0 + 1000,
                                           1500, &error));
  assert_no_error (error);
  assert_int_equal (vmem_store_buffer_pending_writes (buf), 0);
  assert_int_equal (vmem_store_buffer_pending (buf), 0);
  assert_int_equal (vmem_store_buffer_dropped_writes (buf), 0);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM runs WHERE stop_reason = 'lost'"),
                    0);
  assert_true (vmem_store_run_close (f->store, UUID_A, "hostA", DAY0 + 1000, "stopped", &error));
  assert_no_error (error);
  g_autofree char *second = g_strdup_printf ("DELETE FROM runs WHERE started = %" G_GINT64_FORMAT,
                                             (gint64) DAY0 + 1000);
  raw_exec (f->target, second);
  life_check (f, &l);

  /* Kept writes are flushed by a flush alone too (the heartbeat's). */
  Life l2;
  life_init (&l2, UUID_B, DAY0 + 5000);
  outage_begin (f, &o);
  life_write (&l2, buf, f->store, TRUE);
  assert_false (vmem_store_buffer_flush (buf, f->store, &error));
  assert_error (error, VMEM_ERROR_STORE_UNAVAILABLE);
  g_clear_error (&error);
  outage_end (f, &o);
  assert_true (vmem_store_buffer_flush (buf, f->store, &error));
  assert_no_error (error);
  life_check (f, &l2);
  g_array_unref (l.peaks);
  g_array_unref (l2.peaks);
}

/* Each write made twice, as when an error hid the first one's commit and
 * it is made again, is stored once. */
static void
test_writes_idempotent (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemStoreBuffer) buf = vmem_store_buffer_new (100, 100);
  Life l;
  life_init (&l, UUID_A, DAY0);

  assert_true (vmem_store_domain_upsert (f->store, &l.domain, &error));
  for (guint k = 0; k < 2; k++)
    assert_true (vmem_store_plan_add (f->store, &l.plan, &error));
  gint64 id1 = vmem_store_run_open (f->store, UUID_A, "hostA", "erp", l.started, 1500, &error);
  gint64 id2 = vmem_store_run_open (f->store, UUID_A, "hostA", "erp", l.started, 1500, &error);
  assert_no_error (error);
  assert_true (id1 > 0);
  assert_int_equal (id1, id2);
  for (guint k = 0; k < 2; k++)
    {
      assert_true (vmem_store_samples_add (f->store, l.samples, 2, (VmemPeak *) l.peaks->data,
                                           l.peaks->len, &error));
      for (guint i = 0; i < 2; i++)
        assert_true (vmem_store_move_add (f->store, &l.moves[i], &error));
    }
  assert_no_error (error);
  assert_true (vmem_store_run_close (f->store, UUID_A, "hostA", l.stopped, "stopped", &error));
  /* Once kept, a stop whose run is closed already is done, not dropped. */
  Outage o = { 0 };
  outage_begin (f, &o);
  assert_false (vmem_store_buffer_run_close (buf, f->store, UUID_A, "hostA", l.stopped, "stopped",
                                             &error));
  assert_error (error, VMEM_ERROR_STORE_UNAVAILABLE);
  g_clear_error (&error);
  outage_end (f, &o);
  assert_true (vmem_store_buffer_flush (buf, f->store, &error));
  assert_no_error (error);
  assert_int_equal (vmem_store_buffer_dropped_writes (buf), 0);
  for (guint k = 0; k < 2; k++)
    assert_true (vmem_store_outcome_add (f->store, &l.outcome, &error));
  assert_no_error (error);
  life_check (f, &l);

  /* Rows that differ in any column are all kept. */
  VmemPlanRow p2 = l.plan;
  p2.reasons_json = NULL;
  VmemMoveRow m2 = l.moves[0];
  m2.applied = FALSE;
  VmemOutcomeRow o2 = l.outcome;
  o2.censored = TRUE;
  assert_true (vmem_store_plan_add (f->store, &p2, &error));
  assert_true (vmem_store_plan_add (f->store, &p2, &error));
  assert_true (vmem_store_move_add (f->store, &m2, &error));
  assert_true (vmem_store_outcome_add (f->store, &o2, &error));
  assert_no_error (error);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM plans"), 2);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM moves"), 3);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM outcomes"), 2);
  g_array_unref (l.peaks);
}

/* A write the store refuses for good (here a constraint the database was
 * given) is dropped and counted, never kept or tried again: the writes
 * behind it go in.  Beyond the bound the oldest kept write is dropped. */
static void
test_writes_refused_not_kept (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemStoreBuffer) buf = vmem_store_buffer_new (100, 3);
  if (backend == BACKEND_SQLITE)
    raw_exec (f->target, "CREATE TRIGGER refuse BEFORE INSERT ON move_reasons"
                         " WHEN NEW.reason = 'bad'"
                         " BEGIN SELECT RAISE(ABORT, 'refused by a constraint'); END");
  else
    raw_exec (f->target, "ALTER TABLE move_reasons ADD CONSTRAINT refuse CHECK (reason <> 'bad')");
  Life l;
  life_init (&l, UUID_A, DAY0);
  VmemMoveRow bad = l.moves[0];
  bad.reason = "bad";

  /* Written through: the error says so, nothing is kept. */
  assert_false (vmem_store_buffer_move_add (buf, f->store, &bad, &error));
  assert_error (error, VMEM_ERROR_STORE);
  g_clear_error (&error);
  assert_int_equal (vmem_store_buffer_pending_writes (buf), 0);
  assert_int_equal (vmem_store_buffer_dropped_writes (buf), 1);

  /* Kept while away, then refused: dropped once, the next one written. */
  Outage o = { 0 };
  outage_begin (f, &o);
  assert_false (vmem_store_buffer_move_add (buf, f->store, &bad, &error));
  assert_error (error, VMEM_ERROR_STORE_UNAVAILABLE);
  g_clear_error (&error);
  assert_false (vmem_store_buffer_move_add (buf, f->store, &l.moves[0], &error));
  g_clear_error (&error);
  assert_int_equal (vmem_store_buffer_pending_writes (buf), 2);
  outage_end (f, &o);
  assert_true (vmem_store_buffer_flush (buf, f->store, &error));
  assert_no_error (error);
  assert_int_equal (vmem_store_buffer_pending_writes (buf), 0);
  assert_int_equal (vmem_store_buffer_dropped_writes (buf), 2);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM moves"), 1);
  /* Not tried again. */
  assert_true (vmem_store_buffer_flush (buf, f->store, &error));
  assert_int_equal (vmem_store_buffer_dropped_writes (buf), 2);

  /* Bound of three: the fourth kept drops the oldest (the plan). */
  outage_begin (f, &o);
  assert_false (vmem_store_buffer_plan_add (buf, f->store, &l.plan, &error));
  g_clear_error (&error);
  assert_false (vmem_store_buffer_run_open (buf, f->store, UUID_A, "hostA", "erp", l.started,
                                            1500, &error));
  g_clear_error (&error);
  /* Samples count against their own bound, not this one. */
  assert_false (vmem_store_buffer_write (buf, f->store, l.samples, 2,
                                         (VmemPeak *) l.peaks->data, l.peaks->len, &error));
  g_clear_error (&error);
  assert_false (vmem_store_buffer_move_add (buf, f->store, &l.moves[1], &error));
  g_clear_error (&error);
  assert_false (vmem_store_buffer_run_close (buf, f->store, UUID_A, "hostA", l.stopped,
                                             "stopped", &error));
  g_clear_error (&error);
  assert_int_equal (vmem_store_buffer_pending_writes (buf), 3);
  assert_int_equal (vmem_store_buffer_pending (buf), 2);
  assert_int_equal (vmem_store_buffer_dropped_writes (buf), 3);
  outage_end (f, &o);
  assert_true (vmem_store_buffer_flush (buf, f->store, &error));
  assert_no_error (error);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM plans"), 0);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM runs WHERE stop_reason = 'stopped'"
                                        " AND startup_peak_mib = 1700"),
                    1);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM moves"), 2);
  g_array_unref (l.peaks);
}

/* SQLite: a database of schema 4 was this host's alone; opened for a host
 * id, every row gets it, and samples that were one per host name become
 * one per host. */
static void
test_migrate_host_id (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autofree char *path = g_build_filename (f->dir, "v4-host.db", NULL);

  VmemStore *old = vmem_store_sqlite_open_at_version (path, 4, &error);
  assert_no_error (error);
  vmem_store_free (old);
  raw_exec (path, old_rows_at (4));
  /* The same sample twice, under the host's old name and a newer one. */
  raw_exec (path,
            "INSERT INTO samples (uuid, host, workload, t, used_mib, rss_mib, current_mib,"
            "  available_mib, usable_mib, quality) VALUES"
            "  ('" UUID_A "', 'hostA-renamed', 'erp', 1700000010, 1500, 1600, 4096, 2500,"
            "   2596, 'guest');"
            "INSERT INTO moves (uuid, host, workload, t, action, mode, from_mib, to_mib,"
            "  applied, reason) VALUES ('" UUID_A "', 'hostA', 'erp', 1700000100, 'grow',"
            "  'balloon', 1024, 2048, 1, 'pressure');");

  g_autoptr(VmemStore) store = vmem_store_open_sqlite_as (path, "3d1219c7", &error);
  assert_no_error (error);
  assert_int_equal (vmem_store_schema_version (store), latest_version ());
  static const char *const tables[] = { "domains", SAMPLES_NAMED, PEAKS_NAMED, "runs",
                                        MOVES_NAMED, "plans" };
  for (guint i = 0; i < G_N_ELEMENTS (tables); i++)
    {
      g_autofree char *q = g_strdup_printf (
        "SELECT count(*) FROM %s WHERE host <> '3d1219c7'", tables[i]);
      if (raw_int (path, q) != 0)
        fail_msg ("%s: rows left with another host", tables[i]);
    }
  assert_int_equal (raw_int (path, "SELECT count(*) FROM samples"), 1);
  g_autoptr(GPtrArray) hosts = vmem_store_host_list (store, &error);
  assert_no_error (error);
  assert_int_equal (hosts->len, 1);
  const VmemHostRow *h = g_ptr_array_index (hosts, 0);
  assert_string_equal (h->id, "3d1219c7");
  assert_string_equal (h->name, "hostA");
  assert_int_equal (h->committed_mib, 6144);
  g_autoptr(VmemPlanRow) plan = vmem_store_plan_latest (store, UUID_A, &error);
  assert_string_equal (plan->host, "3d1219c7");
  /* The backup is the database as it was. */
  g_autofree char *bak = g_strdup_printf ("%s.bak-v4", path);
  assert_int_equal (raw_int (bak, "SELECT count(*) FROM samples"), 2);
}

/* ---- a locked database --------------------------------------------------- */

/* Another process holding the write lock (SQLite), or a lock on a table
 * the call writes (PostgreSQL), fails a call within the busy or lock
 * timeout (1 s), well inside the hook's budget, and the call changes
 * nothing; once the lock is gone the same call goes through. */
static void
test_locked_fails_fast (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VmemSample v[] = {
    sample (UUID_A, "erp", DAY0 + 10, 1000, TRUE, 2),
    sample (UUID_B, "erp", DAY0 + 20, 2000, FALSE, 4),
  };
  g_autoptr(GArray) peaks = batch_peaks (v, G_N_ELEMENTS (v));

  sqlite3 *other = NULL;
#if HAVE_LIBPQ
  PGconn *pg_other = NULL;
  if (backend == BACKEND_PG)
    {
      pg_other = pg_raw_open (f->target);
      PQclear (pg_raw_query (pg_other, "BEGIN; LOCK TABLE domains IN ACCESS EXCLUSIVE MODE"));
    }
  else
#endif
    {
      char *msg = NULL;
      other = sq_raw_open (f->target);
      if (sqlite3_exec (other, "BEGIN EXCLUSIVE", NULL, NULL, &msg) != SQLITE_OK)
        fail_msg ("cannot lock %s: %s", f->target, msg);
    }

  gint64 t0 = g_get_monotonic_time ();
  gboolean ok = vmem_store_samples_add (f->store, v, G_N_ELEMENTS (v), (VmemPeak *) peaks->data,
                                        peaks->len, &error);
  gint64 waited_ms = (g_get_monotonic_time () - t0) / 1000;
  assert_false (ok);
  assert_error (error, VMEM_ERROR_STORE_UNAVAILABLE);
  assert_contains (error->message, target_name (f));
  assert_contains (error->message, DIALECT ("locked", "lock timeout"));
  /* It did wait for the lock, and not for long. */
  if (waited_ms < 500 || waited_ms >= 3000)
    fail_msg ("a locked database failed the call after %" G_GINT64_FORMAT " ms", waited_ms);
  g_clear_error (&error);

#if HAVE_LIBPQ
  if (pg_other != NULL)
    {
      PQclear (pg_raw_query (pg_other, "ROLLBACK"));
      PQfinish (pg_other);
    }
#endif
  if (other != NULL)
    {
      char *msg = NULL;
      if (sqlite3_exec (other, "ROLLBACK", NULL, NULL, &msg) != SQLITE_OK)
        fail_msg ("cannot unlock %s: %s", f->target, msg);
      sqlite3_close (other);
    }
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM samples"), 0);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM peaks"), 0);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM domains"), 0);

  assert_true (vmem_store_samples_add (f->store, v, G_N_ELEMENTS (v), (VmemPeak *) peaks->data,
                                       peaks->len, &error));
  assert_no_error (error);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM samples"), 2);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM peaks"), 4);
}

/* ---- a batch that fails part way ----------------------------------------- */

/* A write the database itself refuses part way through a batch (here a
 * trigger, standing in for a full disk or a constraint): the call fails
 * with STORE and nothing of the batch is left, not its samples, domains,
 * run peaks nor the peaks written before the one refused. */
static void
test_batch_fails_midway (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  VmemSample first[] = { sample (UUID_A, "erp", DAY0 + 10, 1000, TRUE, 2) };
  add_samples (f, first, G_N_ELEMENTS (first));
  gint64 run = vmem_store_run_open (f->store, UUID_B, "hostA", "erp", DAY0, 0, &error);
  assert_no_error (error);
  assert_true (run > 0);

  raw_exec (f->target,
            DIALECT ("CREATE TRIGGER boom BEFORE INSERT ON peaks WHEN NEW.peak_mib = 666"
                     " BEGIN SELECT RAISE(ABORT, 'boom: refused'); END",
                     "CREATE FUNCTION boom () RETURNS trigger LANGUAGE plpgsql AS $$BEGIN"
                     "  IF NEW.peak_mib = 666 THEN RAISE EXCEPTION 'boom: refused'; END IF;"
                     "  RETURN NEW; END$$;"
                     "CREATE TRIGGER boom BEFORE INSERT ON peaks FOR EACH ROW"
                     "  EXECUTE FUNCTION boom ()"));
  VmemSample batch[] = {
    sample (UUID_A, "erp", DAY0 + 20, 3000, FALSE, 4),
    sample (UUID_B, "erp", DAY0 + 20, 4000, TRUE, 2),
    sample (UUID_C, "other", DAY0 + 20, 500, TRUE, 1),
  };
  g_autoptr(GArray) peaks = batch_peaks (batch, G_N_ELEMENTS (batch));
  VmemPeak bad = peak (UUID_C, "other", VMEM_STORE_DAY, DAY0 - 86400, 666, 1, 1, 1);
  g_array_append_val (peaks, bad);

  g_autofree char *before = raw_text (f->target, peaks_workloads_sql ());
  assert_false (vmem_store_samples_add (f->store, batch, G_N_ELEMENTS (batch),
                                        (VmemPeak *) peaks->data, peaks->len, &error));
  assert_error (error, VMEM_ERROR_STORE);
  assert_contains (error->message, "boom: refused");
  g_autofree char *which = g_strdup_printf ("peaks[%u]", peaks->len - 1);
  assert_contains (error->message, which);
  g_clear_error (&error);

  g_autofree char *after = raw_text (f->target, peaks_workloads_sql ());
  assert_string_equal (before, after);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM samples"), 1);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM domains"), 2);
  g_autoptr(GPtrArray) runs = vmem_store_run_list (f->store, UUID_B, 0, &error);
  assert_no_error (error);
  assert_int_equal (((VmemRun *) g_ptr_array_index (runs, 0))->peak_mib, 0);
  g_autoptr(VmemDomainRow) a = vmem_store_domain_get (f->store, UUID_A, &error);
  assert_no_error (error);
  assert_int_equal (a->last_seen, DAY0 + 10);

  /* The store goes on: without the trigger the same batch is written.
   * The ids the failed batch gave C and its workload went with it: a
   * domain and a workload written first now may take those numbers, and
   * each sample and peak still names its own. */
  raw_exec (f->target, DIALECT ("DROP TRIGGER boom", "DROP TRIGGER boom ON peaks"));
  VmemSample d = sample ("44444444-4444-4444-4444-444444444444", "fourth", DAY0 + 20, 444, TRUE, 1);
  add_samples (f, &d, 1);
  add_batch (f, batch, G_N_ELEMENTS (batch), (VmemPeak *) peaks->data, peaks->len);
  g_autoptr(GPtrArray) c_samples = vmem_store_sample_list (f->store, UUID_C, 0, 0, &error);
  assert_no_error (error);
  assert_int_equal (c_samples->len, 1);
  assert_int_equal (((VmemSampleRow *) g_ptr_array_index (c_samples, 0))->used_mib, 500);
  g_autoptr(GPtrArray) d_samples =
    vmem_store_sample_list (f->store, "44444444-4444-4444-4444-444444444444", 0, 0, &error);
  assert_int_equal (d_samples->len, 1);
  assert_int_equal (((VmemSampleRow *) g_ptr_array_index (d_samples, 0))->used_mib, 444);
  g_autoptr(GPtrArray) other_peaks =
    vmem_store_peaks_for_workload (f->store, "other", VMEM_STORE_HOUR, 0, &error);
  assert_no_error (error);
  assert_int_equal (other_peaks->len, 1);
  assert_string_equal (((VmemPeak *) g_ptr_array_index (other_peaks, 0))->uuid, UUID_C);
  g_autoptr(GPtrArray) fourth_peaks =
    vmem_store_peaks_for_workload (f->store, "fourth", VMEM_STORE_HOUR, 0, &error);
  assert_int_equal (fourth_peaks->len, 1);
  assert_int_equal (((VmemPeak *) g_ptr_array_index (fourth_peaks, 0))->peak_mib, 444);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM samples"), 5);
  g_autoptr(GPtrArray) runs2 = vmem_store_run_list (f->store, UUID_B, 0, &error);
  assert_int_equal (((VmemRun *) g_ptr_array_index (runs2, 0))->peak_mib, 4000);
}

/* ---- PostgreSQL only ------------------------------------------------------ */

#if HAVE_LIBPQ

typedef struct {
  const char *target;
  VmemStore *store;
  GError *error;
} Opener;

static gpointer
opener_run (gpointer data)
{
  Opener *o = data;
  o->store = vmem_store_open_pg (o->target, &o->error);
  return NULL;
}

static const char advisory_waiting_sql[] =
  "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
  " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())";

/* Opens @n stores of an empty database at once, on threads of their own,
 * and checks that every one ends at the latest schema, migrated once. */
static void
open_racing (const char *target, guint n, PGconn *holder)
{
  g_autofree Opener *o = g_new0 (Opener, n);
  g_autofree GThread **t = g_new0 (GThread *, n);

  for (guint i = 0; i < n; i++)
    {
      o[i].target = target;
      t[i] = g_thread_new ("opener", opener_run, &o[i]);
    }
  if (holder != NULL)
    {
      /* Every opener waits for the lock the test holds, past the lock
       * timeout that bounds other calls (1 s): a migration waits as long
       * as another host's takes.  Nothing is migrated meanwhile. */
      gint64 waiting = 0;
      for (guint tries = 0; tries < 200 && waiting < n; tries++)
        {
          g_usleep (50 * 1000);
          waiting = raw_int (target, advisory_waiting_sql);
        }
      assert_int_equal (waiting, n);
      g_usleep (1500 * 1000);
      assert_int_equal (raw_int (target, advisory_waiting_sql), n);
      g_autofree char *schema = raw_text (target, pg_schema_sql);
      assert_null (schema);
      g_autofree char *unlock = g_strdup_printf ("SELECT pg_advisory_unlock(%" G_GINT64_FORMAT ")",
                                                 VMEM_STORE_PG_MIGRATION_LOCK);
      PQclear (pg_raw_query (holder, unlock));
    }
  for (guint i = 0; i < n; i++)
    {
      g_thread_join (t[i]);
      assert_no_error (o[i].error);
      assert_non_null (o[i].store);
      assert_int_equal (vmem_store_schema_version (o[i].store), latest_version ());
      vmem_store_free (o[i].store);
    }
  assert_int_equal (raw_int (target, "SELECT count(*) FROM schema_version"), latest_version ());
  assert_int_equal (raw_int (target, "SELECT max(version) FROM schema_version"), latest_version ());
}

typedef struct {
  VmemStore *store;
  const char *host;
  guint n;
  guint failed;
} MoveWriter;

static gpointer
move_writer_run (gpointer data)
{
  MoveWriter *w = data;
  for (guint i = 0; i < w->n; i++)
    {
      g_autofree char *reason = g_strdup_printf ("%s %u", w->host, i);
      const VmemMoveRow row = { UUID_A, (char *) w->host, "erp", DAY0, "grow", "balloon",
                                1024, 1024 + i, TRUE, reason };
      g_autoptr(GError) error = NULL;
      if (!vmem_store_move_add (w->store, &row, &error))
        {
          if (w->failed++ == 0)
            g_printerr ("# %s: move %u: %s\n", w->host, i, error->message);
        }
    }
  return NULL;
}

/* Two hosts writing moves of the same domain in the same second (as in a
 * migration), at once: every move is kept, none collides with another on
 * the key, and each host's keep their order. */
static void
test_pg_moves_racing (void **state)
{
  Fixture *f = *state;
  g_autofree char *target = fresh_target (f, "moves");
  const guint n = 150;
  MoveWriter w[2] = { { .host = "hostA", .n = n }, { .host = "hostB", .n = n } };
  GThread *t[2];

  for (guint i = 0; i < 2; i++)
    {
      g_autoptr(GError) error = NULL;
      w[i].store = vmem_store_open_pg (target, &error);
      assert_no_error (error);
    }
  for (guint i = 0; i < 2; i++)
    t[i] = g_thread_new ("mover", move_writer_run, &w[i]);
  for (guint i = 0; i < 2; i++)
    g_thread_join (t[i]);
  assert_int_equal (w[0].failed, 0);
  assert_int_equal (w[1].failed, 0);

  g_autoptr(GError) error = NULL;
  g_autoptr(GPtrArray) out = vmem_store_move_list (w[0].store, UUID_A, 0, 0, &error);
  assert_no_error (error);
  assert_int_equal (out->len, 2 * n);
  guint next[2] = { 0, 0 };
  for (guint i = 0; i < out->len; i++)
    {
      const VmemMoveRow *m = g_ptr_array_index (out, i);
      guint h = g_str_equal (m->host, "hostA") ? 0 : 1;
      g_autofree char *want = g_strdup_printf ("%s %u", w[h].host, next[h]);
      assert_string_equal (m->reason, want);
      assert_int_equal (m->to_mib, 1024 + next[h]);
      next[h]++;
    }
  assert_int_equal (next[0], n);
  assert_int_equal (next[1], n);
  for (guint i = 0; i < 2; i++)
    vmem_store_free (w[i].store);
}

/* Hosts upgrading at once: each migration takes an advisory lock, so one
 * migrates while the others wait, then find the work done. */
static void
test_pg_concurrent_migration (void **state)
{
  Fixture *f = *state;
  g_autofree char *held = fresh_target (f, "held");
  PGconn *holder = pg_raw_open (held);
  g_autofree char *lock =
    g_strdup_printf ("SELECT pg_advisory_lock(%" G_GINT64_FORMAT ")", VMEM_STORE_PG_MIGRATION_LOCK);
  PQclear (pg_raw_query (holder, lock));
  open_racing (held, 2, holder);
  PQfinish (holder);

  /* And a free-for-all, several times over. */
  for (guint round = 0; round < 3; round++)
    {
      g_autofree char *target = fresh_target (f, "race");
      open_racing (target, 4, NULL);
    }

  /* A database already migrated is opened without the lock: holding it
   * does not hold up a start. */
  PGconn *other = pg_raw_open (f->target);
  PQclear (pg_raw_query (other, lock));
  g_autoptr(GError) error = NULL;
  gint64 t0 = g_get_monotonic_time ();
  g_autoptr(VmemStore) store = vmem_store_open_pg (f->target, &error);
  assert_no_error (error);
  assert_true (g_get_monotonic_time () - t0 < G_USEC_PER_SEC);
  PQfinish (other);
}

/* Terminates the store's sessions on the fixture's database, as a server
 * restart or failover would; how many there were. */
static gint64
terminate_store_sessions (const char *dbname)
{
  g_autofree char *sql = g_strdup_printf ("SELECT count(pg_terminate_backend(pid, 5000))"
                                          " FROM pg_stat_activity WHERE datname = '%s'"
                                          " AND application_name = 'vmemd'",
                                          dbname);
  PGconn *c = pg_raw_open (pg_admin ());
  PGresult *r = PQexec (c, sql);
  gint64 n =
    PQresultStatus (r) == PGRES_TUPLES_OK ? g_ascii_strtoll (PQgetvalue (r, 0, 0), NULL, 10) : -1;
  PQclear (r);
  PQfinish (c);
  return n;
}

static gpointer
terminate_later (gpointer dbname)
{
  g_usleep (300 * 1000);
  return GINT_TO_POINTER ((int) terminate_store_sessions (dbname));
}

/* A lost connection fails the call it happens in with STORE, and changes
 * nothing; the next call connects again and goes through. */
static void
test_pg_connection_lost (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  const char *dbname = g_ptr_array_index (f->dbs, 0);
  g_autoptr(VmemProfile) erp = profile ("erp", 2048);

  /* Lost while idle, between two calls. */
  assert_int_equal (terminate_store_sessions (dbname), 1);
  assert_false (vmem_store_profile_put (f->store, erp, VMEM_STORE_PUT_CREATE, &error));
  assert_error (error, VMEM_ERROR_STORE_UNAVAILABLE);
  assert_contains (error->message, target_name (f));
  g_clear_error (&error);
  assert_true (vmem_store_profile_put (f->store, erp, VMEM_STORE_PUT_CREATE, &error));
  assert_no_error (error);
  g_autoptr(VmemProfile) got = vmem_store_profile_get (f->store, "erp", &error);
  assert_no_error (error);
  assert_int_equal (got->demand_mib, 2048);

  /* Lost in the middle of a transaction, while it waits for a lock. */
  VmemSample v[] = {
    sample (UUID_A, "erp", DAY0 + 10, 1000, TRUE, 2),
    sample (UUID_B, "erp", DAY0 + 20, 2000, FALSE, 4),
  };
  g_autoptr(GArray) peaks = batch_peaks (v, G_N_ELEMENTS (v));
  PGconn *other = pg_raw_open (f->target);
  PQclear (pg_raw_query (other, "BEGIN; LOCK TABLE peaks IN ACCESS EXCLUSIVE MODE"));
  GThread *killer = g_thread_new ("terminate", terminate_later, (gpointer) dbname);
  assert_false (vmem_store_samples_add (f->store, v, G_N_ELEMENTS (v), (VmemPeak *) peaks->data,
                                        peaks->len, &error));
  assert_int_equal (GPOINTER_TO_INT (g_thread_join (killer)), 1);
  assert_error (error, VMEM_ERROR_STORE_UNAVAILABLE);
  assert_not_contains (error->message, "lock timeout");
  g_clear_error (&error);
  PQclear (pg_raw_query (other, "ROLLBACK"));
  PQfinish (other);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM samples"), 0);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM domains"), 0);

  add_batch (f, v, G_N_ELEMENTS (v), (VmemPeak *) peaks->data, peaks->len);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM samples"), 2);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM peaks"), 4);
}

/* @conninfo with @key set to @value. */
static char *
conninfo_with (const char *conninfo, const char *key, const char *value)
{
  g_autofree char *quoted = g_strescape (value, NULL);
  return g_strdup_printf ("%s %s='%s'", conninfo, key, quoted);
}

static char *
conninfo_value (const char *conninfo, const char *key)
{
  char *err = NULL;
  PQconninfoOption *opts = PQconninfoParse (conninfo, &err);
  char *out = NULL;
  for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
    if (g_str_equal (o->keyword, key) && o->val != NULL)
      out = g_strdup (o->val);
  PQconninfoFree (opts);
  return out;
}

/* A multi-host connection string: the hosts are tried in order, and on
 * reconnecting only a writable one is taken (target_session_attrs), as
 * after a failover where the old primary came back as a standby. */
static void
test_pg_multi_host (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  const char *dbname = g_ptr_array_index (f->dbs, 0);
  g_autofree char *host = conninfo_value (f->target, "host");
  if (host == NULL || host[0] != '/')
    fail_msg ("VMEM_TEST_PG must name the server by its socket directory (host=/...)");
  g_autofree char *dead = g_build_filename (f->dir, "no-server", NULL);
  g_autofree char *hosts = g_strdup_printf ("%s,%s", dead, host);
  g_autofree char *multi = conninfo_with (f->target, "host", hosts);
  g_autofree char *conninfo = conninfo_with (multi, "target_session_attrs", "read-write");

  g_clear_pointer (&f->store, vmem_store_free);
  f->store = vmem_store_open_pg (conninfo, &error);
  assert_no_error (error);
  g_autoptr(VmemProfile) a = profile ("a", 1);
  assert_true (vmem_store_profile_put (f->store, a, VMEM_STORE_PUT_CREATE, &error));
  assert_no_error (error);

  /* The only server left becomes read-only, and the session is lost. */
  g_autofree char *ro =
    g_strdup_printf ("ALTER DATABASE \"%s\" SET default_transaction_read_only = on", dbname);
  pg_raw_exec (pg_admin (), ro);
  assert_int_equal (terminate_store_sessions (dbname), 1);
  g_autoptr(VmemProfile) b = profile ("b", 2);
  assert_false (vmem_store_profile_put (f->store, b, VMEM_STORE_PUT_CREATE, &error));
  assert_error (error, VMEM_ERROR_STORE_UNAVAILABLE);
  g_clear_error (&error);
  /* No writable host: the call fails rather than write to a standby. */
  assert_false (vmem_store_profile_put (f->store, b, VMEM_STORE_PUT_CREATE, &error));
  assert_error (error, VMEM_ERROR_STORE_UNAVAILABLE);
  assert_contains (error->message, "cannot reconnect");
  assert_contains (error->message, "read-only");
  g_clear_error (&error);

  /* A writable server is back: the next call connects to it. */
  g_autofree char *rw =
    g_strdup_printf ("ALTER DATABASE \"%s\" RESET default_transaction_read_only", dbname);
  pg_raw_exec (pg_admin (), rw);
  assert_true (vmem_store_profile_put (f->store, b, VMEM_STORE_PUT_CREATE, &error));
  assert_no_error (error);
  g_autoptr(GPtrArray) list = vmem_store_profile_list (f->store, &error);
  assert_no_error (error);
  assert_int_equal (list->len, 2);

  /* No host answers at all. */
  g_autofree char *dead2 = g_build_filename (f->dir, "no-server-either", NULL);
  g_autofree char *none = g_strdup_printf ("%s,%s", dead, dead2);
  g_autofree char *nowhere = conninfo_with (f->target, "host", none);
  g_autoptr(VmemStore) store = vmem_store_open_pg (nowhere, &error);
  assert_null (store);
  assert_error (error, VMEM_ERROR_STORE_UNAVAILABLE);
  assert_contains (error->message, "cannot connect");
  assert_contains (error->message, none);
}

/* A password in the connection string is refused, never echoed, and so is
 * a string libpq cannot read; the messages name the server without it. */
static void
test_pg_conninfo (void **state)
{
  Fixture *f = *state;
  static const struct {
    const char *conninfo;
    const char *want;
  } refused[] = {
    { "host=db dbname=vmemd user=vmemd password=s3cret", "put it in a password file" },
    { "host=db dbname=vmemd user=vmemd password = 's3cret'", "passfile=PATH" },
    { "postgresql://vmemd:s3cret@db/vmemd", "~/.pgpass" },
    { "postgres://vmemd@db/vmemd?password=s3cret", "PGPASSFILE" },
    { "host=db dbname='vmemd password=s3cret", "not a libpq connection string" },
    { "host=db dbname=vmemd s3cret", "not a libpq connection string" },
    { "postgresql://vmemd:s3%zzcret@db/vmemd", "not a libpq connection string" },
    { "host=db dbnme=vmemd", "invalid connection option \"dbnme\"" },
  };

  for (guint i = 0; i < G_N_ELEMENTS (refused); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(VmemStore) store = vmem_store_open_pg (refused[i].conninfo, &error);
      assert_null (store);
      assert_error (error, VMEM_ERROR_CONFIG);
      assert_contains (error->message, "[store] postgres");
      assert_contains (error->message, refused[i].want);
      assert_not_contains (error->message, "s3");
    }

  /* The same through the configuration, and its check, which connects
   * to nothing. */
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemConfig) config = vmem_config_new_default ();
  config->backend = VMEM_STORE_POSTGRES;
  config->postgres = conninfo_with (f->target, "password", "s3cret");
  g_autoptr(VmemStore) store = vmem_store_open (config, &error);
  assert_null (store);
  assert_error (error, VMEM_ERROR_CONFIG);
  assert_not_contains (error->message, "s3");
  g_clear_error (&error);
  assert_false (vmem_store_check_config (config, &error));
  assert_error (error, VMEM_ERROR_CONFIG);
  assert_contains (error->message, "password file");
  assert_not_contains (error->message, "s3");
  g_clear_error (&error);
  g_free (config->postgres);
  config->postgres = g_strdup ("host=/nonexistent-vmem-server dbname=vmemd");
  assert_true (vmem_store_check_config (config, &error));
  assert_no_error (error);

  /* A server that cannot be reached: named by host, port, database and
   * user, not by the rest of the string (the password file's path). */
  g_autofree char *dead = g_build_filename (f->dir, "no-server", NULL);
  g_autofree char *nowhere = conninfo_with (f->target, "host", dead);
  g_autoptr(VmemStore) none = vmem_store_open_pg (nowhere, &error);
  assert_null (none);
  assert_error (error, VMEM_ERROR_STORE_UNAVAILABLE);
  g_autofree char *want = g_strdup_printf ("postgres (host=%s", dead);
  assert_contains (error->message, want);
  assert_contains (error->message, "cannot connect");
  assert_not_contains (error->message, "passfile");
}

#endif /* HAVE_LIBPQ */

/* ---- crash safety -------------------------------------------------------- */

#define CRASH_BATCH 200000

static guint crash_at;

static void
kill_self (guint index)
{
  if (index == crash_at)
    raise (SIGKILL);
}

static char *
peaks_digest (const char *path)
{
  return raw_text (path, "SELECT count(*) || '/' || sum(peak_mib) || '/' || sum(samples)"
                         " || '/' || sum(guest_samples) || '/' || sum(vcpus) FROM peaks");
}

static void
test_crash_mid_transaction (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;
  g_autoptr(GArray) first = g_array_new (FALSE, TRUE, sizeof (VmemSample));
  g_autoptr(GArray) second = g_array_new (FALSE, TRUE, sizeof (VmemSample));
  g_autoptr(GPtrArray) uuids = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; i < 50; i++)
    {
      VmemSample s = sample (UUID_A, "erp", DAY0 + i * 10, 1000 + i, TRUE, 2);
      g_array_append_val (first, s);
    }
  add_samples (f, (VmemSample *) first->data, first->len);
  gint64 run = vmem_store_run_open (f->store, UUID_B, "hostA", "erp", DAY0, 0, &error);
  assert_true (run > 0);

  /* The half batch is large enough to spill out of sqlite's page cache
   * into the WAL before the kill: recovery must ignore those frames. */
  for (guint i = 0; i < CRASH_BATCH; i++)
    {
      g_ptr_array_add (uuids, g_strdup_printf ("00000000-0000-0000-0000-%012u", i % 500));
      VmemSample s =
        sample (g_ptr_array_index (uuids, i), "erp", DAY0 + 7200 + i, 3000 + i % 97, TRUE, 2);
      g_array_append_val (second, s);
    }
  VmemSample run_sample = sample (UUID_B, "erp", DAY0 + 7200, 4000, TRUE, 2);
  g_array_prepend_val (second, run_sample);
  /* Peaks that replace rows already there, too. */
  VmemSample late = sample (UUID_A, "erp", DAY0 + 600, 2000, FALSE, 4);
  g_array_append_val (second, late);
  g_autoptr(GArray) peaks = batch_peaks ((VmemSample *) second->data, second->len);

  g_clear_pointer (&f->store, vmem_store_free);
  g_autofree char *before = peaks_digest (f->target);

  /* Killed while writing the samples, then while writing the peaks. */
  const guint points[] = { CRASH_BATCH / 2, second->len + peaks->len / 2 };
  for (guint k = 0; k < G_N_ELEMENTS (points); k++)
    {
      crash_at = points[k];
      pid_t pid = fork ();
      assert_true (pid >= 0);
      if (pid == 0)
        {
          g_autoptr(GError) child_error = NULL;
          VmemStore *store = vmem_store_open_sqlite (f->target, &child_error);
          if (store == NULL)
            _exit (2);
          vmem_store_sqlite_sample_hook = kill_self;
          vmem_store_samples_add (store, (VmemSample *) second->data, second->len,
                                  (VmemPeak *) peaks->data, peaks->len, &child_error);
          _exit (3); /* not reached: killed inside the transaction */
        }
      int status = 0;
      assert_int_equal (waitpid (pid, &status, 0), pid);
      if (!WIFSIGNALED (status) || WTERMSIG (status) != SIGKILL)
        fail_msg ("child was not killed mid-transaction at %u (status 0x%x)", crash_at, status);
      g_autofree char *wal = g_strdup_printf ("%s-wal", f->target);
      struct stat st;
      assert_int_equal (stat (wal, &st), 0);
      assert_true (st.st_size > 0);

      reopen (f);
      g_autofree char *check = raw_text (f->target, "PRAGMA integrity_check");
      assert_string_equal (check, "ok");
      assert_int_equal (raw_int (f->target, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
      assert_int_equal (raw_int (f->target, "SELECT count(*) FROM samples"), 50);
      g_autofree char *half =
        g_strdup_printf ("SELECT count(*) FROM samples WHERE t >= %" G_GINT64_FORMAT, DAY0 + 7200);
      assert_int_equal (raw_int (f->target, half), 0);
      assert_int_equal (raw_int (f->target, "SELECT count(*) FROM domains"), 2);
      g_autofree char *after = peaks_digest (f->target);
      assert_string_equal (before, after);
      g_autoptr(GPtrArray) runs = vmem_store_run_list (f->store, UUID_B, 0, &error);
      assert_int_equal (((VmemRun *) g_ptr_array_index (runs, 0))->peak_mib, 0);
      g_clear_pointer (&f->store, vmem_store_free);
    }

  /* And the store goes on working: the same batch, uninterrupted. */
  reopen (f);
  add_batch (f, (VmemSample *) second->data, second->len, (VmemPeak *) peaks->data, peaks->len);
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM samples"), 50 + CRASH_BATCH + 2);
  /* A's hour and day were replaced by the batch's own, the rest added. */
  assert_int_equal (raw_int (f->target, "SELECT count(*) FROM peaks"), peaks->len);
  g_autoptr(GPtrArray) hourly =
               vmem_store_peaks_for_workload (f->store, "erp", VMEM_STORE_HOUR, 0, &error);
  const VmemPeak *a0 = find_peak (hourly, UUID_A, DAY0);
  assert_int_equal (a0->peak_mib, 2000);
  assert_int_equal (a0->samples, 1);
  assert_int_equal (a0->guest_samples, 0);
  assert_int_equal (a0->vcpus, 4);
  g_autoptr(GPtrArray) runs2 = vmem_store_run_list (f->store, UUID_B, 0, &error);
  assert_int_equal (((VmemRun *) g_ptr_array_index (runs2, 0))->peak_mib, 4000);
}

/* Makes a database at schema @version holding old_rows, for a new fixture
 * in tests/data/db/ when a migration is added (see the README there). */
static int
make_fixture (const char *version, const char *path)
{
  g_autoptr(GError) error = NULL;
  int v = atoi (version);

  if (v < 1 || v > vmem_store_sqlite_latest_version ())
    {
      g_printerr ("version must be 1..%d\n", vmem_store_sqlite_latest_version ());
      return 1;
    }
  VmemStore *store = vmem_store_sqlite_open_at_version (path, v, &error);
  if (store == NULL)
    {
      g_printerr ("%s\n", error->message);
      return 1;
    }
  vmem_store_free (store);
  sqlite3 *db = NULL;
  char *msg = NULL;
  sqlite3_open (path, &db);
  if (sqlite3_exec (db, old_rows_at (v), NULL, NULL, &msg) != SQLITE_OK)
    {
      g_printerr ("%s: %s\n", path, msg);
      return 1;
    }
  sqlite3_exec (db, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
  sqlite3_close (db);
  return 0;
}

#if HAVE_LIBPQ
/* The PostgreSQL database CONNINFO at schema N, with old_rows, for a
 * pg_dump --inserts into tests/data/db/pg-vN.sql. */
static int
make_pg_fixture (const char *version, const char *conninfo)
{
  g_autoptr(GError) error = NULL;
  int v = atoi (version);
  if (v < 1 || v > vmem_store_pg_latest_version ())
    {
      g_printerr ("version must be 1..%d\n", vmem_store_pg_latest_version ());
      return 1;
    }
  VmemStore *store = vmem_store_pg_open_at_version (conninfo, v, &error);
  if (store == NULL)
    {
      g_printerr ("%s\n", error->message);
      return 1;
    }
  vmem_store_free (store);
  pg_raw_exec (conninfo, old_rows_at (v));
  return 0;
}
#endif

#define T(fn) cmocka_unit_test_setup_teardown (fn, setup, teardown)

/* On both backends. */
#define COMMON_TESTS                                                                               \
  T (test_open_fresh), T (test_same_schema), T (test_open_from_config), T (test_foreign_database), \
    T (test_newer_schema_refused), T (test_migrate_every_version),                                 \
    T (test_failed_migration_rolls_back), T (test_profile_crud), T (test_profile_invalid),         \
    T (test_profile_import), T (test_profile_import_all_or_nothing), T (test_domains),             \
    T (test_samples_peaks), T (test_peaks_latest), T (test_prune), T (test_thinning),        \
    T (test_runs),                  \
    T (test_moves_and_history), T (test_moves_compact), T (test_move_reasons_retention), T (test_outcomes), T (test_plans), T (test_hosts),                 \
    T (test_locked_fails_fast), T (test_batch_fails_midway), T (test_samples_idempotent),         \
    T (test_peers_across_hosts), T (test_buffer_while_away), T (test_writes_kept_while_away),    \
    T (test_writes_idempotent), T (test_writes_refused_not_kept)

static int
run_sqlite (void)
{
  const struct CMUnitTest tests[] = {
    COMMON_TESTS,
    T (test_not_a_database),
    T (test_database_group_follows_directory),
    T (test_migrate_fixtures),
    T (test_migrate_host_id),
    T (test_crash_mid_transaction),
  };
  backend = BACKEND_SQLITE;
  return cmocka_run_group_tests_name ("store-sqlite", tests, NULL, NULL);
}

static int
run_pg (void)
{
#if HAVE_LIBPQ
  const struct CMUnitTest tests[] = {
    COMMON_TESTS,
    T (test_pg_concurrent_migration),
    T (test_pg_migrate_fixtures),
    T (test_pg_connection_lost),
    T (test_pg_multi_host),
    T (test_pg_moves_racing),
    T (test_pg_conninfo),
  };
  /* A missing server is a failure, never a skip. */
  const char *admin = g_getenv ("VMEM_TEST_PG");
  if (admin == NULL || *admin == '\0')
    {
      g_printerr ("test-store --backend=postgres: VMEM_TEST_PG is not set.  It must be a libpq\n"
                  "connection string to an administrator's database on a PostgreSQL server the\n"
                  "tests may create databases on.  Start a private one (Debian's postgresql\n"
                  "package) and run the tests again:\n"
                  "    eval \"$(tools/test-postgres start)\"\n"
                  "    meson test -C build --suite unit\n"
                  "    tools/test-postgres stop \"$VMEM_TEST_PG_DIR\"\n");
      return 1;
    }
  backend = BACKEND_PG;
  return cmocka_run_group_tests_name ("store-postgres", tests, NULL, NULL);
#else
  g_printerr ("test-store: built without libpq: there is no PostgreSQL backend to test\n");
  return 1;
#endif
}

int
main (int argc, char **argv)
{
  if (argc == 4 && g_str_equal (argv[1], "--make-fixture"))
    return make_fixture (argv[2], argv[3]);
#if HAVE_LIBPQ
  if (argc == 4 && g_str_equal (argv[1], "--make-pg-fixture"))
    return make_pg_fixture (argv[2], argv[3]);
#endif
  if (argc == 2 && g_str_equal (argv[1], "--backend=postgres"))
    return run_pg ();
  if (argc == 2 && g_str_equal (argv[1], "--backend=sqlite"))
    return run_sqlite ();
  if (argc != 1)
    {
      g_printerr ("usage: test-store [--backend=sqlite|postgres | --make-fixture N PATH |"
                  " --make-pg-fixture N CONNINFO]\n");
      return 2;
    }
  return run_sqlite ();
}
