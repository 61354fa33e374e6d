/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmemctl assign, unassign, status, explain, history, metrics */
#include "vmemctl.h"
#include "vmem-cleanup.h"
#include "vmem-error.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static char *
fmt_size (gint64 mib)
{
  return vmemctl_size (mib, FALSE);
}

static void
print_status (json_object *s)
{
  g_autofree char *cap = fmt_size (vmemctl_get_i64 (s, "capacity_mib"));
  g_autofree char *com = fmt_size (vmemctl_get_i64 (s, "committed_mib"));
  g_autofree char *res = fmt_size (vmemctl_get_i64 (s, "reserve_mib"));
  printf ("vmemd %s on %s\n", vmemctl_get_str (s, "version"), vmemctl_get_str (s, "host"));
  printf ("libvirt:   %s (%s)\n", vmemctl_get_str (s, "uri"),
          vmemctl_get_bool (s, "libvirt_connected") ? "connected" : "NOT connected");
  printf ("store:     %s %s, schema %s\n", vmemctl_get_str (s, "store"),
          vmemctl_get_str (s, "database"), vmemctl_get_str (s, "schema_version"));
  json_object *waiting = NULL;
  if (json_object_object_get_ex (s, "store_waiting", &waiting) &&
      (vmemctl_get_i64 (waiting, "samples") > 0 || vmemctl_get_i64 (waiting, "writes") > 0))
    printf ("           waiting: %s samples, %s other writes (the store cannot be written; "
            "they go in, in order, once it can)\n",
            vmemctl_get_str (waiting, "samples"), vmemctl_get_str (waiting, "writes"));
  printf ("memory:    %s usable (reserve %s), %s committed; admission %s\n", cap, res, com,
          vmemctl_get_str (s, "admission"));
  /* Until vmemd has read every domain once it cannot know what is
   * committed, and admission says so. */
  printf ("ready:     %s\n", vmemctl_get_bool (s, "ready")
                               ? "yes"
                               : "NO: not every domain has been read yet; admission cannot "
                                 "count what is committed");
  printf ("profiles:  %s\n", vmemctl_get_str (s, "profiles"));

  json_object *resv = NULL;
  json_object_object_get_ex (s, "reservations", &resv);
  size_t nres = resv && json_object_is_type (resv, json_type_array) ? json_object_array_length (resv) : 0;
  if (nres == 0)
    printf ("starting:  none\n\n");
  else
    {
      printf ("starting:  %zu boot reservation%s\n", nres, nres == 1 ? "" : "s");
      printf ("  %-24s %8s %8s\n", "DOMAIN", "RESERVED", "AGE");
      for (size_t i = 0; i < nres; i++)
        {
          json_object *r = json_object_array_get_idx (resv, i);
          g_autofree char *mib = fmt_size (vmemctl_get_i64 (r, "mib"));
          g_autofree char *age = g_strdup_printf ("%" G_GINT64_FORMAT " s", vmemctl_get_i64 (r, "age_s"));
          printf ("  %-24s %8s %8s\n", vmemctl_get_str (r, "name"), mib, age);
        }
      printf ("\n");
    }

  json_object *doms = NULL;
  json_object_object_get_ex (s, "domains", &doms);
  printf ("%-24s %-10s %-20s %8s %8s %5s\n", "DOMAIN", "STATE", "WORKLOAD", "MEMORY", "CURRENT",
          "VCPUS");
  for (size_t i = 0; doms && i < json_object_array_length (doms); i++)
    {
      json_object *d = json_object_array_get_idx (doms, i);
      g_autofree char *mem = fmt_size (vmemctl_get_i64 (d, "memory_mib"));
      g_autofree char *cur = fmt_size (vmemctl_get_i64 (d, "current_mib"));
      const char *w = vmemctl_get_str (d, "workload");
      /* A tag whose profile is missing changes nothing: say so. */
      g_autofree char *wl = g_str_equal (w, "-") || vmemctl_get_bool (d, "managed")
                              ? g_strdup (w)
                              : g_strdup_printf ("%s (no profile)", w);
      printf ("%-24s %-10s %-20s %8s %8s %5s\n", vmemctl_get_str (d, "name"),
              vmemctl_get_str (d, "state"), wl, mem, cur, vmemctl_get_str (d, "vcpus"));
    }

  /* After the start: each managed running domain, as the on-demand
   * controller sees it. */
  gboolean header = FALSE;
  for (size_t i = 0; doms && i < json_object_array_length (doms); i++)
    {
      json_object *d = json_object_array_get_idx (doms, i);
      json_object *action = NULL;
      if (!vmemctl_get_bool (d, "managed") || !json_object_object_get_ex (d, "action", &action))
        continue;
      if (!header)
        {
          printf ("\nOn demand:\n%-24s %8s %8s %8s %8s %8s %-9s %s\n", "DOMAIN", "DEMAND",
                  "TARGET", "ACTUAL", "USED", "AVAIL", "ACTION", "WHY");
          header = TRUE;
        }
      g_autofree char *demand = json_object_object_get (d, "demand_mib")
                                  ? fmt_size (vmemctl_get_i64 (d, "demand_mib"))
                                  : g_strdup ("-");
      g_autofree char *target = fmt_size (vmemctl_get_i64 (d, "target_mib"));
      g_autofree char *actual = fmt_size (vmemctl_get_i64 (d, "current_mib"));
      gboolean seen = json_object_object_get (d, "used_mib") != NULL;
      g_autofree char *used = seen ? fmt_size (vmemctl_get_i64 (d, "used_mib")) : g_strdup ("-");
      g_autofree char *avail = seen ? fmt_size (vmemctl_get_i64 (d, "available_mib")) : g_strdup ("-");
      printf ("%-24s %8s %8s %8s %8s %8s %-9s %s\n", vmemctl_get_str (d, "name"), demand, target,
              actual, used, avail, json_object_get_string (action), vmemctl_get_str (d, "reason"));
    }
}

