/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-peaks.h"
#include "vmem-error.h"

#include <math.h>

typedef struct {
  char   *uuid;
  char   *domain;
  char   *host;
  gint64  start_t;
  gint64  first_t;
  double  peak_mib;
  guint   samples;
  guint   guest_samples;
  guint   vcpus;
} Entry;

struct _VmemPeakTracker {
  guint       interval_s;
  GHashTable *entries; /* uuid -> Entry */
};

gint64
vmem_peak_start (gint64 t, guint interval_s)
{
  g_return_val_if_fail (interval_s > 0, t);

  gint64 r = t % (gint64) interval_s;
  return r < 0 ? t - r - (gint64) interval_s : t - r;
}

static void
entry_free (gpointer data)
{
  Entry *e = data;
  g_free (e->uuid);
  g_free (e->domain);
  g_free (e->host);
  g_free (e);
}

/* Copies before freeing: @value may point into *@p's owner. */
static void
set_str (char **p, const char *value)
{
  if (g_strcmp0 (*p, value) == 0)
    return;
  char *copy = g_strdup (value);
  g_free (*p);
  *p = copy;
}

VmemPeakTracker *
vmem_peak_tracker_new (guint interval_s)
{
  g_return_val_if_fail (interval_s > 0, NULL);

  VmemPeakTracker *t = g_new0 (VmemPeakTracker, 1);
  t->interval_s = interval_s;
  t->entries = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, entry_free);
  return t;
}

void
vmem_peak_tracker_free (VmemPeakTracker *t)
{
  if (t == NULL)
    return;
  g_hash_table_destroy (t->entries);
  g_free (t);
}

static Entry *
entry_get (VmemPeakTracker *t, const char *uuid)
{
  Entry *e = g_hash_table_lookup (t->entries, uuid);
  if (e == NULL)
    {
      e = g_new0 (Entry, 1);
      e->uuid = g_strdup (uuid);
      e->start_t = G_MININT64;
      g_hash_table_insert (t->entries, e->uuid, e);
    }
  return e;
}

static void
entry_to_obs (const VmemPeakTracker *t, const Entry *e, VmemPeakObs *out)
{
  *out = (VmemPeakObs) {
    .uuid = e->uuid,
    .domain = e->domain,
    .host = e->host,
    .start_t = e->start_t,
    .first_t = e->first_t,
    .interval_s = t->interval_s,
    .peak_mib = e->peak_mib,
    .samples = e->samples,
    .guest_samples = e->guest_samples,
    .vcpus = e->vcpus,
  };
}

void
vmem_peak_tracker_seed (VmemPeakTracker *t, const VmemPeakObs *peak)
{
  g_return_if_fail (t != NULL && peak != NULL);
  g_return_if_fail (peak->uuid != NULL && *peak->uuid != '\0');
  g_return_if_fail (isfinite (peak->peak_mib) && peak->peak_mib >= 0);

  if (peak->interval_s != t->interval_s)
    return;
  gint64 start = vmem_peak_start (peak->start_t, t->interval_s);
  Entry *e = g_hash_table_lookup (t->entries, peak->uuid);
  if (e != NULL && start < e->start_t)
    return;
  if (e == NULL || start > e->start_t)
    {
      e = entry_get (t, peak->uuid);
      e->start_t = start;
      e->first_t = peak->first_t > start ? peak->first_t : start;
      e->peak_mib = peak->peak_mib;
      e->samples = peak->samples;
      e->guest_samples = MIN (peak->guest_samples, peak->samples);
      e->vcpus = peak->vcpus;
    }
  else
    {
      /* The same interval, already tracked: both count the same samples,
       * so the larger counts are the more complete ones. */
      if (peak->peak_mib > e->peak_mib)
        {
          e->peak_mib = peak->peak_mib;
          e->vcpus = peak->vcpus;
        }
      if (peak->first_t > start)
        e->first_t = MIN (e->first_t, peak->first_t);
      e->samples = MAX (e->samples, peak->samples);
      e->guest_samples = MIN (MAX (e->guest_samples, peak->guest_samples), e->samples);
    }
  if (peak->domain != NULL)
    set_str (&e->domain, peak->domain);
  if (peak->host != NULL)
    set_str (&e->host, peak->host);
}

gboolean
vmem_peak_tracker_add (VmemPeakTracker *t, const VmemPeakSample *s, VmemPeakObs *out,
                       GError **error)
{
  g_return_val_if_fail (t != NULL && s != NULL && out != NULL, FALSE);

  if (s->uuid == NULL || *s->uuid == '\0')
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "uuid: must be set");
      return FALSE;
    }
  if (!isfinite (s->used_mib) || s->used_mib < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "used_mib: %g is not a size",
                   s->used_mib);
      return FALSE;
    }

  gint64 start = vmem_peak_start (s->t, t->interval_s);
  Entry *e = g_hash_table_lookup (t->entries, s->uuid);
  if (e != NULL && start < e->start_t)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "t: %" G_GINT64_FORMAT " is in an earlier interval than the peak of %s "
                   "being tracked (from %" G_GINT64_FORMAT ")", s->t, s->uuid, e->start_t);
      return FALSE;
    }
  if (e == NULL)
    e = entry_get (t, s->uuid);
  if (start > e->start_t)
    {
      e->start_t = start;
      e->first_t = s->t;
      e->peak_mib = s->used_mib;
      e->samples = 0;
      e->guest_samples = 0;
      e->vcpus = s->vcpus;
    }
  else if (s->used_mib >= e->peak_mib)
    {
      e->peak_mib = s->used_mib;
      e->vcpus = s->vcpus;
    }
  e->first_t = MIN (e->first_t, s->t);
  e->samples++;
  e->guest_samples += s->guest ? 1 : 0;
  if (s->domain != NULL)
    set_str (&e->domain, s->domain);
  if (s->host != NULL)
    set_str (&e->host, s->host);
  entry_to_obs (t, e, out);
  return TRUE;
}

gboolean
vmem_peak_tracker_lookup (VmemPeakTracker *t, const char *uuid, VmemPeakObs *out)
{
  g_return_val_if_fail (t != NULL && out != NULL, FALSE);

  Entry *e = uuid != NULL ? g_hash_table_lookup (t->entries, uuid) : NULL;
  if (e == NULL)
    return FALSE;
  entry_to_obs (t, e, out);
  return TRUE;
}

void
vmem_peak_tracker_forget (VmemPeakTracker *t, const char *uuid)
{
  g_return_if_fail (t != NULL);

  if (uuid != NULL)
    g_hash_table_remove (t->entries, uuid);
}
