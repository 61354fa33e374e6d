/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-controller.h"
#include "vmem-error.h"
#include "vmem-units.h"

#include <math.h>
#include <stdio.h>

#define DAY_S (24 * 3600)

void
vmem_controller_config_init (VmemControllerConfig *config)
{
  *config = (VmemControllerConfig){
    .min_buffer_mib = 512,
    .min_buffer_pct = 10.0,
    .hysteresis_pct = 10.0,
    .min_step_mib = 64,
    .min_step_pct = 2.0,
    .grow_max_step_pct = 100.0,
    .pressure_grow_pct = 25.0,
    .swap_in_kib_s = 64.0,
    .major_fault_s = 200.0,
    .guest_psi_some = 10.0,
    .surplus_hold_s = 3600,
    .shrink_half_life_s = 3600,
    .shrink_max_step_pct = 10.0,
    .pressure_hold_s = 300,
    .pressure_shrink_factor = 4.0,
    .host_low_pct = 10.0,
    .host_psi_some = 20.0,
    .host_psi_full = 5.0,
    .stuck_after_s = 120,
    .stuck_retry_s = 1800,
  };
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

/* For rates and thresholds where 0 would make every sample count. */
static gboolean
check_positive (const char *field, double value, double hi, GError **error)
{
  if (!isfinite (value) || value <= 0 || value > hi)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s: %g is out of range (above 0, up to %g)", field, value, hi);
      return FALSE;
    }
  return TRUE;
}

gboolean
vmem_controller_config_validate (const VmemControllerConfig *c, GError **error)
{
  g_return_val_if_fail (c != NULL, FALSE);

  if (!check_range ("min_buffer_mib", (double) c->min_buffer_mib, 0, VMEM_SIZE_MAX_MIB, error) ||
      !check_range ("min_buffer_pct", c->min_buffer_pct, 0, 100, error) ||
      !check_range ("hysteresis_pct", c->hysteresis_pct, 0, 100, error) ||
      !check_range ("min_step_mib", (double) c->min_step_mib, 0, VMEM_SIZE_MAX_MIB, error) ||
      !check_range ("min_step_pct", c->min_step_pct, 0, 100, error) ||
      !check_positive ("grow_max_step_pct", c->grow_max_step_pct, 100, error) ||
      !check_range ("pressure_grow_pct", c->pressure_grow_pct, 0, 400, error) ||
      !check_positive ("swap_in_kib_s", c->swap_in_kib_s, 1e9, error) ||
      !check_positive ("major_fault_s", c->major_fault_s, 1e9, error) ||
      !check_positive ("guest_psi_some", c->guest_psi_some, 100, error) ||
      !check_range ("surplus_hold_s", (double) c->surplus_hold_s, 0, 30 * DAY_S, error) ||
      !check_range ("shrink_half_life_s", (double) c->shrink_half_life_s, 1, 30 * DAY_S, error) ||
      !check_positive ("shrink_max_step_pct", c->shrink_max_step_pct, 100, error) ||
      !check_range ("pressure_hold_s", (double) c->pressure_hold_s, 0, 30 * DAY_S, error) ||
      !check_range ("pressure_shrink_factor", c->pressure_shrink_factor, 1, 100, error) ||
      !check_range ("host_low_pct", c->host_low_pct, 0, 100, error) ||
      !check_positive ("host_psi_some", c->host_psi_some, 100, error) ||
      !check_positive ("host_psi_full", c->host_psi_full, 100, error) ||
      !check_range ("stuck_after_s", (double) c->stuck_after_s, 1, DAY_S, error) ||
      !check_range ("stuck_retry_s", (double) c->stuck_retry_s, 1, 30 * DAY_S, error))
    return FALSE;
  if (c->pressure_hold_s > c->surplus_hold_s)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "pressure_hold_s: %" G_GINT64_FORMAT " is above surplus_hold_s (%"
                   G_GINT64_FORMAT "): a host under pressure must not make shrinks wait longer",
                   c->pressure_hold_s, c->surplus_hold_s);
      return FALSE;
    }
  if (c->stuck_retry_s < c->stuck_after_s)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "stuck_retry_s: %" G_GINT64_FORMAT " is below stuck_after_s (%"
                   G_GINT64_FORMAT ")",
                   c->stuck_retry_s, c->stuck_after_s);
      return FALSE;
    }
  return TRUE;
}

