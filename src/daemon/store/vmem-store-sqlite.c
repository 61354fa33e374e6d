/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The SQLite backend: WAL (readers never block the collector's writes, and
 * a crash at any point leaves the last committed state), foreign keys, a
 * busy timeout; numbered migrations, each in one transaction, after a
 * backup of the old database. */
#include "vmem-store-private.h"
#include "vmem-error.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3_stmt, sqlite3_finalize)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3, sqlite3_close)

void (*vmem_store_sqlite_sample_hook) (guint index) = NULL;

/* How long a call waits for another connection's lock before it fails.
 * Below the hook's default budget (2000 ms): a store job stuck on a lock
 * must not hold up, past that budget, an answer that waits behind it. */
#define BUSY_TIMEOUT_MS 1000

typedef struct {
  VmemStore parent;
  sqlite3 *db;
  char *path;
  char *host_id; /* given to the rows of an older schema; NULL: keep theirs */
  int version;
} Sqlite;

/* Never edit a migration once it has shipped: databases in the field were
 * made by it.  Add a new one; tests/data/db/ keeps a database of every
 * earlier version to prove it applies. */
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

  /* 3: retention deletes by age; without these it scans every peak and
   * plan once an hour.  Domains are listed per workload. */
  "CREATE INDEX peaks_start ON peaks(start_t);"
  "CREATE INDEX plans_t ON plans(t);"
  "CREATE INDEX domains_workload ON domains(workload, name);",

  /* 4: the on-demand controller's moves, kept as long as peaks. */
  "CREATE TABLE moves ("
  "  id INTEGER PRIMARY KEY, uuid TEXT NOT NULL, host TEXT NOT NULL, workload TEXT NOT NULL,"
  "  t INTEGER NOT NULL, action TEXT NOT NULL, mode TEXT NOT NULL, from_mib INTEGER NOT NULL,"
  "  to_mib INTEGER NOT NULL, applied INTEGER NOT NULL, reason TEXT NOT NULL);"
  "CREATE INDEX moves_uuid ON moves(uuid, t);"
  "CREATE INDEX moves_t ON moves(t);"
  "CREATE INDEX samples_uuid ON samples(uuid, t);",

  /* 5: several hosts.  Hosts are keyed by a stable id ([daemon] host_id),
   * the name kept for display, with what each has committed and reserved
   * and how often it beats; plans name their host; a sample is kept once
   * per host, domain and time, so that a batch written again adds
   * nothing.  A database of an earlier schema was this host's alone:
   * vmem_host_id() gives its rows this host's id. */
  "CREATE TABLE hosts_v5 ("
  "  id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, capacity_mib INTEGER NOT NULL,"
  "  reserved_mib INTEGER NOT NULL, overcommit REAL NOT NULL DEFAULT 1.0,"
  "  committed_mib INTEGER NOT NULL DEFAULT 0, reservations_mib INTEGER NOT NULL DEFAULT 0,"
  "  reservations INTEGER NOT NULL DEFAULT 0, domains INTEGER NOT NULL DEFAULT 0,"
  "  interval_s INTEGER NOT NULL DEFAULT 30, heartbeat INTEGER NOT NULL);"
  "INSERT OR IGNORE INTO hosts_v5 (id, name, capacity_mib, reserved_mib, overcommit,"
  "  committed_mib, heartbeat)"
  "  SELECT vmem_host_id(name), name, capacity_mib, reserved_mib, overcommit, committed_mib,"
  "  heartbeat FROM hosts ORDER BY heartbeat DESC;"
  "DROP TABLE hosts;"
  "ALTER TABLE hosts_v5 RENAME TO hosts;"
  "UPDATE domains SET host = vmem_host_id(host);"
  "UPDATE samples SET host = vmem_host_id(host);"
  "UPDATE peaks SET host = vmem_host_id(host);"
  "UPDATE runs SET host = vmem_host_id(host);"
  "UPDATE moves SET host = vmem_host_id(host);"
  "ALTER TABLE plans ADD COLUMN host TEXT NOT NULL DEFAULT '';"
  "UPDATE plans SET host = COALESCE((SELECT d.host FROM domains d WHERE d.uuid = plans.uuid),"
  "  vmem_host_id(''));"
  "DELETE FROM samples WHERE id NOT IN (SELECT MIN(id) FROM samples GROUP BY host, uuid, t);"
  "CREATE UNIQUE INDEX samples_key ON samples(host, uuid, t);"
  "CREATE INDEX peaks_host ON peaks(host);",
  /* 6: the profile's risk, the target its margin is calibrated to, and the
   * outcomes of past starts it is calibrated on. */
  "ALTER TABLE profiles ADD COLUMN risk_pct REAL NOT NULL DEFAULT 5;"
  "CREATE TABLE outcomes ("
  "  id INTEGER PRIMARY KEY, uuid TEXT NOT NULL, host TEXT NOT NULL, workload TEXT NOT NULL,"
  "  kind TEXT NOT NULL, start_t INTEGER NOT NULL, end_t INTEGER NOT NULL,"
  "  base_mib REAL NOT NULL, given_mib REAL NOT NULL, peak_mib REAL NOT NULL,"
  "  risk REAL NOT NULL, censored INTEGER NOT NULL);"
  "CREATE INDEX outcomes_end ON outcomes(end_t);",
  /* 7: compact samples and peaks.  Their domain, host and workload are
   * integer ids, each kept in its own table; a sample holds only what
   * the history reads, keyed by domain, time and host (the reads of a
   * domain's history and retention's deletes take that key, no other
   * index); the domains stay in `domains`.  Every sample and peak is
   * kept; a sample's workload, vCPUs, swap-in and major faults, which
   * nothing read back, are not. */
  "CREATE TABLE domain_ids (id INTEGER PRIMARY KEY, uuid TEXT NOT NULL);"
  "CREATE UNIQUE INDEX domain_ids_uuid ON domain_ids(uuid);"
  "CREATE TABLE host_ids (id INTEGER PRIMARY KEY, host TEXT NOT NULL);"
  "CREATE UNIQUE INDEX host_ids_host ON host_ids(host);"
  "CREATE TABLE workload_ids (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
  "CREATE UNIQUE INDEX workload_ids_name ON workload_ids(name);"
  "INSERT INTO domain_ids (uuid) SELECT uuid FROM domains UNION SELECT uuid FROM samples"
  "  UNION SELECT uuid FROM peaks;"
  "INSERT INTO host_ids (host) SELECT host FROM samples UNION SELECT host FROM peaks;"
  "INSERT INTO workload_ids (name) SELECT DISTINCT workload FROM peaks;"
  "CREATE TABLE samples_v7 ("
  "  domain_id INTEGER NOT NULL REFERENCES domain_ids(id), t INTEGER NOT NULL,"
  "  host_id INTEGER NOT NULL REFERENCES host_ids(id), used_mib INTEGER NOT NULL,"
  "  current_mib INTEGER NOT NULL, available_mib INTEGER NOT NULL,"
  "  usable_mib INTEGER NOT NULL, rss_mib INTEGER NOT NULL, guest INTEGER NOT NULL,"
  "  PRIMARY KEY (domain_id, t, host_id)) WITHOUT ROWID;"
  "INSERT INTO samples_v7 SELECT d.id, s.t, h.id, s.used_mib, s.current_mib, s.available_mib,"
  "  s.usable_mib, s.rss_mib, s.quality = 'guest' FROM samples s"
  "  JOIN domain_ids d ON d.uuid = s.uuid JOIN host_ids h ON h.host = s.host;"
  "DROP TABLE samples;"
  "ALTER TABLE samples_v7 RENAME TO samples;"
  "CREATE TABLE peaks_v7 ("
  "  domain_id INTEGER NOT NULL REFERENCES domain_ids(id), interval_s INTEGER NOT NULL,"
  "  start_t INTEGER NOT NULL, host_id INTEGER NOT NULL REFERENCES host_ids(id),"
  "  workload_id INTEGER NOT NULL REFERENCES workload_ids(id), peak_mib INTEGER NOT NULL,"
  "  samples INTEGER NOT NULL, guest_samples INTEGER NOT NULL, vcpus INTEGER NOT NULL,"
  "  PRIMARY KEY (domain_id, interval_s, start_t)) WITHOUT ROWID;"
  "INSERT INTO peaks_v7 SELECT d.id, p.interval_s, p.start_t, h.id, w.id, p.peak_mib, p.samples,"
  "  p.guest_samples, p.vcpus FROM peaks p JOIN domain_ids d ON d.uuid = p.uuid"
  "  JOIN host_ids h ON h.host = p.host JOIN workload_ids w ON w.name = p.workload;"
  "DROP TABLE peaks;"
  "ALTER TABLE peaks_v7 RENAME TO peaks;"
  "CREATE INDEX peaks_workload ON peaks(workload_id, interval_s, start_t);"
  "CREATE INDEX peaks_start ON peaks(start_t);",
  /* 8: compact moves.  A move names its domain, host and workload by the
   * ids of schema 7, its action and mode by the id of the word in
   * move_words, and is keyed by domain, time and its rank among the
   * domain's moves of that second (the order they were written in): the
   * history's read and retention's delete take that key, no other index.
   * Its reason sentence is kept apart under the same key, so that
   * retention can drop it sooner than the move's figures.  Every move is
   * kept, with its reason. */
  "CREATE TABLE move_words (id INTEGER PRIMARY KEY, word TEXT NOT NULL);"
  "CREATE UNIQUE INDEX move_words_word ON move_words(word);"
  "INSERT INTO domain_ids (uuid) SELECT DISTINCT uuid FROM moves"
  "  WHERE uuid NOT IN (SELECT uuid FROM domain_ids);"
  "INSERT INTO host_ids (host) SELECT DISTINCT host FROM moves"
  "  WHERE host NOT IN (SELECT host FROM host_ids);"
  "INSERT INTO workload_ids (name) SELECT DISTINCT workload FROM moves"
  "  WHERE workload NOT IN (SELECT name FROM workload_ids);"
  "INSERT INTO move_words (word) SELECT action FROM moves UNION SELECT mode FROM moves;"
  "CREATE TABLE moves_v8 ("
  "  domain_id INTEGER NOT NULL REFERENCES domain_ids(id), t INTEGER NOT NULL,"
  "  seq INTEGER NOT NULL, host_id INTEGER NOT NULL REFERENCES host_ids(id),"
  "  workload_id INTEGER NOT NULL REFERENCES workload_ids(id),"
  "  action_id INTEGER NOT NULL REFERENCES move_words(id),"
  "  mode_id INTEGER NOT NULL REFERENCES move_words(id), from_mib INTEGER NOT NULL,"
  "  to_mib INTEGER NOT NULL, applied INTEGER NOT NULL,"
  "  PRIMARY KEY (domain_id, t, seq)) WITHOUT ROWID;"
  "CREATE TABLE move_reasons ("
  "  domain_id INTEGER NOT NULL, t INTEGER NOT NULL, seq INTEGER NOT NULL,"
  "  reason TEXT NOT NULL, PRIMARY KEY (domain_id, t, seq)) WITHOUT ROWID;"
  "CREATE TEMP TABLE moves_ranked AS SELECT d.id AS domain_id, m.t, row_number() OVER"
  "  (PARTITION BY m.uuid, m.t ORDER BY m.id) - 1 AS seq, m.id AS old_id FROM moves m"
  "  JOIN domain_ids d ON d.uuid = m.uuid;"
  "INSERT INTO moves_v8 SELECT r.domain_id, r.t, r.seq, h.id, w.id, a.id, o.id, m.from_mib,"
  "  m.to_mib, m.applied FROM moves m JOIN moves_ranked r ON r.old_id = m.id"
  "  JOIN host_ids h ON h.host = m.host JOIN workload_ids w ON w.name = m.workload"
  "  JOIN move_words a ON a.word = m.action JOIN move_words o ON o.word = m.mode;"
  "INSERT INTO move_reasons SELECT r.domain_id, r.t, r.seq, m.reason FROM moves m"
  "  JOIN moves_ranked r ON r.old_id = m.id;"
  "DROP TABLE moves_ranked;"
  "DROP TABLE moves;"
  "ALTER TABLE moves_v8 RENAME TO moves;",
};