/* The estimator's working: the domain's own level and the peers' prior
 * (or the prior alone for a first start), the margin and its calibration,
 * then one line per peer (the domain itself is never one). */
static void
print_estimate (json_object *est)
{
  json_object *peers = NULL;
  json_object_object_get_ex (est, "peers", &peers);
  size_t n = peers && json_object_is_type (peers, json_type_array) ? json_object_array_length (peers) : 0;

  const char *source = vmemctl_get_str (est, "source");
  if (g_str_equal (source, "peers") || g_str_equal (source, "own"))
    {
      gboolean per_vcpu = g_str_equal (vmemctl_get_str (est, "scale"), "per-vcpu");
      g_autofree char *q = fmt_size ((gint64) ceil (vmemctl_get_double (est, "quantile_mib")));
      g_autofree char *base = fmt_size ((gint64) ceil (vmemctl_get_double (est, "base_mib")));
      g_autofree char *raw = fmt_size ((gint64) ceil (vmemctl_get_double (est, "raw_mib")));
      if (g_str_equal (source, "own"))
        {
          g_autofree char *own = fmt_size ((gint64) ceil (vmemctl_get_double (est, "own_level_mib")));
          printf ("Estimate:  own history: level %s over %.1f h, weight %.2f; prior from %zu "
                  "peer%s = %s; together %s\n", own, vmemctl_get_double (est, "own_hours"),
                  vmemctl_get_double (est, "own_weight"), n, n == 1 ? "" : "s", q, base);
        }
      else
        printf ("Estimate:  first start: p%g of %zu peer level%s %s = %s (%.1f h of history)\n",
                vmemctl_get_double (est, "quantile") * 100, n, n == 1 ? "" : "s",
                per_vcpu ? "per vCPU, times its vCPUs" : "relative to <memory>, times its own",
                q, vmemctl_get_double (est, "history_hours"));
      json_object *cal = NULL;
      json_object_object_get_ex (est, "calibration", &cal);
      if (cal != NULL && !g_str_equal (vmemctl_get_str (cal, "scope"), "none"))
        printf ("Margin:    %+.1f %%, calibrated to at most %g %% risk with %g %% confidence "
                "on %s %s outcomes of %s starts (%.1f %% under-provisioned): rank %s of them "
                "at level %g %% = %s\n",
                vmemctl_get_double (est, "effective_margin_pct"),
                vmemctl_get_double (cal, "risk") * 100,
                vmemctl_get_double (cal, "confidence") * 100, vmemctl_get_str (cal, "outcomes"),
                g_str_equal (vmemctl_get_str (cal, "scope"), "workload") ? "of the workload's"
                                                                        : "pooled",
                vmemctl_get_str (cal, "kind"), vmemctl_get_double (cal, "observed_pct"),
                vmemctl_get_str (cal, "rank"), vmemctl_get_double (cal, "level") * 100, raw);
      else if (cal != NULL && vmemctl_get_i64 (cal, "needed") > 0)
        printf ("Margin:    %g %%, as configured: %s outcomes, too few to calibrate to "
                "%g %% risk with %g %% confidence (%s needed) = %s\n",
                vmemctl_get_double (est, "margin_pct"), vmemctl_get_str (cal, "outcomes"),
                vmemctl_get_double (cal, "risk") * 100,
                vmemctl_get_double (cal, "confidence") * 100, vmemctl_get_str (cal, "needed"),
                raw);
      else
        printf ("Margin:    %g %%, as configured: %s outcomes, too few to calibrate to "
                "%g %% risk = %s\n", vmemctl_get_double (est, "margin_pct"),
                cal != NULL ? vmemctl_get_str (cal, "outcomes") : "0",
                cal != NULL ? vmemctl_get_double (cal, "risk") * 100 : 5.0, raw);
    }
  else
    printf ("Estimate:  %s\n", vmemctl_get_str (est, "reason"));
  if (n == 0)
    return;
  printf ("Peers:     %-24s %-16s %8s %5s %10s %10s %7s\n", "NAME", "HOST", "SAMPLES", "VCPUS",
          "LEVEL", "SCALED", "WEIGHT");
  for (size_t i = 0; i < n; i++)
    {
      json_object *p = json_object_array_get_idx (peers, i);
      const char *uuid = vmemctl_get_str (p, "uuid");
      const char *name = vmemctl_get_str (p, "name");
      json_object *hn = NULL;
      const char *host = json_object_object_get_ex (p, "host_name", &hn)
                           ? json_object_get_string (hn)
                           : vmemctl_get_str (p, "host");
      g_autofree char *level = fmt_size ((gint64) ceil (vmemctl_get_double (p, "peak_mib")));
      g_autofree char *scaled = fmt_size ((gint64) ceil (vmemctl_get_double (p, "scaled_mib")));
      printf ("           %-24s %-16s %8s %5s %10s %10s %7.2f\n",
              g_str_equal (name, "-") ? uuid : name, host,
              vmemctl_get_str (p, "samples"), vmemctl_get_str (p, "vcpus"), level, scaled,
              vmemctl_get_double (p, "weight"));
    }
}