void
vmem_controller_state_init (VmemControllerState *state)
{
  *state = (VmemControllerState){ 0 };
}

void
vmem_controller_sent (VmemControllerState *state, guint64 target_mib, gint64 now)
{
  g_return_if_fail (state != NULL);

  state->sent_mib = target_mib;
  state->sent_at = now;
}

static const char *const action_names[] = {
  "hold", "grow", "shrink", "no-driver", "no-stats", "stuck",
};

const char *
vmem_controller_action_to_string (VmemControllerAction action)
{
  return (guint) action < G_N_ELEMENTS (action_names) ? action_names[action] : "unknown";
}

void
vmem_controller_decision_clear (VmemControllerDecision *d)
{
  if (d == NULL)
    return;
  g_clear_pointer (&d->reason, g_free);
}

gboolean
vmem_controller_host_pressure (const VmemControllerConfig *c, const VmemControllerHost *h)
{
  g_return_val_if_fail (c != NULL && h != NULL, FALSE);

  if (h->capacity_mib > 0 && h->committed_mib > h->capacity_mib)
    return TRUE;
  if (h->has_available &&
      (double) h->mem_available_mib < c->host_low_pct / 100.0 * (double) h->capacity_mib)
    return TRUE;
  return h->has_psi &&
         (h->psi_some_avg10 >= c->host_psi_some || h->psi_full_avg10 >= c->host_psi_full);
}

/* ---- formatting: sizes as vmem_size_format() prints them, without
 * allocating (a decision is made for every domain every interval) ---- */

typedef struct {
  char s[32];
} Text;

static Text
size_text (guint64 mib)
{
  Text t;
  if (mib != 0 && mib % 1024 == 0)
    snprintf (t.s, sizeof t.s, "%" G_GUINT64_FORMAT "G", mib / 1024);
  else
    snprintf (t.s, sizeof t.s, "%" G_GUINT64_FORMAT "M", mib);
  return t;
}

static Text
duration_text (gint64 s)
{
  Text t;
  if (s < 120)
    snprintf (t.s, sizeof t.s, "%" G_GINT64_FORMAT " s", MAX (s, 0));
  else if (s < 2 * 3600)
    snprintf (t.s, sizeof t.s, "%" G_GINT64_FORMAT " min", s / 60);
  else
    snprintf (t.s, sizeof t.s, "%.1f h", (double) s / 3600.0);
  return t;
}

#define SZ(x)  (size_text (x).s)
#define DUR(x) (duration_text (x).s)

static guint64
absdiff (guint64 a, guint64 b)
{
  return a > b ? a - b : b - a;
}

static guint64
pct_of (double pct, guint64 mib)
{
  return (guint64) ceil (pct / 100.0 * (double) mib);
}

/* The smallest move worth making from @from_mib. */
static guint64
min_step (const VmemControllerConfig *c, guint64 from_mib)
{
  return MAX (MAX (c->min_step_mib, pct_of (c->min_step_pct, from_mib)), 1);
}

/* The newest fresh sample older than @s, for the counters' rates. */
static const VmemControllerSample *
previous_sample (const VmemControllerSample *samples, gsize n, const VmemControllerSample *s)
{
  for (gsize i = n - 1; i-- > 0;)
    if (samples[i].fresh && samples[i].t < s->t)
      return &samples[i];
  return NULL;
}

/* What the guest's counters say since the sample before. */
typedef struct {
  guint   bits;
  guint64 swapped_mib;  /* swapped in since the previous sample */
  double  swap_kib_s;
  double  faults_s;
  gint64  dt;
} Pressure;

