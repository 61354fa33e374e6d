/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* On-demand memory after the start (DESIGN.md 4.6, 4.8).  Pure: the daemon
 * hands in what it read -- the domain, its recent balloon samples, the
 * host's figures, the profile, the time -- and gets back a target and one
 * sentence saying why.  No libvirt, clock, files or logging in here; the
 * benchmark (bench/controller.c) runs the same code on a trace.
 *
 * Every stats interval, for every managed running domain:
 *
 *   vmem_controller_decide()     the domain's wish, from its own samples;
 *   vmem_controller_arbitrate()  over all the wishes at once: when the host
 *                                is short, grows and shrinks are scaled by
 *                                priority;
 *   vmem_controller_sent()       for each target the caller then set, so
 *                                that the next decision knows it.
 *
 * The rules, for one domain:
 *  - the buffer is buffer_pct of used (the profile's; 20 % by default, as
 *    Hyper-V's), and at least min_buffer_mib and min_buffer_pct of
 *    <memory>;  the need is used + buffer, never under the profile's floor;
 *  - grow at once on pressure: MemAvailable under the buffer (to the need),
 *    swap-in, major faults or the guest's own PSI above their thresholds
 *    (by what was swapped in plus the buffer, and at least
 *    pressure_grow_pct of the target, since used no longer shows what the
 *    guest lacks); up to <memory>, or the profile's ceiling when lower;
 *  - shrink only when the surplus beyond the buffer (plus hysteresis) has
 *    lasted surplus_hold_s, then toward the need, the surplus halving every
 *    shrink_half_life_s, at most shrink_max_step_pct of <memory> a step;
 *    faster (pressure_hold_s, pressure_shrink_factor) while the host is
 *    under pressure;  never below the floor nor below the need;
 *  - no move smaller than the minimum step (min_step_mib, min_step_pct of
 *    the target): a grow is rounded up to it, a smaller shrink waits;
 *  - a guest that never reported balloon statistics (no driver) is left
 *    alone, and said so; one whose balloon does not reach its target
 *    within stuck_after_s is reported as stuck, and the target is re-sent
 *    only every stuck_retry_s.
 * Rates are per second and half-lives in seconds, not per call, so a
 * decision every 10 s and one every 5 min shrink a domain alike.
 *
 * The target is the guest's memory in both modes: in virtio-mem mode the
 * caller turns it into the device's requested size (the target less the
 * base memory, rounded up to the block size). */

#include <glib.h>

#include "vmem-profile.h"

G_BEGIN_DECLS

typedef struct {
  /* The buffer is the profile's buffer_pct of used, and at least
   * min_buffer_mib and min_buffer_pct of <memory> (defaults 512, 10). */
  guint64 min_buffer_mib;
  double  min_buffer_pct;
  /* A surplus counts beyond the buffer plus this % of the target (10). */
  double  hysteresis_pct;
  /* No move smaller than min_step_mib nor than min_step_pct of the target
   * (64, 2). */
  guint64 min_step_mib;
  double  min_step_pct;
  /* The most one grow adds, % of <memory> (100). */
  double  grow_max_step_pct;
  /* A grow on swap-in, faults or guest PSI adds at least this % of the
   * target (25). */
  double  pressure_grow_pct;
  /* Guest pressure at or above: swap-in KiB/s (64), major faults/s (200),
   * PSI memory some avg10 % (10). */
  double  swap_in_kib_s;
  double  major_fault_s;
  double  guest_psi_some;
  /* A surplus must last surplus_hold_s before a shrink (3600); then it
   * halves every shrink_half_life_s (3600); one shrink takes at most
   * shrink_max_step_pct of <memory> (10). */
  gint64  surplus_hold_s;
  gint64  shrink_half_life_s;
  double  shrink_max_step_pct;
  /* While the host is under pressure: the hold (300) and how many times
   * faster shrinks go (4). */
  gint64  pressure_hold_s;
  double  pressure_shrink_factor;
  /* Host pressure: MemAvailable under host_low_pct of capacity (10), PSI
   * memory some avg10 at or above host_psi_some (20), full at or above
   * host_psi_full (5). */
  double  host_low_pct;
  double  host_psi_some;
  double  host_psi_full;
  /* A balloon that has not reached its target in stuck_after_s (120) is
   * stuck; its target is then sent again every stuck_retry_s (1800). */
  gint64  stuck_after_s;
  gint64  stuck_retry_s;
} VmemControllerConfig;