static void
print_explanation (json_object *x, gboolean domain)
{
  if (domain)
    {
      g_autofree char *mem = fmt_size (vmemctl_get_i64 (x, "memory_mib"));
      printf ("Domain:    %s (%s)\n", vmemctl_get_str (x, "domain"), vmemctl_get_str (x, "uuid"));
      printf ("Memory:    %s, %s vCPUs\n", mem, vmemctl_get_str (x, "vcpus"));
      if (!vmemctl_get_bool (x, "managed"))
        {
          printf ("Managed:   no: %s\n", vmemctl_get_str (x, "why"));
          return;
        }
      printf ("Workload:  %s (by %s)\n", vmemctl_get_str (x, "workload"),
              vmemctl_get_str (x, "matched_by"));
    }
  else
    printf ("Workload:  %s\n", vmemctl_get_str (x, "workload"));

  json_object *plan = NULL;
  json_object_object_get_ex (x, "plan", &plan);
  g_autofree char *demand = fmt_size (vmemctl_get_i64 (plan, "demand_mib"));
  g_autofree char *raw = fmt_size (vmemctl_get_i64 (plan, "unclamped_mib"));
  printf ("Demand:    %s from %s: %s\n", demand, vmemctl_get_str (plan, "source"),
          vmemctl_get_str (plan, "why"));
  json_object *est = NULL;
  if (json_object_object_get_ex (plan, "estimate", &est) &&
      json_object_is_type (est, json_type_object))
    print_estimate (est);
  json_object *clamps = NULL;
  json_object_object_get_ex (plan, "clamps", &clamps);
  if (clamps && json_object_array_length (clamps) > 0)
    for (size_t i = 0; i < json_object_array_length (clamps); i++)
      printf ("Clamp:     %s: %s before, %s after\n",
              json_object_get_string (json_object_array_get_idx (clamps, i)), raw, demand);
  printf ("Prealloc:  %s\n", vmemctl_get_bool (plan, "prealloc")
                               ? "on: the boot memory is allocated before the guest runs"
                               : "off");
  printf ("Mode:      %s\n", vmemctl_get_str (plan, "mode"));
  json_object *st = NULL;
  if (json_object_object_get_ex (x, "staged", &st))
    {
      g_autofree char *sd = fmt_size (vmemctl_get_i64 (st, "demand_mib"));
      g_autoptr(GDateTime) t = g_date_time_new_from_unix_local (vmemctl_get_i64 (st, "time"));
      g_autofree char *ts = t ? g_date_time_format (t, "%Y-%m-%d %H:%M:%S") : g_strdup ("?");
      printf ("Staged:    %s from %s at %s (in the persistent definition for the next start)\n", sd,
              vmemctl_get_str (st, "source"), ts);
    }
  else if (domain)
    printf ("Staged:    not yet\n");
  json_object *doms = NULL;
  if (json_object_object_get_ex (x, "domains", &doms))
    {
      printf ("Domains:  ");
      for (size_t i = 0; i < json_object_array_length (doms); i++)
        printf (" %s", json_object_get_string (json_object_array_get_idx (doms, i)));
      printf ("%s\n", json_object_array_length (doms) ? "" : " none");
    }
}

