/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-estimator.h"
#include "vmem-error.h"

#include <math.h>
#include <string.h>

/* Histogram buckets: [0, BUCKET_MIN_MIB] is bucket 0, then each bucket is
 * BUCKET_RATIO times wider than the one before. */
#define BUCKET_MIN_MIB (1.0 / 1024.0)
#define BUCKET_RATIO   1.02
#define BUCKET_MAX     2048

/* Stored weights are relative to the aggregate's reference time; once a
 * new peak is this many half-lives past it the weights are rebased, long
 * before a double could overflow. */
#define REBASE_HALF_LIVES 64.0

typedef struct {
  char   *uuid;
  char   *name;
  char   *host;
  guint   vcpus;
  guint   samples;
  guint   intervals;
  gint64  first_start;
  gint64  first_t;      /* the first sample seen */
  double  memory_mib;   /* its <memory>; 0 = unknown */
  /* The latest peak, so that a growing current interval replaces it. */
  gint64  last_start;
  int     last_bucket;
  double  last_weight;
  guint   last_samples;
  /* Buckets lo .. lo + n - 1. */
  int     lo;
  int     n;
  double *w;
  double *vmax;
} Peer;

struct _VmemWorkloadAgg {
  double      half_life_s;
  double      rss_weight;
  gboolean    have_ref;
  gint64      ref_t;
  GHashTable *peers;   /* uuid -> Peer */
};

static const char *const source_names[] = {
  "peers", "profile", "fallback-domain-memory", "none", "own",
};

const char *
vmem_estimate_source_to_string (VmemEstimateSource source)
{
  return (guint) source < G_N_ELEMENTS (source_names) ? source_names[source] : "unknown";
}

void
vmem_estimator_config_init (VmemEstimatorConfig *config)
{
  config->half_life_hours = 24.0;
  config->quantile = 0.90;
  config->margin_pct = 15.0;
  config->min_peers = 1;
  config->min_history_hours = 6.0;
  config->full_history_hours = 72.0;
  config->peer_quantile = 0.99;
  config->rss_weight = 0.5;
  config->risk_pct = 5.0;
  config->prior_hours = 24.0;
  config->calibration_window = 200;
  config->calibration_min = 20;
  config->calibration_step = 0.005;
  config->calibration_delta = 0.1;
}

static gboolean
check_range (const char *field, double value, double lo, double hi, GError **error)
{
  if (!isfinite (value) || value < lo || value > hi)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s: %g is out of range (%g to %g)", field, value, lo, hi);
      return FALSE;
    }
  return TRUE;
}

gboolean
vmem_estimator_config_validate (const VmemEstimatorConfig *c, GError **error)
{
  g_return_val_if_fail (c != NULL, FALSE);

  if (!check_range ("half_life_hours", c->half_life_hours, 0.01, 24.0 * 365, error) ||
      !check_range ("quantile", c->quantile, 0.5, 1.0, error) ||
      !check_range ("margin_pct", c->margin_pct, 0, 400, error) ||
      !check_range ("min_history_hours", c->min_history_hours, 0, 24.0 * 365, error) ||
      !check_range ("full_history_hours", c->full_history_hours, 0.01, 24.0 * 365, error) ||
      !check_range ("peer_quantile", c->peer_quantile, 0.5, 1.0, error) ||
      !check_range ("rss_weight", c->rss_weight, 0.0, 1.0, error) ||
      !check_range ("risk_pct", c->risk_pct, 0.1, 50, error) ||
      !check_range ("prior_hours", c->prior_hours, 0, 24.0 * 365, error) ||
      !check_range ("calibration_window", c->calibration_window, 1, 100000, error) ||
      !check_range ("calibration_min", c->calibration_min, 0, 100000, error) ||
      !check_range ("calibration_step", c->calibration_step, 0, 0.5, error) ||
      !check_range ("calibration_delta", c->calibration_delta, 0.001, 0.5, error))
    return FALSE;
  return TRUE;
}

static void
peer_free (gpointer data)
{
  Peer *p = data;
  g_free (p->uuid);
  g_free (p->name);
  g_free (p->host);
  g_free (p->w);
  g_free (p->vmax);
  g_free (p);
}