/* The error code of sqlite's result @rc: VMEM_ERROR_STORE_UNAVAILABLE
 * when the same call may succeed later (another connection holds the lock,
 * the disk is full or failing, the file cannot be opened or written for
 * now, memory ran out), else VMEM_ERROR_STORE (a constraint, a type, SQL
 * the schema does not fit, a damaged file: trying again repeats it). */
static VmemErrorCode
sq_code (int rc)
{
  switch (rc & 0xff)
    {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
    case SQLITE_PROTOCOL:
    case SQLITE_INTERRUPT:
      return VMEM_ERROR_STORE_UNAVAILABLE;
    default:
      return VMEM_ERROR_STORE;
    }
}

/* The one place where sqlite errors become GErrors: the path, what was
 * being done, and sqlite's own message. */
static gboolean sq_error (Sqlite *s, GError **error, const char *format, ...) G_GNUC_PRINTF (3, 4);

static gboolean
sq_error (Sqlite *s, GError **error, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  g_autofree char *what = g_strdup_vprintf (format, ap);
  va_end (ap);
  g_set_error (error, VMEM_ERROR, sq_code (s->db ? sqlite3_extended_errcode (s->db) : SQLITE_NOMEM),
               "%s: %s: %s", s->path, what, s->db ? sqlite3_errmsg (s->db) : "out of memory");
  return FALSE;
}

static gboolean
sq_exec (Sqlite *s, const char *sql, const char *what, GError **error)
{
  g_autofree char *msg = NULL;
  char *m = NULL;
  int rc = sqlite3_exec (s->db, sql, NULL, NULL, &m);
  if (rc == SQLITE_OK)
    return TRUE;
  msg = g_strdup (m);
  sqlite3_free (m);
  g_set_error (error, VMEM_ERROR, sq_code (rc), "%s: %s: %s", s->path, what,
               msg ? msg : sqlite3_errmsg (s->db));
  return FALSE;
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

/* Runs a statement that returns no rows (or whose rows do not matter). */
static gboolean
sq_run (Sqlite *s, sqlite3_stmt *st, const char *what, GError **error)
{
  int rc = sqlite3_step (st);
  sqlite3_reset (st);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW)
    return sq_error (s, error, "%s", what);
  return TRUE;
}

static gboolean
tx_begin (Sqlite *s, GError **error)
{
  /* IMMEDIATE takes the write lock now, so a busy database fails (after
   * the busy timeout) before anything is done rather than at COMMIT. */
  return sq_exec (s, "BEGIN IMMEDIATE", "cannot start a transaction", error);
}

/* Commits when @ok, else rolls back; returns @ok && committed. */
static gboolean
tx_end (Sqlite *s, gboolean ok, GError **error)
{
  if (ok && sq_exec (s, "COMMIT", "cannot commit", error))
    return TRUE;
  if (!sqlite3_get_autocommit (s->db))
    sqlite3_exec (s->db, "ROLLBACK", NULL, NULL, NULL);
  return FALSE;
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

/* Creates @path as an empty file (an empty file is an empty database) with
 * mode 0640, so the database is never readable by everyone, not even for
 * a moment. */
static gboolean
create_private_file (const char *path, GError **error)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
  if (fd < 0 && errno == EEXIST)
    return TRUE;
  if (fd < 0 || fchmod (fd, 0640) < 0)
    {
      int saved = errno;
      if (fd >= 0)
        close (fd);
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_STORE, "cannot create %s: %s", path,
                   g_strerror (saved));
      return FALSE;
    }
  close (fd);
  return TRUE;
}

static gboolean
query_int (Sqlite *s, const char *sql, gint64 *out, GError **error)
{
  g_autoptr(sqlite3_stmt) st = sq_prepare (s, sql, error);
  if (st == NULL)
    return FALSE;
  if (sqlite3_step (st) != SQLITE_ROW)
    return sq_error (s, error, "cannot read the schema");
  *out = sqlite3_column_int64 (st, 0);
  return TRUE;
}

/* The schema version, 0 for an empty database; -1 with @error set for a
 * database that is not vmemd's.  Only reads. */
static int
read_version (Sqlite *s, GError **error)
{
  gint64 tables = 0, has_version = 0, version = 0;

  if (!query_int (s, "SELECT count(*) FROM sqlite_master", &tables, error) ||
      !query_int (s,
                  "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                  " AND name = 'schema_version'",
                  &has_version, error))
    return -1;
  if (has_version == 0 && tables > 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_STORE,
                   "%s: holds tables but no schema_version: not a vmemd database", s->path);
      return -1;
    }
  if (has_version > 0 &&
      !query_int (s, "SELECT COALESCE(MAX(version), 0) FROM schema_version", &version, error))
    return -1;
  return (int) version;
}

static gboolean
backup (Sqlite *s, int version, GError **error)
{
  g_autofree char *dest = g_strdup_printf ("%s.bak-v%d", s->path, version);
  g_autoptr(sqlite3) bdb = NULL;

  /* A backup of an earlier attempt at the same version is replaced: the
   * database is still at that version, and may have more data now. */
  if (unlink (dest) < 0 && errno != ENOENT)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_STORE, "cannot replace backup %s: %s", dest,
                   g_strerror (errno));
      return FALSE;
    }
  if (!create_private_file (dest, error))
    return FALSE;
  int rc = sqlite3_open_v2 (dest, &bdb, SQLITE_OPEN_READWRITE, NULL);
  if (rc == SQLITE_OK)
    {
      sqlite3_backup *b = sqlite3_backup_init (bdb, "main", s->db, "main");
      rc = b ? sqlite3_backup_step (b, -1) : sqlite3_errcode (bdb);
      int rc2 = sqlite3_backup_finish (b);
      if (rc == SQLITE_DONE)
        rc = rc2;
    }
  if (rc != SQLITE_OK)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_STORE,
                   "%s: cannot back up to %s before migrating: %s", s->path, dest,
                   bdb ? sqlite3_errmsg (bdb) : sqlite3_errstr (rc));
      return FALSE;
    }
  g_message ("backed up %s (schema %d) to %s before migrating", s->path, version, dest);
  return TRUE;
}

