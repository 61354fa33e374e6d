/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The SQLite backend: WAL, foreign keys, a busy timeout, numbered
 * migrations each in one transaction, a backup before migrating. */
#include "vmem-store-private.h"
#include "vmem-error.h"

#include <errno.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3_stmt, sqlite3_finalize)

typedef struct {
  VmemStore parent;
  sqlite3  *db;
  char     *path;
  int       version;
} Sqlite;

static const char *const migrations[] = {
  /* 1: the first schema. */
  "CREATE TABLE profiles ("
  "  name TEXT PRIMARY KEY NOT NULL,"
  "  demand_mib INTEGER NOT NULL DEFAULT 0, floor_mib INTEGER NOT NULL DEFAULT 0,"
  "  ceiling_mib INTEGER NOT NULL DEFAULT 0, margin_pct REAL NOT NULL, quantile REAL NOT NULL,"
  "  buffer_pct REAL NOT NULL, mode TEXT NOT NULL, prealloc INTEGER NOT NULL,"
  "  scale TEXT NOT NULL, priority INTEGER NOT NULL, match TEXT,"
  "  created INTEGER NOT NULL, updated INTEGER NOT NULL);"
  "CREATE TABLE hosts ("
  "  name TEXT PRIMARY KEY NOT NULL, capacity_mib INTEGER NOT NULL, reserved_mib INTEGER NOT NULL,"
  "  overcommit REAL NOT NULL DEFAULT 1.0, committed_mib INTEGER NOT NULL DEFAULT 0,"
  "  heartbeat INTEGER NOT NULL);"
  "CREATE TABLE domains ("
  "  uuid TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, host TEXT NOT NULL, workload TEXT,"
  "  memory_mib INTEGER NOT NULL DEFAULT 0, vcpus INTEGER NOT NULL DEFAULT 0,"
  "  first_seen INTEGER NOT NULL, last_seen INTEGER NOT NULL);"
  "CREATE TABLE samples ("
  "  id INTEGER PRIMARY KEY, uuid TEXT NOT NULL REFERENCES domains(uuid) ON DELETE CASCADE,"
  "  host TEXT NOT NULL, workload TEXT NOT NULL, t INTEGER NOT NULL, used_mib INTEGER NOT NULL,"
  "  rss_mib INTEGER NOT NULL, current_mib INTEGER NOT NULL, available_mib INTEGER NOT NULL,"
  "  usable_mib INTEGER NOT NULL, quality TEXT NOT NULL CHECK (quality IN ('guest','rss')),"
  "  swap_in INTEGER NOT NULL DEFAULT 0, major_fault INTEGER NOT NULL DEFAULT 0,"
  "  vcpus INTEGER NOT NULL DEFAULT 0);"
  "CREATE INDEX samples_t ON samples(t);"
  "CREATE TABLE peaks ("
  "  uuid TEXT NOT NULL REFERENCES domains(uuid) ON DELETE CASCADE, workload TEXT NOT NULL,"
  "  host TEXT NOT NULL, interval_s INTEGER NOT NULL, start_t INTEGER NOT NULL,"
  "  peak_mib INTEGER NOT NULL, samples INTEGER NOT NULL, guest_samples INTEGER NOT NULL,"
  "  vcpus INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (uuid, interval_s, start_t));"
  "CREATE TABLE runs ("
  "  id INTEGER PRIMARY KEY, uuid TEXT NOT NULL REFERENCES domains(uuid) ON DELETE CASCADE,"
  "  host TEXT NOT NULL, workload TEXT NOT NULL, started INTEGER NOT NULL, stopped INTEGER,"
  "  stop_reason TEXT, demand_mib INTEGER NOT NULL DEFAULT 0);"
  "CREATE TABLE plans ("
  "  id INTEGER PRIMARY KEY, uuid TEXT NOT NULL, workload TEXT NOT NULL, t INTEGER NOT NULL,"
  "  demand_mib INTEGER NOT NULL, source TEXT NOT NULL, reasons TEXT);"
  "CREATE INDEX plans_uuid ON plans(uuid, id);",

  /* 2: run peaks (start-up phase and whole run), and the index the
   * estimator's per-workload read needs. */
  "ALTER TABLE runs ADD COLUMN startup_peak_mib INTEGER NOT NULL DEFAULT 0;"
  "ALTER TABLE runs ADD COLUMN peak_mib INTEGER NOT NULL DEFAULT 0;"
  "CREATE INDEX runs_open ON runs(uuid, stopped);"
  "CREATE INDEX peaks_workload ON peaks(workload, interval_s, start_t);",
};