VmemWorkloadAgg *
vmem_workload_agg_new (const VmemEstimatorConfig *config, GError **error)
{
  g_return_val_if_fail (config != NULL, NULL);

  if (!vmem_estimator_config_validate (config, error))
    return NULL;
  VmemWorkloadAgg *agg = g_new0 (VmemWorkloadAgg, 1);
  agg->half_life_s = config->half_life_hours * 3600.0;
  agg->rss_weight = config->rss_weight;
  agg->peers = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, peer_free);
  return agg;
}

void
vmem_workload_agg_free (VmemWorkloadAgg *agg)
{
  if (agg == NULL)
    return;
  g_hash_table_destroy (agg->peers);
  g_free (agg);
}

guint
vmem_workload_agg_n_peers (const VmemWorkloadAgg *agg)
{
  return g_hash_table_size (agg->peers);
}

void
vmem_workload_agg_set_memory (VmemWorkloadAgg *agg, const char *uuid, double memory_mib)
{
  g_return_if_fail (agg != NULL && uuid != NULL && *uuid != '\0');

  if (!isfinite (memory_mib) || memory_mib < 0)
    memory_mib = 0;
  Peer *p = g_hash_table_lookup (agg->peers, uuid);
  if (p == NULL)
    {
      p = g_new0 (Peer, 1);
      p->uuid = g_strdup (uuid);
      p->first_t = G_MAXINT64;
      g_hash_table_insert (agg->peers, p->uuid, p);
    }
  p->memory_mib = memory_mib;
}

gboolean
vmem_workload_agg_remove_peer (VmemWorkloadAgg *agg, const char *uuid)
{
  return g_hash_table_remove (agg->peers, uuid);
}

static int
bucket_of (double mib)
{
  if (mib <= BUCKET_MIN_MIB)
    return 0;
  int b = 1 + (int) floor (log (mib / BUCKET_MIN_MIB) / log (BUCKET_RATIO));
  return MIN (b, BUCKET_MAX - 1);
}

/* Makes bucket @b exist in @p. */
static void
peer_reserve (Peer *p, int b)
{
  if (p->n == 0)
    {
      p->lo = b;
      p->n = 1;
      p->w = g_new0 (double, 1);
      p->vmax = g_new0 (double, 1);
      return;
    }
  if (b >= p->lo && b < p->lo + p->n)
    return;
  int lo = MIN (p->lo, b);
  int hi = MAX (p->lo + p->n - 1, b);
  int n = hi - lo + 1;
  double *w = g_new0 (double, n);
  double *vmax = g_new0 (double, n);
  memcpy (w + (p->lo - lo), p->w, sizeof (double) * p->n);
  memcpy (vmax + (p->lo - lo), p->vmax, sizeof (double) * p->n);
  g_free (p->w);
  g_free (p->vmax);
  p->w = w;
  p->vmax = vmax;
  p->lo = lo;
  p->n = n;
}

static void
agg_rebase (VmemWorkloadAgg *agg, gint64 new_ref)
{
  double factor = exp2 (-(double) (new_ref - agg->ref_t) / agg->half_life_s);
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, agg->peers);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Peer *p = value;
      for (int i = 0; i < p->n; i++)
        p->w[i] *= factor;
      p->last_weight *= factor;
    }
  agg->ref_t = new_ref;
}

static double
obs_quality (const VmemPeakObs *obs, double rss_weight)
{
  if (obs->samples == 0)
    return 1.0;
  double guest = MIN (obs->guest_samples, obs->samples);
  return (guest + rss_weight * (obs->samples - guest)) / obs->samples;
}

