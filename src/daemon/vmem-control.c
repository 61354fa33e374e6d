/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-control.h"
#include "vmem-collector.h"
#include "vmem-log.h"
#include "vmem-units.h"

#include <string.h>

/* Samples kept per domain: the newest is acted on, the one before gives
 * the rates. */
#define KEEP_SAMPLES 4

typedef struct {
  VmemControllerState  state;
  VmemControllerSample samples[KEEP_SAMPLES];
  guint                n_samples;
  gboolean             said_no_driver;
} DomainState;

struct _VmemControl {
  VmemStager          *stager;
  VmemCache           *cache;
  VmemControlCallbacks callbacks;
  gpointer             user_data;
  VmemControllerConfig config;
  GHashTable          *domains; /* uuid -> DomainState */
};

VmemControl *
vmem_control_new (VmemStager *stager, VmemCache *cache, const VmemControlCallbacks *callbacks,
                  gpointer user_data)
{
  VmemControl *c = g_new0 (VmemControl, 1);
  c->stager = stager;
  c->cache = cache;
  if (callbacks != NULL)
    c->callbacks = *callbacks;
  c->user_data = user_data;
  vmem_controller_config_init (&c->config);
  c->domains = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return c;
}

gboolean
vmem_control_configure (VmemControl *c, const VmemConfig *config, GError **error)
{
  VmemControllerConfig next;
  vmem_controller_config_init (&next);
  next.min_buffer_mib = config->min_buffer_mib;
  next.min_buffer_pct = config->min_buffer_pct;
  next.surplus_hold_s = config->surplus_hold;
  next.shrink_half_life_s = config->shrink_half_life;
  next.pressure_hold_s = MIN (next.pressure_hold_s, next.surplus_hold_s);
  if (!vmem_controller_config_validate (&next, error))
    return FALSE;
  c->config = next;
  return TRUE;
}

void
vmem_control_free (VmemControl *c)
{
  if (c == NULL)
    return;
  g_hash_table_unref (c->domains);
  g_free (c);
}

static DomainState *
state_for (VmemControl *c, const char *uuid)
{
  DomainState *ds = g_hash_table_lookup (c->domains, uuid);
  if (ds == NULL)
    {
      ds = g_new0 (DomainState, 1);
      vmem_controller_state_init (&ds->state);
      g_hash_table_insert (c->domains, g_strdup (uuid), ds);
    }
  return ds;
}

void
vmem_control_started (VmemControl *c, const char *uuid, guint64 target_mib, gint64 now)
{
  g_hash_table_remove (c->domains, uuid);
  DomainState *ds = state_for (c, uuid);
  if (target_mib > 0)
    vmem_controller_sent (&ds->state, target_mib, now);
}

void
vmem_control_forget (VmemControl *c, const char *uuid)
{
  g_hash_table_remove (c->domains, uuid);
}

static void
push_sample (DomainState *ds, const VmemControllerSample *s)
{
  if (ds->n_samples == KEEP_SAMPLES)
    {
      memmove (ds->samples, ds->samples + 1, sizeof ds->samples[0] * (KEEP_SAMPLES - 1));
      ds->n_samples--;
    }
  ds->samples[ds->n_samples++] = *s;
}

/* In virtio-mem form the target is the guest's memory: the device's
 * requested size is what lies above the base. */
static gboolean
is_virtio_mem (const VmemProfile *p, const VmemDomain *d)
{
  return p->mode == VMEM_MODE_VIRTIO_MEM && d->virtio_mem_staged && d->virtio_mem_size_mib > 0;
}

static guint64
virtio_mem_base_mib (const VmemDomain *d)
{
  return d->memory_mib > d->virtio_mem_size_mib ? d->memory_mib - d->virtio_mem_size_mib : 0;
}

static void
apply (VmemControl *c, VmemCacheEntry *e, const VmemProfile *p, const VmemControllerDecision *d,
       gint64 now)
{
  const VmemDomain *dom = e->domain;
  gboolean applied = FALSE;

  if (!d->observe && p->mode != VMEM_MODE_OBSERVE)
    {
      if (is_virtio_mem (p, dom))
        {
          guint64 base = virtio_mem_base_mib (dom);
          vmem_stager_set_virtio_mem_requested (c->stager, dom->uuid, d->target_mib - base);
          applied = TRUE;
        }
      else if (p->mode == VMEM_MODE_BALLOON)
        {
          vmem_stager_set_live_target (c->stager, dom->uuid, d->target_mib);
          applied = TRUE;
        }
    }
  DomainState *ds = state_for (c, dom->uuid);
  if (applied)
    vmem_controller_sent (&ds->state, d->target_mib, now);

  g_autofree char *from = vmem_size_format (d->from_mib);
  g_autofree char *to = vmem_size_format (d->target_mib);
  const char *action = vmem_controller_action_to_string (d->action);
  if (applied)
    vmem_log_decision (dom->name, p->name, action, "%s %s from %s to %s: %s", action, dom->name,
                       from, to, d->reason);
  else
    vmem_log_decision (dom->name, p->name, action,
                       "would %s %s from %s to %s (mode %s: nothing changed): %s", action,
                       dom->name, from, to, vmem_mode_to_string (p->mode), d->reason);
  if (c->callbacks.moved != NULL)
    {
      const VmemControlMove move = {
        .uuid = dom->uuid,
        .name = dom->name,
        .workload = p->name,
        .mode = vmem_mode_to_string (p->mode),
        .action = action,
        .from_mib = d->from_mib,
        .to_mib = d->target_mib,
        .applied = applied,
        .reason = d->reason,
        .t = now,
      };
      c->callbacks.moved (&move, c->user_data);
    }
}