static Pressure
guest_pressure (const VmemControllerConfig *c, const VmemControllerSample *samples, gsize n,
                guint64 buffer_mib)
{
  const VmemControllerSample *s = &samples[n - 1];
  const VmemControllerSample *prev = previous_sample (samples, n, s);
  Pressure p = { 0 };

  if (s->available_mib < buffer_mib)
    p.bits |= VMEM_CONTROLLER_LOW_AVAILABLE;
  /* Counters that went down belong to a guest that rebooted: no rate. */
  if (prev != NULL)
    {
      p.dt = s->t - prev->t;
      if (s->swap_in_kib >= prev->swap_in_kib)
        {
          guint64 kib = s->swap_in_kib - prev->swap_in_kib;
          p.swap_kib_s = (double) kib / (double) p.dt;
          if (p.swap_kib_s >= c->swap_in_kib_s)
            {
              p.bits |= VMEM_CONTROLLER_SWAP_IN;
              p.swapped_mib = (kib + 1023) / 1024;
            }
        }
      if (s->major_fault >= prev->major_fault)
        {
          p.faults_s = (double) (s->major_fault - prev->major_fault) / (double) p.dt;
          if (p.faults_s >= c->major_fault_s)
            p.bits |= VMEM_CONTROLLER_MAJOR_FAULTS;
        }
    }
  if (s->has_psi && s->psi_some_avg10 >= c->guest_psi_some)
    p.bits |= VMEM_CONTROLLER_GUEST_PSI;
  return p;
}

/* "MemAvailable 100M is under the buffer 512M, the guest swapped in 300M
 * in 300 s" */
static char *
pressure_text (const Pressure *p, const VmemControllerSample *s, guint64 buffer_mib)
{
  g_autoptr(GString) str = g_string_new (NULL);

  if (p->bits & VMEM_CONTROLLER_LOW_AVAILABLE)
    g_string_append_printf (str, "MemAvailable %s is under the buffer %s", SZ (s->available_mib),
                            SZ (buffer_mib));
  if (p->bits & VMEM_CONTROLLER_SWAP_IN)
    g_string_append_printf (str, "%sthe guest swapped in %s in %s", str->len ? ", " : "",
                            SZ (p->swapped_mib), DUR (p->dt));
  if (p->bits & VMEM_CONTROLLER_MAJOR_FAULTS)
    g_string_append_printf (str, "%s%.0f major faults/s", str->len ? ", " : "", p->faults_s);
  if (p->bits & VMEM_CONTROLLER_GUEST_PSI)
    g_string_append_printf (str, "%sguest memory pressure %.1f %%", str->len ? ", " : "",
                            s->psi_some_avg10);
  return g_string_free (g_steal_pointer (&str), FALSE);
}

static const char *
max_name (const VmemProfile *profile, const VmemControllerDomain *dom)
{
  return profile->ceiling_mib != 0 && profile->ceiling_mib < dom->memory_mib
           ? "the profile's ceiling"
           : "<memory>";
}

/* No fresh statistics: nothing to decide on. */
static void
decide_without_stats (const VmemControllerSample *samples, gsize n, VmemControllerState *state,
                      gint64 now, VmemControllerDecision *out)
{
  gint64 last = 0;

  for (gsize i = 0; i < n; i++)
    if (samples[i].fresh)
      last = MAX (last, samples[i].t);
  /* The surplus timer starts again with the next figures. */
  state->surplus_since = 0;
  if (!state->reported && last == 0)
    {
      out->action = VMEM_CONTROLLER_NO_DRIVER;
      out->reason = g_strdup_printf ("left alone at %s: the guest has never reported balloon "
                                     "statistics (no balloon driver, or no stats period)",
                                     SZ (out->from_mib));
      return;
    }
  out->action = VMEM_CONTROLLER_NO_STATS;
  if (last != 0)
    out->reason = g_strdup_printf ("no move from %s: the guest's latest statistics are %s old",
                                   SZ (out->from_mib), DUR (now - last));
  else
    out->reason = g_strdup_printf ("no move from %s: the guest has stopped reporting balloon "
                                   "statistics",
                                   SZ (out->from_mib));
}

/* The balloon has not reached the target last set.  TRUE when that makes
 * it stuck (the decision is then made). */
