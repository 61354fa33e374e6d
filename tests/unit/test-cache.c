/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The domain cache: what the hook path reads, so what admission control
 * counts.  Pure data, no libvirt: domains are made by hand. */
#include "vmem-cache.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#define UUID_A "11111111-1111-4111-8111-00000000000a"
#define UUID_B "11111111-1111-4111-8111-00000000000b"
#define UUID_C "11111111-1111-4111-8111-00000000000c"
#define UUID_D "11111111-1111-4111-8111-00000000000d"
#define SEC    G_USEC_PER_SEC

static VmemDomain *
domain (const char *uuid, const char *name, gboolean active, guint64 current_mib)
{
  VmemDomain *d = g_new0 (VmemDomain, 1);
  d->uuid = g_strdup (uuid);
  d->name = g_strdup (name);
  d->active = active;
  d->persistent = TRUE;
  d->state = active ? VMEM_DOMAIN_RUNNING : VMEM_DOMAIN_SHUTOFF;
  d->memory_mib = 8192;
  d->current_mib = current_mib;
  d->vcpus = 2;
  return d;
}

static GPtrArray *
domains (VmemDomain *first, ...)
{
  GPtrArray *list = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_domain_free);
  va_list ap;
  va_start (ap, first);
  for (VmemDomain *d = first; d != NULL; d = va_arg (ap, VmemDomain *))
    g_ptr_array_add (list, d);
  va_end (ap);
  return list;
}

static const VmemCommitment *
commitment (GArray *c, const char *uuid)
{
  for (guint i = 0; i < c->len; i++)
    if (g_str_equal (g_array_index (c, VmemCommitment, i).uuid, uuid))
      return &g_array_index (c, VmemCommitment, i);
  return NULL;
}

/* ---- domains ------------------------------------------------------------ */

static void
test_update_find_remove (void **state)
{
  g_autoptr(VmemCache) cache = vmem_cache_new ();

  VmemCacheEntry *e = vmem_cache_update (cache, domain (UUID_A, "erp-1", FALSE, 4096), 1 * SEC);
  assert_non_null (e);
  assert_string_equal (e->domain->name, "erp-1");
  vmem_cache_update (cache, domain (UUID_B, "web-1", FALSE, 2048), 1 * SEC);
  assert_int_equal (vmem_cache_size (cache), 2);

  /* By uuid, by name; lookup is by uuid only. */
  assert_ptr_equal (vmem_cache_find (cache, UUID_A), e);
  assert_ptr_equal (vmem_cache_find (cache, "erp-1"), e);
  assert_ptr_equal (vmem_cache_lookup (cache, UUID_A), e);
  assert_null (vmem_cache_lookup (cache, "erp-1"));
  assert_string_equal (vmem_cache_find (cache, "web-1")->domain->uuid, UUID_B);
  assert_null (vmem_cache_find (cache, "nope"));
  assert_null (vmem_cache_find (cache, NULL));
  assert_null (vmem_cache_lookup (cache, NULL));

  /* An update replaces the domain in the same entry (a rename too). */
  VmemCacheEntry *again = vmem_cache_update (cache, domain (UUID_A, "erp-renamed", FALSE, 1024),
                                             2 * SEC);
  assert_ptr_equal (again, e);
  assert_int_equal (vmem_cache_size (cache), 2);
  assert_int_equal (e->domain->current_mib, 1024);
  assert_null (vmem_cache_find (cache, "erp-1"));
  assert_ptr_equal (vmem_cache_find (cache, "erp-renamed"), e);

  assert_true (vmem_cache_remove (cache, UUID_A));
  assert_false (vmem_cache_remove (cache, UUID_A));
  assert_null (vmem_cache_find (cache, UUID_A));
  assert_null (vmem_cache_find (cache, "erp-renamed"));
  assert_int_equal (vmem_cache_size (cache), 1);
}