void     vmem_controller_config_init (VmemControllerConfig *config);
/* Names the offending field. */
gboolean vmem_controller_config_validate (const VmemControllerConfig *config, GError **error);

/* One balloon sample of the guest (the collector's, in MiB). */
typedef struct {
  gint64   t;              /* unix seconds */
  gboolean fresh;          /* the guest reported within two stats periods */
  guint64  used_mib;       /* balloon actual - MemAvailable */
  guint64  available_mib;  /* guest MemAvailable */
  guint64  total_mib;      /* guest MemTotal */
  guint64  actual_mib;     /* balloon actual */
  guint64  swap_in_kib;    /* cumulative since the guest booted */
  guint64  major_fault;    /* cumulative since the guest booted */
  gboolean has_psi;        /* the stats carry the guest's own memory pressure */
  double   psi_some_avg10; /* its PSI memory some avg10, % */
} VmemControllerSample;

/* The domain being decided for. */
typedef struct {
  const char *name;        /* for the reason; may be NULL */
  guint64     memory_mib;  /* <memory>: the upper bound */
  guint64     target_mib;  /* the balloon target in force: the one last set, else the actual size */
  guint64     actual_mib;  /* the balloon's actual size */
  /* What the host's committed_mib counts for this domain (what the host
   * holds for it: its balloon's actual size as last read).  When the
   * target in force is above it (a grow on its way), arbitration charges
   * the difference too.  0: committed_mib counts the target in force. */
  guint64     counted_mib;
} VmemControllerDomain;

/* The host, as the daemon read it. */
typedef struct {
  guint64  capacity_mib;      /* usable: MemTotal (or configured) minus reserve */
  guint64  committed_mib;     /* what the host holds for the running domains (see
                               * VmemControllerDomain.counted_mib), plus boot reservations */
  gboolean has_available;     /* mem_available_mib was read */
  guint64  mem_available_mib; /* /proc/meminfo MemAvailable */
  gboolean has_psi;           /* /proc/pressure/memory was read */
  double   psi_some_avg10;
  double   psi_full_avg10;
} VmemControllerHost;

/* What the caller keeps for each domain between decisions; zero it (or
 * vmem_controller_state_init()) when the domain starts. */
typedef struct {
  gboolean reported;      /* the guest has reported at least once */
  gint64   surplus_since; /* since when the surplus lasts; 0 = none */
  guint64  sent_mib;      /* the target last set; 0 = none yet */
  gint64   sent_at;       /* when */
  gint64   stuck_since;   /* when the balloon was found stuck; 0 = it follows */
  guint    stuck_reports; /* decisions in a row that found it stuck */
} VmemControllerState;

void vmem_controller_state_init (VmemControllerState *state);
/* The caller set @target_mib at @now (after arbitration). */
void vmem_controller_sent (VmemControllerState *state, guint64 target_mib, gint64 now);

typedef enum {
  VMEM_CONTROLLER_HOLD,      /* no move */
  VMEM_CONTROLLER_GROW,
  VMEM_CONTROLLER_SHRINK,
  VMEM_CONTROLLER_NO_DRIVER, /* the guest never reported: left alone */
  VMEM_CONTROLLER_NO_STATS,  /* it reported before, not lately: no move */
  VMEM_CONTROLLER_STUCK,     /* the balloon does not follow its target */
} VmemControllerAction;

const char *vmem_controller_action_to_string (VmemControllerAction action);