static gboolean
apply_migration (Sqlite *s, int v, GError **error)
{
  if (!tx_begin (s, error))
    return FALSE;
  /* Another process may have migrated while this one waited for the lock. */
  int current = read_version (s, error);
  gboolean ok = current >= 0;
  if (ok && current < v)
    {
      g_autofree char *record = g_strdup_printf (
        "INSERT INTO schema_version (version, applied) VALUES (%d, strftime('%%s', 'now'))", v);
      ok = (v > 1 || sq_exec (s,
                              "CREATE TABLE schema_version ("
                              " version INTEGER PRIMARY KEY, applied INTEGER NOT NULL)",
                              "cannot create schema_version", error)) &&
           sq_exec (s, migrations[v - 1], "cannot apply the migration", error) &&
           sq_exec (s, record, "cannot record the migration", error);
    }
  if (!tx_end (s, ok, error))
    {
      g_prefix_error (error, "migration to schema %d failed, the database is unchanged: ", v);
      return FALSE;
    }
  return TRUE;
}

/* The journal mode is the database's; the rest are the connection's. */
static gboolean
set_options (Sqlite *s, GError **error)
{
  g_autoptr(sqlite3_stmt) wal = sq_prepare (s, "PRAGMA journal_mode = WAL", error);
  if (wal == NULL)
    return FALSE;
  /* Some file systems cannot share the WAL index; sqlite then keeps the
   * old mode and says so in the result, not as an error. */
  if (sqlite3_step (wal) != SQLITE_ROW ||
      g_ascii_strcasecmp ((const char *) sqlite3_column_text (wal, 0), "wal") != 0)
    return sq_error (s, error, "cannot switch to WAL journal mode");
  g_clear_pointer (&wal, sqlite3_finalize);
  return sq_exec (s, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL",
                  "cannot set the connection's options", error);
}

static const VmemStoreOps sqlite_ops;

/* vmem_host_id(HOST) in a migration: this host's id, or HOST itself when
 * the store was opened without one. */
static void
sql_host_id (sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
  Sqlite *s = sqlite3_user_data (ctx);
  if (s->host_id != NULL)
    sqlite3_result_text (ctx, s->host_id, -1, SQLITE_TRANSIENT);
  else
    sqlite3_result_value (ctx, argv[0]);
}

VmemStore *
vmem_store_sqlite_open_at_version (const char *path, int target, GError **error)
{
  return vmem_store_sqlite_open_full (path, target, NULL, error);
}

VmemStore *
vmem_store_sqlite_open_full (const char *path, int target, const char *host_id, GError **error)
{
  const int latest = (int) G_N_ELEMENTS (migrations);
  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (target >= 1 && target <= latest, NULL);

  g_autofree char *dir = g_path_get_dirname (path);
  if (g_mkdir_with_parents (dir, 0750) < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_STORE, "cannot create directory %s: %s", dir,
                   g_strerror (errno));
      return NULL;
    }
  /* SQLite writes the database, its WAL and its shared memory file there:
   * say so rather than "unable to open database file" later. */
  if (access (dir, W_OK) < 0 && errno == EROFS)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_STORE,
                   "cannot use the store %s: %s is on a read-only filesystem", path, dir);
      return NULL;
    }
  if (!create_private_file (path, error))
    return NULL;

  Sqlite *s = g_new0 (Sqlite, 1);
  s->parent.ops = &sqlite_ops;
  s->parent.startup_window_s = VMEM_STORE_STARTUP_WINDOW_S;
  s->path = g_strdup (path);
  s->host_id = g_strdup (host_id);
  g_autoptr(VmemStore) store = &s->parent;

  /* No mutex of its own: the connection may move from the thread that
   * opens it to the store's worker, but is never used by two at once. */
  if (sqlite3_open_v2 (path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
      SQLITE_OK)
    {
      sq_error (s, error, "cannot open the database");
      return NULL;
    }
  sqlite3_extended_result_codes (s->db, 1);
  sqlite3_busy_timeout (s->db, BUSY_TIMEOUT_MS);
  if (sqlite3_create_function (s->db, "vmem_host_id", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, s,
                               sql_host_id, NULL, NULL) != SQLITE_OK)
    {
      sq_error (s, error, "cannot register vmem_host_id()");
      return NULL;
    }

  /* Everything up to here only read: a file that is not a database, not
   * vmemd's, or of a newer schema is refused as it was found. */
  int current = read_version (s, error);
  if (current < 0)
    {
      g_prefix_error (error, "%s is not a usable vmemd database: ", path);
      return NULL;
    }
  if (current > latest)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_STORE,
                   "%s has schema version %d, newer than this vmemd knows (%d): "
                   "refusing to use it; run a newer vmemd",
                   path, current, latest);
      return NULL;
    }

  if (!set_options (s, error))
    return NULL;

  if (current > 0 && current < target && !backup (s, current, error))
    return NULL;
  for (int v = current + 1; v <= target; v++)
    if (!apply_migration (s, v, error))
      return NULL;
  s->version = MAX (current, target);
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
  return vmem_store_sqlite_open_full (path, vmem_store_sqlite_latest_version (), NULL, error);
}

VmemStore *
vmem_store_open_sqlite_as (const char *path, const char *host_id, GError **error)
{
  return vmem_store_sqlite_open_full (path, vmem_store_sqlite_latest_version (), host_id, error);
}

static void
sq_free (VmemStore *store)
{
  Sqlite *s = (Sqlite *) store;
  if (s->db != NULL)
    sqlite3_close_v2 (s->db);
  g_free (s->path);
  g_free (s->host_id);
  g_free (s);
}

static const char *
sq_location (VmemStore *store)
{
  return ((Sqlite *) store)->path;
}

static int
sq_schema_version (VmemStore *store)
{
  return ((Sqlite *) store)->version;
}

/* ---- profiles ----------------------------------------------------------- */

#define PROFILE_COLS                                                             \
  "name, demand_mib, floor_mib, ceiling_mib, margin_pct, quantile, buffer_pct, " \
  "mode, prealloc, scale, priority, match, created, updated, risk_pct"

static VmemProfile *
profile_from_row (Sqlite *s, sqlite3_stmt *st, GError **error)
{
  g_autoptr(VmemProfile) p = vmem_profile_new ((const char *) sqlite3_column_text (st, 0));
  p->demand_mib = (guint64) sqlite3_column_int64 (st, 1);
  p->floor_mib = (guint64) sqlite3_column_int64 (st, 2);
  p->ceiling_mib = (guint64) sqlite3_column_int64 (st, 3);
  p->margin_pct = sqlite3_column_double (st, 4);
  p->quantile = sqlite3_column_double (st, 5);
  p->buffer_pct = sqlite3_column_double (st, 6);
  p->prealloc = sqlite3_column_int (st, 8) != 0;
  p->priority = sqlite3_column_int (st, 10);
  p->match = col_text (st, 11);
  p->created = sqlite3_column_int64 (st, 12);
  p->updated = sqlite3_column_int64 (st, 13);
  p->risk_pct = sqlite3_column_double (st, 14);
  /* The store is input too: a row changed behind vmemd's back is reported,
   * not used. */
  if (!vmem_mode_from_string ((const char *) sqlite3_column_text (st, 7), &p->mode, error) ||
      !vmem_scale_from_string ((const char *) sqlite3_column_text (st, 9), &p->scale, error) ||
      !vmem_profile_validate (p, error))
    {
      g_prefix_error (error, "%s: profile '%s' in the database: ", s->path, p->name);
      return NULL;
    }
  return g_steal_pointer (&p);
}

static GPtrArray *
sq_profile_list (VmemStore *store, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st =
               sq_prepare (s, "SELECT " PROFILE_COLS " FROM profiles ORDER BY name", error);
  if (st == NULL)
    return NULL;
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_profile_free);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      VmemProfile *p = profile_from_row (s, st, error);
      if (p == NULL)
        return NULL;
      g_ptr_array_add (out, p);
    }
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
  g_autoptr(sqlite3_stmt) st =
               sq_prepare (s, "SELECT " PROFILE_COLS " FROM profiles WHERE name = ?", error);
  if (st == NULL)
    return NULL;
  bind_text (st, 1, name);
  int rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    return profile_from_row (s, st, error);
  if (rc == SQLITE_DONE)
    g_set_error (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no profile named '%s'", name);
  else
    sq_error (s, error, "cannot read profile '%s'", name);
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
    return sq_error (s, error, "cannot read profile '%s'", p->name);
  gboolean exists = rc == SQLITE_ROW;
  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  gint64 created = exists ? sqlite3_column_int64 (q, 0) : now;

  if (exists && mode == VMEM_STORE_PUT_CREATE)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_EXISTS, "profile '%s' already exists", p->name);
      return FALSE;
    }
  if (!exists && mode == VMEM_STORE_PUT_UPDATE)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no profile named '%s'", p->name);
      return FALSE;
    }
  g_autoptr(sqlite3_stmt) st = sq_prepare (
    s,
    "INSERT INTO profiles (" PROFILE_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT(name) DO UPDATE SET demand_mib=excluded.demand_mib,"
    " floor_mib=excluded.floor_mib, ceiling_mib=excluded.ceiling_mib,"
    " margin_pct=excluded.margin_pct, quantile=excluded.quantile, buffer_pct=excluded.buffer_pct,"
    " mode=excluded.mode, prealloc=excluded.prealloc, scale=excluded.scale,"
    " priority=excluded.priority, match=excluded.match, updated=excluded.updated,"
    " risk_pct=excluded.risk_pct",
    error);
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
  sqlite3_bind_double (st, 15, p->risk_pct);
  if (was_created != NULL)
    *was_created = !exists;
  return sq_run (s, st, "cannot write a profile", error);
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
  if (!sq_run (s, st, "cannot delete a profile", error))
    return FALSE;
  if (sqlite3_changes (s->db) == 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no profile named '%s'", name);
      return FALSE;
    }
  return TRUE;
}