static void
test_ready_after_replace_all (void **state)
{
  g_autoptr(VmemCache) cache = vmem_cache_new ();

  assert_false (vmem_cache_is_ready (cache));
  /* Single updates (events) never make it ready: other domains may run. */
  vmem_cache_update (cache, domain (UUID_A, "a", TRUE, 1024), 1 * SEC);
  vmem_cache_update (cache, domain (UUID_B, "b", FALSE, 1024), 1 * SEC);
  assert_false (vmem_cache_is_ready (cache));

  /* A full read drops what is gone, keeps and updates the rest. */
  VmemCacheEntry *a = vmem_cache_lookup (cache, UUID_A);
  vmem_cache_replace_all (cache,
                          domains (domain (UUID_A, "a", TRUE, 2048),
                                   domain (UUID_C, "c", FALSE, 512), NULL),
                          5 * SEC);
  assert_true (vmem_cache_is_ready (cache));
  assert_int_equal (vmem_cache_size (cache), 2);
  assert_null (vmem_cache_lookup (cache, UUID_B));
  assert_ptr_equal (vmem_cache_lookup (cache, UUID_A), a);
  assert_int_equal (a->domain->current_mib, 2048);
  /* Still running since the first time it was seen so. */
  assert_int_equal (a->active_since, 1 * SEC);
  assert_non_null (vmem_cache_lookup (cache, UUID_C));

  /* An empty host is a full read too, and it stays ready. */
  vmem_cache_replace_all (cache, domains (NULL), 6 * SEC);
  assert_true (vmem_cache_is_ready (cache));
  assert_int_equal (vmem_cache_size (cache), 0);
}

static void
test_active_since (void **state)
{
  g_autoptr(VmemCache) cache = vmem_cache_new ();

  VmemCacheEntry *e = vmem_cache_update (cache, domain (UUID_A, "a", FALSE, 1024), 1 * SEC);
  assert_int_equal (e->active_since, 0);

  e = vmem_cache_update (cache, domain (UUID_A, "a", TRUE, 1024), 10 * SEC);
  assert_int_equal (e->active_since, 10 * SEC);
  e->period_set = TRUE;
  /* Later reads while it runs keep the first time. */
  e = vmem_cache_update (cache, domain (UUID_A, "a", TRUE, 900), 20 * SEC);
  assert_int_equal (e->active_since, 10 * SEC);
  assert_true (e->period_set);

  /* Stopped: forgotten, and the next run needs its stats period again. */
  e = vmem_cache_update (cache, domain (UUID_A, "a", FALSE, 1024), 30 * SEC);
  assert_int_equal (e->active_since, 0);
  assert_false (e->period_set);
  e = vmem_cache_update (cache, domain (UUID_A, "a", TRUE, 1024), 40 * SEC);
  assert_int_equal (e->active_since, 40 * SEC);

  /* Seen first while running, in a full read. */
  vmem_cache_replace_all (cache, domains (domain (UUID_B, "b", TRUE, 1024), NULL), 50 * SEC);
  assert_int_equal (vmem_cache_lookup (cache, UUID_B)->active_since, 50 * SEC);
}

static void
test_list_sorted_by_name (void **state)
{
  g_autoptr(VmemCache) cache = vmem_cache_new ();
  const char *names[] = { "web-2", "erp-1", "zeta", "alpha", "erp-10" };
  const char *uuids[] = { UUID_A, UUID_B, UUID_C, UUID_D, "11111111-1111-4111-8111-00000000000e" };

  for (guint i = 0; i < G_N_ELEMENTS (names); i++)
    vmem_cache_update (cache, domain (uuids[i], names[i], FALSE, 1024), 0);
  g_autoptr(GPtrArray) list = vmem_cache_list (cache);
  const char *want[] = { "alpha", "erp-1", "erp-10", "web-2", "zeta" };
  assert_int_equal (list->len, G_N_ELEMENTS (want));
  for (guint i = 0; i < list->len; i++)
    assert_string_equal (((VmemCacheEntry *) g_ptr_array_index (list, i))->domain->name, want[i]);
  /* The list does not own the entries. */
  assert_ptr_equal (g_ptr_array_index (list, 0), vmem_cache_lookup (cache, UUID_D));

  g_autoptr(VmemCache) empty = vmem_cache_new ();
  g_autoptr(GPtrArray) none = vmem_cache_list (empty);
  assert_int_equal (none->len, 0);
}