gboolean
vmem_workload_agg_add (VmemWorkloadAgg *agg, const VmemPeakObs *obs, GError **error)
{
  g_return_val_if_fail (agg != NULL && obs != NULL, FALSE);

  if (obs->uuid == NULL || *obs->uuid == '\0')
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "uuid: must be set");
      return FALSE;
    }
  if (!isfinite (obs->peak_mib) || obs->peak_mib < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "peak_mib: %g is not a size", obs->peak_mib);
      return FALSE;
    }
  if (obs->interval_s == 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "interval_s: must be positive");
      return FALSE;
    }
  if (obs->guest_samples > obs->samples)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "guest_samples: %u is more than samples %u", obs->guest_samples,
                   obs->samples);
      return FALSE;
    }

  gint64 end = obs->start_t + obs->interval_s;
  if (!agg->have_ref)
    {
      agg->ref_t = end;
      agg->have_ref = TRUE;
    }
  else if ((double) (end - agg->ref_t) > REBASE_HALF_LIVES * agg->half_life_s)
    agg_rebase (agg, end);

  Peer *p = g_hash_table_lookup (agg->peers, obs->uuid);
  /* Peaks may come in any order (a store need not sort them): the latest
   * one, which a growing interval replaces, is the one of the newest
   * interval. */
  gboolean newest = p == NULL || p->intervals == 0 || obs->start_t >= p->last_start;
  if (p == NULL)
    {
      p = g_new0 (Peer, 1);
      p->uuid = g_strdup (obs->uuid);
      p->first_start = obs->start_t;
      p->first_t = G_MAXINT64;
      g_hash_table_insert (agg->peers, p->uuid, p);
    }
  else if (p->intervals > 0 && obs->start_t == p->last_start)
    {
      int i = p->last_bucket - p->lo;
      p->w[i] -= p->last_weight;
      if (p->w[i] <= 1e-12 * p->last_weight)
        {
          p->w[i] = 0;
          p->vmax[i] = 0;
        }
      p->samples -= p->last_samples;
      p->intervals--;
    }

  if (obs->domain != NULL && g_strcmp0 (p->name, obs->domain) != 0)
    {
      g_free (p->name);
      p->name = g_strdup (obs->domain);
    }
  if (obs->host != NULL && g_strcmp0 (p->host, obs->host) != 0)
    {
      g_free (p->host);
      p->host = g_strdup (obs->host);
    }
  if (newest)
    p->vcpus = obs->vcpus;

  int b = bucket_of (obs->peak_mib);
  peer_reserve (p, b);
  double w = obs_quality (obs, agg->rss_weight) *
             exp2 ((double) (end - agg->ref_t) / agg->half_life_s);
  p->w[b - p->lo] += w;
  p->vmax[b - p->lo] = MAX (p->vmax[b - p->lo], obs->peak_mib);
  p->samples += MAX (obs->samples, 1);
  p->intervals++;
  p->first_start = p->intervals == 1 ? obs->start_t : MIN (p->first_start, obs->start_t);
  p->first_t = MIN (p->first_t, obs->first_t > obs->start_t ? obs->first_t : obs->start_t);
  if (newest)
    {
      p->last_start = obs->start_t;
      p->last_bucket = b;
      p->last_weight = w;
      p->last_samples = MAX (obs->samples, 1);
    }
  return TRUE;
}

/* Smallest value whose cumulative weight reaches @q of the total: the
 * highest peak seen in that bucket.  Empty buckets never answer. */
static double
hist_quantile (const double *w, const double *vmax, int n, double q)
{
  double total = 0;
  for (int i = 0; i < n; i++)
    total += w[i];
  if (total <= 0)
    return 0;
  double target = q * total * (1.0 - 1e-12);
  double acc = 0;
  double last = 0;
  for (int i = 0; i < n; i++)
    {
      if (w[i] <= 0)
        continue;
      acc += w[i];
      last = vmax[i];
      if (acc >= target)
        return vmax[i];
    }
  return last;
}

static double
peer_total (const Peer *p)
{
  double total = 0;
  for (int i = 0; i < p->n; i++)
    total += p->w[i];
  return total;
}

gboolean
vmem_workload_agg_pooled_quantile (const VmemWorkloadAgg *agg, const char *exclude_uuid,
                                   double q, gint64 now, double *out_mib, guint *out_peers)
{
  int lo = BUCKET_MAX, hi = -1;
  guint n_peers = 0;
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, agg->peers);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Peer *p = value;
      if (exclude_uuid != NULL && g_str_equal (p->uuid, exclude_uuid))
        continue;
      if (p->n == 0 || peer_total (p) <= 0)
        continue;
      lo = MIN (lo, p->lo);
      hi = MAX (hi, p->lo + p->n - 1);
      n_peers++;
    }
  if (out_peers != NULL)
    *out_peers = n_peers;
  if (n_peers == 0)
    return FALSE;

  int n = hi - lo + 1;
  g_autofree double *w = g_new0 (double, n);
  g_autofree double *vmax = g_new0 (double, n);
  g_hash_table_iter_init (&iter, agg->peers);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Peer *p = value;
      if (exclude_uuid != NULL && g_str_equal (p->uuid, exclude_uuid))
        continue;
      for (int i = 0; i < p->n; i++)
        {
          w[p->lo - lo + i] += p->w[i];
          vmax[p->lo - lo + i] = MAX (vmax[p->lo - lo + i], p->vmax[i]);
        }
    }
  (void) now; /* every peak decays alike: the quantile does not depend on it */
  *out_mib = hist_quantile (w, vmax, n, q);
  return TRUE;
}

