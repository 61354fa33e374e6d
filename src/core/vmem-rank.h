/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* An ordered set of weighted keys with the weight of every prefix at
 * hand: a treap whose nodes hold the sum of their subtree's weights.
 * Insert and remove are O(log n) expected, and so is finding the first
 * key at which the weight so far reaches a given amount (a weighted
 * quantile).  Order: by key, then by id, so that equal keys have a fixed
 * order.  Pure; the caller owns the nodes (they are usually embedded in
 * what they index) and keeps them alive while they are in a set. */

#include <glib.h>

G_BEGIN_DECLS

typedef struct _VmemRankNode VmemRankNode;
struct _VmemRankNode {
  /* Set by the caller before vmem_rank_insert(), not changed while the
   * node is in a set. */
  double        key;
  double        weight;   /* > 0 */
  const char   *id;       /* orders equal keys; unique within a set */
  /* The set's own. */
  VmemRankNode *left, *right;
  double        sum;      /* weights of this subtree */
  guint         count;    /* nodes of this subtree */
  guint         prio;
  gboolean      linked;
};

typedef struct {
  VmemRankNode *root;
} VmemRankSet;

#define VMEM_RANK_SET_INIT { NULL }

void  vmem_rank_insert (VmemRankSet *set, VmemRankNode *node);
/* Removes @node, which must be in @set. */
void  vmem_rank_remove (VmemRankSet *set, VmemRankNode *node);
guint vmem_rank_count (const VmemRankSet *set);
/* The sum of every weight (as the tree adds them up). */
double vmem_rank_total (const VmemRankSet *set);
/* The first node in order, NULL when empty. */
const VmemRankNode *vmem_rank_first (const VmemRankSet *set);
/* The first node in order at which the weights up to and including it
 * reach @amount; *@before gets the weight of the nodes before it.  NULL
 * when the whole set does not reach @amount.  The sums are added up in
 * the tree's shape, not one by one in order: each may differ from the
 * sum in order by the rounding of as many additions as there are nodes. */
const VmemRankNode *vmem_rank_search (const VmemRankSet *set, double amount, double *before);

G_END_DECLS