static void
test_set_balloon (void **state)
{
  g_autoptr(VmemCache) cache = vmem_cache_new ();
  vmem_cache_update (cache, domain (UUID_A, "a", TRUE, 4096), 0);

  vmem_cache_set_balloon (cache, UUID_A, 3000);
  assert_int_equal (vmem_cache_lookup (cache, UUID_A)->domain->current_mib, 3000);
  /* No figure is no news; an unknown domain is ignored. */
  vmem_cache_set_balloon (cache, UUID_A, 0);
  assert_int_equal (vmem_cache_lookup (cache, UUID_A)->domain->current_mib, 3000);
  vmem_cache_set_balloon (cache, UUID_B, 1000);
  assert_null (vmem_cache_lookup (cache, UUID_B));
}

/* ---- reservations ------------------------------------------------------- */

static void
test_reserve_release (void **state)
{
  g_autoptr(VmemCache) cache = vmem_cache_new ();

  assert_false (vmem_cache_is_starting (cache, UUID_A));
  assert_false (vmem_cache_is_starting (cache, NULL));
  vmem_cache_reserve (cache, UUID_A, "a", 4096, 1 * SEC);
  assert_true (vmem_cache_is_starting (cache, UUID_A));
  assert_false (vmem_cache_is_starting (cache, UUID_B));

  /* A second prepare of the same domain replaces the first. */
  vmem_cache_reserve (cache, UUID_A, "a-renamed", 6144, 2 * SEC);
  g_autoptr(GPtrArray) held = vmem_cache_reservations (cache);
  assert_int_equal (held->len, 1);
  const VmemReservation *r = g_ptr_array_index (held, 0);
  assert_string_equal (r->uuid, UUID_A);
  assert_string_equal (r->name, "a-renamed");
  assert_int_equal (r->mib, 6144);
  assert_int_equal (r->since, 2 * SEC);

  /* Without a name, the uuid names it. */
  vmem_cache_reserve (cache, UUID_B, NULL, 100, 3 * SEC);
  g_autoptr(GPtrArray) two = vmem_cache_reservations (cache);
  assert_int_equal (two->len, 2);
  assert_string_equal (((VmemReservation *) g_ptr_array_index (two, 1))->name, UUID_B);

  assert_true (vmem_cache_release (cache, UUID_A));
  assert_false (vmem_cache_release (cache, UUID_A));
  assert_false (vmem_cache_release (cache, NULL));
  assert_false (vmem_cache_is_starting (cache, UUID_A));
  assert_true (vmem_cache_is_starting (cache, UUID_B));
}

static void
test_reservations_oldest_first (void **state)
{
  g_autoptr(VmemCache) cache = vmem_cache_new ();
  vmem_cache_reserve (cache, UUID_C, "c", 1, 30 * SEC);
  vmem_cache_reserve (cache, UUID_A, "a", 1, 10 * SEC);
  vmem_cache_reserve (cache, UUID_B, "b", 1, 20 * SEC);

  g_autoptr(GPtrArray) held = vmem_cache_reservations (cache);
  assert_int_equal (held->len, 3);
  assert_string_equal (((VmemReservation *) g_ptr_array_index (held, 0))->uuid, UUID_A);
  assert_string_equal (((VmemReservation *) g_ptr_array_index (held, 1))->uuid, UUID_B);
  assert_string_equal (((VmemReservation *) g_ptr_array_index (held, 2))->uuid, UUID_C);
}