static gboolean
sq_error (Sqlite *s, GError **error, const char *what)
{
  g_set_error (error, VMEM_ERROR, VMEM_ERROR_STORE, "%s: %s: %s", s->path, what,
               sqlite3_errmsg (s->db));
  return FALSE;
}

static gboolean
sq_exec (Sqlite *s, const char *sql, GError **error)
{
  char *msg = NULL;
  if (sqlite3_exec (s->db, sql, NULL, NULL, &msg) != SQLITE_OK)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_STORE, "%s: %s", s->path,
                   msg ? msg : sqlite3_errmsg (s->db));
      sqlite3_free (msg);
      return FALSE;
    }
  return TRUE;
}

static sqlite3_stmt *
sq_prepare (Sqlite *s, const char *sql, GError **error)
{
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2 (s->db, sql, -1, &st, NULL) != SQLITE_OK)
    {
      sq_error (s, error, "cannot prepare a statement");
      return NULL;
    }
  return st;
}

static gboolean
sq_step_done (Sqlite *s, sqlite3_stmt *st, GError **error)
{
  int rc = sqlite3_step (st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    return sq_error (s, error, "write failed");
  return TRUE;
}

static gboolean
tx_begin (Sqlite *s, GError **error)
{
  return sq_exec (s, "BEGIN IMMEDIATE", error);
}

static gboolean
tx_end (Sqlite *s, gboolean ok, GError **error)
{
  if (!ok)
    {
      sqlite3_exec (s->db, "ROLLBACK", NULL, NULL, NULL);
      return FALSE;
    }
  return sq_exec (s, "COMMIT", error);
}

static void
bind_text (sqlite3_stmt *st, int i, const char *v)
{
  if (v == NULL)
    sqlite3_bind_null (st, i);
  else
    sqlite3_bind_text (st, i, v, -1, SQLITE_TRANSIENT);
}

static char *
col_text (sqlite3_stmt *st, int i)
{
  const unsigned char *t = sqlite3_column_text (st, i);
  return t ? g_strdup ((const char *) t) : NULL;
}

/* ---- opening and migrations -------------------------------------------- */

static int
read_version (Sqlite *s, GError **error)
{
  if (!sq_exec (s, "CREATE TABLE IF NOT EXISTS schema_version ("
                   " version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)", error))
    return -1;
  g_autoptr(sqlite3_stmt) st = sq_prepare (s, "SELECT COALESCE(MAX(version), 0) FROM schema_version", error);
  if (st == NULL)
    return -1;
  if (sqlite3_step (st) != SQLITE_ROW)
    {
      sq_error (s, error, "cannot read the schema version");
      return -1;
    }
  return sqlite3_column_int (st, 0);
}

static gboolean
backup (Sqlite *s, int version, GError **error)
{
  g_autofree char *dest = g_strdup_printf ("%s.bak-v%d", s->path, version);
  sqlite3 *bdb = NULL;
  if (sqlite3_open (dest, &bdb) != SQLITE_OK)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_STORE, "cannot create backup %s", dest);
      sqlite3_close (bdb);
      return FALSE;
    }
  sqlite3_backup *b = sqlite3_backup_init (bdb, "main", s->db, "main");
  int rc = b ? sqlite3_backup_step (b, -1) : SQLITE_ERROR;
  sqlite3_backup_finish (b);
  sqlite3_close (bdb);
  if (rc != SQLITE_DONE)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_STORE, "cannot back up %s to %s", s->path, dest);
      return FALSE;
    }
  chmod (dest, 0640);
  g_message ("backed up %s (schema %d) to %s before migrating", s->path, version, dest);
  return TRUE;
}

