/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmemctl.h"
#include "vmem-config.h"
#include "vmem-error.h"
#include "vmem-profile.h"
#include "vmem-units.h"
#include "vmem-cleanup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
vmemctl_exit_code (const GError *error)
{
  if (error == NULL)
    return VMEMCTL_EXIT_OK;
  if (error->domain != VMEM_ERROR)
    return VMEMCTL_EXIT_FAILED;
  switch (error->code)
    {
    case VMEM_ERROR_INVALID_ARGUMENT:
      return VMEMCTL_EXIT_USAGE;
    case VMEM_ERROR_NOT_FOUND:
      return VMEMCTL_EXIT_NOT_FOUND;
    case VMEM_ERROR_UNAVAILABLE:
    case VMEM_ERROR_TIMEOUT:
      return VMEMCTL_EXIT_UNAVAILABLE;
    case VMEM_ERROR_PERMISSION_DENIED:
      return VMEMCTL_EXIT_DENIED;
    default:
      return VMEMCTL_EXIT_FAILED;
    }
}

static gboolean
take_value (int argc, char **argv, int *i, const char *opt, const char **value, GError **error)
{
  const char *arg = argv[*i];
  size_t n = strlen (opt);
  if (strncmp (arg, opt, n) == 0 && arg[n] == '=')
    {
      *value = arg + n + 1;
      return TRUE;
    }
  if (*i + 1 >= argc)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "%s needs a value", opt);
      return FALSE;
    }
  *value = argv[++*i];
  return TRUE;
}

static gboolean
is_opt (const char *arg, const char *opt)
{
  size_t n = strlen (opt);
  return strncmp (arg, opt, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

gboolean
vmemctl_parse_global (int *argc, char ***argv, VmemctlGlobal *g, GError **error)
{
  int i = 1;
  for (; i < *argc; i++)
    {
      const char *a = (*argv)[i];
      const char *v = NULL;
      if (a[0] != '-' || g_str_equal (a, "-"))
        break;
      if (g_str_equal (a, "--json"))
        g->json = TRUE;
      else if (is_opt (a, "--socket"))
        {
          if (!take_value (*argc, *argv, &i, "--socket", &v, error))
            return FALSE;
          g_free (g->socket);
          g->socket = g_strdup (v);
        }
      else if (is_opt (a, "--timeout"))
        {
          if (!take_value (*argc, *argv, &i, "--timeout", &v, error))
            return FALSE;
          char *end = NULL;
          double s = g_ascii_strtod (v, &end);
          if (end == v || *end != '\0' || s <= 0 || s > 3600)
            {
              g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                           "--timeout: '%s' is not a number of seconds (0 to 3600)", v);
              return FALSE;
            }
          g->timeout_ms = (int) (s * 1000);
        }
      else if (g_str_equal (a, "--help") || g_str_equal (a, "-h"))
        break;
      else if (g_str_equal (a, "--version"))
        break;
      else
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "unknown option %s", a);
          return FALSE;
        }
    }
  *argc -= i - 1;
  *argv += i - 1;
  return TRUE;
}

GPtrArray *
vmemctl_parse_simple (int argc, char **argv, int first, const char *const *flags,
                      GHashTable *seen, GError **error)
{
  g_autoptr(GPtrArray) pos = g_ptr_array_new ();
  for (int i = first; i < argc; i++)
    {
      const char *a = argv[i];
      if (g_str_equal (a, "--"))
        {
          for (i++; i < argc; i++)
            g_ptr_array_add (pos, argv[i]);
          break;
        }
      if (a[0] == '-' && a[1] != '\0')
        {
          if (g_str_equal (a, "--json"))
            {
              g_hash_table_add (seen, (gpointer) "--json");
              continue;
            }
          gboolean known = FALSE;
          for (guint k = 0; flags && flags[k]; k++)
            if (g_str_equal (a, flags[k]))
              {
                g_hash_table_add (seen, (gpointer) flags[k]);
                known = TRUE;
              }
          if (!known)
            {
              g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "unknown option %s", a);
              return NULL;
            }
          continue;
        }
      g_ptr_array_add (pos, (gpointer) a);
    }
  return g_steal_pointer (&pos);
}