static void
estimate_peer_free (gpointer data)
{
  VmemEstimatePeer *p = data;
  g_free (p->uuid);
  g_free (p->name);
  g_free (p->host);
  g_free (p);
}

void
vmem_estimate_free (VmemEstimate *e)
{
  if (e == NULL)
    return;
  g_free (e->reason);
  if (e->peers != NULL)
    g_ptr_array_unref (e->peers);
  g_free (e);
}

typedef struct {
  double level;   /* per vCPU when per-vcpu */
  double weight;
} Level;

static int
level_cmp (gconstpointer a, gconstpointer b)
{
  const Level *x = a, *y = b;
  return (x->level > y->level) - (x->level < y->level);
}

static int
peer_cmp_desc (gconstpointer a, gconstpointer b)
{
  const VmemEstimatePeer *x = *(VmemEstimatePeer *const *) a;
  const VmemEstimatePeer *y = *(VmemEstimatePeer *const *) b;
  if (x->peak_mib != y->peak_mib)
    return (x->peak_mib < y->peak_mib) - (x->peak_mib > y->peak_mib);
  return g_strcmp0 (x->uuid, y->uuid);
}

static double
levels_quantile (GArray *levels, double q)
{
  g_array_sort (levels, level_cmp);
  double total = 0;
  for (guint i = 0; i < levels->len; i++)
    total += g_array_index (levels, Level, i).weight;
  double target = q * total * (1.0 - 1e-12);
  double acc = 0;
  for (guint i = 0; i < levels->len; i++)
    {
      const Level *l = &g_array_index (levels, Level, i);
      acc += l->weight;
      if (acc >= target && l->weight > 0)
        return l->level;
    }
  return levels->len > 0 ? g_array_index (levels, Level, levels->len - 1).level : 0;
}

static void
apply_clamps (VmemEstimate *e, const VmemProfile *profile, const VmemEstimateTarget *target)
{
  double v = e->raw_mib;
  if (profile != NULL && profile->floor_mib != 0 && v < (double) profile->floor_mib)
    {
      v = (double) profile->floor_mib;
      e->clamps |= VMEM_CLAMP_FLOOR;
    }
  if (profile != NULL && profile->ceiling_mib != 0 && v > (double) profile->ceiling_mib)
    {
      v = (double) profile->ceiling_mib;
      e->clamps |= VMEM_CLAMP_CEILING;
    }
  /* Last, so that it wins over the floor: a guest cannot get more than
   * its <memory>. */
  if (target->memory_mib > 0 && v > target->memory_mib)
    {
      v = target->memory_mib;
      e->clamps |= VMEM_CLAMP_DOMAIN_MEMORY;
    }
  e->value_mib = v;
  e->demand_mib = (guint64) ceil (v - 1e-9);
}

/* The fallback when there is too little history: the profile's demand,
 * else the domain's memory. */
static void
estimate_fallback (VmemEstimate *e, const VmemProfile *profile, const VmemEstimateTarget *target,
                   const char *why)
{
  if (profile != NULL && profile->demand_mib != 0)
    {
      e->source = VMEM_SOURCE_PROFILE;
      e->raw_mib = (double) profile->demand_mib;
      e->reason = g_strdup_printf ("%s: using the profile's demand", why);
    }
  else if (target->memory_mib > 0)
    {
      e->source = VMEM_SOURCE_FALLBACK_DOMAIN_MEMORY;
      e->raw_mib = target->memory_mib;
      e->reason = g_strdup_printf ("%s and the profile sets no demand: using the "
                                   "domain's memory", why);
    }
  else
    {
      e->source = VMEM_SOURCE_NONE;
      e->reason = g_strdup_printf ("%s, the profile sets no demand and the domain's "
                                   "memory is unknown", why);
      return;
    }
  apply_clamps (e, profile, target);
}

