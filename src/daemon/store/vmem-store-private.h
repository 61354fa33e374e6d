/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What a store backend implements.  A backend's state struct starts with a
 * VmemStore.  vmem-store.c checks arguments before dispatching, so the
 * operations may assume them valid. */

#include "vmem-store.h"

typedef struct {
  const char *name;
  void (*free) (VmemStore *store);
  const char *(*location) (VmemStore *store);
  int (*schema_version) (VmemStore *store);
  GPtrArray *(*profile_list) (VmemStore *store, GError **error);
  VmemProfile *(*profile_get) (VmemStore *store, const char *name, GError **error);
  gboolean (*profile_put) (VmemStore *store, const VmemProfile *p, VmemStorePut mode,
                           GError **error);
  gboolean (*profile_delete) (VmemStore *store, const char *name, GError **error);
  gboolean (*profile_import) (VmemStore *store, GPtrArray *profiles, gboolean replace,
                              guint *created, guint *updated, guint *deleted, GError **error);
  gboolean (*domain_upsert) (VmemStore *store, const VmemDomainRow *row, GError **error);
  VmemDomainRow *(*domain_get) (VmemStore *store, const char *uuid, GError **error);
  GPtrArray *(*domain_list) (VmemStore *store, const char *workload, GError **error);
  gboolean (*samples_add) (VmemStore *store, const VmemSample *samples, guint n,
                           const VmemPeak *peaks, guint n_peaks, GError **error);
  GPtrArray *(*peaks_for_workload) (VmemStore *store, const char *workload, guint interval_s,
                                    gint64 since, GError **error);
  GPtrArray *(*peaks_latest) (VmemStore *store, gint64 since, GError **error);
  /* Deletes samples before @raw_before and peaks (moves, outcomes, plans
   * but each domain's latest) before @peak_before; when @thin_s > 0, of
   * the samples between @raw_before and @thin_before keeps per domain and
   * per @thin_s seconds (aligned to multiples of it) only the one of the
   * highest used_mib, the earliest of equals. */
  gboolean (*prune) (VmemStore *store, gint64 raw_before, gint64 thin_before, guint thin_s,
                     gint64 peak_before, GError **error);
  /* The id of @text in the key table of @kind, added when missing, in the
   * transaction under way (see vmem_store_key()). */
  gboolean (*key_fetch) (VmemStore *store, int kind, const char *text, gint64 *id,
                         GError **error);
  gint64 (*run_open) (VmemStore *store, const char *uuid, const char *host, const char *workload,
                      gint64 started, guint64 demand_mib, GError **error);
  gboolean (*run_close) (VmemStore *store, const char *uuid, const char *host, gint64 stopped,
                         const char *reason, GError **error);
  GPtrArray *(*run_list) (VmemStore *store, const char *uuid, guint limit, GError **error);
  gboolean (*plan_add) (VmemStore *store, const VmemPlanRow *row, GError **error);
  VmemPlanRow *(*plan_latest) (VmemStore *store, const char *uuid, GError **error);
  GPtrArray *(*plan_list) (VmemStore *store, const char *uuid, guint limit, GError **error);
  gboolean (*move_add) (VmemStore *store, const VmemMoveRow *row, GError **error);
  GPtrArray *(*move_list) (VmemStore *store, const char *uuid, gint64 since, guint limit,
                           GError **error);
  GPtrArray *(*sample_list) (VmemStore *store, const char *uuid, gint64 since, guint limit,
                             GError **error);
  gboolean (*outcome_add) (VmemStore *store, const VmemOutcomeRow *row, GError **error);
  GPtrArray *(*outcome_list) (VmemStore *store, gint64 since, GError **error);
  gboolean (*host_heartbeat) (VmemStore *store, const VmemHostRow *row, GError **error);
  GPtrArray *(*host_list) (VmemStore *store, GError **error);
} VmemStoreOps;

/* Samples, peaks and moves name their domain, host and workload by an
 * integer id, each kept in its own table (domain_ids, host_ids,
 * workload_ids; a move's action and mode in move_words)
 * and never deleted, so that an id once committed stays right. */
typedef enum {
  VMEM_STORE_KEY_DOMAIN,
  VMEM_STORE_KEY_HOST,
  VMEM_STORE_KEY_WORKLOAD,
  VMEM_STORE_KEY_WORD, /* a move's action or mode, in move_words */
  VMEM_STORE_N_KEYS,
} VmemStoreKey;

struct _VmemStore {
  const VmemStoreOps *ops;
  guint startup_window_s;
  GHashTable *keys[VMEM_STORE_N_KEYS]; /* text -> id, as read or added */
};

/* The id of @text in the key table of @kind: from memory, else through
 * ops->key_fetch.  Called inside a write transaction; when that
 * transaction does not commit, vmem_store_keys_forget() drops what it
 * added, since an id it created may not exist. */
gboolean vmem_store_key (VmemStore *store, VmemStoreKey kind, const char *text, gint64 *id,
                         GError **error);
void vmem_store_keys_forget (VmemStore *store);

/* For the tests: open (creating or migrating) a SQLite database at exactly
 * @version, so that a database of every earlier schema can be made and then
 * migrated by vmem_store_open_sqlite(). */
VmemStore *vmem_store_sqlite_open_at_version (const char *path, int version, GError **error);
VmemStore *vmem_store_sqlite_open_full (const char *path, int version, const char *host_id,
                                        GError **error);
int vmem_store_sqlite_latest_version (void);

/* For the crash-safety test: when set, vmem_store_samples_add() calls it
 * after writing each row of the batch, inside the open transaction, with
 * @index counting the samples first, then the peaks (n + i for peaks[i]). */
extern void (*vmem_store_sqlite_sample_hook) (guint index);

/* The PostgreSQL backend, built when libpq is found (HAVE_LIBPQ).  For
 * the tests, as the SQLite ones above: open (creating or migrating) a
 * database at exactly @version. */
VmemStore *vmem_store_pg_open_at_version (const char *conninfo, int version, GError **error);
int vmem_store_pg_latest_version (void);
/* The checks of a connection string vmem_store_open_pg() makes first. */
gboolean vmem_store_pg_check_conninfo (const char *conninfo, GError **error);

/* The key of the advisory lock each migration transaction takes, so that
 * one host migrates while the others wait (and then find it done). */
#define VMEM_STORE_PG_MIGRATION_LOCK G_GINT64_CONSTANT (0x766d656d64) /* "vmemd" */
/* The class of the per-domain advisory locks that order the moves of a
 * domain written from several hosts (the first key of the two-key form). */
#define VMEM_STORE_PG_MOVE_LOCK 0x766d6d76 /* "vmmv" */
