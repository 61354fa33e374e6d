/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmemctl profile ... */
#include "vmemctl.h"
#include "vmem-cleanup.h"
#include "vmem-error.h"
#include "vmem-profile.h"
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
  return json_object_object_get_ex (o, key, &v) && v ? json_object_get_int64 (v) : 0;
}

static char *
size_or_dash (gint64 mib)
{
  return mib > 0 ? vmem_size_format ((guint64) mib) : g_strdup ("-");
}

static void
print_profile (json_object *p)
{
  g_autofree char *demand = size_or_dash (get_i64 (p, "demand_mib"));
  g_autofree char *floor_s = size_or_dash (get_i64 (p, "floor_mib"));
  g_autofree char *ceiling = size_or_dash (get_i64 (p, "ceiling_mib"));
  printf ("Profile:   %s\n", get_str (p, "name"));
  printf ("Demand:    %s\n", demand);
  printf ("Floor:     %s\n", floor_s);
  printf ("Ceiling:   %s\n", ceiling);
  printf ("Margin:    %s%%\n", get_str (p, "margin_pct"));
  printf ("Quantile:  %s\n", get_str (p, "quantile"));
  printf ("Buffer:    %s%%\n", get_str (p, "buffer_pct"));
  printf ("Mode:      %s\n", get_str (p, "mode"));
  printf ("Prealloc:  %s\n", g_strcmp0 (get_str (p, "prealloc"), "true") == 0 ? "on" : "off");
  printf ("Scale:     %s\n", get_str (p, "scale"));
  printf ("Priority:  %s\n", get_str (p, "priority"));
  printf ("Match:     %s\n", get_str (p, "match"));
}

static int
profile_set (VmemctlGlobal *g, int argc, char **argv, gboolean create)
{
  g_autoptr(GError) error = NULL;
  if (argc < 2 || argv[1][0] == '-')
    return vmemctl_usage_error ("profile %s: missing profile NAME", create ? "add" : "set");
  g_autoptr(json_object) fields = vmemctl_parse_profile_options (argc, argv, 2, &error);
  if (fields == NULL)
    return vmemctl_usage_error ("profile %s: %s", create ? "add" : "set", error->message);
  json_object_object_add (fields, "name", json_object_new_string (argv[1]));
  /* Check locally what can be checked, so a typo never reaches the daemon. */
  g_autoptr(VmemProfile) base = vmem_profile_new (argv[1]);
  g_autoptr(VmemProfile) check = vmem_profile_from_json (fields, create ? NULL : base, &error);
  if (check == NULL)
    return vmemctl_usage_error ("%s", error->message);

  json_object *params = json_object_new_object ();
  json_object_object_add (params, "profile", json_object_get (fields));
  json_object_object_add (params, "create", json_object_new_boolean (create));
  g_autoptr(json_object) p = params;
  int code = 0;
  g_autoptr(json_object) r = vmemctl_call (g, "io.vmemd.ProfileSet", params, &code);
  if (r == NULL)
    return code;
  json_object *prof = NULL;
  json_object_object_get_ex (r, "profile", &prof);
  if (g->json)
    vmemctl_print_json (prof);
  else
    print_profile (prof);
  return 0;
}

static int
profile_show (VmemctlGlobal *g, int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GPtrArray) pos = vmemctl_parse_simple (argc, argv, 1, NULL, seen, &error);
  if (pos == NULL)
    return vmemctl_usage_error ("profile show: %s", error->message);
  if (pos->len != 1)
    return vmemctl_usage_error ("profile show: expected one profile NAME");
  g_autoptr(json_object) params = json_object_new_object ();
  json_object_object_add (params, "name", json_object_new_string (g_ptr_array_index (pos, 0)));
  int code = 0;
  g_autoptr(json_object) r = vmemctl_call (g, "io.vmemd.ProfileGet", params, &code);
  if (r == NULL)
    return code;
  json_object *prof = NULL;
  json_object_object_get_ex (r, "profile", &prof);
  if (g->json)
    vmemctl_print_json (prof);
  else
    print_profile (prof);
  return 0;
}

static int
profile_list (VmemctlGlobal *g, int argc, char **argv, const char *export_path)
{
  int code = 0;
  g_autoptr(json_object) r = vmemctl_call (g, "io.vmemd.ProfileList", NULL, &code);
  if (r == NULL)
    return code;
  json_object *list = NULL;
  json_object_object_get_ex (r, "profiles", &list);

  if (export_path != NULL)
    {
      for (size_t i = 0; i < json_object_array_length (list); i++)
        {
          json_object *p = json_object_array_get_idx (list, i);
          json_object_object_del (p, "created");
          json_object_object_del (p, "updated");
        }
      const char *out = json_object_to_json_string_ext (list, JSON_C_TO_STRING_PRETTY |
                                                               JSON_C_TO_STRING_SPACED |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE);
      if (g_str_equal (export_path, "-"))
        printf ("%s\n", out);
      else
        {
          g_autoptr(GError) error = NULL;
          g_autofree char *text = g_strdup_printf ("%s\n", out);
          if (!g_file_set_contents (export_path, text, -1, &error))
            {
              fprintf (stderr, "vmemctl: %s\n", error->message);
              return VMEMCTL_EXIT_FAILED;
            }
        }
      return 0;
    }
  if (g->json)
    {
      vmemctl_print_json (list);
      return 0;
    }
  printf ("%-20s %8s %8s %8s %-10s %-8s %s\n", "NAME", "DEMAND", "FLOOR", "CEILING", "MODE",
          "PREALLOC", "MATCH");
  for (size_t i = 0; i < json_object_array_length (list); i++)
    {
      json_object *p = json_object_array_get_idx (list, i);
      g_autofree char *d = size_or_dash (get_i64 (p, "demand_mib"));
      g_autofree char *f = size_or_dash (get_i64 (p, "floor_mib"));
      g_autofree char *c = size_or_dash (get_i64 (p, "ceiling_mib"));
      printf ("%-20s %8s %8s %8s %-10s %-8s %s\n", get_str (p, "name"), d, f, c,
              get_str (p, "mode"), g_strcmp0 (get_str (p, "prealloc"), "true") == 0 ? "on" : "off",
              get_str (p, "match"));
    }
  return 0;
}

