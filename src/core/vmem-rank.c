/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-rank.h"

#include <string.h>

static int
node_cmp (const VmemRankNode *a, const VmemRankNode *b)
{
  if (a->key < b->key)
    return -1;
  if (a->key > b->key)
    return 1;
  return strcmp (a->id, b->id);
}

static void
pull (VmemRankNode *n)
{
  double s = n->left != NULL ? n->left->sum : 0.0;
  guint c = 1;
  if (n->left != NULL)
    c += n->left->count;
  s += n->weight;
  if (n->right != NULL)
    {
      s += n->right->sum;
      c += n->right->count;
    }
  n->sum = s;
  n->count = c;
}

/* Splits @t into the nodes before @x and those after it. */
static void
split (VmemRankNode *t, const VmemRankNode *x, VmemRankNode **l, VmemRankNode **r)
{
  if (t == NULL)
    {
      *l = *r = NULL;
      return;
    }
  if (node_cmp (t, x) < 0)
    {
      split (t->right, x, &t->right, r);
      *l = t;
    }
  else
    {
      split (t->left, x, l, &t->left);
      *r = t;
    }
  pull (t);
}

/* Every node of @a comes before every node of @b. */
static VmemRankNode *
merge (VmemRankNode *a, VmemRankNode *b)
{
  if (a == NULL)
    return b;
  if (b == NULL)
    return a;
  if (a->prio > b->prio)
    {
      a->right = merge (a->right, b);
      pull (a);
      return a;
    }
  b->left = merge (a, b->left);
  pull (b);
  return b;
}

static VmemRankNode *
insert (VmemRankNode *t, VmemRankNode *x)
{
  if (t == NULL || x->prio > t->prio)
    {
      split (t, x, &x->left, &x->right);
      pull (x);
      return x;
    }
  if (node_cmp (x, t) < 0)
    t->left = insert (t->left, x);
  else
    t->right = insert (t->right, x);
  pull (t);
  return t;
}

static VmemRankNode *
remove_node (VmemRankNode *t, VmemRankNode *x)
{
  if (t == NULL)
    return NULL;
  if (t == x)
    return merge (t->left, t->right);
  if (node_cmp (x, t) < 0)
    t->left = remove_node (t->left, x);
  else
    t->right = remove_node (t->right, x);
  pull (t);
  return t;
}

void
vmem_rank_insert (VmemRankSet *set, VmemRankNode *node)
{
  g_return_if_fail (set != NULL && node != NULL && node->id != NULL && !node->linked);

  /* The priority comes from the id: the same set of keys has the same
   * shape, whatever order they came in. */
  node->prio = g_str_hash (node->id) * 2654435761u;
  node->left = node->right = NULL;
  set->root = insert (set->root, node);
  node->linked = TRUE;
}

void
vmem_rank_remove (VmemRankSet *set, VmemRankNode *node)
{
  g_return_if_fail (set != NULL && node != NULL && node->linked);

  set->root = remove_node (set->root, node);
  node->left = node->right = NULL;
  node->linked = FALSE;
}

guint
vmem_rank_count (const VmemRankSet *set)
{
  return set->root != NULL ? set->root->count : 0;
}

double
vmem_rank_total (const VmemRankSet *set)
{
  return set->root != NULL ? set->root->sum : 0.0;
}

const VmemRankNode *
vmem_rank_first (const VmemRankSet *set)
{
  const VmemRankNode *n = set->root;
  while (n != NULL && n->left != NULL)
    n = n->left;
  return n;
}

const VmemRankNode *
vmem_rank_search (const VmemRankSet *set, double amount, double *before)
{
  const VmemRankNode *n = set->root;
  double acc = 0;
  while (n != NULL)
    {
      double left = acc + (n->left != NULL ? n->left->sum : 0.0);
      if (n->left != NULL && left >= amount)
        {
          n = n->left;
          continue;
        }
      if (left + n->weight >= amount)
        {
          *before = left;
          return n;
        }
      acc = left + n->weight;
      n = n->right;
    }
  return NULL;
}