static gboolean
migrate (Sqlite *s, int target, GError **error)
{
  int current = read_version (s, error);
  if (current < 0)
    return FALSE;
  int latest = (int) G_N_ELEMENTS (migrations);
  if (current > latest)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_STORE,
                   "%s has schema version %d, newer than this vmemd knows (%d): refusing to touch it",
                   s->path, current, latest);
      return FALSE;
    }
  if (current > 0 && current < target && !backup (s, current, error))
    return FALSE;
  for (int v = current + 1; v <= target; v++)
    {
      g_autoptr(GError) local = NULL;
      if (!tx_begin (s, error))
        return FALSE;
      g_autofree char *record = g_strdup_printf (
        "INSERT INTO schema_version(version, applied) VALUES (%d, strftime('%%s','now'))", v);
      gboolean ok = sq_exec (s, migrations[v - 1], &local) && sq_exec (s, record, &local);
      if (!tx_end (s, ok, &local))
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_STORE,
                       "migration to schema %d failed, database left at %d: %s", v, v - 1,
                       local ? local->message : "unknown error");
          return FALSE;
        }
    }
  s->version = target;
  return TRUE;
}

static const VmemStoreOps sqlite_ops;

VmemStore *
vmem_store_sqlite_open_at_version (const char *path, int version, GError **error)
{
  g_autofree char *dir = g_path_get_dirname (path);
  if (g_mkdir_with_parents (dir, 0750) < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_STORE, "cannot create %s: %s", dir,
                   g_strerror (errno));
      return NULL;
    }
  gboolean existed = g_file_test (path, G_FILE_TEST_EXISTS);

  Sqlite *s = g_new0 (Sqlite, 1);
  s->parent.ops = &sqlite_ops;
  s->path = g_strdup (path);
  g_autoptr(VmemStore) store = &s->parent;
  if (sqlite3_open_v2 (path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                       NULL) != SQLITE_OK)
    {
      sq_error (s, error, "cannot open");
      return NULL;
    }
  if (!existed)
    chmod (path, 0640);
  sqlite3_busy_timeout (s->db, 5000);
  sqlite3_extended_result_codes (s->db, 1);

  /* The first statement reads the header: a file that is not a database
   * fails here, before anything is written to it. */
  g_autoptr(GError) local = NULL;
  if (!sq_exec (s, "PRAGMA journal_mode=WAL", &local) ||
      !sq_exec (s, "PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL", &local))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_STORE, "%s is not a usable vmemd database: %s",
                   path, local->message);
      return NULL;
    }
  if (!migrate (s, version, error))
    return NULL;
  return g_steal_pointer (&store);
}

int
vmem_store_sqlite_latest_version (void)
{
  return (int) G_N_ELEMENTS (migrations);
}

VmemStore *
vmem_store_open_sqlite (const char *path, GError **error)
{
  return vmem_store_sqlite_open_at_version (path, vmem_store_sqlite_latest_version (), error);
}

static void
sq_free (VmemStore *store)
{
  Sqlite *s = (Sqlite *) store;
  if (s->db != NULL)
    sqlite3_close_v2 (s->db);
  g_free (s->path);
  g_free (s);
}

static int
sq_schema_version (VmemStore *store)
{
  return ((Sqlite *) store)->version;
}

/* ---- profiles ----------------------------------------------------------- */

#define PROFILE_COLS "name, demand_mib, floor_mib, ceiling_mib, margin_pct, quantile, buffer_pct, " \
                     "mode, prealloc, scale, priority, match, created, updated"

static VmemProfile *
profile_from_row (sqlite3_stmt *st)
{
  VmemProfile *p = vmem_profile_new ((const char *) sqlite3_column_text (st, 0));
  p->demand_mib = (guint64) sqlite3_column_int64 (st, 1);
  p->floor_mib = (guint64) sqlite3_column_int64 (st, 2);
  p->ceiling_mib = (guint64) sqlite3_column_int64 (st, 3);
  p->margin_pct = sqlite3_column_double (st, 4);
  p->quantile = sqlite3_column_double (st, 5);
  p->buffer_pct = sqlite3_column_double (st, 6);
  vmem_mode_from_string ((const char *) sqlite3_column_text (st, 7), &p->mode, NULL);
  p->prealloc = sqlite3_column_int (st, 8) != 0;
  vmem_scale_from_string ((const char *) sqlite3_column_text (st, 9), &p->scale, NULL);
  p->priority = sqlite3_column_int (st, 10);
  p->match = col_text (st, 11);
  p->created = sqlite3_column_int64 (st, 12);
  p->updated = sqlite3_column_int64 (st, 13);
  return p;
}

