/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A realistic metrics snapshot: a host with running, starting and shut-off
 * managed domains of three workloads (one estimated from peers, one from
 * its profile, one with nothing yet), a domain whose name needs escaping,
 * and counters that have seen some traffic.  For test-metrics and for
 * metrics-sample, whose output real parsers read. */

#include "vmem-metrics.h"

static inline VmemMetricsSnapshot *
metrics_sample_snapshot (void)
{
  VmemMetricsSnapshot *s = vmem_metrics_snapshot_new ("0.1.0");
  s->started_at = 1767225600; /* 2026-01-01 00:00:00 UTC */
  s->ready = TRUE;
  s->libvirt_connected = TRUE;
  s->capacity_mib = 63 * 1024;
  s->reserve_mib = 1024;
  s->committed_mib = 20 * 1024 + 512;
  s->boot_reservations = 1;
  s->boot_reserved_mib = 4096;

  VmemMetricsDomain *d = vmem_metrics_snapshot_add_domain (s, "erp-db-1", "erp");
  d->running = TRUE;
  d->memory_mib = 16384;
  d->demand_mib = 9000;
  d->actual_mib = 10240;
  d->has_target = TRUE;
  d->target_mib = 10240;
  d->has_used = TRUE;
  d->used_mib = 7812;
  d->available_mib = 2428;

  d = vmem_metrics_snapshot_add_domain (s, "erp-db-2", "erp");
  d->running = TRUE;
  d->memory_mib = 16384;
  d->demand_mib = 9000;
  d->actual_mib = 9000; /* just started: no report, no decision yet */

  d = vmem_metrics_snapshot_add_domain (s, "web \"blue\"\\1", "web");
  d->running = TRUE;
  d->memory_mib = 4096;
  d->demand_mib = 1536;
  d->actual_mib = 1280;
  d->has_target = TRUE;
  d->target_mib = 1280;
  d->has_used = TRUE;
  d->used_mib = 900;
  d->available_mib = 380;

  d = vmem_metrics_snapshot_add_domain (s, "web-2", "web");
  d->memory_mib = 4096;
  d->demand_mib = 1536;

  VmemMetricsWorkload *w = vmem_metrics_snapshot_add_workload (s, "erp");
  w->domains = 2;
  w->has_estimate = TRUE;
  w->source = VMEM_SOURCE_PEERS;
  w->estimate_mib = 9000;
  w->peers = 2;
  w->history_hours = 30.5;
  w->margin_pct = 15;
  w->effective_margin_pct = 19.6;
  w->observed_risk = 0.765625;

  w = vmem_metrics_snapshot_add_workload (s, "web");
  w->domains = 2;
  w->has_estimate = TRUE;
  w->source = VMEM_SOURCE_PROFILE;
  w->estimate_mib = 1536;
  w->peers = 1;
  w->history_hours = 2.25;
  w->margin_pct = 15;

  w = vmem_metrics_snapshot_add_workload (s, "batch");
  w->has_estimate = TRUE;
  w->source = VMEM_SOURCE_NONE;

  VmemMetricsCounters *c = &s->counters;
  for (guint i = 0; i < 360; i++)
    vmem_metrics_collector_cycle (c, i % 90 != 0, 0.004 + 0.0005 * (i % 40));
  vmem_metrics_collector_cycle (c, TRUE, 12.5);
  for (guint i = 0; i < 40; i++)
    vmem_metrics_hook_request (c, VMEM_METRICS_HOOK_PREPARE,
                               i % 10 == 9 ? VMEM_METRICS_HOOK_REFUSED : VMEM_METRICS_HOOK_ALLOWED,
                               0.0003 + 0.0002 * i);
  static const char *const oneway[] = { "start", "started", "stopped", "release", "reconnect" };
  for (guint i = 0; i < 30; i++)
    vmem_metrics_hook_request (c, vmem_metrics_hook_op (oneway[i % G_N_ELEMENTS (oneway)]),
                               VMEM_METRICS_HOOK_ALLOWED, 0.0001 * (i + 1));
  vmem_metrics_hook_request (c, vmem_metrics_hook_op ("migrate"), VMEM_METRICS_HOOK_ALLOWED, 0.004);
  vmem_metrics_hook_request (c, vmem_metrics_hook_op ("bogus"), VMEM_METRICS_HOOK_ERROR, 0.00002);
  c->store_writes[VMEM_METRICS_WRITE_SAMPLES] = 357;
  c->store_writes[VMEM_METRICS_WRITE_DOMAIN] = 12;
  c->store_writes[VMEM_METRICS_WRITE_RUN_OPEN] = 4;
  c->store_writes[VMEM_METRICS_WRITE_RUN_CLOSE] = 2;
  c->store_writes[VMEM_METRICS_WRITE_PLAN] = 9;
  c->store_writes[VMEM_METRICS_WRITE_HEARTBEAT] = 121;
  c->store_writes[VMEM_METRICS_WRITE_PRUNE] = 2;
  c->store_writes[VMEM_METRICS_WRITE_MOVE] = 14;
  c->store_write_errors[VMEM_METRICS_WRITE_SAMPLES] = 3;
  c->store_write_errors[VMEM_METRICS_WRITE_HEARTBEAT] = 1;
  c->stages[VMEM_METRICS_STAGE_STAGED] = 9;
  c->stages[VMEM_METRICS_STAGE_UNCHANGED] = 20;
  c->stages[VMEM_METRICS_STAGE_DEFERRED] = 1;
  c->stages[VMEM_METRICS_STAGE_FAILED] = 1;
  for (guint i = 0; i < 14; i++)
    vmem_metrics_move (c, i % 3 == 0 ? "grow" : "shrink", i != 5);
  vmem_metrics_move (c, "stuck", TRUE);
  c->textfile_errors = 0;
  return s;
}
