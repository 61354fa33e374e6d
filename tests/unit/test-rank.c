/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-rank.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#define N_NODES 300

static int
model_cmp (gconstpointer a, gconstpointer b)
{
  const VmemRankNode *x = *(VmemRankNode *const *) a, *y = *(VmemRankNode *const *) b;
  if (x->key != y->key)
    return x->key < y->key ? -1 : 1;
  return strcmp (x->id, y->id);
}

/* Order, heap priorities, subtree counts and sums; returns the count. */
static guint
check_tree (const VmemRankNode *n, const VmemRankNode *lo, const VmemRankNode *hi)
{
  if (n == NULL)
    return 0;
  assert_true (n->linked);
  const VmemRankNode *self[] = { n };
  const VmemRankNode *bound[] = { lo, hi };
  if (lo != NULL)
    assert_true (model_cmp (&bound[0], &self[0]) < 0);
  if (hi != NULL)
    assert_true (model_cmp (&self[0], &bound[1]) < 0);
  if (n->left != NULL)
    assert_true (n->left->prio <= n->prio);
  if (n->right != NULL)
    assert_true (n->right->prio <= n->prio);
  guint c = 1 + check_tree (n->left, lo, n) + check_tree (n->right, n, hi);
  assert_int_equal (n->count, c);
  double s = (n->left ? n->left->sum : 0) + n->weight + (n->right ? n->right->sum : 0);
  assert_true (n->sum == s);
  return c;
}

/* The set against a sorted array of the same nodes: count, first, total
 * and, for an amount half-way into each node's weight, the node found
 * and the weight before it. */
static void
check_against (const VmemRankSet *set, GPtrArray *model)
{
  g_ptr_array_sort (model, model_cmp);
  assert_int_equal (check_tree (set->root, NULL, NULL), model->len);
  assert_int_equal (vmem_rank_count (set), model->len);
  if (model->len == 0)
    {
      assert_null (vmem_rank_first (set));
      assert_null (vmem_rank_search (set, 1, &(double) { 0 }));
      return;
    }
  assert_ptr_equal (vmem_rank_first (set), g_ptr_array_index (model, 0));
  double acc = 0;
  for (guint i = 0; i < model->len; i++)
    {
      const VmemRankNode *n = g_ptr_array_index (model, i);
      double before = -1;
      const VmemRankNode *found = vmem_rank_search (set, acc + n->weight / 2, &before);
      assert_ptr_equal (found, n);
      assert_true (fabs (before - acc) <= 1e-9 * (acc + 1));
      acc += n->weight;
    }
  assert_true (fabs (vmem_rank_total (set) - acc) <= 1e-9 * acc);
  assert_null (vmem_rank_search (set, acc * 1.001 + 1, &(double) { 0 }));
}

/* Random inserts and removes, equal keys among them (ordered by id). */
static void
test_random (void **state)
{
  g_autoptr(GRand) r = g_rand_new_with_seed (7);
  VmemRankNode *nodes = g_new0 (VmemRankNode, N_NODES);
  g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) model = g_ptr_array_new ();
  VmemRankSet set = VMEM_RANK_SET_INIT;

  for (guint i = 0; i < N_NODES; i++)
    g_ptr_array_add (ids, g_strdup_printf ("node-%03u", i));
  for (guint op = 0; op < 3000; op++)
    {
      VmemRankNode *n = &nodes[g_rand_int_range (r, 0, N_NODES)];
      if (n->linked)
        {
          vmem_rank_remove (&set, n);
          assert_false (n->linked);
          assert_true (g_ptr_array_remove_fast (model, n));
        }
      else
        {
          n->id = g_ptr_array_index (ids, n - nodes);
          n->key = g_rand_boolean (r) ? g_rand_int_range (r, 0, 10) : g_rand_double (r) * 100;
          n->weight = g_rand_double_range (r, 0.001, 1000);
          vmem_rank_insert (&set, n);
          g_ptr_array_add (model, n);
        }
      if (op % 50 == 0)
        check_against (&set, model);
    }
  check_against (&set, model);
  while (model->len > 0)
    {
      VmemRankNode *n = g_ptr_array_steal_index_fast (model, 0);
      vmem_rank_remove (&set, n);
    }
  check_against (&set, model);
  assert_null (set.root);
  g_free (nodes);
}

/* The shape depends on the keys, not on the order they came in. */
static void
test_shape_from_keys (void **state)
{
  VmemRankNode a[50], b[50];
  memset (a, 0, sizeof a);
  memset (b, 0, sizeof b);
  VmemRankSet sa = VMEM_RANK_SET_INIT, sb = VMEM_RANK_SET_INIT;
  g_autoptr(GPtrArray) ids = g_ptr_array_new_with_free_func (g_free);
  for (guint i = 0; i < 50; i++)
    {
      g_ptr_array_add (ids, g_strdup_printf ("%u", i));
      a[i].id = b[i].id = g_ptr_array_index (ids, i);
      a[i].key = b[i].key = (i * 37) % 11;
      a[i].weight = b[i].weight = 1 + i;
    }
  for (guint i = 0; i < 50; i++)
    {
      vmem_rank_insert (&sa, &a[i]);
      vmem_rank_insert (&sb, &b[49 - i]);
    }
  assert_true (vmem_rank_total (&sa) == vmem_rank_total (&sb));
  assert_int_equal (sa.root - a, sb.root - b);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_random),
    cmocka_unit_test (test_shape_from_keys),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