static GPtrArray *
sq_profile_list (VmemStore *store, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (s, "SELECT " PROFILE_COLS " FROM profiles ORDER BY name", error);
  if (st == NULL)
    return NULL;
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_profile_free);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    g_ptr_array_add (out, profile_from_row (st));
  if (rc != SQLITE_DONE)
    {
      sq_error (s, error, "cannot list profiles");
      return NULL;
    }
  return g_steal_pointer (&out);
}

static VmemProfile *
sq_profile_get (VmemStore *store, const char *name, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (s, "SELECT " PROFILE_COLS " FROM profiles WHERE name = ?", error);
  if (st == NULL)
    return NULL;
  bind_text (st, 1, name);
  int rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    return profile_from_row (st);
  if (rc == SQLITE_DONE)
    g_set_error (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no profile named '%s'", name);
  else
    sq_error (s, error, "cannot read a profile");
  return NULL;
}

/* Inside a transaction. */
static gboolean
profile_write (Sqlite *s, const VmemProfile *p, VmemStorePut mode, gboolean *was_created,
               GError **error)
{
  g_autoptr(sqlite3_stmt) q = sq_prepare (s, "SELECT created FROM profiles WHERE name = ?", error);
  if (q == NULL)
    return FALSE;
  bind_text (q, 1, p->name);
  int rc = sqlite3_step (q);
  if (rc != SQLITE_ROW && rc != SQLITE_DONE)
    return sq_error (s, error, "cannot read a profile");
  gboolean exists = rc == SQLITE_ROW;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  gint64 created = exists ? sqlite3_column_int64 (q, 0) : now;

  if (exists && mode == VMEM_STORE_PUT_CREATE)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_EXISTS,
                   "profile '%s' already exists (use profile set to change it)", p->name);
      return FALSE;
    }
  if (!exists && mode == VMEM_STORE_PUT_UPDATE)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no profile named '%s'", p->name);
      return FALSE;
    }
  g_autoptr(sqlite3_stmt) st = sq_prepare (s,
    "INSERT OR REPLACE INTO profiles (" PROFILE_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", error);
  if (st == NULL)
    return FALSE;
  bind_text (st, 1, p->name);
  sqlite3_bind_int64 (st, 2, (gint64) p->demand_mib);
  sqlite3_bind_int64 (st, 3, (gint64) p->floor_mib);
  sqlite3_bind_int64 (st, 4, (gint64) p->ceiling_mib);
  sqlite3_bind_double (st, 5, p->margin_pct);
  sqlite3_bind_double (st, 6, p->quantile);
  sqlite3_bind_double (st, 7, p->buffer_pct);
  bind_text (st, 8, vmem_mode_to_string (p->mode));
  sqlite3_bind_int (st, 9, p->prealloc ? 1 : 0);
  bind_text (st, 10, vmem_scale_to_string (p->scale));
  sqlite3_bind_int (st, 11, p->priority);
  bind_text (st, 12, p->match);
  sqlite3_bind_int64 (st, 13, created);
  sqlite3_bind_int64 (st, 14, now);
  if (was_created)
    *was_created = !exists;
  return sq_step_done (s, st, error);
}

static gboolean
sq_profile_put (VmemStore *store, const VmemProfile *p, VmemStorePut mode, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  if (!tx_begin (s, error))
    return FALSE;
  return tx_end (s, profile_write (s, p, mode, NULL, error), error);
}

static gboolean
sq_profile_delete (VmemStore *store, const char *name, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (s, "DELETE FROM profiles WHERE name = ?", error);
  if (st == NULL)
    return FALSE;
  bind_text (st, 1, name);
  if (!sq_step_done (s, st, error))
    return FALSE;
  if (sqlite3_changes (s->db) == 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no profile named '%s'", name);
      return FALSE;
    }
  return TRUE;
}