static gboolean
decide_stuck (const VmemControllerConfig *c, const VmemControllerDomain *dom,
              VmemControllerState *state, gint64 now, VmemControllerDecision *out)
{
  if (state->sent_mib == 0)
    return FALSE;
  if (absdiff (dom->actual_mib, state->sent_mib) <= min_step (c, state->sent_mib))
    {
      state->stuck_since = 0;
      state->stuck_reports = 0;
      return FALSE;
    }
  /* Still on its way: the balloon may take a while to move gigabytes. */
  if (state->stuck_since == 0 && now - state->sent_at < c->stuck_after_s)
    return FALSE;

  if (state->stuck_since == 0)
    state->stuck_since = now;
  state->stuck_reports++;
  out->action = VMEM_CONTROLLER_STUCK;
  out->target_mib = state->sent_mib;
  out->wish_mib = state->sent_mib;
  if (now - state->sent_at >= c->stuck_retry_s)
    {
      out->send = TRUE;
      out->reason = g_strdup_printf ("balloon stuck at %s for %s: sending its target %s once "
                                     "more (every %s at most)",
                                     SZ (dom->actual_mib), DUR (now - state->stuck_since),
                                     SZ (state->sent_mib), DUR (c->stuck_retry_s));
    }
  else
    out->reason = g_strdup_printf ("balloon stuck at %s: the target %s set %s ago is not "
                                   "reached; not sent again before %s have passed",
                                   SZ (dom->actual_mib), SZ (state->sent_mib),
                                   DUR (now - state->sent_at), DUR (c->stuck_retry_s));
  return TRUE;
}

static void
decide_grow (const VmemControllerConfig *c, const VmemProfile *profile,
             const VmemControllerDomain *dom, const VmemControllerSample *s, const Pressure *p,
             VmemControllerDecision *out)
{
  guint64 from = out->from_mib;
  guint64 want = out->need_mib;
  g_autofree char *why = pressure_text (p, s, out->buffer_mib);

  if (from >= out->max_mib)
    {
      out->action = VMEM_CONTROLLER_HOLD;
      out->reason = g_strdup_printf ("no move from %s: %s, but %s is %s", SZ (from), why,
                                     SZ (out->max_mib), max_name (profile, dom));
      return;
    }
  /* Swapping, faulting or pressed, the guest needs more than its used
   * memory shows: what it swapped in comes back on top of the buffer. */
  if (p->bits & ~(guint) VMEM_CONTROLLER_LOW_AVAILABLE)
    want = MAX (want, from + MAX (p->swapped_mib + out->buffer_mib,
                                  pct_of (c->pressure_grow_pct, from)));
  if (want <= from)
    {
      /* The balloon is still on its way to a larger target. */
      out->action = VMEM_CONTROLLER_HOLD;
      out->reason = g_strdup_printf ("no move from %s: %s, but the target already gives the "
                                     "guest %s (used %s)",
                                     SZ (from), why, SZ (from), SZ (out->used_mib));
      return;
    }
  want = MIN (want, from + pct_of (c->grow_max_step_pct, dom->memory_mib));
  want = MAX (want, from + min_step (c, from));
  if (want > out->max_mib)
    want = out->max_mib;
  if (want <= from)
    {
      out->action = VMEM_CONTROLLER_HOLD;
      out->reason = g_strdup_printf ("no move from %s: %s, but %s is %s",
                                     SZ (from), why, SZ (out->max_mib), max_name (profile, dom));
      return;
    }
  out->action = VMEM_CONTROLLER_GROW;
  out->target_mib = want;
  out->send = TRUE;
  out->reason = g_strdup_printf ("grow %s -> %s: %s (used %s)%s%s", SZ (from), SZ (want), why,
                                 SZ (out->used_mib), want == out->max_mib ? ", capped at " : "",
                                 want == out->max_mib ? max_name (profile, dom) : "");
}

