/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The domains the daemon knows, fed by libvirt's events and full refreshes,
 * and the boot reservations of the starts it admitted.  Main thread only;
 * no I/O: the hook path reads only this. */

#include <glib.h>

#include "vmem-admission.h"
#include "vmem-domain.h"

G_BEGIN_DECLS

typedef struct _VmemCache VmemCache;

typedef struct {
  VmemDomain *domain;       /* the latest read; never NULL */
  gint64      active_since; /* monotonic µs when first seen running; 0 = not running */
  gboolean    period_set;   /* the collector gave it a stats period in this run */
  guint64     staged_mib;   /* demand known to be staged in its definition; 0 = unknown */
  /* What the guest reported last, and the on-demand controller's last
   * decision (action NULL: none yet in this run). */
  gint64      seen_t;       /* unix seconds of the last sample; 0 = none */
  guint64     used_mib;
  guint64     available_mib;
  gboolean    guest_quality;
  const char *action;       /* static string */
  char       *reason;
  guint64     target_mib;
  gint64      action_t;
  /* The guest's swap-in counter at the last sample, to see it grow. */
  guint64     swap_in_kib;
  gboolean    swap_in_seen;
} VmemCacheEntry;

/* A boot reservation: the boot footprint of a start admitted at prepare,
 * charged until STARTED, STOPPED, release, or expiry. */
typedef struct {
  char   *uuid;
  char   *name;
  guint64 mib;
  gint64  since; /* monotonic µs */
} VmemReservation;

VmemCache      *vmem_cache_new (void);
void            vmem_cache_free (VmemCache *cache);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemCache, vmem_cache_free)

/* Takes @domain (transfer full) as the domain's current state; @now is
 * monotonic µs.  Returns its entry. */
VmemCacheEntry *vmem_cache_update (VmemCache *cache, VmemDomain *domain, gint64 now);
/* After a full read of every domain (transfer full): drops the domains not
 * in @domains, updates the others, and marks the cache ready. */
void            vmem_cache_replace_all (VmemCache *cache, GPtrArray *domains, gint64 now);
gboolean        vmem_cache_remove (VmemCache *cache, const char *uuid);
/* Ready once one full read has been taken in: before it, what is
 * committed on the host is unknown. */
gboolean        vmem_cache_is_ready (VmemCache *cache);

VmemCacheEntry *vmem_cache_lookup (VmemCache *cache, const char *uuid);
/* By uuid, else by name. */
VmemCacheEntry *vmem_cache_find (VmemCache *cache, const char *name_or_uuid);
guint           vmem_cache_size (VmemCache *cache);
/* Every entry, sorted by domain name (the array does not own them). */
GPtrArray      *vmem_cache_list (VmemCache *cache);
/* The live balloon size seen by the collector. */
void            vmem_cache_set_balloon (VmemCache *cache, const char *uuid, guint64 current_mib);

/* Reserves @mib for the start of @uuid (replacing an earlier reservation
 * of the same uuid); @now is monotonic µs. */
void            vmem_cache_reserve (VmemCache *cache, const char *uuid, const char *name,
                                    guint64 mib, gint64 now);
/* Ends a reservation; FALSE when there was none. */
gboolean        vmem_cache_release (VmemCache *cache, const char *uuid);
gboolean        vmem_cache_is_starting (VmemCache *cache, const char *uuid);
/* Ends the reservations older than @timeout µs at @now and returns them
 * (VmemReservation, transfer full), oldest first. */
GPtrArray      *vmem_cache_expire (VmemCache *cache, gint64 now, gint64 timeout);
/* The reservations held, oldest first (the array does not own them). */
GPtrArray      *vmem_cache_reservations (VmemCache *cache);
void            vmem_reservation_free (VmemReservation *r);

/* What admission counts: every running domain (managed or not) at its
 * balloon size, and every reservation, one VmemCommitment per uuid.  The
 * strings point into the cache until it changes. */
GArray         *vmem_cache_commitments (VmemCache *cache);
/* vmem_admission_committed() over vmem_cache_commitments() (@except_uuid
 * left out, NULL: none), without building the array: the sum is kept as
 * the cache changes, so the hook's prepare, which asks it at every start,
 * takes two lookups whatever the number of domains. */
guint64         vmem_cache_committed (VmemCache *cache, const char *except_uuid);

G_END_DECLS