static gboolean
sq_profile_import (VmemStore *store, GPtrArray *profiles, gboolean replace, guint *created,
                   guint *updated, guint *deleted, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  guint c = 0, u = 0, d = 0;
  gboolean ok = TRUE;

  if (!tx_begin (s, error))
    return FALSE;
  for (guint i = 0; ok && i < profiles->len; i++)
    {
      gboolean was_created = FALSE;
      ok = profile_write (s, g_ptr_array_index (profiles, i), VMEM_STORE_PUT_UPSERT, &was_created, error);
      if (was_created)
        c++;
      else
        u++;
    }
  if (ok && replace)
    {
      g_autoptr(GString) sql = g_string_new ("DELETE FROM profiles WHERE name NOT IN (");
      for (guint i = 0; i < profiles->len; i++)
        g_string_append (sql, i ? ",?" : "?");
      g_string_append (sql, ")");
      g_autoptr(sqlite3_stmt) st = sq_prepare (s, sql->str, error);
      ok = st != NULL;
      for (guint i = 0; ok && i < profiles->len; i++)
        bind_text (st, (int) i + 1, ((VmemProfile *) g_ptr_array_index (profiles, i))->name);
      ok = ok && sq_step_done (s, st, error);
      if (ok)
        d = (guint) sqlite3_changes (s->db);
    }
  if (!tx_end (s, ok, error))
    return FALSE;
  if (created)
    *created = c;
  if (updated)
    *updated = u;
  if (deleted)
    *deleted = d;
  return TRUE;
}

/* ---- domains, samples, peaks -------------------------------------------- */

static gboolean
domain_write (Sqlite *s, const VmemDomainRow *r, GError **error)
{
  g_autoptr(sqlite3_stmt) st = sq_prepare (s,
    "INSERT INTO domains (uuid, name, host, workload, memory_mib, vcpus, first_seen, last_seen)"
    " VALUES (?1,?2,?3,?4,?5,?6,?7,?7) ON CONFLICT(uuid) DO UPDATE SET name=excluded.name,"
    " host=excluded.host, workload=excluded.workload, memory_mib=excluded.memory_mib,"
    " vcpus=excluded.vcpus, last_seen=excluded.last_seen", error);
  if (st == NULL)
    return FALSE;
  bind_text (st, 1, r->uuid);
  bind_text (st, 2, r->name);
  bind_text (st, 3, r->host);
  bind_text (st, 4, r->workload);
  sqlite3_bind_int64 (st, 5, (gint64) r->memory_mib);
  sqlite3_bind_int (st, 6, (int) r->vcpus);
  sqlite3_bind_int64 (st, 7, r->last_seen);
  return sq_step_done (s, st, error);
}

static gboolean
sq_domain_upsert (VmemStore *store, const VmemDomainRow *row, GError **error)
{
  return domain_write ((Sqlite *) store, row, error);
}