static void
test_expire (void **state)
{
  g_autoptr(VmemCache) cache = vmem_cache_new ();
  vmem_cache_reserve (cache, UUID_C, "c", 300, 40 * SEC);
  vmem_cache_reserve (cache, UUID_A, "a", 100, 10 * SEC);
  vmem_cache_reserve (cache, UUID_D, "d", 400, 95 * SEC);
  vmem_cache_reserve (cache, UUID_B, "b", 200, 20 * SEC);
  /* Re-reserved lately: young again. */
  vmem_cache_reserve (cache, UUID_D, "d", 400, 95 * SEC);

  /* Nothing is a minute old at 60 s. */
  g_autoptr(GPtrArray) none = vmem_cache_expire (cache, 60 * SEC, 60 * SEC);
  assert_int_equal (none->len, 0);
  g_autoptr(GPtrArray) all = vmem_cache_reservations (cache);
  assert_int_equal (all->len, 4);

  /* At 105 s, a, b and c are over a minute old; d is 10 s old. */
  g_autoptr(GPtrArray) old = vmem_cache_expire (cache, 105 * SEC, 60 * SEC);
  assert_int_equal (old->len, 3);
  const char *want[] = { UUID_A, UUID_B, UUID_C };
  const guint64 mib[] = { 100, 200, 300 };
  for (guint i = 0; i < old->len; i++)
    {
      const VmemReservation *r = g_ptr_array_index (old, i);
      assert_string_equal (r->uuid, want[i]);
      assert_int_equal (r->mib, mib[i]);
      assert_false (vmem_cache_is_starting (cache, r->uuid));
    }
  assert_true (vmem_cache_is_starting (cache, UUID_D));
  g_autoptr(GPtrArray) left = vmem_cache_reservations (cache);
  assert_int_equal (left->len, 1);

  /* What expired is the caller's: the cache no longer has it. */
  g_autoptr(GPtrArray) again = vmem_cache_expire (cache, 105 * SEC, 60 * SEC);
  assert_int_equal (again->len, 0);
}

/* ---- commitments ------------------------------------------------------- */

static void
test_commitments (void **state)
{
  g_autoptr(VmemCache) cache = vmem_cache_new ();
  /* a: running, unmanaged or not, counts its balloon. */
  vmem_cache_update (cache, domain (UUID_A, "a", TRUE, 4096), 0);
  vmem_cache_set_balloon (cache, UUID_A, 3072);
  /* b: shut off and not starting: not counted. */
  vmem_cache_update (cache, domain (UUID_B, "b", FALSE, 2048), 0);
  /* c: shut off and starting: its reservation. */
  vmem_cache_update (cache, domain (UUID_C, "c", FALSE, 2048), 0);
  vmem_cache_reserve (cache, UUID_C, "c", 8192, 0);
  /* d: starting, never seen by the cache: charged under its own name. */
  vmem_cache_reserve (cache, UUID_D, "d-new", 1024, 0);

  g_autoptr(GArray) c = vmem_cache_commitments (cache);
  assert_int_equal (c->len, 3);
  const VmemCommitment *ca = commitment (c, UUID_A);
  assert_non_null (ca);
  assert_string_equal (ca->name, "a");
  assert_int_equal (ca->running_mib, 3072);
  assert_int_equal (ca->reserved_mib, 0);
  assert_null (commitment (c, UUID_B));
  const VmemCommitment *cc = commitment (c, UUID_C);
  assert_non_null (cc);
  assert_int_equal (cc->running_mib, 0);
  assert_int_equal (cc->reserved_mib, 8192);
  const VmemCommitment *cd = commitment (c, UUID_D);
  assert_non_null (cd);
  assert_string_equal (cd->name, "d-new");
  assert_int_equal (cd->running_mib, 0);
  assert_int_equal (cd->reserved_mib, 1024);
  assert_int_equal (vmem_admission_committed ((const VmemCommitment *) c->data, c->len, NULL),
                    3072 + 8192 + 1024);
}

/* A start whose STARTED event has been read, but whose reservation is
 * still held: counted once, at the larger of the two. */