/* Inside a transaction: deletes the profiles not named in @keep. */
static gboolean
profiles_delete_others (Sqlite *s, GHashTable *keep, guint *deleted, GError **error)
{
  g_autoptr(sqlite3_stmt) names = sq_prepare (s, "SELECT name FROM profiles", error);
  g_autoptr(sqlite3_stmt) del =
               names ? sq_prepare (s, "DELETE FROM profiles WHERE name = ?", error) : NULL;
  g_autoptr(GPtrArray) doomed = g_ptr_array_new_with_free_func (g_free);
  int rc;

  if (del == NULL)
    return FALSE;
  while ((rc = sqlite3_step (names)) == SQLITE_ROW)
    {
      const char *name = (const char *) sqlite3_column_text (names, 0);
      if (!g_hash_table_contains (keep, name))
        g_ptr_array_add (doomed, g_strdup (name));
    }
  if (rc != SQLITE_DONE)
    return sq_error (s, error, "cannot list profiles");
  for (guint i = 0; i < doomed->len; i++)
    {
      bind_text (del, 1, g_ptr_array_index (doomed, i));
      if (!sq_run (s, del, "cannot delete a profile", error))
        return FALSE;
    }
  *deleted = doomed->len;
  return TRUE;
}

static gboolean
sq_profile_import (VmemStore *store, GPtrArray *profiles, gboolean replace, guint *created,
                   guint *updated, guint *deleted, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(GHashTable) names = g_hash_table_new (g_str_hash, g_str_equal);
  guint c = 0, u = 0, d = 0;
  gboolean ok = TRUE;

  if (!tx_begin (s, error))
    return FALSE;
  for (guint i = 0; ok && i < profiles->len; i++)
    {
      const VmemProfile *p = g_ptr_array_index (profiles, i);
      gboolean was_created = FALSE;
      ok = profile_write (s, p, VMEM_STORE_PUT_UPSERT, &was_created, error);
      if (!ok)
        g_prefix_error (error, "profiles[%u]: ", i);
      else if (was_created)
        c++;
      else
        u++;
      g_hash_table_add (names, p->name);
    }
  if (ok && replace)
    ok = profiles_delete_others (s, names, &d, error);
  if (!tx_end (s, ok, error))
    return FALSE;
  if (created != NULL)
    *created = c;
  if (updated != NULL)
    *updated = u;
  if (deleted != NULL)
    *deleted = d;
  return TRUE;
}

/* ---- domains ------------------------------------------------------------ */

#define DOMAIN_COLS "uuid, name, host, workload, memory_mib, vcpus, last_seen, first_seen"

static VmemDomainRow *
domain_from_row (sqlite3_stmt *st)
{
  VmemDomainRow *r = g_new0 (VmemDomainRow, 1);
  r->uuid = col_text (st, 0);
  r->name = col_text (st, 1);
  r->host = col_text (st, 2);
  r->workload = col_text (st, 3);
  r->memory_mib = (guint64) sqlite3_column_int64 (st, 4);
  r->vcpus = (guint) sqlite3_column_int (st, 5);
  r->last_seen = sqlite3_column_int64 (st, 6);
  r->first_seen = sqlite3_column_int64 (st, 7);
  return r;
}

static gboolean
sq_domain_upsert (VmemStore *store, const VmemDomainRow *r, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (
    s,
    "INSERT INTO domains (" DOMAIN_COLS ") VALUES (?1,?2,?3,?4,?5,?6,?7,?7)"
    " ON CONFLICT(uuid) DO UPDATE SET name=excluded.name, host=excluded.host,"
    " workload=excluded.workload, memory_mib=excluded.memory_mib, vcpus=excluded.vcpus,"
    " last_seen=max(last_seen, excluded.last_seen)",
    error);
  if (st == NULL)
    return FALSE;
  bind_text (st, 1, r->uuid);
  bind_text (st, 2, r->name);
  bind_text (st, 3, r->host);
  bind_text (st, 4, r->workload);
  sqlite3_bind_int64 (st, 5, (gint64) r->memory_mib);
  sqlite3_bind_int (st, 6, (int) r->vcpus);
  sqlite3_bind_int64 (st, 7, r->last_seen);
  return sq_run (s, st, "cannot record a domain", error);
}

static VmemDomainRow *
sq_domain_get (VmemStore *store, const char *uuid, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st =
               sq_prepare (s, "SELECT " DOMAIN_COLS " FROM domains WHERE uuid = ?", error);
  if (st == NULL)
    return NULL;
  bind_text (st, 1, uuid);
  int rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    return domain_from_row (st);
  if (rc == SQLITE_DONE)
    g_set_error (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no domain with uuid %s", uuid);
  else
    sq_error (s, error, "cannot read domain %s", uuid);
  return NULL;
}

static GPtrArray *
sq_domain_list (VmemStore *store, const char *workload, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (
    s,
    workload ? "SELECT " DOMAIN_COLS " FROM domains WHERE workload = ? ORDER BY name, uuid"
             : "SELECT " DOMAIN_COLS " FROM domains ORDER BY name, uuid",
    error);
  if (st == NULL)
    return NULL;
  if (workload != NULL)
    bind_text (st, 1, workload);
  g_autoptr(GPtrArray) out =
               g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_domain_row_free);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    g_ptr_array_add (out, domain_from_row (st));
  if (rc != SQLITE_DONE)
    {
      sq_error (s, error, "cannot list domains");
      return NULL;
    }
  return g_steal_pointer (&out);
}

/* ---- samples and peaks -------------------------------------------------- */

typedef struct {
  sqlite3_stmt *domain, *sample, *run, *peak_domain, *peak;
} SampleStatements;