static gboolean
sq_samples_add (VmemStore *store, const VmemSample *v, guint n, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  if (!tx_begin (s, error))
    return FALSE;
  g_autoptr(sqlite3_stmt) ins = sq_prepare (s,
    "INSERT INTO samples (uuid, host, workload, t, used_mib, rss_mib, current_mib, available_mib,"
    " usable_mib, quality, swap_in, major_fault, vcpus) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", error);
  g_autoptr(sqlite3_stmt) peak = ins ? sq_prepare (s,
    "INSERT INTO peaks (uuid, workload, host, interval_s, start_t, peak_mib, samples, guest_samples, vcpus)"
    " VALUES (?1,?2,?3,?4,?5,?6,1,?7,?8) ON CONFLICT(uuid, interval_s, start_t) DO UPDATE SET"
    " peak_mib=max(peak_mib, excluded.peak_mib), samples=samples+1,"
    " guest_samples=guest_samples+excluded.guest_samples, vcpus=excluded.vcpus,"
    " workload=excluded.workload", error) : NULL;
  g_autoptr(sqlite3_stmt) run = peak ? sq_prepare (s,
    "UPDATE runs SET peak_mib=max(peak_mib, ?1), startup_peak_mib=CASE WHEN ?2 - started <= ?3"
    " THEN max(startup_peak_mib, ?1) ELSE startup_peak_mib END WHERE uuid=?4 AND stopped IS NULL",
    error) : NULL;
  gboolean ok = run != NULL;
  static const guint intervals[] = { 3600, 86400 };

  for (guint i = 0; ok && i < n; i++)
    {
      const VmemSample *x = &v[i];
      VmemDomainRow dr = { .uuid = x->uuid, .name = x->uuid, .host = x->host, .workload = x->workload,
                           .vcpus = x->vcpus, .last_seen = x->t };
      /* Samples reference their domain; make sure it is known. */
      g_autoptr(sqlite3_stmt) known = sq_prepare (s, "SELECT 1 FROM domains WHERE uuid = ?", error);
      ok = known != NULL;
      if (ok)
        {
          bind_text (known, 1, x->uuid);
          if (sqlite3_step (known) != SQLITE_ROW)
            ok = domain_write (s, &dr, error);
        }
      if (!ok)
        break;

      sqlite3_reset (ins);
      bind_text (ins, 1, x->uuid);
      bind_text (ins, 2, x->host);
      bind_text (ins, 3, x->workload);
      sqlite3_bind_int64 (ins, 4, x->t);
      sqlite3_bind_int64 (ins, 5, (gint64) x->used_mib);
      sqlite3_bind_int64 (ins, 6, (gint64) x->rss_mib);
      sqlite3_bind_int64 (ins, 7, (gint64) x->current_mib);
      sqlite3_bind_int64 (ins, 8, (gint64) x->available_mib);
      sqlite3_bind_int64 (ins, 9, (gint64) x->usable_mib);
      bind_text (ins, 10, x->guest_quality ? "guest" : "rss");
      sqlite3_bind_int64 (ins, 11, (gint64) x->swap_in);
      sqlite3_bind_int64 (ins, 12, (gint64) x->major_fault);
      sqlite3_bind_int (ins, 13, (int) x->vcpus);
      ok = sq_step_done (s, ins, error);

      for (guint k = 0; ok && k < G_N_ELEMENTS (intervals); k++)
        {
          sqlite3_reset (peak);
          bind_text (peak, 1, x->uuid);
          bind_text (peak, 2, x->workload);
          bind_text (peak, 3, x->host);
          sqlite3_bind_int (peak, 4, (int) intervals[k]);
          sqlite3_bind_int64 (peak, 5, x->t - x->t % intervals[k]);
          sqlite3_bind_int64 (peak, 6, (gint64) x->used_mib);
          sqlite3_bind_int (peak, 7, x->guest_quality ? 1 : 0);
          sqlite3_bind_int (peak, 8, (int) x->vcpus);
          ok = sq_step_done (s, peak, error);
        }
      if (ok)
        {
          sqlite3_reset (run);
          sqlite3_bind_int64 (run, 1, (gint64) x->used_mib);
          sqlite3_bind_int64 (run, 2, x->t);
          sqlite3_bind_int (run, 3, VMEM_STORE_STARTUP_WINDOW_S);
          bind_text (run, 4, x->uuid);
          ok = sq_step_done (s, run, error);
        }
    }
  return tx_end (s, ok, error);
}

static GPtrArray *
sq_peaks_for_workload (VmemStore *store, const char *workload, guint interval_s, gint64 since,
                       GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (s,
    "SELECT p.uuid, d.name, p.host, p.start_t, p.peak_mib, p.samples, p.guest_samples, p.vcpus"
    " FROM peaks p LEFT JOIN domains d ON d.uuid = p.uuid"
    " WHERE p.workload = ? AND p.interval_s = ? AND p.start_t >= ? ORDER BY p.start_t, p.uuid", error);
  if (st == NULL)
    return NULL;
  bind_text (st, 1, workload);
  sqlite3_bind_int (st, 2, (int) interval_s);
  sqlite3_bind_int64 (st, 3, since);
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_peak_free);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      VmemPeak *p = g_new0 (VmemPeak, 1);
      p->uuid = col_text (st, 0);
      p->domain = col_text (st, 1);
      p->host = col_text (st, 2);
      p->start_t = sqlite3_column_int64 (st, 3);
      p->peak_mib = (guint64) sqlite3_column_int64 (st, 4);
      p->samples = (guint) sqlite3_column_int (st, 5);
      p->guest_samples = (guint) sqlite3_column_int (st, 6);
      p->vcpus = (guint) sqlite3_column_int (st, 7);
      g_ptr_array_add (out, p);
    }
  if (rc != SQLITE_DONE)
    {
      sq_error (s, error, "cannot read peaks");
      return NULL;
    }
  return g_steal_pointer (&out);
}