static void
test_commitments_starting_counts_max (void **state)
{
  g_autoptr(VmemCache) cache = vmem_cache_new ();
  vmem_cache_update (cache, domain (UUID_A, "a", TRUE, 2048), 0);
  vmem_cache_reserve (cache, UUID_A, "a", 8192, 0);

  g_autoptr(GArray) c = vmem_cache_commitments (cache);
  assert_int_equal (c->len, 1);
  const VmemCommitment *ca = commitment (c, UUID_A);
  assert_int_equal (ca->running_mib, 2048);
  assert_int_equal (ca->reserved_mib, 8192);
  assert_int_equal (vmem_admission_committed ((const VmemCommitment *) c->data, c->len, NULL),
                    8192);

  /* The balloon grows past the reservation: the balloon counts. */
  vmem_cache_set_balloon (cache, UUID_A, 10000);
  g_autoptr(GArray) c2 = vmem_cache_commitments (cache);
  assert_int_equal (vmem_admission_committed ((const VmemCommitment *) c2->data, c2->len, NULL),
                    10000);

  /* Released: the balloon alone. */
  vmem_cache_release (cache, UUID_A);
  vmem_cache_set_balloon (cache, UUID_A, 3000);
  g_autoptr(GArray) c3 = vmem_cache_commitments (cache);
  assert_int_equal (c3->len, 1);
  assert_int_equal (vmem_admission_committed ((const VmemCommitment *) c3->data, c3->len, NULL),
                    3000);

  /* Stopped: nothing. */
  vmem_cache_update (cache, domain (UUID_A, "a", FALSE, 2048), 0);
  g_autoptr(GArray) c4 = vmem_cache_commitments (cache);
  assert_int_equal (c4->len, 0);
}

/* A reservation outlives the domain leaving the cache (an undefine racing
 * its start): it is still charged until it ends. */
static void
test_commitments_after_remove (void **state)
{
  g_autoptr(VmemCache) cache = vmem_cache_new ();
  vmem_cache_update (cache, domain (UUID_A, "a", FALSE, 2048), 0);
  vmem_cache_reserve (cache, UUID_A, "a", 4096, 0);
  vmem_cache_remove (cache, UUID_A);

  g_autoptr(GArray) c = vmem_cache_commitments (cache);
  assert_int_equal (c->len, 1);
  assert_string_equal (g_array_index (c, VmemCommitment, 0).name, "a");
  assert_int_equal (g_array_index (c, VmemCommitment, 0).reserved_mib, 4096);
}

/* vmem_cache_committed() is the sum of vmem_cache_commitments(), with and
 * without each uuid left out, whatever the mix of running, shut-off,
 * starting and removed domains. */
static void
assert_committed_matches (VmemCache *cache, guint n)
{
  g_autoptr(GArray) c = vmem_cache_commitments (cache);
  const VmemCommitment *cv = (const VmemCommitment *) c->data;
  assert_int_equal (vmem_cache_committed (cache, NULL),
                    vmem_admission_committed (cv, c->len, NULL));
  assert_int_equal (vmem_cache_committed (cache, "not-a-known-uuid"),
                    vmem_admission_committed (cv, c->len, "not-a-known-uuid"));
  for (guint i = 0; i < n; i++)
    {
      char uuid[37];
      g_snprintf (uuid, sizeof uuid, "22222222-2222-4222-8222-%012x", i);
      assert_int_equal (vmem_cache_committed (cache, uuid),
                        vmem_admission_committed (cv, c->len, uuid));
    }
}