static void
decide_surplus (const VmemControllerConfig *c, const VmemControllerDomain *dom,
                const VmemControllerSample *s, VmemControllerState *state, gint64 now,
                VmemControllerDecision *out)
{
  guint64 from = out->from_mib;
  guint64 surplus = from > out->need_mib ? from - out->need_mib : 0;
  guint64 band = MAX (pct_of (c->hysteresis_pct, from), min_step (c, from));

  if (surplus <= band)
    {
      state->surplus_since = 0;
      out->action = VMEM_CONTROLLER_HOLD;
      out->reason = g_strdup_printf ("no move from %s: MemAvailable %s keeps the buffer %s "
                                     "(used %s)",
                                     SZ (from), SZ (s->available_mib), SZ (out->buffer_mib),
                                     SZ (out->used_mib));
      return;
    }

  if (state->surplus_since == 0 || state->surplus_since > now)
    state->surplus_since = now;
  gboolean hp = out->host_pressure;
  gint64 hold = hp ? c->pressure_hold_s : c->surplus_hold_s;
  gint64 lasted = now - state->surplus_since;
  const char *host = hp ? ", the host is under pressure" : "";
  if (lasted < hold)
    {
      out->action = VMEM_CONTROLLER_HOLD;
      out->reason = g_strdup_printf ("no move from %s: %s beyond the buffer %s for %s; a shrink "
                                     "waits until it has lasted %s%s",
                                     SZ (from), SZ (surplus), SZ (out->buffer_mib), DUR (lasted),
                                     DUR (hold), host);
      return;
    }

  /* The surplus halves every half-life from when the hold ended (or the
   * last move, if later), however often this is called. */
  double factor = hp ? c->pressure_shrink_factor : 1.0;
  gint64 start = MAX (state->surplus_since + hold, state->sent_at);
  double elapsed = (double) MAX (now - start, 0);
  double half_life = (double) c->shrink_half_life_s / factor;
  double step = (double) surplus * (1.0 - exp2 (-elapsed / half_life));
  step = MIN (step, factor * c->shrink_max_step_pct / 100.0 * (double) dom->memory_mib);
  guint64 take = MIN ((guint64) floor (step), surplus);
  guint64 least = min_step (c, from);
  if (take < least)
    {
      out->action = VMEM_CONTROLLER_HOLD;
      out->reason = g_strdup_printf ("no move from %s: %s beyond the buffer %s for %s, but the "
                                     "shrink so far (%s) is under the minimum step %s%s",
                                     SZ (from), SZ (surplus), SZ (out->buffer_mib), DUR (lasted),
                                     SZ (take), SZ (least), host);
      return;
    }
  out->action = VMEM_CONTROLLER_SHRINK;
  out->target_mib = from - take;
  out->send = TRUE;
  out->reason = g_strdup_printf ("shrink %s -> %s: %s beyond the buffer %s (used %s) for %s%s",
                                 SZ (from), SZ (out->target_mib), SZ (surplus),
                                 SZ (out->buffer_mib), SZ (out->used_mib), DUR (lasted),
                                 hp ? ", faster: the host is under pressure" : "");
}

static void
decide_on_sample (const VmemControllerConfig *c, const VmemProfile *profile,
                  const VmemControllerDomain *dom, const VmemControllerSample *samples, gsize n,
                  VmemControllerState *state, gint64 now, VmemControllerDecision *out)
{
  const VmemControllerSample *s = &samples[n - 1];
  guint64 floor_mib = MIN (profile->floor_mib, out->max_mib);
  guint64 from = out->from_mib;

  out->used_mib = s->used_mib;
  out->buffer_mib = MAX (MAX (pct_of (profile->buffer_pct, s->used_mib), c->min_buffer_mib),
                         pct_of (c->min_buffer_pct, dom->memory_mib));
  out->need_mib = CLAMP (s->used_mib + out->buffer_mib, floor_mib, out->max_mib);
  Pressure p = guest_pressure (c, samples, n, out->buffer_mib);
  out->pressure = p.bits;

  if (from > out->max_mib)
    {
      state->surplus_since = 0;
      out->action = VMEM_CONTROLLER_SHRINK;
      out->target_mib = out->max_mib;
      out->send = TRUE;
      out->reason = g_strdup_printf ("shrink %s -> %s: above %s", SZ (from), SZ (out->max_mib),
                                     max_name (profile, dom));
    }
  else if (from < floor_mib)
    {
      state->surplus_since = 0;
      out->action = VMEM_CONTROLLER_GROW;
      out->target_mib = out->need_mib;
      out->send = TRUE;
      out->reason = g_strdup_printf ("grow %s -> %s: under the profile's floor %s", SZ (from),
                                     SZ (out->target_mib), SZ (floor_mib));
    }
  else if (p.bits != 0)
    {
      state->surplus_since = 0;
      decide_grow (c, profile, dom, s, &p, out);
    }
  else
    decide_surplus (c, dom, s, state, now, out);
}