static void
sample_statements_clear (SampleStatements *ss)
{
  sqlite3_finalize (ss->domain);
  sqlite3_finalize (ss->sample);
  sqlite3_finalize (ss->run);
  sqlite3_finalize (ss->peak_domain);
  sqlite3_finalize (ss->peak);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (SampleStatements, sample_statements_clear)

static gboolean
sample_statements_prepare (Sqlite *s, SampleStatements *ss, GError **error)
{
  /* Samples reference their domain; one not seen yet gets a row named by
   * its uuid until vmem_store_domain_upsert() tells its name. */
  ss->domain =
    sq_prepare (s,
                "INSERT INTO domains (uuid, name, host, workload, vcpus, first_seen, last_seen)"
                " VALUES (?1,?1,?2,?3,?4,?5,?5) ON CONFLICT(uuid) DO UPDATE SET host=excluded.host,"
                " workload=excluded.workload, last_seen=max(last_seen, excluded.last_seen)",
                error);
  if (ss->domain == NULL)
    return FALSE;
  ss->sample = sq_prepare (
    s,
    "INSERT INTO samples (domain_id, t, host_id, used_mib, current_mib, available_mib,"
    " usable_mib, rss_mib, guest) VALUES (?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT(domain_id, t, host_id) DO NOTHING",
    error);
  if (ss->sample == NULL)
    return FALSE;
  ss->run =
    sq_prepare (s,
                "UPDATE runs SET peak_mib=max(peak_mib, ?1),"
                " startup_peak_mib=CASE WHEN ?2 - started <= ?3 THEN max(startup_peak_mib, ?1)"
                " ELSE startup_peak_mib END"
                " WHERE uuid=?4 AND stopped IS NULL AND started <= ?2",
                error);
  if (ss->run == NULL)
    return FALSE;
  /* A peak's domain is usually known by now (its samples come first); one
   * that is not gets the same placeholder row, and a known one is left as
   * its samples and upserts made it. */
  ss->peak_domain =
    sq_prepare (s,
                "INSERT INTO domains (uuid, name, host, workload, vcpus, first_seen, last_seen)"
                " VALUES (?1,?1,?2,?3,?4,?5,?5) ON CONFLICT(uuid) DO NOTHING",
                error);
  if (ss->peak_domain == NULL)
    return FALSE;
  /* The caller computed the whole row: nothing of the old one is kept. */
  ss->peak =
    sq_prepare (s,
                "INSERT INTO peaks (domain_id, interval_s, start_t, host_id, workload_id, peak_mib,"
                " samples, guest_samples, vcpus) VALUES (?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(domain_id, interval_s, start_t) DO UPDATE SET"
                " host_id=excluded.host_id, workload_id=excluded.workload_id,"
                " peak_mib=excluded.peak_mib, samples=excluded.samples,"
                " guest_samples=excluded.guest_samples, vcpus=excluded.vcpus",
                error);
  return ss->peak != NULL;
}

static gboolean
sample_write (Sqlite *s, SampleStatements *ss, const VmemSample *x, GError **error)
{
  bind_text (ss->domain, 1, x->uuid);
  bind_text (ss->domain, 2, x->host);
  bind_text (ss->domain, 3, x->workload);
  sqlite3_bind_int (ss->domain, 4, (int) x->vcpus);
  sqlite3_bind_int64 (ss->domain, 5, x->t);
  if (!sq_run (s, ss->domain, "cannot record a domain", error))
    return FALSE;

  gint64 domain_id, host_id;
  if (!vmem_store_key (&s->parent, VMEM_STORE_KEY_DOMAIN, x->uuid, &domain_id, error) ||
      !vmem_store_key (&s->parent, VMEM_STORE_KEY_HOST, x->host, &host_id, error))
    return FALSE;
  sqlite3_bind_int64 (ss->sample, 1, domain_id);
  sqlite3_bind_int64 (ss->sample, 2, x->t);
  sqlite3_bind_int64 (ss->sample, 3, host_id);
  sqlite3_bind_int64 (ss->sample, 4, (gint64) x->used_mib);
  sqlite3_bind_int64 (ss->sample, 5, (gint64) x->current_mib);
  sqlite3_bind_int64 (ss->sample, 6, (gint64) x->available_mib);
  sqlite3_bind_int64 (ss->sample, 7, (gint64) x->usable_mib);
  sqlite3_bind_int64 (ss->sample, 8, (gint64) x->rss_mib);
  sqlite3_bind_int (ss->sample, 9, x->guest_quality ? 1 : 0);
  if (!sq_run (s, ss->sample, "cannot record a sample", error))
    return FALSE;

  sqlite3_bind_int64 (ss->run, 1, (gint64) x->used_mib);
  sqlite3_bind_int64 (ss->run, 2, x->t);
  sqlite3_bind_int64 (ss->run, 3, s->parent.startup_window_s);
  bind_text (ss->run, 4, x->uuid);
  return sq_run (s, ss->run, "cannot update a run's peaks", error);
}

static gboolean
peak_write (Sqlite *s, SampleStatements *ss, const VmemPeak *p, GError **error)
{
  bind_text (ss->peak_domain, 1, p->uuid);
  bind_text (ss->peak_domain, 2, p->host);
  bind_text (ss->peak_domain, 3, p->workload);
  sqlite3_bind_int (ss->peak_domain, 4, (int) p->vcpus);
  sqlite3_bind_int64 (ss->peak_domain, 5, p->start_t);
  if (!sq_run (s, ss->peak_domain, "cannot record a domain", error))
    return FALSE;

  gint64 domain_id, host_id, workload_id;
  if (!vmem_store_key (&s->parent, VMEM_STORE_KEY_DOMAIN, p->uuid, &domain_id, error) ||
      !vmem_store_key (&s->parent, VMEM_STORE_KEY_HOST, p->host, &host_id, error) ||
      !vmem_store_key (&s->parent, VMEM_STORE_KEY_WORKLOAD, p->workload, &workload_id, error))
    return FALSE;
  sqlite3_bind_int64 (ss->peak, 1, domain_id);
  sqlite3_bind_int (ss->peak, 2, (int) p->interval_s);
  sqlite3_bind_int64 (ss->peak, 3, p->start_t);
  sqlite3_bind_int64 (ss->peak, 4, host_id);
  sqlite3_bind_int64 (ss->peak, 5, workload_id);
  sqlite3_bind_int64 (ss->peak, 6, (gint64) p->peak_mib);
  sqlite3_bind_int64 (ss->peak, 7, p->samples);
  sqlite3_bind_int64 (ss->peak, 8, p->guest_samples);
  sqlite3_bind_int64 (ss->peak, 9, p->vcpus);
  return sq_run (s, ss->peak, "cannot write a peak", error);
}

static gboolean
sq_samples_add (VmemStore *store, const VmemSample *v, guint n, const VmemPeak *peaks,
                guint n_peaks, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_auto(SampleStatements) ss = {
    NULL,
  };
  gboolean ok;

  if (!sample_statements_prepare (s, &ss, error) || !tx_begin (s, error))
    return FALSE;
  ok = TRUE;
  for (guint i = 0; ok && i < n; i++)
    {
      ok = sample_write (s, &ss, &v[i], error);
      if (!ok)
        g_prefix_error (error, "samples[%u] (%s): ", i, v[i].uuid);
      else if (vmem_store_sqlite_sample_hook != NULL)
        vmem_store_sqlite_sample_hook (i);
    }
  for (guint i = 0; ok && i < n_peaks; i++)
    {
      ok = peak_write (s, &ss, &peaks[i], error);
      if (!ok)
        g_prefix_error (error, "peaks[%u] (%s): ", i, peaks[i].uuid);
      else if (vmem_store_sqlite_sample_hook != NULL)
        vmem_store_sqlite_sample_hook (n + i);
    }
  return tx_end (s, ok, error);
}

#define PEAK_COLS                                                                      \
  "di.uuid, d.name, hi.host, wi.name, p.interval_s, p.start_t, p.peak_mib, p.samples," \
  " p.guest_samples, p.vcpus"
/* The peaks p with their domain's, host's and workload's names. */
#define PEAK_FROM                                                                     \
  " FROM peaks p JOIN domain_ids di ON di.id = p.domain_id"                           \
  " JOIN host_ids hi ON hi.id = p.host_id JOIN workload_ids wi ON wi.id = p.workload_id" \
  " LEFT JOIN domains d ON d.uuid = di.uuid"

/* Steps @st, a SELECT of PEAK_COLS, to the end. */
static GPtrArray *
peaks_read (Sqlite *s, sqlite3_stmt *st, const char *what, GError **error)
{
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_peak_free);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      VmemPeak *p = g_new0 (VmemPeak, 1);
      p->uuid = col_text (st, 0);
      p->domain = col_text (st, 1);
      p->host = col_text (st, 2);
      p->workload = col_text (st, 3);
      p->interval_s = (guint) sqlite3_column_int64 (st, 4);
      p->start_t = sqlite3_column_int64 (st, 5);
      p->peak_mib = (guint64) sqlite3_column_int64 (st, 6);
      p->samples = (guint) sqlite3_column_int64 (st, 7);
      p->guest_samples = (guint) sqlite3_column_int64 (st, 8);
      p->vcpus = (guint) sqlite3_column_int64 (st, 9);
      g_ptr_array_add (out, p);
    }
  if (rc != SQLITE_DONE)
    {
      sq_error (s, error, "cannot read %s", what);
      return NULL;
    }
  return g_steal_pointer (&out);
}

static GPtrArray *
sq_peaks_for_workload (VmemStore *store, const char *workload, guint interval_s, gint64 since,
                       GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (
    s,
    "SELECT " PEAK_COLS PEAK_FROM
    " WHERE p.workload_id = (SELECT id FROM workload_ids WHERE name = ?)"
    " AND p.interval_s = ? AND p.start_t >= ? ORDER BY p.start_t, di.uuid",
    error);
  if (st == NULL)
    return NULL;
  bind_text (st, 1, workload);
  sqlite3_bind_int (st, 2, (int) interval_s);
  sqlite3_bind_int64 (st, 3, since);
  g_autofree char *what = g_strdup_printf ("the peaks of workload '%s'", workload);
  return peaks_read (s, st, what, error);
}

static GPtrArray *
sq_peaks_latest (VmemStore *store, gint64 since, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  /* The inner max() is a lookup in the primary key (domain_id,
   * interval_s, start_t); the outer range uses peaks_start. */
  g_autoptr(sqlite3_stmt) st = sq_prepare (
    s,
    "SELECT " PEAK_COLS PEAK_FROM
    " WHERE p.start_t >= ?1 AND p.start_t = (SELECT max(q.start_t) FROM peaks q"
    "  WHERE q.domain_id = p.domain_id AND q.interval_s = p.interval_s)"
    " ORDER BY di.uuid, p.interval_s",
    error);
  if (st == NULL)
    return NULL;
  sqlite3_bind_int64 (st, 1, since);
  return peaks_read (s, st, "the latest peaks", error);
}