/* A peer's level scaled to the target: relative to its <memory> (or per
 * vCPU), times the target's; absolute when either size is unknown. */
static double
scale_level (const VmemEstimate *e, const Peer *p, double level, const VmemEstimateTarget *target)
{
  if (e->scale == VMEM_SCALE_PER_VCPU)
    return level / MAX (p->vcpus, 1) * e->vcpus;
  if (p->memory_mib > 0 && target->memory_mib > 0)
    return level / p->memory_mib * target->memory_mib;
  return level;
}

VmemEstimate *
vmem_estimator_estimate (const VmemWorkloadAgg *agg, const VmemCalibration *cal,
                         const VmemEstimatorConfig *config, const VmemProfile *profile,
                         const VmemEstimateTarget *target, gint64 now, GError **error)
{
  g_return_val_if_fail (agg != NULL && config != NULL && target != NULL, NULL);

  if (!vmem_estimator_config_validate (config, error))
    return NULL;
  if (!isfinite (target->memory_mib) || target->memory_mib < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "memory_mib: %g is not a size", target->memory_mib);
      return NULL;
    }

  g_autoptr(VmemEstimate) e = g_new0 (VmemEstimate, 1);
  e->now = now;
  e->peers = g_ptr_array_new_with_free_func (estimate_peer_free);
  e->quantile = profile != NULL ? profile->quantile : config->quantile;
  e->margin_pct = profile != NULL ? profile->margin_pct : config->margin_pct;
  e->scale = profile != NULL ? profile->scale : VMEM_SCALE_ABSOLUTE;
  e->vcpus = MAX (target->vcpus, 1);
  e->kind = VMEM_START_FIRST;
  e->calibration.risk = (profile != NULL ? profile->risk_pct : config->risk_pct) / 100.0;

  /* Weights are stored relative to ref_t; this brings them to @now. */
  double to_now = agg->have_ref ? exp2 ((double) (agg->ref_t - now) / agg->half_life_s) : 0;
  g_autoptr(GArray) levels = g_array_new (FALSE, FALSE, sizeof (Level));
  gint64 oldest = G_MAXINT64;
  const Peer *own = NULL;
  GHashTableIter iter;
  gpointer value;

  g_hash_table_iter_init (&iter, agg->peers);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      Peer *p = value;
      double total = peer_total (p);
      if (p->n == 0 || total <= 0)
        continue;
      if (target->uuid != NULL && g_str_equal (p->uuid, target->uuid))
        {
          /* A first start never reads the domain's own peaks. */
          if (!target->exclude_self)
            own = p;
          continue;
        }

      VmemEstimatePeer *ep = g_new0 (VmemEstimatePeer, 1);
      ep->uuid = g_strdup (p->uuid);
      ep->name = g_strdup (p->name);
      ep->host = g_strdup (p->host);
      ep->samples = p->samples;
      ep->intervals = p->intervals;
      ep->vcpus = p->vcpus;
      ep->memory_mib = p->memory_mib;
      ep->peak_mib = hist_quantile (p->w, p->vmax, p->n, config->peer_quantile);
      ep->scaled_mib = scale_level (e, p, ep->peak_mib, target);
      ep->weight = total * to_now;
      g_ptr_array_add (e->peers, ep);

      /* Relative weights suffice for the quantile and do not underflow
       * however long ago the last peak was. */
      Level l = { ep->scaled_mib, total };
      g_array_append_val (levels, l);
      oldest = MIN (oldest, p->first_t);
    }
  g_ptr_array_sort (e->peers, peer_cmp_desc);

  guint n = levels->len;
  e->history_hours = n > 0 ? MAX (0.0, (double) (now - oldest) / 3600.0) : 0.0;
  if (own != NULL)
    {
      e->own_hours = MAX (0.0, (double) (now - own->first_t) / 3600.0);
      e->own_level_mib = hist_quantile (own->w, own->vmax, own->n, config->peer_quantile);
    }
  guint min_peers = MAX (config->min_peers, 1);
  gboolean peers_ok = n >= min_peers && e->history_hours >= config->min_history_hours;
  gboolean own_ok = own != NULL && e->own_hours >= config->min_history_hours;

  if (!peers_ok && !own_ok)
    {
      g_autofree char *why = NULL;
      if (n < min_peers)
        why = g_strdup_printf ("%u peer%s with history, %u needed", n, n == 1 ? "" : "s",
                               min_peers);
      else
        why = g_strdup_printf ("peer history covers %.1f h, %.1f h needed",
                               e->history_hours, config->min_history_hours);
      if (own != NULL)
        {
          g_autofree char *t = why;
          why = g_strdup_printf ("%s, own history %.1f h", t, e->own_hours);
        }
      estimate_fallback (e, profile, target, why);
      return g_steal_pointer (&e);
    }

  double prior_w = 0;
  if (peers_ok)
    {
      e->quantile_mib = levels_quantile (levels, e->quantile);
      prior_w = MIN (e->history_hours, config->prior_hours);
    }
  if (own_ok)
    {
      /* Own history first, the peers as the prior: each side weighs the
       * hours of history it has, the peers at most prior_hours. */
      e->own_weight = prior_w > 0 ? e->own_hours / (e->own_hours + prior_w) : 1.0;
      e->base_mib = e->own_weight * e->own_level_mib + (1.0 - e->own_weight) * e->quantile_mib;
      e->kind = VMEM_START_OWN;
      e->source = VMEM_SOURCE_OWN;
    }
  else
    {
      e->base_mib = e->quantile_mib;
      e->source = VMEM_SOURCE_PEERS;
    }

  double factor = 1.0 + e->margin_pct / 100.0;
  double risk = e->calibration.risk;
  if (cal != NULL &&
      vmem_calibration_margin (cal, target->workload, e->kind, risk, &e->calibration))
    factor = e->calibration.factor;
  else
    e->calibration.kind = e->kind;
  e->effective_margin_pct = 100.0 * (factor - 1.0);
  e->raw_mib = e->base_mib * factor;

  g_autofree char *margin = NULL;
  if (e->calibration.scope != VMEM_CALIBRATION_NONE)
    margin = g_strdup_printf ("margin %+.1f %% calibrated to at most %g %% risk with %g %% "
                              "confidence on %u %s outcomes (rank %u at level %g %%; "
                              "%.1f %% of them under-provisioned)",
                              e->effective_margin_pct, risk * 100,
                              e->calibration.confidence * 100, e->calibration.outcomes,
                              e->calibration.scope == VMEM_CALIBRATION_WORKLOAD
                                ? "of the workload's" : "pooled",
                              e->calibration.rank, e->calibration.level * 100,
                              e->calibration.observed_pct);
  else
    margin = g_strdup_printf ("margin %g %% (too few outcomes to calibrate to %g %% risk)",
                              e->margin_pct, risk * 100);
  const char *per = e->scale == VMEM_SCALE_PER_VCPU ? "per vCPU" : "relative to <memory>";
  if (own_ok && peers_ok)
    e->reason = g_strdup_printf ("own history: level %.0f MiB over %.1f h, weighted %.2f "
                                 "against the prior of %u peer%s (p%g %s, %.0f MiB); %s",
                                 e->own_level_mib, e->own_hours, e->own_weight, n,
                                 n == 1 ? "" : "s", e->quantile * 100, per, e->quantile_mib,
                                 margin);
  else if (own_ok)
    e->reason = g_strdup_printf ("own history: level %.0f MiB over %.1f h, no peers; %s",
                                 e->own_level_mib, e->own_hours, margin);
  else
    e->reason = g_strdup_printf ("first start: p%g of the levels of %u peer%s %s over %.1f h "
                                 "of history; %s", e->quantile * 100, n, n == 1 ? "" : "s",
                                 per, e->history_hours, margin);
  apply_clamps (e, profile, target);
  return g_steal_pointer (&e);
}