typedef enum {
  PHASE_DECIDE,
  PHASE_ARBITRATE,
  PHASE_APPLY,
  PHASE_DONE,
} Phase;

struct _VmemControlCycle {
  VmemControl            *control;
  VmemControllerConfig    config;
  VmemControllerHost      host;
  gint64                  now;
  VmemControlInput       *in;
  gsize                   n;
  VmemControllerDecision *decisions; /* of the domains decided, in order */
  gsize                  *of;        /* decisions[k] is in[of[k]]'s */
  gsize                   n_decided;
  gsize                   next;      /* the next input (decide) or decision (apply) */
  Phase                   phase;
  guint                   steps;
};

VmemControlCycle *
vmem_control_cycle_new (VmemControl *c, const VmemControlInput *inputs, gsize n,
                        const VmemControllerHost *host, gint64 now)
{
  VmemControlCycle *cy = g_new0 (VmemControlCycle, 1);
  cy->control = c;
  cy->config = c->config;
  cy->host = *host;
  cy->now = now;
  cy->n = n;
  cy->in = g_new0 (VmemControlInput, MAX (n, 1));
  for (gsize i = 0; i < n; i++)
    {
      cy->in[i] = inputs[i];
      cy->in[i].uuid = g_strdup (inputs[i].uuid);
    }
  cy->decisions = g_new0 (VmemControllerDecision, MAX (n, 1));
  cy->of = g_new0 (gsize, MAX (n, 1));
  cy->phase = PHASE_DECIDE;
  return cy;
}

void
vmem_control_cycle_free (VmemControlCycle *cy)
{
  if (cy == NULL)
    return;
  for (gsize k = 0; k < cy->n_decided; k++)
    vmem_controller_decision_clear (&cy->decisions[k]);
  for (gsize i = 0; i < cy->n; i++)
    g_free ((char *) cy->in[i].uuid);
  g_free (cy->in);
  g_free (cy->decisions);
  g_free (cy->of);
  g_free (cy);
}

guint
vmem_control_cycle_steps (VmemControlCycle *cy)
{
  return cy->steps;
}

/* The domain of @in as it is now, if it still runs the run its sample was
 * taken in; NULL once it stopped, went or started again. */
static VmemCacheEntry *
still_running (VmemControl *c, const VmemControlInput *in)
{
  VmemCacheEntry *e = vmem_cache_lookup (c->cache, in->uuid);
  if (e == NULL || !e->domain->active || e->active_since != in->active_since)
    return NULL;
  return e;
}

static void
decide_one (VmemControlCycle *cy, VmemControlInput *in)
{
  VmemControl *c = cy->control;
  VmemCacheEntry *e = still_running (c, in);
  if (e == NULL)
    return;
  const VmemDomain *dom = e->domain;
  DomainState *ds = state_for (c, dom->uuid);
  /* The balloon's size is read live, the guest's figures only every
   * stats period: until the guest reports after the last move, they
   * belong to the size before it. */
  if (in->sample.fresh && ds->state.sent_at > 0 && in->reported_t <= ds->state.sent_at)
    in->sample.fresh = FALSE;
  push_sample (ds, &in->sample);

  guint64 actual = in->sample.actual_mib;
  if (is_virtio_mem (in->profile, dom))
    {
      /* The guest has its base and what is plugged; the balloon's
       * actual size knows only the base.  What it uses is what it
       * was given less what it has available: the kernel's own
       * reservations (more of them for the hot-pluggable range)
       * count as used, as they do for the host. */
      actual = ds->state.sent_mib ? ds->state.sent_mib
                                  : virtio_mem_base_mib (dom) + dom->virtio_mem_requested_mib;
      VmemControllerSample *last = &ds->samples[ds->n_samples - 1];
      last->actual_mib = actual;
      last->used_mib = actual > last->available_mib ? actual - last->available_mib : 0;
      if (last->fresh)
        e->used_mib = last->used_mib;
    }
  const VmemControllerDomain cd = {
    .name = dom->name,
    .memory_mib = dom->memory_mib,
    .target_mib = ds->state.sent_mib ? ds->state.sent_mib : actual,
    .actual_mib = actual,
    /* What the host's committed figure counts for it (the cache's
     * balloon size, vmem_cache_commitments()): a target set but not
     * reached yet is charged on top. */
    .counted_mib = dom->active ? dom->current_mib : 0,
  };
  gsize k = cy->n_decided++;
  cy->of[k] = (gsize) (in - cy->in);
  vmem_controller_decide (&cy->config, in->profile, &cd, ds->samples, ds->n_samples, &cy->host,
                          &ds->state, cy->now, &cy->decisions[k]);
}

