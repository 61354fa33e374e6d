/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmemctl profile add|set|show|list|remove|import|export */
#include "vmemctl.h"
#include "vmem-cleanup.h"
#include "vmem-error.h"

#include <stdio.h>
#include <string.h>

/* 15, not 15.0: the wire form of a double keeps its decimal point. */
static char *
number (json_object *p, const char *key)
{
  json_object *v = NULL;
  if (!json_object_object_get_ex (p, key, &v) || v == NULL)
    return g_strdup ("-");
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  return g_strdup (g_ascii_formatd (buf, sizeof buf, "%g", json_object_get_double (v)));
}

static void
print_profile (json_object *p)
{
  g_autofree char *demand = vmemctl_size (vmemctl_get_i64 (p, "demand_mib"), TRUE);
  g_autofree char *floor_s = vmemctl_size (vmemctl_get_i64 (p, "floor_mib"), TRUE);
  g_autofree char *ceiling = vmemctl_size (vmemctl_get_i64 (p, "ceiling_mib"), TRUE);
  g_autofree char *margin = number (p, "margin_pct");
  g_autofree char *quantile = number (p, "quantile");
  g_autofree char *risk = number (p, "risk_pct");
  g_autofree char *buffer = number (p, "buffer_pct");

  printf ("Profile:   %s\n", vmemctl_get_str (p, "name"));
  printf ("Demand:    %s\n", demand);
  printf ("Floor:     %s\n", floor_s);
  printf ("Ceiling:   %s\n", ceiling);
  printf ("Margin:    %s%%\n", margin);
  printf ("Quantile:  %s\n", quantile);
  printf ("Risk:      %s%%\n", risk);
  printf ("Buffer:    %s%%\n", buffer);
  printf ("Mode:      %s\n", vmemctl_get_str (p, "mode"));
  printf ("Prealloc:  %s\n", vmemctl_get_bool (p, "prealloc") ? "on" : "off");
  printf ("Scale:     %s\n", vmemctl_get_str (p, "scale"));
  printf ("Priority:  %s\n", vmemctl_get_str (p, "priority"));
  printf ("Match:     %s\n", vmemctl_get_str (p, "match"));
}

static void
print_profile_table (json_object *list)
{
  printf ("%-20s %8s %8s %8s %-10s %-8s %-9s %8s %s\n", "NAME", "DEMAND", "FLOOR", "CEILING",
          "MODE", "PREALLOC", "SCALE", "PRIORITY", "MATCH");
  for (size_t i = 0; list && i < json_object_array_length (list); i++)
    {
      json_object *p = json_object_array_get_idx (list, i);
      g_autofree char *d = vmemctl_size (vmemctl_get_i64 (p, "demand_mib"), TRUE);
      g_autofree char *f = vmemctl_size (vmemctl_get_i64 (p, "floor_mib"), TRUE);
      g_autofree char *c = vmemctl_size (vmemctl_get_i64 (p, "ceiling_mib"), TRUE);
      printf ("%-20s %8s %8s %8s %-10s %-8s %-9s %8s %s\n", vmemctl_get_str (p, "name"), d, f, c,
              vmemctl_get_str (p, "mode"), vmemctl_get_bool (p, "prealloc") ? "on" : "off",
              vmemctl_get_str (p, "scale"), vmemctl_get_str (p, "priority"),
              vmemctl_get_str (p, "match"));
    }
}

/* The export form is what import accepts: no store timestamps. */
static int
export_profiles (const char *path, json_object *list)
{
  for (size_t i = 0; list && i < json_object_array_length (list); i++)
    {
      json_object *p = json_object_array_get_idx (list, i);
      json_object_object_del (p, "created");
      json_object_object_del (p, "updated");
    }
  g_autoptr(json_object) empty = list ? NULL : json_object_new_array ();
  const char *out = json_object_to_json_string_ext (
    list ? list : empty,
    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
  if (g_str_equal (path, "-"))
    {
      printf ("%s\n", out);
      return VMEMCTL_EXIT_OK;
    }
  g_autoptr(GError) error = NULL;
  g_autofree char *text = g_strdup_printf ("%s\n", out);
  if (!g_file_set_contents (path, text, -1, &error))
    {
      fprintf (stderr, "vmemctl: %s\n", error->message);
      return VMEMCTL_EXIT_FAILED;
    }
  return VMEMCTL_EXIT_OK;
}

int
vmemctl_profile_run (VmemctlRequest *req)
{
  int code = VMEMCTL_EXIT_OK;

  if (req->command == VMEMCTL_CMD_PROFILE_IMPORT)
    {
      /* Checked entirely here first: a bad file is reported with the entry
       * and field, and nothing is sent. */
      g_autoptr(GError) error = NULL;
      g_autoptr(json_object) arr = vmemctl_load_profiles (req->file, &error);
      if (arr == NULL)
        {
          fprintf (stderr, "vmemctl: profile import: %s\n", error->message);
          return VMEMCTL_EXIT_USAGE;
        }
      json_object_object_add (req->params, "profiles", g_steal_pointer (&arr));
    }

  g_autoptr(json_object) r = vmemctl_call (req, req->method, req->params, &code);
  if (r == NULL)
    return code;

  json_object *payload = NULL;
  switch (req->command)
    {
    case VMEMCTL_CMD_PROFILE_ADD:
    case VMEMCTL_CMD_PROFILE_SET:
    case VMEMCTL_CMD_PROFILE_SHOW:
      json_object_object_get_ex (r, "profile", &payload);
      if (req->json)
        vmemctl_print_json (payload ? payload : r);
      else
        {
          print_profile (payload);
          /* vmemd writes a changed plan into the persistent definitions;
           * nothing moves the memory of a guest that is running. */
          if (req->command != VMEMCTL_CMD_PROFILE_SHOW)
            printf ("\nThis applies from each domain's next start: running domains of %s\n"
                    "keep their current memory until then.\n",
                    vmemctl_get_str (payload, "name"));
        }
      break;
    case VMEMCTL_CMD_PROFILE_LIST:
      json_object_object_get_ex (r, "profiles", &payload);
      if (req->json)
        vmemctl_print_json (payload ? payload : r);
      else
        print_profile_table (payload);
      break;
    case VMEMCTL_CMD_PROFILE_EXPORT:
      json_object_object_get_ex (r, "profiles", &payload);
      return export_profiles (req->file, payload);
    case VMEMCTL_CMD_PROFILE_REMOVE:
      if (req->json)
        vmemctl_print_json (r);
      else
        printf ("Removed profile %s\n", vmemctl_get_str (req->params, "name"));
      break;
    case VMEMCTL_CMD_PROFILE_IMPORT:
      if (req->json)
        vmemctl_print_json (r);
      else
        {
          size_t n = json_object_array_length (json_object_object_get (req->params, "profiles"));
          printf ("Imported %zu profile%s: %" G_GINT64_FORMAT " created, %" G_GINT64_FORMAT
                  " updated, %" G_GINT64_FORMAT " deleted\n",
                  n, n == 1 ? "" : "s", vmemctl_get_i64 (r, "created"),
                  vmemctl_get_i64 (r, "updated"), vmemctl_get_i64 (r, "deleted"));
        }
      break;
    default:
      g_assert_not_reached ();
    }
  return VMEMCTL_EXIT_OK;
}