static int
profile_remove (VmemctlGlobal *g, int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  static const char *const flags[] = { "--force", NULL };
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GPtrArray) pos = vmemctl_parse_simple (argc, argv, 1, flags, seen, &error);
  if (pos == NULL)
    return vmemctl_usage_error ("profile remove: %s", error->message);
  if (pos->len != 1)
    return vmemctl_usage_error ("profile remove: expected one profile NAME");
  g_autoptr(json_object) params = json_object_new_object ();
  json_object_object_add (params, "name", json_object_new_string (g_ptr_array_index (pos, 0)));
  json_object_object_add (params, "force", json_object_new_boolean (g_hash_table_contains (seen, "--force")));
  int code = 0;
  g_autoptr(json_object) r = vmemctl_call (g, "io.vmemd.ProfileDelete", params, &code);
  if (r == NULL)
    return code;
  if (g->json)
    vmemctl_print_json (r);
  else
    printf ("Removed profile %s\n", (const char *) g_ptr_array_index (pos, 0));
  return 0;
}

static int
profile_import (VmemctlGlobal *g, int argc, char **argv)
{
  g_autoptr(GError) error = NULL;
  static const char *const flags[] = { "--replace", NULL };
  g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr(GPtrArray) pos = vmemctl_parse_simple (argc, argv, 1, flags, seen, &error);
  if (pos == NULL)
    return vmemctl_usage_error ("profile import: %s", error->message);
  if (pos->len != 1)
    return vmemctl_usage_error ("profile import: expected one FILE (or - for standard input)");
  g_autoptr(json_object) arr = vmemctl_load_profiles (g_ptr_array_index (pos, 0), &error);
  if (arr == NULL)
    {
      fprintf (stderr, "vmemctl: %s\n", error->message);
      return VMEMCTL_EXIT_USAGE;
    }
  g_autoptr(json_object) params = json_object_new_object ();
  json_object_object_add (params, "profiles", json_object_get (arr));
  json_object_object_add (params, "replace", json_object_new_boolean (g_hash_table_contains (seen, "--replace")));
  int code = 0;
  g_autoptr(json_object) r = vmemctl_call (g, "io.vmemd.ProfileImport", params, &code);
  if (r == NULL)
    return code;
  if (g->json)
    vmemctl_print_json (r);
  else
    printf ("Imported: %" G_GINT64_FORMAT " created, %" G_GINT64_FORMAT " updated, %" G_GINT64_FORMAT
            " deleted\n", get_i64 (r, "created"), get_i64 (r, "updated"), get_i64 (r, "deleted"));
  return 0;
}

int
vmemctl_cmd_profile (VmemctlGlobal *g, int argc, char **argv)
{
  if (argc < 2)
    return vmemctl_usage_error ("profile: expected add, set, show, list, remove, import or export");
  const char *sub = argv[1];
  argc--;
  argv++;
  if (g_str_equal (sub, "add"))
    return profile_set (g, argc, argv, TRUE);
  if (g_str_equal (sub, "set"))
    return profile_set (g, argc, argv, FALSE);
  if (g_str_equal (sub, "show"))
    return profile_show (g, argc, argv);
  if (g_str_equal (sub, "remove") || g_str_equal (sub, "rm"))
    return profile_remove (g, argc, argv);
  if (g_str_equal (sub, "import"))
    return profile_import (g, argc, argv);
  if (g_str_equal (sub, "list") || g_str_equal (sub, "export"))
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
      g_autoptr(GPtrArray) pos = vmemctl_parse_simple (argc, argv, 1, NULL, seen, &error);
      if (pos == NULL)
        return vmemctl_usage_error ("profile %s: %s", sub, error->message);
      if (g_str_equal (sub, "list") && pos->len != 0)
        return vmemctl_usage_error ("profile list: unexpected argument '%s'",
                                    (const char *) g_ptr_array_index (pos, 0));
      if (g_str_equal (sub, "export") && pos->len > 1)
        return vmemctl_usage_error ("profile export: expected at most one FILE");
      return profile_list (g, argc, argv,
                           g_str_equal (sub, "export")
                             ? (pos->len ? g_ptr_array_index (pos, 0) : "-")
                             : NULL);
    }
  return vmemctl_usage_error ("profile: unknown command '%s'", sub);
}