static gboolean
sq_prune (VmemStore *store, gint64 now, guint raw_hours, guint peak_days, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autofree char *sql = g_strdup_printf (
    "DELETE FROM samples WHERE t < %" G_GINT64_FORMAT ";"
    "DELETE FROM peaks WHERE start_t < %" G_GINT64_FORMAT ";",
    now - (gint64) raw_hours * 3600, now - (gint64) peak_days * 86400);
  if (!tx_begin (s, error))
    return FALSE;
  return tx_end (s, sq_exec (s, sql, error), error);
}

/* ---- runs, plans, hosts ------------------------------------------------ */

static gint64
sq_run_open (VmemStore *store, const char *uuid, const char *host, const char *workload,
             gint64 started, guint64 demand_mib, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  if (!tx_begin (s, error))
    return -1;
  VmemDomainRow dr = { .uuid = uuid, .name = uuid, .host = host, .workload = workload, .last_seen = started };
  g_autoptr(sqlite3_stmt) known = sq_prepare (s, "SELECT 1 FROM domains WHERE uuid = ?", error);
  gboolean ok = known != NULL;
  if (ok)
    {
      bind_text (known, 1, uuid);
      if (sqlite3_step (known) != SQLITE_ROW)
        ok = domain_write (s, &dr, error);
    }
  g_autoptr(sqlite3_stmt) lost = ok ? sq_prepare (s,
    "UPDATE runs SET stopped = ?2, stop_reason = 'lost' WHERE uuid = ?1 AND stopped IS NULL", error) : NULL;
  ok = lost != NULL;
  if (ok)
    {
      bind_text (lost, 1, uuid);
      sqlite3_bind_int64 (lost, 2, started);
      ok = sq_step_done (s, lost, error);
    }
  g_autoptr(sqlite3_stmt) ins = ok ? sq_prepare (s,
    "INSERT INTO runs (uuid, host, workload, started, demand_mib) VALUES (?,?,?,?,?)", error) : NULL;
  ok = ins != NULL;
  if (ok)
    {
      bind_text (ins, 1, uuid);
      bind_text (ins, 2, host);
      bind_text (ins, 3, workload);
      sqlite3_bind_int64 (ins, 4, started);
      sqlite3_bind_int64 (ins, 5, (gint64) demand_mib);
      ok = sq_step_done (s, ins, error);
    }
  gint64 id = ok ? sqlite3_last_insert_rowid (s->db) : -1;
  return tx_end (s, ok, error) ? id : -1;
}

static gboolean
sq_run_close (VmemStore *store, const char *uuid, gint64 stopped, const char *reason,
              GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (s,
    "UPDATE runs SET stopped = ?2, stop_reason = ?3 WHERE uuid = ?1 AND stopped IS NULL", error);
  if (st == NULL)
    return FALSE;
  bind_text (st, 1, uuid);
  sqlite3_bind_int64 (st, 2, stopped);
  bind_text (st, 3, reason);
  if (!sq_step_done (s, st, error))
    return FALSE;
  if (sqlite3_changes (s->db) == 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no open run for %s", uuid);
      return FALSE;
    }
  return TRUE;
}