static void
test_committed_is_the_commitments_sum (void **state)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (7);
  g_autoptr(VmemCache) cache = vmem_cache_new ();
  const guint n = 24;
  /* Every way the cache changes, at random, on a few uuids so that they
   * meet: the sum kept must be the commitments' after each. */
  for (guint step = 0; step < 4000; step++)
    {
      char uuid[37], name[16];
      guint i = (guint) g_rand_int_range (rand, 0, (gint32) n);
      g_snprintf (uuid, sizeof uuid, "22222222-2222-4222-8222-%012x", i);
      g_snprintf (name, sizeof name, "d%u", i);
      guint64 mib = (guint64) g_rand_int_range (rand, 0, 16384);
      switch (g_rand_int_range (rand, 0, 9))
        {
        case 0: /* read running */
          vmem_cache_update (cache, domain (uuid, name, TRUE, mib), step * SEC);
          break;
        case 1: /* read shut off */
          vmem_cache_update (cache, domain (uuid, name, FALSE, mib), step * SEC);
          break;
        case 2:
        case 3: /* the balloon moves (0: not read) */
          vmem_cache_set_balloon (cache, uuid, mib);
          break;
        case 4: /* a start admitted */
          vmem_cache_reserve (cache, uuid, name, mib, step * SEC);
          break;
        case 5: /* STARTED or STOPPED, named by the reservation's own uuid */
          {
            g_autoptr(GPtrArray) held = vmem_cache_reservations (cache);
            if (held->len > 0)
              vmem_cache_release (
                cache, ((VmemReservation *) g_ptr_array_index (held, i % held->len))->uuid);
          }
          break;
        case 6: /* undefined, named by the domain's own uuid */
          {
            VmemCacheEntry *e = vmem_cache_lookup (cache, uuid);
            if (e != NULL)
              vmem_cache_remove (cache, e->domain->uuid);
          }
          break;
        case 7: /* reservations older than a few steps expire */
          {
            g_autoptr(GPtrArray) gone =
              vmem_cache_expire (cache, step * SEC, (gint64) g_rand_int_range (rand, 1, 40) * SEC);
          }
          break;
        default: /* a full read keeps about half the domains */
          {
            GPtrArray *list =
              g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_domain_free);
            for (guint k = 0; k < n; k++)
              if (g_rand_boolean (rand))
                {
                  char u[37], nm[16];
                  g_snprintf (u, sizeof u, "22222222-2222-4222-8222-%012x", k);
                  g_snprintf (nm, sizeof nm, "d%u", k);
                  g_ptr_array_add (list, domain (u, nm, g_rand_boolean (rand),
                                                 (guint64) g_rand_int_range (rand, 1, 16384)));
                }
            vmem_cache_replace_all (cache, list, step * SEC);
          }
          break;
        }
      assert_committed_matches (cache, n);
    }
}

/* Past G_MAXUINT64 the sum saturates, as vmem_admission_committed()'s
 * does, and leaving the large one out gives the exact rest. */
static void
test_committed_saturates (void **state)
{
  g_autoptr(VmemCache) cache = vmem_cache_new ();
  vmem_cache_update (cache, domain ("22222222-2222-4222-8222-000000000000", "big", TRUE,
                                    G_MAXUINT64 - 10), 0);
  vmem_cache_update (cache, domain ("22222222-2222-4222-8222-000000000001", "small", TRUE, 20), 0);
  vmem_cache_reserve (cache, "22222222-2222-4222-8222-000000000002", "new", 5, 0);
  assert_int_equal (vmem_cache_committed (cache, NULL), G_MAXUINT64);
  assert_int_equal (vmem_cache_committed (cache, "22222222-2222-4222-8222-000000000000"), 25);
  assert_committed_matches (cache, 3);

  /* A reservation above a huge balloon: saturated in the second pass. */
  g_autoptr(VmemCache) c2 = vmem_cache_new ();
  vmem_cache_update (c2, domain ("22222222-2222-4222-8222-000000000000", "big", TRUE,
                                 G_MAXUINT64 - 10), 0);
  vmem_cache_reserve (c2, "22222222-2222-4222-8222-000000000001", "new", 100, 0);
  assert_int_equal (vmem_cache_committed (c2, NULL), G_MAXUINT64);
  assert_committed_matches (c2, 2);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_update_find_remove),
    cmocka_unit_test (test_ready_after_replace_all),
    cmocka_unit_test (test_active_since),
    cmocka_unit_test (test_list_sorted_by_name),
    cmocka_unit_test (test_set_balloon),
    cmocka_unit_test (test_reserve_release),
    cmocka_unit_test (test_reservations_oldest_first),
    cmocka_unit_test (test_expire),
    cmocka_unit_test (test_commitments),
    cmocka_unit_test (test_commitments_starting_counts_max),
    cmocka_unit_test (test_commitments_after_remove),
    cmocka_unit_test (test_committed_is_the_commitments_sum),
    cmocka_unit_test (test_committed_saturates),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
