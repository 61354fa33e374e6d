/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A usage trace held in memory for the controller benchmark, and the fleet
 * simulation that replays it on one host under a balloon policy.
 *
 * Time advances in steps of the trace's sampling interval.  At each step
 * every running domain's demand is its latest sample (a sample carries
 * over to the next step when the sampling jitters, not longer: a domain
 * whose latest sample is older than two steps is not observed, and that
 * step is not counted for it).  The target a policy sets at a step holds
 * until the next; the interval is starved when the demand the next step
 * brings is above it.  The guest's balloon follows a target at once; a
 * starved guest reports used = its target, MemAvailable 0, and swaps in
 * what it lacks (swap_in and major faults grow by the deficit). */

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  char    *name;
  char    *workload;
  guint    vcpus;
  guint64  memory_mib;   /* the trace's ceiling_kib */
  gsize    n;
  gint64  *t;            /* sample times */
  guint32 *used_mib;     /* sample used memory, at most memory_mib */
  guint64  estimate_mib; /* vmemd's pre-start estimate at the first sample */
  char    *estimate_source;
} FleetDomain;

typedef struct {
  GPtrArray *domains;      /* FleetDomain, in order of first sample */
  gint64     t0;           /* first sample */
  gint64     t_end;        /* last sample */
  guint      step_s;       /* the median interval between a domain's samples */
  guint64    memory_mib;   /* sum of the domains' memory */
  guint64    samples;
  guint64    clipped;      /* samples above their domain's memory, counted as the memory */
} Fleet;

/* Reads @path (vmem-trace.h) and sizes each domain's start with vmemd's
 * estimator, fed every sample through a VmemDemand as the daemon is. */
Fleet *fleet_load (const char *path, GError **error);
void   fleet_free (Fleet *fleet);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Fleet, fleet_free)

/* ---- the simulation ---- */

/* One domain as a policy sees it at a step. */
typedef struct {
  const FleetDomain *fd;
  gboolean started;       /* its first sample has come */
  gboolean observed;      /* it has a sample for this step */
  double   demand_mib;    /* what it uses at this step */
  double   target_mib;    /* the balloon target in force */
  guint64  swap_in_kib;   /* cumulative */
  guint64  major_fault;   /* cumulative */
  guint64  moves;         /* targets changed */
  gpointer priv;          /* the policy's */
  /* private to the simulation */
  gsize    cursor;
  gint64   last_t;
} SimDomain;

typedef struct Sim Sim;

typedef struct {
  const char *name;
  /* Cycles the policy runs per step (it runs between two samples with the
   * guests as they are): a controller that acts every 10 s runs 30 times
   * in a 300 s step. */
  guint cycles_per_step;
  /* Called once with every domain before the first step; may be NULL. */
  void (*init) (Sim *sim, gpointer user_data);
  /* One cycle at @now: reads and sets the observed domains' targets. */
  void (*cycle) (Sim *sim, gint64 now, gpointer user_data);
  void (*fini) (Sim *sim, gpointer user_data);
  gpointer user_data;
} SimPolicy;

/* The peak of the memory held is taken from the end of the first day on. */
#define SIM_PEAK_AFTER_S 86400

/* What the run measured, over one span of time. */
typedef struct {
  double  domain_intervals;
  double  domain_hours;
  double  held_gib_h;      /* sum of targets over time */
  double  starved;         /* domain-intervals with the demand above the target */
  double  deficit_gib_h;   /* sum of (demand - target) over starved intervals */
  double  moves;
  double  peak_gib;        /* highest sum of targets at a step, after SIM_PEAK_AFTER_S */
  double  static_gib_h;    /* what static allocation holds over the same intervals */
  double  demand_gib_h;    /* what the domains used over them */
} SimTally;

typedef struct {
  SimTally all;
  SimTally half[2];        /* first and second half of the trace */
  GArray  *cycle_us;       /* double: CPU time of each cycle */
} SimResult;

void sim_result_clear (SimResult *r);

struct Sim {
  const Fleet *fleet;
  SimDomain   *dom;
  gsize        n;
  double       capacity_mib;
  gboolean     boot_estimate; /* domains start at vmemd's estimate, else at their memory */
};

/* Replays the whole fleet under @policy on a host of @capacity_mib. */
void sim_run (const Fleet *fleet, double capacity_mib, gboolean boot_estimate,
              const SimPolicy *policy, SimResult *out);

/* The sum of the targets of every started domain. */
double sim_committed_mib (const Sim *sim);
/* Sets a domain's target, counting a move when it changes. */
void   sim_set_target (SimDomain *d, double target_mib);

/* Helpers for the tables. */
double sim_percentile (GArray *values, double q);

G_END_DECLS