void
vmem_controller_decide (const VmemControllerConfig *c,
                        const VmemProfile          *profile,
                        const VmemControllerDomain *dom,
                        const VmemControllerSample *samples,
                        gsize                       n,
                        const VmemControllerHost   *host,
                        VmemControllerState        *state,
                        gint64                      now,
                        VmemControllerDecision     *out)
{
  g_return_if_fail (c != NULL && profile != NULL && dom != NULL && state != NULL);
  g_return_if_fail (samples != NULL || n == 0);
  g_return_if_fail (out != NULL);

  *out = (VmemControllerDecision){ 0 };
  out->action = VMEM_CONTROLLER_HOLD;
  out->from_mib = dom->target_mib;
  out->counted_mib = dom->counted_mib;
  out->target_mib = dom->target_mib;
  out->max_mib = dom->memory_mib;
  if (profile->ceiling_mib != 0 && profile->ceiling_mib < out->max_mib)
    out->max_mib = profile->ceiling_mib;
  out->priority = CLAMP (profile->priority, 0, 100);
  out->observe = profile->mode == VMEM_MODE_OBSERVE;
  out->host_pressure = host != NULL && vmem_controller_host_pressure (c, host);

  const VmemControllerSample *s = n > 0 ? &samples[n - 1] : NULL;
  if (s == NULL || !s->fresh)
    decide_without_stats (samples, n, state, now, out);
  else
    {
      state->reported = TRUE;
      if (!decide_stuck (c, dom, state, now, out))
        decide_on_sample (c, profile, dom, samples, n, state, now, out);
    }
  out->wish_mib = out->target_mib;
}

/* ---- arbitration ---- */

static double
weight (const VmemControllerDecision *d)
{
  return 1.0 + (double) CLAMP (d->priority, 0, 100);
}

static gboolean
takes_part (const VmemControllerDecision *d)
{
  return !d->observe && (d->action == VMEM_CONTROLLER_HOLD || d->action == VMEM_CONTROLLER_GROW ||
                         d->action == VMEM_CONTROLLER_SHRINK);
}

typedef struct {
  VmemControllerDecision *d;
  double                  size;  /* what it asks for, or what it can give */
  double                  level; /* the level at which it is fully served */
} Share;

static int
share_cmp (gconstpointer a, gconstpointer b)
{
  const Share *x = a, *y = b;
  return x->level < y->level ? -1 : x->level > y->level;
}

/* Water-filling: each share i gets size_i * min (1, x / level_i), with x
 * such that the total is @total (at most the sum of the sizes).  Sorted by
 * level, so shares with the lowest level are served whole first.  Fills
 * each share's size with what it gets. */
static void
fill (Share *sh, gsize n, double total)
{
  qsort (sh, n, sizeof *sh, share_cmp);
  double whole = 0;  /* given to the shares fully served */
  double rest = 0;   /* sum of size_i / level_i over the others */
  for (gsize i = 0; i < n; i++)
    rest += sh[i].size / sh[i].level;
  gsize k = 0;
  double x = 0;
  for (; k < n; k++)
    {
      /* At x = level_k, share k and all before it are whole. */
      double at = whole + rest * sh[k].level;
      if (at >= total)
        break;
      whole += sh[k].size;
      rest -= sh[k].size / sh[k].level;
    }
  x = k < n && rest > 0 ? (total - whole) / rest : G_MAXDOUBLE;
  for (gsize i = 0; i < n; i++)
    sh[i].size = i < k ? sh[i].size : sh[i].size * MIN (1.0, x / sh[i].level);
}

