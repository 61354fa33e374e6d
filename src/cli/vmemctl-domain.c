/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmemctl assign, unassign, status, explain */
#include "vmemctl.h"
#include "vmem-cleanup.h"
#include "vmem-error.h"
#include "vmem-units.h"

#include <stdio.h>
#include <string.h>

static const char *
get_str (json_object *o, const char *key)
{
  json_object *v = NULL;
  /* Never NULL: what is missing prints as "-". */
  return o && json_object_object_get_ex (o, key, &v) && v ? json_object_get_string (v) : "-";
}

static gint64
get_i64 (json_object *o, const char *key)
{
  json_object *v = NULL;
  return o && json_object_object_get_ex (o, key, &v) && v ? json_object_get_int64 (v) : 0;
}

static char *
fmt_size (gint64 mib)
{
  return vmem_size_format ((guint64) MAX (mib, 0));
}

int
vmemctl_cmd_assign (VmemctlGlobal *g, int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GPtrArray) pos = vmemctl_parse_simple (argc, argv, 1, NULL, seen, &error);
  if (pos == NULL)
    return vmemctl_usage_error ("assign: %s", error->message);
  if (pos->len != 2)
    return vmemctl_usage_error ("assign: expected DOMAIN WORKLOAD");
  g_autoptr(json_object) params = json_object_new_object ();
  json_object_object_add (params, "domain", json_object_new_string (g_ptr_array_index (pos, 0)));
  json_object_object_add (params, "workload", json_object_new_string (g_ptr_array_index (pos, 1)));
  int code = 0;
  g_autoptr(json_object) r = vmemctl_call (g, "io.vmemd.Assign", params, &code);
  if (r == NULL)
    return code;
  if (g->json)
    vmemctl_print_json (r);
  else
    printf ("Domain %s assigned to workload %s\n", get_str (r, "domain"), get_str (r, "workload"));
  return 0;
}

int
vmemctl_cmd_unassign (VmemctlGlobal *g, int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  static const char *const flags[] = { "--restore", NULL };
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GPtrArray) pos = vmemctl_parse_simple (argc, argv, 1, flags, seen, &error);
  if (pos == NULL)
    return vmemctl_usage_error ("unassign: %s", error->message);
  if (pos->len != 1)
    return vmemctl_usage_error ("unassign: expected one DOMAIN");
  g_autoptr(json_object) params = json_object_new_object ();
  json_object_object_add (params, "domain", json_object_new_string (g_ptr_array_index (pos, 0)));
  json_object_object_add (params, "restore", json_object_new_boolean (g_hash_table_contains (seen, "--restore")));
  int code = 0;
  g_autoptr(json_object) r = vmemctl_call (g, "io.vmemd.Unassign", params, &code);
  if (r == NULL)
    return code;
  if (g->json)
    vmemctl_print_json (r);
  else
    printf ("Domain %s unassigned%s\n", get_str (r, "domain"),
            g_strcmp0 (get_str (r, "restored"), "true") == 0 ? "; its memory settings are restored" : "");
  return 0;
}

int
vmemctl_cmd_status (VmemctlGlobal *g, int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GPtrArray) pos = vmemctl_parse_simple (argc, argv, 1, NULL, seen, &error);
  if (pos == NULL)
    return vmemctl_usage_error ("status: %s", error->message);
  if (pos->len != 0)
    return vmemctl_usage_error ("status: unexpected argument '%s'", (const char *) g_ptr_array_index (pos, 0));
  int code = 0;
  g_autoptr(json_object) r = vmemctl_call (g, "io.vmemd.Status", NULL, &code);
  if (r == NULL)
    return code;
  json_object *s = NULL;
  json_object_object_get_ex (r, "status", &s);
  if (g->json)
    {
      vmemctl_print_json (s);
      return 0;
    }
  g_autofree char *cap = fmt_size (get_i64 (s, "capacity_mib"));
  g_autofree char *com = fmt_size (get_i64 (s, "committed_mib"));
  g_autofree char *res = fmt_size (get_i64 (s, "reserve_mib"));
  printf ("vmemd %s on %s\n", get_str (s, "version"), get_str (s, "host"));
  printf ("libvirt:   %s (%s)\n", get_str (s, "uri"),
          g_strcmp0 (get_str (s, "libvirt_connected"), "true") == 0 ? "connected" : "NOT connected");
  printf ("store:     %s %s, schema %s\n", get_str (s, "store"), get_str (s, "database"),
          get_str (s, "schema_version"));
  printf ("memory:    %s usable (reserve %s), %s committed; admission %s\n", cap, res, com,
          get_str (s, "admission"));
  printf ("profiles:  %s\n\n", get_str (s, "profiles"));
  json_object *doms = NULL;
  json_object_object_get_ex (s, "domains", &doms);
  printf ("%-24s %-10s %-16s %8s %8s\n", "DOMAIN", "STATE", "WORKLOAD", "MEMORY", "CURRENT");
  for (size_t i = 0; doms && i < json_object_array_length (doms); i++)
    {
      json_object *d = json_object_array_get_idx (doms, i);
      g_autofree char *mem = fmt_size (get_i64 (d, "memory_mib"));
      g_autofree char *cur = fmt_size (get_i64 (d, "current_mib"));
      const char *w = get_str (d, "workload");
      g_autofree char *wl = !g_str_equal (w, "-") ? g_strdup_printf ("%s%s", w,
                                                 g_strcmp0 (get_str (d, "managed"), "true") == 0 ? "" : " (no profile)")
                              : g_strdup ("-");
      printf ("%-24s %-10s %-16s %8s %8s\n", get_str (d, "name"), get_str (d, "state"), wl, mem, cur);
    }
  return 0;
}