/* ---- hosts, place --------------------------------------------------------- */

static void
print_hosts (json_object *r, gboolean place)
{
  json_object *hosts = NULL;
  json_object_object_get_ex (r, "hosts", &hosts);
  size_t n = hosts && json_object_is_type (hosts, json_type_array) ? json_object_array_length (hosts) : 0;
  gint64 now = vmemctl_get_i64 (r, "now");
  if (place)
    {
      g_autofree char *demand = fmt_size (vmemctl_get_i64 (r, "demand_mib"));
      g_autofree char *boot = fmt_size (vmemctl_get_i64 (r, "boot_mib"));
      printf ("workload %s: demand %s (%s), %s at boot\n", vmemctl_get_str (r, "workload"),
              demand, vmemctl_get_str (r, "source"), boot);
      if (n == 0)
        {
          printf ("no live host\n");
          return;
        }
      printf ("%-4s %-20s %-4s %9s %9s  %s\n", "RANK", "HOST", "FITS", "FREE", "ROOM", "ID");
    }
  else
    printf ("%-20s %-5s %9s %9s %9s %9s %5s %7s %8s  %s\n", "HOST", "ALIVE", "CAPACITY",
            "RESERVE", "COMMITTED", "FREE", "RESV", "DOMAINS", "BEAT", "ID");
  for (size_t i = 0; i < n; i++)
    {
      json_object *h = json_object_array_get_idx (hosts, i);
      g_autofree char *name = g_strdup_printf ("%s%s", vmemctl_get_str (h, "name"),
                                               vmemctl_get_bool (h, "self") ? " *" : "");
      g_autofree char *cap = fmt_size (vmemctl_get_i64 (h, "capacity_mib"));
      g_autofree char *res = fmt_size (vmemctl_get_i64 (h, "reserve_mib"));
      g_autofree char *com = fmt_size (vmemctl_get_i64 (h, "committed_mib"));
      g_autofree char *fr = fmt_size (vmemctl_get_i64 (h, "free_mib"));
      if (place)
        {
          gint64 room = vmemctl_get_i64 (h, "room_mib");
          g_autofree char *rm = fmt_size (room < 0 ? -room : room);
          g_autofree char *rms = g_strdup_printf ("%s%s", room < 0 ? "-" : "", rm);
          printf ("%-4" G_GINT64_FORMAT " %-20s %-4s %9s %9s  %s\n", vmemctl_get_i64 (h, "rank"),
                  name, vmemctl_get_bool (h, "fits") ? "yes" : "no", fr, rms,
                  vmemctl_get_str (h, "id"));
          continue;
        }
      g_autofree char *resv = g_strdup_printf ("%" G_GINT64_FORMAT,
                                               vmemctl_get_i64 (h, "reservations"));
      g_autofree char *beat = g_strdup_printf ("%" G_GINT64_FORMAT " s",
                                               now - vmemctl_get_i64 (h, "heartbeat"));
      printf ("%-20s %-5s %9s %9s %9s %9s %5s %7" G_GINT64_FORMAT " %8s  %s\n", name,
              vmemctl_get_bool (h, "alive") ? "yes" : "NO", cap, res, com, fr, resv,
              vmemctl_get_i64 (h, "domains"), beat, vmemctl_get_str (h, "id"));
    }
  if (!place)
    printf ("(* this host; BEAT: time since its last heartbeat)\n");
}