/* Why the domain grows (bits). */
typedef enum {
  VMEM_CONTROLLER_LOW_AVAILABLE = 1 << 0, /* MemAvailable under the buffer */
  VMEM_CONTROLLER_SWAP_IN       = 1 << 1,
  VMEM_CONTROLLER_MAJOR_FAULTS  = 1 << 2,
  VMEM_CONTROLLER_GUEST_PSI     = 1 << 3,
} VmemControllerPressure;

typedef struct {
  VmemControllerAction action;
  guint64  target_mib;    /* the target to have; the one in force unless GROW or SHRINK */
  gboolean send;          /* set target_mib now: GROW, SHRINK, or a stuck balloon's retry */
  gboolean observe;       /* the profile's mode is observe: the caller changes nothing */
  gboolean limited;       /* arbitration changed the wish */
  guint    pressure;      /* VmemControllerPressure bits */
  gboolean host_pressure; /* the host was under pressure */
  /* The figures behind it, also for arbitration. */
  guint64  from_mib;      /* the target in force */
  guint64  counted_mib;   /* the domain's counted_mib */
  guint64  wish_mib;      /* the target before arbitration */
  guint64  need_mib;      /* used + buffer, within floor and max: shrinks stop here */
  guint64  max_mib;       /* <memory>, or the profile's ceiling when lower */
  guint64  used_mib;
  guint64  buffer_mib;
  int      priority;      /* the profile's, 0..100 */
  char    *reason;        /* one sentence with the figures */
} VmemControllerDecision;

/* Decides for one domain at @now from its @samples (oldest first; the
 * newest is the one acted on, the one before it gives the swap-in and
 * fault rates), and updates @state.  Fills @out; free its reason with
 * vmem_controller_decision_clear().  @host may be NULL (not read: no host
 * pressure).  The decision is the same whatever the profile's mode;
 * observe only sets out->observe. */
void vmem_controller_decide (const VmemControllerConfig *config,
                             const VmemProfile          *profile,
                             const VmemControllerDomain *domain,
                             const VmemControllerSample *samples,
                             gsize                       n_samples,
                             const VmemControllerHost   *host,
                             VmemControllerState        *state,
                             gint64                      now,
                             VmemControllerDecision     *out);

void vmem_controller_decision_clear (VmemControllerDecision *d);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (VmemControllerDecision, vmem_controller_decision_clear)

/* Whether the host is under pressure: committed over capacity,
 * MemAvailable under host_low_pct of capacity, or PSI at or above its
 * thresholds. */
gboolean vmem_controller_host_pressure (const VmemControllerConfig *config,
                                        const VmemControllerHost   *host);

/* Host-level arbitration over one interval's @n decisions, in place.
 * Shrinks free memory; when the grows do not fit in capacity - committed
 * plus what the shrinks free, the surplus of the domains that do not grow
 * (target above need) is reclaimed first, lower priorities giving more,
 * and what is still short is taken from the grows: each grow is granted
 * the same fraction of its size within a priority, higher priorities a
 * larger one (weights 1 + priority, as Hyper-V's memory weight and
 * Proxmox's shares).  Over capacity with nothing growing, surplus is
 * reclaimed the same way.  The room counts, for every domain, the larger
 * of its target in force and what the host holds for it (counted_mib): a
 * grow granted earlier stays granted while its balloon gets there, so that
 * the targets together never exceed capacity, and memory a shrink has not
 * freed yet is not given away.  No domain goes below its need.  Only HOLD, GROW
 * and SHRINK decisions outside observe mode take part (a domain on hold
 * may be told to shrink).  Changed decisions get limited = TRUE and a
 * clause on their reason.  Deterministic: the same decisions give the
 * same result, in any order. */
void vmem_controller_arbitrate (const VmemControllerConfig *config,
                                const VmemControllerHost   *host,
                                VmemControllerDecision     *decisions,
                                gsize                       n);

G_END_DECLS