static void
apply_one (VmemControlCycle *cy, gsize k)
{
  VmemControl *c = cy->control;
  const VmemControlInput *in = &cy->in[cy->of[k]];
  VmemControllerDecision *d = &cy->decisions[k];
  /* Stopped or started again since it was decided: the decision belongs
   * to a run that is over. */
  VmemCacheEntry *e = still_running (c, in);
  if (e == NULL)
    return;
  const VmemProfile *p = in->profile;
  gint64 now = cy->now;
  DomainState *ds = state_for (c, e->domain->uuid);

  /* A guest in virtio-mem form never goes below its base memory: a
   * shrink there is no move. */
  if (is_virtio_mem (p, e->domain) && (d->action == VMEM_CONTROLLER_GROW ||
                                       d->action == VMEM_CONTROLLER_SHRINK))
    {
      guint64 base = virtio_mem_base_mib (e->domain);
      if (d->target_mib < base)
        d->target_mib = base;
      if (d->target_mib == d->from_mib)
        d->send = FALSE;
    }

  e->action = vmem_controller_action_to_string (d->action);
  g_free (e->reason);
  e->reason = g_strdup (d->reason);
  e->target_mib = d->target_mib;
  e->action_t = now;

  switch (d->action)
    {
    case VMEM_CONTROLLER_NO_DRIVER:
      /* A booting guest has not loaded its driver yet: say it once
       * the start-up grace is over. */
      if (!ds->said_no_driver && e->active_since > 0 &&
          g_get_monotonic_time () - e->active_since >=
            VMEM_COLLECTOR_STARTUP_GRACE_S * G_USEC_PER_SEC)
        vmem_log_decision (e->domain->name, p->name, "no-driver", "%s: %s", e->domain->name,
                           d->reason);
      ds->said_no_driver = TRUE;
      break;
    case VMEM_CONTROLLER_STUCK:
      {
        g_autofree char *key = g_strconcat ("stuck:", e->domain->uuid, NULL);
        vmem_log_warning_limited (key, 1800, "%s: %s", e->domain->name, d->reason);
      }
      if (d->send)
        apply (c, e, p, d, now);
      break;
    case VMEM_CONTROLLER_GROW:
    case VMEM_CONTROLLER_SHRINK:
      if (d->send)
        apply (c, e, p, d, now);
      break;
    case VMEM_CONTROLLER_HOLD:
    case VMEM_CONTROLLER_NO_STATS:
    default:
      break;
    }
}

gboolean
vmem_control_cycle_run (VmemControlCycle *cy, gint64 deadline)
{
  do
    {
      switch (cy->phase)
        {
        case PHASE_DECIDE:
          if (cy->next < cy->n)
            decide_one (cy, &cy->in[cy->next++]);
          if (cy->next == cy->n)
            cy->phase = PHASE_ARBITRATE;
          break;
        case PHASE_ARBITRATE:
          vmem_controller_arbitrate (&cy->config, &cy->host, cy->decisions, cy->n_decided);
          cy->next = 0;
          cy->phase = cy->n_decided > 0 ? PHASE_APPLY : PHASE_DONE;
          break;
        case PHASE_APPLY:
          apply_one (cy, cy->next++);
          if (cy->next == cy->n_decided)
            cy->phase = PHASE_DONE;
          break;
        case PHASE_DONE:
        default:
          return TRUE;
        }
      cy->steps++;
    }
  while (cy->phase != PHASE_DONE && (deadline == 0 || g_get_monotonic_time () < deadline));
  return cy->phase == PHASE_DONE;
}

void
vmem_control_cycle (VmemControl *c, const VmemControlInput *inputs, gsize n,
                    const VmemControllerHost *host, gint64 now)
{
  g_autoptr(VmemControlCycle) cy = vmem_control_cycle_new (c, inputs, n, host, now);
  vmem_control_cycle_run (cy, 0);
}