static gboolean
sq_prune (VmemStore *store, gint64 raw_before, gint64 thin_before, guint thin_s,
          gint64 peak_before, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  enum { RAW, THIN, PEAK, REASON };
  /* Samples are reached through their key, one domain after another. */
  static const struct {
    const char *sql;
    int before;
  } steps[] = {
    { "DELETE FROM samples WHERE domain_id IN (SELECT id FROM domain_ids) AND t < ?1", RAW },
    { "DELETE FROM samples WHERE (domain_id, t, host_id) IN (SELECT domain_id, t, host_id FROM"
      " (SELECT domain_id, t, host_id, row_number() OVER (PARTITION BY domain_id, t / ?3"
      "   ORDER BY used_mib DESC, t, host_id) AS n FROM samples"
      "  WHERE domain_id IN (SELECT id FROM domain_ids) AND t >= ?2 AND t < ?1) WHERE n > 1)",
      THIN },
    { "DELETE FROM peaks WHERE start_t < ?1", PEAK },
    /* A move's reason goes with the raw samples (or with its move, if
     * that goes first), its figures with the peaks. */
    { "DELETE FROM move_reasons WHERE domain_id IN (SELECT id FROM domain_ids) AND t < ?1",
      REASON },
    { "DELETE FROM moves WHERE domain_id IN (SELECT id FROM domain_ids) AND t < ?1", PEAK },
    { "DELETE FROM outcomes WHERE end_t < ?1", PEAK },
    /* A domain's latest plan is what explain shows, however old. */
    { "DELETE FROM plans WHERE t < ?1 AND id NOT IN (SELECT max(id) FROM plans GROUP BY uuid)",
      PEAK },
  };
  gboolean ok = TRUE;

  if (!tx_begin (s, error))
    return FALSE;
  for (guint i = 0; ok && i < G_N_ELEMENTS (steps); i++)
    {
      if (steps[i].before == THIN && thin_s == 0)
        continue;
      g_autoptr(sqlite3_stmt) st = sq_prepare (s, steps[i].sql, error);
      ok = st != NULL;
      if (ok)
        {
          sqlite3_bind_int64 (st, 1, steps[i].before == RAW    ? raw_before
                                     : steps[i].before == THIN ? thin_before
                                     : steps[i].before == REASON
                                       ? MAX (raw_before, peak_before)
                                       : peak_before);
          if (steps[i].before == THIN)
            {
              sqlite3_bind_int64 (st, 2, raw_before);
              sqlite3_bind_int64 (st, 3, thin_s);
            }
          ok = sq_run (s, st, "cannot delete old rows", error);
        }
    }
  return tx_end (s, ok, error);
}

static gboolean
sq_key_fetch (VmemStore *store, int kind, const char *text, gint64 *id, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  static const char *const select[] = {
    [VMEM_STORE_KEY_DOMAIN] = "SELECT id FROM domain_ids WHERE uuid = ?",
    [VMEM_STORE_KEY_HOST] = "SELECT id FROM host_ids WHERE host = ?",
    [VMEM_STORE_KEY_WORKLOAD] = "SELECT id FROM workload_ids WHERE name = ?",
    [VMEM_STORE_KEY_WORD] = "SELECT id FROM move_words WHERE word = ?",
  };
  static const char *const insert[] = {
    [VMEM_STORE_KEY_DOMAIN] = "INSERT INTO domain_ids (uuid) VALUES (?)",
    [VMEM_STORE_KEY_HOST] = "INSERT INTO host_ids (host) VALUES (?)",
    [VMEM_STORE_KEY_WORKLOAD] = "INSERT INTO workload_ids (name) VALUES (?)",
    [VMEM_STORE_KEY_WORD] = "INSERT INTO move_words (word) VALUES (?)",
  };
  g_autoptr(sqlite3_stmt) st = sq_prepare (s, select[kind], error);
  if (st == NULL)
    return FALSE;
  bind_text (st, 1, text);
  int rc = sqlite3_step (st);
  if (rc == SQLITE_ROW)
    {
      *id = sqlite3_column_int64 (st, 0);
      return TRUE;
    }
  if (rc != SQLITE_DONE)
    return sq_error (s, error, "cannot read the id of %s", text);
  /* Within the write transaction: nobody else adds it meanwhile. */
  g_autoptr(sqlite3_stmt) ins = sq_prepare (s, insert[kind], error);
  if (ins == NULL)
    return FALSE;
  bind_text (ins, 1, text);
  if (!sq_run (s, ins, "cannot record an id", error))
    return FALSE;
  *id = sqlite3_last_insert_rowid (s->db);
  return TRUE;
}

/* ---- runs ---------------------------------------------------------------- */

static gint64
run_insert (Sqlite *s, const char *uuid, const char *host, const char *workload, gint64 started,
            guint64 demand_mib, GError **error)
{
  g_autoptr(sqlite3_stmt) dom =
               sq_prepare (s,
                           "INSERT INTO domains (uuid, name, host, workload, first_seen, last_seen)"
                           " VALUES (?1,?1,?2,?3,?4,?4) ON CONFLICT(uuid) DO NOTHING",
                           error);
  if (dom == NULL)
    return -1;
  bind_text (dom, 1, uuid);
  bind_text (dom, 2, host);
  bind_text (dom, 3, workload);
  sqlite3_bind_int64 (dom, 4, started);
  if (!sq_run (s, dom, "cannot record a domain", error))
    return -1;

  /* Opened already: this is the same open again, after an error that hid
   * its commit. */
  g_autoptr(sqlite3_stmt) same =
               sq_prepare (s,
                           "SELECT id FROM runs WHERE uuid = ? AND host = ? AND started = ?"
                           " AND stopped IS NULL ORDER BY id DESC LIMIT 1",
                           error);
  if (same == NULL)
    return -1;
  bind_text (same, 1, uuid);
  bind_text (same, 2, host);
  sqlite3_bind_int64 (same, 3, started);
  int rc = sqlite3_step (same);
  if (rc == SQLITE_ROW)
    return sqlite3_column_int64 (same, 0);
  if (rc != SQLITE_DONE)
    {
      sq_error (s, error, "cannot read the runs of %s", uuid);
      return -1;
    }

  /* A run still open was never closed: vmemd was down when it stopped. */
  g_autoptr(sqlite3_stmt) lost =
               sq_prepare (s,
                           "UPDATE runs SET stopped = max(started, ?2), stop_reason = 'lost'"
                           " WHERE uuid = ?1 AND stopped IS NULL",
                           error);
  if (lost == NULL)
    return -1;
  bind_text (lost, 1, uuid);
  sqlite3_bind_int64 (lost, 2, started);
  if (!sq_run (s, lost, "cannot close a lost run", error))
    return -1;

  g_autoptr(sqlite3_stmt) ins = sq_prepare (
    s, "INSERT INTO runs (uuid, host, workload, started, demand_mib) VALUES (?,?,?,?,?)", error);
  if (ins == NULL)
    return -1;
  bind_text (ins, 1, uuid);
  bind_text (ins, 2, host);
  bind_text (ins, 3, workload);
  sqlite3_bind_int64 (ins, 4, started);
  sqlite3_bind_int64 (ins, 5, (gint64) demand_mib);
  if (!sq_run (s, ins, "cannot record a run", error))
    return -1;
  return sqlite3_last_insert_rowid (s->db);
}

static gint64
sq_run_open (VmemStore *store, const char *uuid, const char *host, const char *workload,
             gint64 started, guint64 demand_mib, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  if (!tx_begin (s, error))
    return -1;
  gint64 id = run_insert (s, uuid, host, workload, started, demand_mib, error);
  return tx_end (s, id > 0, error) ? id : -1;
}

static gboolean
sq_run_close (VmemStore *store, const char *uuid, const char *host, gint64 stopped,
              const char *reason, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  /* Only this host's run: a domain migrated away runs on elsewhere. */
  g_autoptr(sqlite3_stmt) st =
               sq_prepare (s,
                           "UPDATE runs SET stopped = max(started, ?2), stop_reason = ?3"
                           " WHERE uuid = ?1 AND host = ?4 AND stopped IS NULL",
                           error);
  if (st == NULL)
    return FALSE;
  bind_text (st, 1, uuid);
  sqlite3_bind_int64 (st, 2, stopped);
  bind_text (st, 3, reason);
  bind_text (st, 4, host);
  if (!sq_run (s, st, "cannot close a run", error))
    return FALSE;
  if (sqlite3_changes (s->db) == 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no open run for %s on %s", uuid, host);
      return FALSE;
    }
  return TRUE;
}

static GPtrArray *
sq_run_list (VmemStore *store, const char *uuid, guint limit, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (
    s,
    "SELECT id, uuid, host, workload, started, COALESCE(stopped, 0), stop_reason, demand_mib,"
    " startup_peak_mib, peak_mib FROM runs WHERE uuid = ? ORDER BY id DESC LIMIT ?",
    error);
  if (st == NULL)
    return NULL;
  bind_text (st, 1, uuid);
  sqlite3_bind_int64 (st, 2, limit > 0 ? (gint64) limit : -1);
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
      sq_error (s, error, "cannot read the runs of %s", uuid);
      return NULL;
    }
  return g_steal_pointer (&out);
}

/* ---- plans ---------------------------------------------------------------- */