/* ---- history ------------------------------------------------------------ */

#define CHART_WIDTH  64
#define CHART_HEIGHT 12

static char *
fmt_time (gint64 t)
{
  g_autoptr(GDateTime) dt = g_date_time_new_from_unix_local (t);
  return dt ? g_date_time_format (dt, "%Y-%m-%d %H:%M:%S") : g_strdup ("?");
}

/* Used memory ('u') against the balloon's actual size ('a'), '*' where they
 * meet, over the samples' time span: one column per time slice, each
 * showing the slice's highest used and its last actual size. */
static void
print_chart (json_object *samples)
{
  size_t n = json_object_array_length (samples);
  gint64 t0 = vmemctl_get_i64 (json_object_array_get_idx (samples, 0), "t");
  gint64 t1 = vmemctl_get_i64 (json_object_array_get_idx (samples, n - 1), "t");
  gint64 used[CHART_WIDTH], actual[CHART_WIDTH];
  gint64 top = 1;

  for (int c = 0; c < CHART_WIDTH; c++)
    used[c] = actual[c] = -1;
  for (size_t i = 0; i < n; i++)
    {
      json_object *s = json_object_array_get_idx (samples, i);
      gint64 t = vmemctl_get_i64 (s, "t");
      int c = t1 > t0 ? (int) ((t - t0) * (CHART_WIDTH - 1) / (t1 - t0)) : 0;
      used[c] = MAX (used[c], vmemctl_get_i64 (s, "used_mib"));
      actual[c] = vmemctl_get_i64 (s, "actual_mib");
      top = MAX (top, MAX (used[c], actual[c]));
    }
  /* Columns without a sample carry the last one's values. */
  for (int c = 1; c < CHART_WIDTH; c++)
    if (used[c] < 0)
      {
        used[c] = used[c - 1];
        actual[c] = actual[c - 1];
      }

  printf ("Memory (u = used by the guest, a = balloon size, * = both):\n");
  for (int row = CHART_HEIGHT; row >= 1; row--)
    {
      gint64 lo = top * (row - 1) / CHART_HEIGHT, hi = top * row / CHART_HEIGHT;
      g_autofree char *label = fmt_size (hi);
      printf ("%8s |", row == CHART_HEIGHT || row == 1 ? label : "");
      for (int c = 0; c < CHART_WIDTH; c++)
        {
          gboolean u = used[c] > lo && used[c] <= hi;
          gboolean a = actual[c] > lo && actual[c] <= hi;
          putchar (u && a ? '*' : u ? 'u' : a ? 'a' : ' ');
        }
      putchar ('\n');
    }
  g_autofree char *from = fmt_time (t0);
  g_autofree char *to = fmt_time (t1);
  printf ("%8s +%.*s\n", "", CHART_WIDTH,
          "----------------------------------------------------------------------------------");
  printf ("%8s  %-*s%s\n\n", "", CHART_WIDTH - (int) strlen (to), from, to);
}