VmemEstimate *
vmem_estimator_estimate_peaks (const VmemPeakObs *peaks, gsize n_peaks,
                               const VmemEstimatorConfig *config, const VmemProfile *profile,
                               const VmemEstimateTarget *target, gint64 now, GError **error)
{
  g_return_val_if_fail (config != NULL, NULL);

  if (!vmem_estimator_config_validate (config, error))
    return NULL;
  g_autoptr(VmemWorkloadAgg) agg = vmem_workload_agg_new (config, error);
  if (agg == NULL)
    return NULL;
  for (gsize i = 0; i < n_peaks; i++)
    if (!vmem_workload_agg_add (agg, &peaks[i], error))
      {
        g_prefix_error (error, "peak %" G_GSIZE_FORMAT ": ", i);
        return NULL;
      }
  return vmem_estimator_estimate (agg, NULL, config, profile, target, now, error);
}

/* "0.95", not "0.94999999999999996". */
static json_object *
new_double (double v)
{
  if (!isfinite (v))
    return json_object_new_double (0);
  g_autofree char *s = g_strdup_printf ("%.6g", v);
  if (strpbrk (s, ".e") == NULL)
    {
      g_autofree char *t = s;
      s = g_strdup_printf ("%s.0", t);
    }
  return json_object_new_double_s (v, s);
}