static gboolean
sq_plan_add (VmemStore *store, const VmemPlanRow *row, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (
    s,
    "INSERT INTO plans (uuid, workload, t, demand_mib, source, reasons, host)"
    " SELECT ?1,?2,?3,?4,?5,?6,?7 WHERE NOT EXISTS (SELECT 1 FROM plans WHERE uuid = ?1"
    " AND workload = ?2 AND t = ?3 AND demand_mib = ?4 AND source = ?5 AND reasons IS ?6"
    " AND host = ?7)",
    error);
  if (st == NULL)
    return FALSE;
  bind_text (st, 1, row->uuid);
  bind_text (st, 2, row->workload);
  sqlite3_bind_int64 (st, 3, row->t);
  sqlite3_bind_int64 (st, 4, (gint64) row->demand_mib);
  bind_text (st, 5, row->source);
  bind_text (st, 6, row->reasons_json);
  bind_text (st, 7, row->host);
  return sq_run (s, st, "cannot record a plan", error);
}

static GPtrArray *
plans_read (Sqlite *s, const char *uuid, guint limit, GError **error)
{
  g_autoptr(sqlite3_stmt) st = sq_prepare (
    s,
    "SELECT uuid, workload, t, demand_mib, source, reasons, host FROM plans WHERE uuid = ?"
    " ORDER BY id DESC LIMIT ?",
    error);
  if (st == NULL)
    return NULL;
  bind_text (st, 1, uuid);
  sqlite3_bind_int64 (st, 2, limit > 0 ? (gint64) limit : -1);
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_plan_row_free);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      VmemPlanRow *p = g_new0 (VmemPlanRow, 1);
      p->uuid = col_text (st, 0);
      p->workload = col_text (st, 1);
      p->t = sqlite3_column_int64 (st, 2);
      p->demand_mib = (guint64) sqlite3_column_int64 (st, 3);
      p->source = col_text (st, 4);
      p->reasons_json = col_text (st, 5);
      p->host = col_text (st, 6);
      g_ptr_array_add (out, p);
    }
  if (rc != SQLITE_DONE)
    {
      sq_error (s, error, "cannot read the plans of %s", uuid);
      return NULL;
    }
  return g_steal_pointer (&out);
}

static VmemPlanRow *
sq_plan_latest (VmemStore *store, const char *uuid, GError **error)
{
  g_autoptr(GPtrArray) list = plans_read ((Sqlite *) store, uuid, 1, error);
  if (list == NULL)
    return NULL;
  if (list->len == 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no plan staged for %s", uuid);
      return NULL;
    }
  return g_ptr_array_steal_index (list, 0);
}

static GPtrArray *
sq_plan_list (VmemStore *store, const char *uuid, guint limit, GError **error)
{
  return plans_read ((Sqlite *) store, uuid, limit, error);
}

/* ---- moves and history ------------------------------------------------------ */

/* A move equal to a stored one in every figure, and in its reason while
 * that is kept, is the same move written again (VmemStoreBuffer writes a
 * batch again when its commit was not seen): it adds nothing. */
static gboolean
sq_move_add (VmemStore *store, const VmemMoveRow *row, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  gint64 ids[5];
  const struct {
    VmemStoreKey kind;
    const char *text;
  } keys[] = {
    { VMEM_STORE_KEY_DOMAIN, row->uuid },
    { VMEM_STORE_KEY_HOST, row->host },
    { VMEM_STORE_KEY_WORKLOAD, row->workload },
    { VMEM_STORE_KEY_WORD, row->action },
    { VMEM_STORE_KEY_WORD, row->mode },
  };
  g_autoptr(sqlite3_stmt) same = NULL, next = NULL, add = NULL, because = NULL;
  gboolean ok, found = FALSE;
  gint64 seq = 0;

  if (!tx_begin (s, error))
    return FALSE;
  ok = TRUE;
  for (guint i = 0; ok && i < G_N_ELEMENTS (keys); i++)
    ok = vmem_store_key (store, keys[i].kind, keys[i].text, &ids[i], error);
  /* The same move, its reason equal or no longer kept. */
  ok = ok && (same = sq_prepare (s,
                                 "SELECT 1 FROM moves m LEFT JOIN move_reasons r"
                                 " ON r.domain_id = m.domain_id AND r.t = m.t AND r.seq = m.seq"
                                 " WHERE m.domain_id = ?1 AND m.t = ?2 AND m.host_id = ?3"
                                 " AND m.workload_id = ?4 AND m.action_id = ?5 AND m.mode_id = ?6"
                                 " AND m.from_mib = ?7 AND m.to_mib = ?8 AND m.applied = ?9"
                                 " AND (r.reason IS NULL OR r.reason = ?10)",
                                 error)) != NULL;
  /* Its rank among the domain's moves of that second. */
  ok = ok && (next = sq_prepare (s,
                                 "SELECT COALESCE(max(seq) + 1, 0) FROM moves"
                                 " WHERE domain_id = ?1 AND t = ?2",
                                 error)) != NULL;
  ok = ok && (add = sq_prepare (s, "INSERT INTO moves VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
                                error)) != NULL;
  ok = ok &&
       (because = sq_prepare (s, "INSERT INTO move_reasons VALUES (?1,?2,?3,?4)", error)) != NULL;
  if (ok)
    {
      sqlite3_bind_int64 (same, 1, ids[0]);
      sqlite3_bind_int64 (same, 2, row->t);
      for (guint i = 1; i < G_N_ELEMENTS (ids); i++)
        sqlite3_bind_int64 (same, (int) i + 2, ids[i]);
      sqlite3_bind_int64 (same, 7, (gint64) row->from_mib);
      sqlite3_bind_int64 (same, 8, (gint64) row->to_mib);
      sqlite3_bind_int (same, 9, row->applied ? 1 : 0);
      bind_text (same, 10, row->reason);
      int rc = sqlite3_step (same);
      found = rc == SQLITE_ROW;
      ok = rc == SQLITE_ROW || rc == SQLITE_DONE || sq_error (s, error, "cannot read the moves");
    }
  if (ok && !found)
    {
      sqlite3_bind_int64 (next, 1, ids[0]);
      sqlite3_bind_int64 (next, 2, row->t);
      ok = sqlite3_step (next) == SQLITE_ROW || sq_error (s, error, "cannot read the moves");
      if (ok)
        seq = sqlite3_column_int64 (next, 0);
    }
  if (ok && !found)
    {
      sqlite3_bind_int64 (add, 1, ids[0]);
      sqlite3_bind_int64 (add, 2, row->t);
      sqlite3_bind_int64 (add, 3, seq);
      for (guint i = 1; i < G_N_ELEMENTS (ids); i++)
        sqlite3_bind_int64 (add, (int) i + 3, ids[i]);
      sqlite3_bind_int64 (add, 8, (gint64) row->from_mib);
      sqlite3_bind_int64 (add, 9, (gint64) row->to_mib);
      sqlite3_bind_int (add, 10, row->applied ? 1 : 0);
      sqlite3_bind_int64 (because, 1, ids[0]);
      sqlite3_bind_int64 (because, 2, row->t);
      sqlite3_bind_int64 (because, 3, seq);
      bind_text (because, 4, row->reason);
      ok = sq_run (s, add, "cannot record a move", error) &&
           sq_run (s, because, "cannot record a move's reason", error);
    }
  return tx_end (s, ok, error);
}

/* The newest @limit rows at or after @since, returned oldest first; a
 * move whose reason retention has dropped has none. */
static GPtrArray *
sq_move_list (VmemStore *store, const char *uuid, gint64 since, guint limit, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (
    s,
    "SELECT * FROM (SELECT h.host, w.name, m.t, a.word, o.word, m.from_mib, m.to_mib,"
    " m.applied, r.reason, m.seq FROM moves m JOIN host_ids h ON h.id = m.host_id"
    " JOIN workload_ids w ON w.id = m.workload_id JOIN move_words a ON a.id = m.action_id"
    " JOIN move_words o ON o.id = m.mode_id LEFT JOIN move_reasons r"
    " ON r.domain_id = m.domain_id AND r.t = m.t AND r.seq = m.seq"
    " WHERE m.domain_id = (SELECT id FROM domain_ids WHERE uuid = ?) AND m.t >= ?"
    " ORDER BY m.t DESC, m.seq DESC LIMIT ?) ORDER BY t, seq",
    error);
  if (st == NULL)
    return NULL;
  bind_text (st, 1, uuid);
  sqlite3_bind_int64 (st, 2, since);
  sqlite3_bind_int64 (st, 3, limit > 0 ? (gint64) limit : -1);
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_move_row_free);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      VmemMoveRow *m = g_new0 (VmemMoveRow, 1);
      m->uuid = g_strdup (uuid);
      m->host = col_text (st, 0);
      m->workload = col_text (st, 1);
      m->t = sqlite3_column_int64 (st, 2);
      m->action = col_text (st, 3);
      m->mode = col_text (st, 4);
      m->from_mib = (guint64) sqlite3_column_int64 (st, 5);
      m->to_mib = (guint64) sqlite3_column_int64 (st, 6);
      m->applied = sqlite3_column_int (st, 7) != 0;
      m->reason = col_text (st, 8);
      g_ptr_array_add (out, m);
    }
  if (rc != SQLITE_DONE)
    {
      sq_error (s, error, "cannot read the moves of %s", uuid);
      return NULL;
    }
  return g_steal_pointer (&out);
}