json_object *
vmemctl_parse_profile_options (int argc, char **argv, int first, GError **error)
{
  g_autoptr(json_object) o = json_object_new_object ();
  static const struct { const char *opt, *key; } sizes[] = {
    { "--demand", "demand_mib" }, { "--floor", "floor_mib" }, { "--ceiling", "ceiling_mib" },
  };
  static const struct { const char *opt, *key; } numbers[] = {
    { "--margin", "margin_pct" }, { "--quantile", "quantile" }, { "--buffer", "buffer_pct" },
  };

  for (int i = first; i < argc; i++)
    {
      const char *a = argv[i];
      const char *v = NULL;
      gboolean done = FALSE;

      if (g_str_equal (a, "--json"))
        continue;
      for (gsize k = 0; !done && k < G_N_ELEMENTS (sizes); k++)
        if (is_opt (a, sizes[k].opt))
          {
            guint64 mib;
            g_autoptr(GError) local = NULL;
            if (!take_value (argc, argv, &i, sizes[k].opt, &v, error))
              return NULL;
            if (!vmem_size_parse (v, &mib, &local))
              {
                g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "%s: %s", sizes[k].opt,
                             local->message);
                return NULL;
              }
            json_object_object_add (o, sizes[k].key, json_object_new_int64 ((gint64) mib));
            done = TRUE;
          }
      for (gsize k = 0; !done && k < G_N_ELEMENTS (numbers); k++)
        if (is_opt (a, numbers[k].opt))
          {
            if (!take_value (argc, argv, &i, numbers[k].opt, &v, error))
              return NULL;
            g_autofree char *t = g_strdup (v);
            gsize n = strlen (t);
            if (n > 0 && t[n - 1] == '%')
              t[n - 1] = '\0';
            char *end = NULL;
            double d = g_ascii_strtod (t, &end);
            if (end == t || *end != '\0')
              {
                g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                             "%s: '%s' is not a number", numbers[k].opt, v);
                return NULL;
              }
            /* "p95" reads naturally for a quantile; so does 95. */
            if (g_str_equal (numbers[k].key, "quantile") && d > 1.0)
              d /= 100.0;
            json_object_object_add (o, numbers[k].key, json_object_new_double (d));
            done = TRUE;
          }
      if (done)
        continue;
      if (is_opt (a, "--mode") || is_opt (a, "--scale") || is_opt (a, "--match"))
        {
          const char *opt = is_opt (a, "--mode") ? "--mode" : is_opt (a, "--scale") ? "--scale" : "--match";
          if (!take_value (argc, argv, &i, opt, &v, error))
            return NULL;
          json_object_object_add (o, opt + 2, json_object_new_string (v));
        }
      else if (is_opt (a, "--prealloc"))
        {
          if (!take_value (argc, argv, &i, "--prealloc", &v, error))
            return NULL;
          gboolean on = g_str_equal (v, "on") || g_str_equal (v, "yes") || g_str_equal (v, "true");
          if (!on && !g_str_equal (v, "off") && !g_str_equal (v, "no") && !g_str_equal (v, "false"))
            {
              g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                           "--prealloc: '%s' is not on or off", v);
              return NULL;
            }
          json_object_object_add (o, "prealloc", json_object_new_boolean (on));
        }
      else if (is_opt (a, "--priority"))
        {
          guint64 n;
          if (!take_value (argc, argv, &i, "--priority", &v, error))
            return NULL;
          if (!g_ascii_string_to_unsigned (v, 10, 0, 100, &n, NULL))
            {
              g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                           "--priority: '%s' is not a whole number from 0 to 100", v);
              return NULL;
            }
          json_object_object_add (o, "priority", json_object_new_int ((int) n));
        }
      else if (is_opt (a, "--no-match"))
        json_object_object_add (o, "match", NULL);
      else
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                       a[0] == '-' ? "unknown option %s" : "unexpected argument '%s'", a);
          return NULL;
        }
    }
  return g_steal_pointer (&o);
}

json_object *
vmemctl_load_profiles (const char *path, GError **error)
{
  g_autofree char *contents = NULL;
  gsize len = 0;
  g_autoptr(GError) local = NULL;

  if (g_str_equal (path, "-"))
    {
      g_autoptr(GString) s = g_string_new (NULL);
      char buf[65536];
      size_t n;
      while ((n = fread (buf, 1, sizeof buf, stdin)) > 0)
        {
          g_string_append_len (s, buf, (gssize) n);
          if (s->len > 16 * 1024 * 1024)
            break;
        }
      len = s->len;
      contents = g_string_free (g_steal_pointer (&s), FALSE);
    }
  else if (!g_file_get_contents (path, &contents, &len, &local))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "%s", local->message);
      return NULL;
    }
  if (len > 16 * 1024 * 1024)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "%s: larger than 16 MiB", path);
      return NULL;
    }

  g_autoptr(json_tokener) tok = json_tokener_new ();
  g_autoptr(json_object) doc = json_tokener_parse_ex (tok, contents, (int) len);
  if (doc == NULL || json_tokener_get_error (tok) != json_tokener_success)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "%s: not valid JSON: %s", path,
                   json_tokener_error_desc (json_tokener_get_error (tok)));
      return NULL;
    }
  json_object *arr = doc;
  if (json_object_is_type (doc, json_type_object) &&
      !json_object_object_get_ex (doc, "profiles", &arr))
    arr = NULL;
  if (arr == NULL || !json_object_is_type (arr, json_type_array))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s: expected an array of profiles or {\"profiles\": [...]}", path);
      return NULL;
    }
  g_autoptr(GHashTable) names = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  for (size_t i = 0; i < json_object_array_length (arr); i++)
    {
      json_object *item = json_object_array_get_idx (arr, i);
      g_autoptr(VmemProfile) p = vmem_profile_from_json (item, NULL, &local);
      if (p == NULL)
        {
          json_object *jn = NULL;
          const char *name = item && json_object_object_get_ex (item, "name", &jn)
                               ? json_object_get_string (jn) : NULL;
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "%s: profile %zu%s%s%s: %s",
                       path, i + 1, name ? " ('" : "", name ? name : "", name ? "')" : "",
                       local->message);
          return NULL;
        }
      if (!g_hash_table_add (names, g_strdup (p->name)))
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                       "%s: profile %zu: name '%s' appears twice", path, i + 1, p->name);
          return NULL;
        }
    }
  return json_object_get (arr);
}