static json_object *
new_string_or_null (const char *s)
{
  return s != NULL ? json_object_new_string (s) : NULL;
}

json_object *
vmem_estimate_to_json (const VmemEstimate *e)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "demand_mib", json_object_new_int64 ((gint64) e->demand_mib));
  json_object_object_add (o, "source",
                          json_object_new_string (vmem_estimate_source_to_string (e->source)));
  json_object_object_add (o, "reason", new_string_or_null (e->reason));
  json_object_object_add (o, "quantile", new_double (e->quantile));
  json_object_object_add (o, "quantile_mib", new_double (e->quantile_mib));
  json_object_object_add (o, "margin_pct", new_double (e->margin_pct));
  json_object_object_add (o, "effective_margin_pct", new_double (e->effective_margin_pct));
  json_object_object_add (o, "kind", json_object_new_string (vmem_start_kind_to_string (e->kind)));
  json_object_object_add (o, "history_hours", new_double (e->history_hours));
  json_object_object_add (o, "own_level_mib", new_double (e->own_level_mib));
  json_object_object_add (o, "own_hours", new_double (e->own_hours));
  json_object_object_add (o, "own_weight", new_double (e->own_weight));
  json_object_object_add (o, "base_mib", new_double (e->base_mib));
  json_object_object_add (o, "calibration", vmem_calibration_result_to_json (&e->calibration));
  json_object_object_add (o, "scale", json_object_new_string (vmem_scale_to_string (e->scale)));
  json_object_object_add (o, "vcpus", json_object_new_int ((int) e->vcpus));
  json_object_object_add (o, "raw_mib", new_double (e->raw_mib));

  json_object *clamps = json_object_new_array ();
  if (e->clamps & VMEM_CLAMP_FLOOR)
    json_object_array_add (clamps, json_object_new_string ("floor"));
  if (e->clamps & VMEM_CLAMP_CEILING)
    json_object_array_add (clamps, json_object_new_string ("ceiling"));
  if (e->clamps & VMEM_CLAMP_DOMAIN_MEMORY)
    json_object_array_add (clamps, json_object_new_string ("domain-memory"));
  json_object_object_add (o, "clamps", clamps);
  json_object_object_add (o, "time", json_object_new_int64 (e->now));

  json_object *peers = json_object_new_array ();
  for (guint i = 0; e->peers != NULL && i < e->peers->len; i++)
    {
      const VmemEstimatePeer *p = g_ptr_array_index (e->peers, i);
      json_object *po = json_object_new_object ();
      json_object_object_add (po, "uuid", json_object_new_string (p->uuid));
      json_object_object_add (po, "name", new_string_or_null (p->name));
      json_object_object_add (po, "host", new_string_or_null (p->host));
      json_object_object_add (po, "samples", json_object_new_int64 (p->samples));
      json_object_object_add (po, "intervals", json_object_new_int64 (p->intervals));
      json_object_object_add (po, "vcpus", json_object_new_int ((int) p->vcpus));
      json_object_object_add (po, "memory_mib", new_double (p->memory_mib));
      json_object_object_add (po, "peak_mib", new_double (p->peak_mib));
      json_object_object_add (po, "scaled_mib", new_double (p->scaled_mib));
      json_object_object_add (po, "weight", new_double (p->weight));
      json_object_array_add (peers, po);
    }
  json_object_object_add (o, "peers", peers);
  return o;
}