static gboolean
sq_outcome_add (VmemStore *store, const VmemOutcomeRow *row, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (
    s,
    "INSERT INTO outcomes (uuid, host, workload, kind, start_t, end_t, base_mib, given_mib,"
    " peak_mib, risk, censored) SELECT ?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11 WHERE NOT EXISTS"
    " (SELECT 1 FROM outcomes WHERE end_t = ?6 AND uuid = ?1 AND host = ?2 AND workload = ?3"
    " AND kind = ?4 AND start_t = ?5 AND base_mib = ?7 AND given_mib = ?8 AND peak_mib = ?9"
    " AND risk = ?10 AND censored = ?11)",
    error);
  if (st == NULL)
    return FALSE;
  bind_text (st, 1, row->uuid);
  bind_text (st, 2, row->host);
  bind_text (st, 3, row->workload);
  bind_text (st, 4, row->kind);
  sqlite3_bind_int64 (st, 5, row->start_t);
  sqlite3_bind_int64 (st, 6, row->end_t);
  sqlite3_bind_double (st, 7, row->base_mib);
  sqlite3_bind_double (st, 8, row->given_mib);
  sqlite3_bind_double (st, 9, row->peak_mib);
  sqlite3_bind_double (st, 10, row->risk);
  sqlite3_bind_int (st, 11, row->censored ? 1 : 0);
  return sq_run (s, st, "cannot record an outcome", error);
}

static GPtrArray *
sq_outcome_list (VmemStore *store, gint64 since, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (
    s,
    "SELECT uuid, host, workload, kind, start_t, end_t, base_mib, given_mib, peak_mib, risk,"
    " censored FROM outcomes WHERE end_t >= ? ORDER BY end_t, id",
    error);
  if (st == NULL)
    return NULL;
  sqlite3_bind_int64 (st, 1, since);
  g_autoptr(GPtrArray) out =
    g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_outcome_row_free);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      VmemOutcomeRow *o = g_new0 (VmemOutcomeRow, 1);
      o->uuid = col_text (st, 0);
      o->host = col_text (st, 1);
      o->workload = col_text (st, 2);
      o->kind = col_text (st, 3);
      o->start_t = sqlite3_column_int64 (st, 4);
      o->end_t = sqlite3_column_int64 (st, 5);
      o->base_mib = sqlite3_column_double (st, 6);
      o->given_mib = sqlite3_column_double (st, 7);
      o->peak_mib = sqlite3_column_double (st, 8);
      o->risk = sqlite3_column_double (st, 9);
      o->censored = sqlite3_column_int (st, 10) != 0;
      g_ptr_array_add (out, o);
    }
  if (rc != SQLITE_DONE)
    {
      sq_error (s, error, "cannot read the outcomes");
      return NULL;
    }
  return g_steal_pointer (&out);
}

static GPtrArray *
sq_sample_list (VmemStore *store, const char *uuid, gint64 since, guint limit, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (
    s,
    "SELECT * FROM (SELECT t, used_mib, current_mib, available_mib, usable_mib, rss_mib,"
    " guest, host_id FROM samples WHERE domain_id = (SELECT id FROM domain_ids WHERE uuid = ?)"
    " AND t >= ? ORDER BY t DESC, host_id DESC LIMIT ?) ORDER BY t, host_id",
    error);
  if (st == NULL)
    return NULL;
  bind_text (st, 1, uuid);
  sqlite3_bind_int64 (st, 2, since);
  sqlite3_bind_int64 (st, 3, limit > 0 ? (gint64) limit : -1);
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func (g_free);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      VmemSampleRow *r = g_new0 (VmemSampleRow, 1);
      r->t = sqlite3_column_int64 (st, 0);
      r->used_mib = (guint64) sqlite3_column_int64 (st, 1);
      r->current_mib = (guint64) sqlite3_column_int64 (st, 2);
      r->available_mib = (guint64) sqlite3_column_int64 (st, 3);
      r->usable_mib = (guint64) sqlite3_column_int64 (st, 4);
      r->rss_mib = (guint64) sqlite3_column_int64 (st, 5);
      r->guest_quality = sqlite3_column_int (st, 6) != 0;
      g_ptr_array_add (out, r);
    }
  if (rc != SQLITE_DONE)
    {
      sq_error (s, error, "cannot read the samples of %s", uuid);
      return NULL;
    }
  return g_steal_pointer (&out);
}

/* ---- hosts ---------------------------------------------------------------- */

static gboolean
sq_host_heartbeat (VmemStore *store, const VmemHostRow *r, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (
    s,
    "INSERT INTO hosts (id, name, capacity_mib, reserved_mib, overcommit, committed_mib,"
    " reservations_mib, reservations, domains, interval_s, heartbeat)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET name=excluded.name,"
    " capacity_mib=excluded.capacity_mib, reserved_mib=excluded.reserved_mib,"
    " overcommit=excluded.overcommit, committed_mib=excluded.committed_mib,"
    " reservations_mib=excluded.reservations_mib, reservations=excluded.reservations,"
    " domains=excluded.domains, interval_s=excluded.interval_s, heartbeat=excluded.heartbeat",
    error);
  if (st == NULL)
    return FALSE;
  bind_text (st, 1, r->id);
  bind_text (st, 2, r->name);
  sqlite3_bind_int64 (st, 3, (gint64) r->capacity_mib);
  sqlite3_bind_int64 (st, 4, (gint64) r->reserved_mib);
  sqlite3_bind_double (st, 5, r->overcommit);
  sqlite3_bind_int64 (st, 6, (gint64) r->committed_mib);
  sqlite3_bind_int64 (st, 7, (gint64) r->reservations_mib);
  sqlite3_bind_int64 (st, 8, r->reservations);
  sqlite3_bind_int64 (st, 9, r->domains);
  sqlite3_bind_int64 (st, 10, r->interval_s);
  sqlite3_bind_int64 (st, 11, r->heartbeat);
  return sq_run (s, st, "cannot record the host heartbeat", error);
}

static GPtrArray *
sq_host_list (VmemStore *store, GError **error)
{
  Sqlite *s = (Sqlite *) store;
  g_autoptr(sqlite3_stmt) st = sq_prepare (
    s,
    "SELECT id, name, capacity_mib, reserved_mib, overcommit, committed_mib, reservations_mib,"
    " reservations, domains, interval_s, heartbeat FROM hosts ORDER BY name, id",
    error);
  if (st == NULL)
    return NULL;
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_host_row_free);
  int rc;
  while ((rc = sqlite3_step (st)) == SQLITE_ROW)
    {
      VmemHostRow *h = g_new0 (VmemHostRow, 1);
      h->id = col_text (st, 0);
      h->name = col_text (st, 1);
      h->capacity_mib = (guint64) sqlite3_column_int64 (st, 2);
      h->reserved_mib = (guint64) sqlite3_column_int64 (st, 3);
      h->overcommit = sqlite3_column_double (st, 4);
      h->committed_mib = (guint64) sqlite3_column_int64 (st, 5);
      h->reservations_mib = (guint64) sqlite3_column_int64 (st, 6);
      h->reservations = (guint) sqlite3_column_int64 (st, 7);
      h->domains = (guint) sqlite3_column_int64 (st, 8);
      h->interval_s = (guint) sqlite3_column_int64 (st, 9);
      h->heartbeat = sqlite3_column_int64 (st, 10);
      g_ptr_array_add (out, h);
    }
  if (rc != SQLITE_DONE)
    {
      sq_error (s, error, "cannot list hosts");
      return NULL;
    }
  return g_steal_pointer (&out);
}

static const VmemStoreOps sqlite_ops = {
  .name = "sqlite",
  .free = sq_free,
  .location = sq_location,
  .schema_version = sq_schema_version,
  .profile_list = sq_profile_list,
  .profile_get = sq_profile_get,
  .profile_put = sq_profile_put,
  .profile_delete = sq_profile_delete,
  .profile_import = sq_profile_import,
  .domain_upsert = sq_domain_upsert,
  .domain_get = sq_domain_get,
  .domain_list = sq_domain_list,
  .samples_add = sq_samples_add,
  .peaks_for_workload = sq_peaks_for_workload,
  .peaks_latest = sq_peaks_latest,
  .prune = sq_prune,
  .run_open = sq_run_open,
  .run_close = sq_run_close,
  .run_list = sq_run_list,
  .plan_add = sq_plan_add,
  .plan_latest = sq_plan_latest,
  .plan_list = sq_plan_list,
  .move_add = sq_move_add,
  .move_list = sq_move_list,
  .outcome_add = sq_outcome_add,
  .outcome_list = sq_outcome_list,
  .sample_list = sq_sample_list,
  .key_fetch = sq_key_fetch,
  .host_heartbeat = sq_host_heartbeat,
  .host_list = sq_host_list,
};