int
vmemctl_cmd_explain (VmemctlGlobal *g, int argc, char **argv)
{
  g_autoptr(json_object) params = json_object_new_object ();
  const char *domain = NULL, *workload = NULL;
  for (int i = 1; i < argc; i++)
    {
      if (g_str_equal (argv[i], "--json"))
        continue;
      if (g_str_equal (argv[i], "--workload"))
        {
          if (i + 1 >= argc)
            return vmemctl_usage_error ("explain: --workload needs a value");
          workload = argv[++i];
        }
      else if (g_str_has_prefix (argv[i], "--workload="))
        workload = argv[i] + strlen ("--workload=");
      else if (argv[i][0] == '-')
        return vmemctl_usage_error ("explain: unknown option %s", argv[i]);
      else if (domain == NULL)
        domain = argv[i];
      else
        return vmemctl_usage_error ("explain: unexpected argument '%s'", argv[i]);
    }
  if ((domain == NULL) == (workload == NULL))
    return vmemctl_usage_error ("explain: expected DOMAIN or --workload WORKLOAD");
  json_object_object_add (params, domain ? "domain" : "workload",
                          json_object_new_string (domain ? domain : workload));
  int code = 0;
  g_autoptr(json_object) r = vmemctl_call (g, "io.vmemd.Explain", params, &code);
  if (r == NULL)
    return code;
  json_object *x = NULL;
  json_object_object_get_ex (r, "explanation", &x);
  if (g->json)
    {
      vmemctl_print_json (x);
      return 0;
    }

  if (domain != NULL)
    {
      g_autofree char *mem = fmt_size (get_i64 (x, "memory_mib"));
      printf ("Domain:    %s (%s)\n", get_str (x, "domain"), get_str (x, "uuid"));
      printf ("Memory:    %s, %s vCPUs\n", mem, get_str (x, "vcpus"));
      if (g_strcmp0 (get_str (x, "managed"), "true") != 0)
        {
          printf ("Managed:   no: %s\n", get_str (x, "why"));
          return 0;
        }
      printf ("Workload:  %s (by %s)\n", get_str (x, "workload"), get_str (x, "matched_by"));
    }
  else
    printf ("Workload:  %s\n", get_str (x, "workload"));

  json_object *plan = NULL;
  json_object_object_get_ex (x, "plan", &plan);
  g_autofree char *demand = fmt_size (get_i64 (plan, "demand_mib"));
  g_autofree char *raw = fmt_size (get_i64 (plan, "unclamped_mib"));
  printf ("Demand:    %s from %s: %s\n", demand, get_str (plan, "source"), get_str (plan, "why"));
  json_object *est = NULL;
  if (json_object_object_get_ex (plan, "estimate", &est))
    printf ("Estimate:  %s\n", json_object_to_json_string_ext (est, JSON_C_TO_STRING_SPACED));
  json_object *clamps = NULL;
  json_object_object_get_ex (plan, "clamps", &clamps);
  if (clamps && json_object_array_length (clamps) > 0)
    for (size_t i = 0; i < json_object_array_length (clamps); i++)
      printf ("Clamp:     %s → %s (%s before)\n", json_object_get_string (json_object_array_get_idx (clamps, i)),
              demand, raw);
  printf ("Prealloc:  %s\n", g_strcmp0 (get_str (plan, "prealloc"), "true") == 0
                               ? "on: the boot memory is allocated before the guest runs"
                               : "off");
  printf ("Mode:      %s\n", get_str (plan, "mode"));
  json_object *st = NULL;
  if (json_object_object_get_ex (x, "staged", &st))
    {
      g_autofree char *sd = fmt_size (get_i64 (st, "demand_mib"));
      g_autoptr(GDateTime) t = g_date_time_new_from_unix_local (get_i64 (st, "time"));
      g_autofree char *ts = t ? g_date_time_format (t, "%Y-%m-%d %H:%M:%S") : g_strdup ("?");
      printf ("Staged:    %s from %s at %s (in the persistent definition for the next start)\n", sd,
              get_str (st, "source"), ts);
    }
  else if (domain != NULL)
    printf ("Staged:    not yet\n");
  json_object *doms = NULL;
  if (json_object_object_get_ex (x, "domains", &doms))
    {
      printf ("Domains:  ");
      for (size_t i = 0; i < json_object_array_length (doms); i++)
        printf (" %s", json_object_get_string (json_object_array_get_idx (doms, i)));
      printf ("%s\n", json_object_array_length (doms) ? "" : " none");
    }
  return 0;
}