static void
print_history (json_object *h)
{
  json_object *samples = NULL, *moves = NULL;
  json_object_object_get_ex (h, "samples", &samples);
  json_object_object_get_ex (h, "moves", &moves);
  size_t ns = samples ? json_object_array_length (samples) : 0;
  size_t nm = moves ? json_object_array_length (moves) : 0;
  g_autofree char *since = fmt_time (vmemctl_get_i64 (h, "since"));

  printf ("Domain %s since %s: %zu sample%s, %zu move%s\n\n", vmemctl_get_str (h, "domain"), since,
          ns, ns == 1 ? "" : "s", nm, nm == 1 ? "" : "s");
  if (ns > 0)
    print_chart (samples);
  if (nm == 0)
    {
      printf ("No moves of the on-demand controller in that time.\n");
      return;
    }
  printf ("%-19s %-8s %8s %8s %-7s %s\n", "TIME", "ACTION", "FROM", "TO", "APPLIED", "WHY");
  for (size_t i = 0; i < nm; i++)
    {
      json_object *m = json_object_array_get_idx (moves, i);
      g_autofree char *t = fmt_time (vmemctl_get_i64 (m, "t"));
      g_autofree char *from = fmt_size (vmemctl_get_i64 (m, "from_mib"));
      g_autofree char *to = fmt_size (vmemctl_get_i64 (m, "to_mib"));
      json_object *reason = NULL;
      json_object_object_get_ex (m, "reason", &reason);
      printf ("%-19s %-8s %8s %8s %-7s %s\n", t, vmemctl_get_str (m, "action"), from, to,
              vmemctl_get_bool (m, "applied") ? "yes" : "no",
              reason ? json_object_get_string (reason)
                     : "(reason no longer kept: older than raw_retention_hours)");
    }
}

int
vmemctl_domain_run (VmemctlRequest *req)
{
  int code = VMEMCTL_EXIT_OK;
  g_autoptr(json_object) r = vmemctl_call (req, req->method, req->params, &code);
  if (r == NULL)
    return code;

  json_object *payload = NULL;
  switch (req->command)
    {
    case VMEMCTL_CMD_ASSIGN:
      if (req->json)
        vmemctl_print_json (r);
      else
        printf ("Domain %s is assigned to workload %s\n", vmemctl_get_str (r, "domain"),
                vmemctl_get_str (r, "workload"));
      break;
    case VMEMCTL_CMD_UNASSIGN:
      if (req->json)
        vmemctl_print_json (r);
      else
        {
          /* The restore redefines the persistent definition only; libvirt
           * leaves a running instance as it is. */
          gboolean restored = vmemctl_get_bool (r, "restored");
          printf ("Domain %s is unassigned%s\n", vmemctl_get_str (r, "domain"),
                  restored ? "; its original memory settings are back in its definition." : "");
          if (restored)
            printf ("They apply from its next start: if it is running, it keeps its current "
                    "memory until then.\n");
        }
      break;
    case VMEMCTL_CMD_STATUS:
      json_object_object_get_ex (r, "status", &payload);
      if (req->json)
        vmemctl_print_json (payload ? payload : r);
      else
        print_status (payload);
      break;
    case VMEMCTL_CMD_EXPLAIN:
      json_object_object_get_ex (r, "explanation", &payload);
      if (req->json)
        vmemctl_print_json (payload ? payload : r);
      else
        print_explanation (payload, json_object_object_get (req->params, "domain") != NULL);
      break;
    case VMEMCTL_CMD_HISTORY:
      if (req->json)
        vmemctl_print_json (r);
      else
        print_history (r);
      break;
    case VMEMCTL_CMD_HOSTS:
    case VMEMCTL_CMD_PLACE:
      if (req->json)
        vmemctl_print_json (r);
      else
        print_hosts (r, req->command == VMEMCTL_CMD_PLACE);
      break;
    case VMEMCTL_CMD_METRICS:
      /* The daemon's text as it is: a scraper or promtool reads it. */
      if (req->json)
        {
          json_object_object_get_ex (r, "families", &payload);
          vmemctl_print_json (payload ? payload : r);
        }
      else
        fputs (vmemctl_get_str (r, "text"), stdout);
      break;
    default:
      g_assert_not_reached ();
    }
  return VMEMCTL_EXIT_OK;
}
