/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The daemon's side of estimation: one aggregate of peer peaks per
 * workload, loaded from the store's per-domain hourly peaks at start and
 * kept up to date from each collector cycle, so an estimate never reads raw
 * samples. */

#include "vmem-daemon-private.h"
#include "vmem-estimator.h"
#include "vmem-store.h"

G_BEGIN_DECLS

void          vmem_demand_init (VmemDaemon *daemon);
void          vmem_demand_clear (VmemDaemon *daemon);
/* (Re)loads every profile's aggregate from the store. */
void          vmem_demand_load (VmemDaemon *daemon);
/* Feeds one new sample of a managed domain into its workload's aggregate. */
void          vmem_demand_observe (VmemDaemon *daemon, VmemDomainEntry *entry, const VmemSample *sample);
/* The estimate for a domain of @profile (never NULL). */
VmemEstimate *vmem_demand_estimate (VmemDaemon *daemon, const VmemVirtDomain *d,
                                    const VmemProfile *profile, GError **error);
/* Re-stages inactive managed domains of @workload whose estimate moved
 * beyond the hysteresis since they were staged. */
void          vmem_demand_restage_moved (VmemDaemon *daemon, const char *workload);

G_END_DECLS