static GPtrArray *
sq_run_list (VmemStore *store, const char *uuid, guint limit, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (s,
    "SELECT id, uuid, host, workload, started, COALESCE(stopped, 0), stop_reason, demand_mib,"
    " startup_peak_mib, peak_mib FROM runs WHERE uuid = ? ORDER BY id DESC LIMIT ?", error);
  if (st == NULL)
    return NULL;
  bind_text (st, 1, uuid);
  sqlite3_bind_int (st, 2, (int) MAX (limit, 1u));
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_run_free);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      VmemRun *r = g_new0 (VmemRun, 1);
      r->id = sqlite3_column_int64 (st, 0);
      r->uuid = col_text (st, 1);
      r->host = col_text (st, 2);
      r->workload = col_text (st, 3);
      r->started = sqlite3_column_int64 (st, 4);
      r->stopped = sqlite3_column_int64 (st, 5);
      r->stop_reason = col_text (st, 6);
      r->demand_mib = (guint64) sqlite3_column_int64 (st, 7);
      r->startup_peak_mib = (guint64) sqlite3_column_int64 (st, 8);
      r->peak_mib = (guint64) sqlite3_column_int64 (st, 9);
      g_ptr_array_add (out, r);
    }
  if (rc != SQLITE_DONE)
    {
      sq_error (s, error, "cannot read runs");
      return NULL;
    }
  return g_steal_pointer (&out);
}

static gboolean
sq_plan_add (VmemStore *store, const VmemPlanRow *row, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (s,
    "INSERT INTO plans (uuid, workload, t, demand_mib, source, reasons) VALUES (?,?,?,?,?,?)", error);
  if (st == NULL)
    return FALSE;
  bind_text (st, 1, row->uuid);
  bind_text (st, 2, row->workload);
  sqlite3_bind_int64 (st, 3, row->t);
  sqlite3_bind_int64 (st, 4, (gint64) row->demand_mib);
  bind_text (st, 5, row->source);
  bind_text (st, 6, row->reasons_json);
  return sq_step_done (s, st, error);
}

static VmemPlanRow *
sq_plan_latest (VmemStore *store, const char *uuid, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (s,
    "SELECT uuid, workload, t, demand_mib, source, reasons FROM plans WHERE uuid = ?"
    " ORDER BY id DESC LIMIT 1", error);
  if (st == NULL)
    return NULL;
  bind_text (st, 1, uuid);
  int rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      VmemPlanRow *p = g_new0 (VmemPlanRow, 1);
      p->uuid = col_text (st, 0);
      p->workload = col_text (st, 1);
      p->t = sqlite3_column_int64 (st, 2);
      p->demand_mib = (guint64) sqlite3_column_int64 (st, 3);
      p->source = col_text (st, 4);
      p->reasons_json = col_text (st, 5);
      return p;
    }
  if (rc == SQLITE_DONE)
    g_set_error (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no plan staged for %s", uuid);
  else
    sq_error (s, error, "cannot read plans");
  return NULL;
}

static gboolean
sq_host_heartbeat (VmemStore *store, const VmemHostRow *r, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (s,
    "INSERT INTO hosts (name, capacity_mib, reserved_mib, overcommit, committed_mib, heartbeat)"
    " VALUES (?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET capacity_mib=excluded.capacity_mib,"
    " reserved_mib=excluded.reserved_mib, overcommit=excluded.overcommit,"
    " committed_mib=excluded.committed_mib, heartbeat=excluded.heartbeat", error);
  if (st == NULL)
    return FALSE;
  bind_text (st, 1, r->name);
  sqlite3_bind_int64 (st, 2, (gint64) r->capacity_mib);
  sqlite3_bind_int64 (st, 3, (gint64) r->reserved_mib);
  sqlite3_bind_double (st, 4, r->overcommit);
  sqlite3_bind_int64 (st, 5, (gint64) r->committed_mib);
  sqlite3_bind_int64 (st, 6, r->heartbeat);
  return sq_step_done (s, st, error);
}

static const VmemStoreOps sqlite_ops = {
  .name = "sqlite",
  .free = sq_free,
  .schema_version = sq_schema_version,
  .profile_list = sq_profile_list,
  .profile_get = sq_profile_get,
  .profile_put = sq_profile_put,
  .profile_delete = sq_profile_delete,
  .profile_import = sq_profile_import,
  .domain_upsert = sq_domain_upsert,
  .samples_add = sq_samples_add,
  .peaks_for_workload = sq_peaks_for_workload,
  .prune = sq_prune,
  .run_open = sq_run_open,
  .run_close = sq_run_close,
  .run_list = sq_run_list,
  .plan_add = sq_plan_add,
  .plan_latest = sq_plan_latest,
  .host_heartbeat = sq_host_heartbeat,
};
