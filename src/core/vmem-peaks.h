/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Per-domain per-interval peaks: the one place where a sample becomes a
 * peak.  The daemon writes the peaks this module computes to the store as
 * they are and reads them back into it after a restart; the replay feeds it
 * the same way.  Pure: no clock, files or database.
 *
 * A tracker follows one interval length (an hour or a day) and, for each
 * domain, the peak of the latest interval it has seen.  Interval @i holds
 * the times [start, start + i) with start = t - t % i (unix seconds). */

#include <glib.h>

G_BEGIN_DECLS

#define VMEM_PEAK_HOUR 3600u
#define VMEM_PEAK_DAY  86400u

/* One peak: the highest used memory of one domain over one interval.
 * A VmemPeak row of the store converts field by field, with interval_s
 * the interval it was read for. */
typedef struct {
  const char *uuid;          /* identifies the domain; required */
  const char *domain;        /* name, may be NULL */
  const char *host;          /* may be NULL */
  gint64      start_t;       /* start of the interval, unix seconds */
  guint       interval_s;    /* length of the interval, > 0 */
  gint64      first_t;       /* its first sample; at or before start_t = unknown (the start) */
  double      peak_mib;
  guint       samples;       /* samples behind the peak; 0 = unknown, counted as one guest sample */
  guint       guest_samples; /* of which the guest reported itself (the rest are rss) */
  guint       vcpus;         /* at the peak; 0 = unknown, counted as 1 */
} VmemPeakObs;

/* One sample of a domain, as the collector reads it. */
typedef struct {
  const char *uuid;     /* required */
  const char *domain;   /* name, may be NULL */
  const char *host;     /* may be NULL */
  gint64      t;        /* unix seconds */
  double      used_mib;
  gboolean    guest;    /* the guest reported it (else host-side rss) */
  guint       vcpus;
  gboolean    squeezed; /* taken while the guest was short of memory (available near
                         * zero, swap-in, a deflate on OOM): the demand was at least
                         * used_mib, not used_mib */
} VmemPeakSample;

/* The start of the @interval_s interval that holds @t (also for t < 0). */
gint64 vmem_peak_start (gint64 t, guint interval_s);

typedef struct _VmemPeakTracker VmemPeakTracker;

VmemPeakTracker *vmem_peak_tracker_new (guint interval_s);
void             vmem_peak_tracker_free (VmemPeakTracker *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemPeakTracker, vmem_peak_tracker_free)

/* Seeds a domain's peak for an interval from storage (e.g. after a restart
 * in the middle of an hour), so that later samples of that interval only
 * raise it.  A peak of a later interval than the tracked one replaces it;
 * one of the tracked interval merges with it (the higher peak and its
 * vcpus, the larger sample counts: both count the same samples); one of an
 * older interval, or of another interval length, is ignored. */
void vmem_peak_tracker_seed (VmemPeakTracker *t, const VmemPeakObs *peak);

/* Folds one sample into the peak of the interval that holds s->t.  A
 * sample of a later interval starts a new peak; one of an earlier interval
 * than the tracked one is refused (FALSE, VMEM_ERROR_INVALID_ARGUMENT), as
 * is a sample without uuid or with a used_mib that is not a size; nothing
 * changes then.  *@out gets the updated peak: its strings point into the
 * tracker and stay valid until the next call for that uuid or forget.
 * samples += 1, guest_samples += guest, peak = max, vcpus = the vcpus of
 * the sample that set the peak (ties: the newer).  A sample's domain and
 * host, when set, replace the tracked ones. */
gboolean vmem_peak_tracker_add (VmemPeakTracker      *t,
                                const VmemPeakSample *s,
                                VmemPeakObs          *out,
                                GError              **error);

/* The peak tracked for @uuid, if any; the strings as for _add(). */
gboolean vmem_peak_tracker_lookup (VmemPeakTracker *t, const char *uuid, VmemPeakObs *out);

void vmem_peak_tracker_forget (VmemPeakTracker *t, const char *uuid);

G_END_DECLS