static void
append_reason (VmemControllerDecision *d, const char *clause)
{
  char *r = g_strdup_printf ("%s; %s", d->reason != NULL ? d->reason : "", clause);
  g_free (d->reason);
  d->reason = r;
  d->limited = TRUE;
}

void
vmem_controller_arbitrate (const VmemControllerConfig *c,
                           const VmemControllerHost   *host,
                           VmemControllerDecision     *decisions,
                           gsize                       n)
{
  g_return_if_fail (c != NULL && host != NULL && (decisions != NULL || n == 0));

  /* What the host has once the shrinks are done, and what the grows ask. */
  double room = (double) host->capacity_mib - (double) host->committed_mib;
  double asked = 0;
  for (gsize i = 0; i < n; i++)
    {
      VmemControllerDecision *d = &decisions[i];
      /* A target granted earlier that the balloon has not reached yet is
       * held all the same. */
      if (d->counted_mib > 0 && d->from_mib > d->counted_mib)
        room -= (double) (d->from_mib - d->counted_mib);
      if (!takes_part (d))
        continue;
      if (d->action == VMEM_CONTROLLER_SHRINK)
        room += (double) d->from_mib - (double) d->target_mib;
      else if (d->action == VMEM_CONTROLLER_GROW)
        asked += (double) d->target_mib - (double) d->from_mib;
    }
  if (asked <= room)
    return;

  /* Short: first the surplus of those that do not grow, beyond their
   * need; the lower the priority the larger the share it gives. */
  double short_mib = asked - room;
  g_autofree Share *sh = g_new0 (Share, MAX (n, 1));
  gsize m = 0;
  double surplus = 0;
  for (gsize i = 0; i < n; i++)
    {
      VmemControllerDecision *d = &decisions[i];
      if (takes_part (d) && d->action != VMEM_CONTROLLER_GROW && d->target_mib > d->need_mib)
        {
          sh[m] = (Share){ d, (double) (d->target_mib - d->need_mib), weight (d) };
          surplus += sh[m++].size;
        }
    }
  double reclaim = MIN (short_mib, surplus);
  if (reclaim > 0)
    {
      fill (sh, m, reclaim);
      for (gsize i = 0; i < m; i++)
        {
          VmemControllerDecision *d = sh[i].d;
          guint64 take = MIN ((guint64) ceil (sh[i].size), d->target_mib - d->need_mib);
          if (take == 0)
            continue;
          d->target_mib -= take;
          d->action = VMEM_CONTROLLER_SHRINK;
          d->send = TRUE;
          char clause[160];
          snprintf (clause, sizeof clause,
                    "the host is short by %s: %s of the surplus reclaimed (priority %d)",
                    SZ ((guint64) ceil (short_mib)), SZ (take), d->priority);
          append_reason (d, clause);
        }
      room += reclaim;
    }
  if (asked <= room)
    return;

  /* Then the grows share what is left: the same fraction of what each
   * asks within a priority, the higher priorities served first. */
  m = 0;
  for (gsize i = 0; i < n; i++)
    {
      VmemControllerDecision *d = &decisions[i];
      if (takes_part (d) && d->action == VMEM_CONTROLLER_GROW)
        sh[m++] = (Share){ d, (double) (d->target_mib - d->from_mib), 1.0 / weight (d) };
    }
  fill (sh, m, MAX (room, 0));
  for (gsize i = 0; i < m; i++)
    {
      VmemControllerDecision *d = sh[i].d;
      guint64 asked_i = d->target_mib - d->from_mib;
      guint64 grant = MIN ((guint64) floor (sh[i].size), asked_i);
      if (grant == asked_i)
        continue;
      char clause[160];
      snprintf (clause, sizeof clause, "the host is short by %s: %s of the %s asked granted "
                                       "(priority %d)",
                SZ ((guint64) ceil (asked - room)), SZ (grant), SZ (asked_i), d->priority);
      d->target_mib = d->from_mib + grant;
      if (grant == 0)
        {
          d->action = VMEM_CONTROLLER_HOLD;
          d->send = FALSE;
        }
      append_reason (d, clause);
    }
}
