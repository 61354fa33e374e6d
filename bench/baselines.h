/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The balloon policies vmemd's controller is measured against, each as
 * its public description or source gives it (bench/README.md says what
 * was implemented).  Sizes in MiB. */

#include "fleet.h"

G_BEGIN_DECLS

/* Every domain at its <memory>, whatever the host has. */
void baseline_static (SimPolicy *out);

/* oVirt MOM's default balloon policy (balloon.rules), every 10 s. */
typedef struct {
  double pressure_threshold;         /* 0.20: host free under this is pressure */
  double pressure_critical;          /* 0.05 */
  double min_guest_free_percent;     /* 0.20 */
  double max_balloon_change_percent; /* 0.05 */
  double min_balloon_change_percent; /* 0.0025 */
  guint  interval_s;                 /* 10: policy-engine-interval */
} BaselineMom;

void baseline_mom_init (BaselineMom *mom);
void baseline_mom (BaselineMom *mom, guint step_s, SimPolicy *out);

/* Proxmox VE's auto-ballooning (pvestatd + PVE::AutoBalloon), every 10 s. */
typedef struct {
  double target_pct;    /* 80: keep host memory use here */
  double maxchange_mib; /* 100: per VM, per round */
  double deadband_mib;  /* 10: a smaller host goal does nothing */
  double shares;        /* 1000 */
  double min_mib;       /* the VMs' minimum memory ('balloon'), at most <memory> */
  guint  interval_s;    /* 10 */
  gpointer run;         /* working memory during a run */
} BaselinePve;

void baseline_pve_init (BaselinePve *pve);
void baseline_pve (BaselinePve *pve, guint step_s, SimPolicy *out);

/* Hyper-V Dynamic Memory: demand + buffer, shared by memory weight. */
typedef struct {
  double buffer_pct;  /* 20 */
  double weight;      /* 5000, the same for all */
  double min_mib;     /* Minimum RAM: 512 */
} BaselineHyperv;

void baseline_hyperv_init (BaselineHyperv *hv);
void baseline_hyperv (BaselineHyperv *hv, SimPolicy *out);

G_END_DECLS
