/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-profile.h"
#include "vmem-error.h"
#include "vmem-units.h"

#include <fnmatch.h>
#include <math.h>
#include <string.h>

VmemProfile *
vmem_profile_new (const char *name)
{
  VmemProfile *p = g_new0 (VmemProfile, 1);
  p->name = g_strdup (name);
  p->margin_pct = 15.0;
  p->risk_pct = 5.0;
  p->quantile = 0.90;
  p->buffer_pct = 20.0;
  p->mode = VMEM_MODE_BALLOON;
  p->prealloc = TRUE;
  p->scale = VMEM_SCALE_ABSOLUTE;
  p->priority = 50;
  return p;
}

VmemProfile *
vmem_profile_copy (const VmemProfile *profile)
{
  VmemProfile *p = g_memdup2 (profile, sizeof *profile);
  p->name = g_strdup (profile->name);
  p->match = g_strdup (profile->match);
  return p;
}

void
vmem_profile_free (VmemProfile *profile)
{
  if (profile == NULL)
    return;
  g_free (profile->name);
  g_free (profile->match);
  g_free (profile);
}

gboolean
vmem_profile_name_valid (const char *name, GError **error)
{
  if (name == NULL || *name == '\0')
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "name: must not be empty");
      return FALSE;
    }
  if (strlen (name) > 64)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "name: '%s' is longer than 64 characters", name);
      return FALSE;
    }
  if (name[0] == '.' || name[0] == '-')
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "name: '%s' must not start with '.' or '-'", name);
      return FALSE;
    }
  for (const char *c = name; *c; c++)
    if (!g_ascii_isalnum (*c) && *c != '_' && *c != '.' && *c != '-')
      {
        g_autofree char *esc = g_strescape (name, NULL);
        g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                     "name: '%s' may only contain letters, digits, '_', '.' and '-'", esc);
        return FALSE;
      }
  return TRUE;
}

static gboolean
check_range (const char *field, double value, double lo, double hi, GError **error)
{
  if (!isfinite (value) || value < lo || value > hi)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s: %g is out of range (%g to %g)", field, value, lo, hi);
      return FALSE;
    }
  return TRUE;
}

gboolean
vmem_profile_validate (const VmemProfile *p, GError **error)
{
  g_return_val_if_fail (p != NULL, FALSE);

  if (!vmem_profile_name_valid (p->name, error))
    return FALSE;
  if (p->demand_mib > VMEM_SIZE_MAX_MIB || p->floor_mib > VMEM_SIZE_MAX_MIB ||
      p->ceiling_mib > VMEM_SIZE_MAX_MIB)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s: larger than 1 PiB",
                   p->demand_mib > VMEM_SIZE_MAX_MIB ? "demand" :
                   p->floor_mib > VMEM_SIZE_MAX_MIB ? "floor" : "ceiling");
      return FALSE;
    }
  if (p->floor_mib != 0 && p->ceiling_mib != 0 && p->floor_mib > p->ceiling_mib)
    {
      g_autofree char *f = vmem_size_format (p->floor_mib);
      g_autofree char *c = vmem_size_format (p->ceiling_mib);
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "floor: %s is above the ceiling %s", f, c);
      return FALSE;
    }
  if (p->demand_mib != 0 && p->ceiling_mib != 0 && p->demand_mib > p->ceiling_mib)
    {
      g_autofree char *d = vmem_size_format (p->demand_mib);
      g_autofree char *c = vmem_size_format (p->ceiling_mib);
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "demand: %s is above the ceiling %s", d, c);
      return FALSE;
    }
  if (p->demand_mib != 0 && p->floor_mib != 0 && p->demand_mib < p->floor_mib)
    {
      g_autofree char *d = vmem_size_format (p->demand_mib);
      g_autofree char *f = vmem_size_format (p->floor_mib);
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "demand: %s is below the floor %s", d, f);
      return FALSE;
    }
  if (!check_range ("margin", p->margin_pct, 0, 400, error) ||
      !check_range ("quantile", p->quantile, 0.5, 1.0, error) ||
      !check_range ("risk", p->risk_pct, 0.1, 50, error) ||
      !check_range ("buffer", p->buffer_pct, 0, 400, error))
    return FALSE;
  if (p->priority < 0 || p->priority > 100)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "priority: %d is out of range (0 to 100)", p->priority);
      return FALSE;
    }
  if ((guint) p->mode > VMEM_MODE_OBSERVE)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "mode: unknown value");
      return FALSE;
    }
  if ((guint) p->scale > VMEM_SCALE_PER_VCPU)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "scale: unknown value");
      return FALSE;
    }
  if (p->match != NULL)
    {
      if (*p->match == '\0' || strlen (p->match) > 256)
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                       "match: pattern must be 1 to 256 characters");
          return FALSE;
        }
      for (const char *c = p->match; *c; c++)
        if (g_ascii_iscntrl (*c) || *c == '/')
          {
            g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                         "match: pattern must not contain '/' or control characters");
            return FALSE;
          }
    }
  return TRUE;
}

static const char *const mode_names[] = { "balloon", "virtio-mem", "observe" };
static const char *const scale_names[] = { "absolute", "per-vcpu" };

const char *
vmem_mode_to_string (VmemMode mode)
{
  return (guint) mode < G_N_ELEMENTS (mode_names) ? mode_names[mode] : "unknown";
}

gboolean
vmem_mode_from_string (const char *s, VmemMode *out, GError **error)
{
  for (guint i = 0; i < G_N_ELEMENTS (mode_names); i++)
    if (s != NULL && g_str_equal (s, mode_names[i]))
      {
        *out = (VmemMode) i;
        return TRUE;
      }
  g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
               "mode: unknown value '%s' (use balloon, virtio-mem or observe)", s ? s : "");
  return FALSE;
}

const char *
vmem_scale_to_string (VmemScale scale)
{
  return (guint) scale < G_N_ELEMENTS (scale_names) ? scale_names[scale] : "unknown";
}

gboolean
vmem_scale_from_string (const char *s, VmemScale *out, GError **error)
{
  for (guint i = 0; i < G_N_ELEMENTS (scale_names); i++)
    if (s != NULL && g_str_equal (s, scale_names[i]))
      {
        *out = (VmemScale) i;
        return TRUE;
      }
  g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
               "scale: unknown value '%s' (use absolute or per-vcpu)", s ? s : "");
  return FALSE;
}

/* "0.95", not "0.94999999999999996". */
static json_object *
new_double (double v)
{
  g_autofree char *s = g_strdup_printf ("%.6g", v);
  if (strpbrk (s, ".e") == NULL)
    {
      g_autofree char *t = s;
      s = g_strdup_printf ("%s.0", t);
    }
  return json_object_new_double_s (v, s);
}

json_object *
vmem_profile_to_json (const VmemProfile *p)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "name", json_object_new_string (p->name));
  json_object_object_add (o, "demand_mib", json_object_new_int64 ((gint64) p->demand_mib));
  json_object_object_add (o, "floor_mib", json_object_new_int64 ((gint64) p->floor_mib));
  json_object_object_add (o, "ceiling_mib", json_object_new_int64 ((gint64) p->ceiling_mib));
  json_object_object_add (o, "margin_pct", new_double (p->margin_pct));
  json_object_object_add (o, "quantile", new_double (p->quantile));
  json_object_object_add (o, "risk_pct", new_double (p->risk_pct));
  json_object_object_add (o, "buffer_pct", new_double (p->buffer_pct));
  json_object_object_add (o, "mode", json_object_new_string (vmem_mode_to_string (p->mode)));
  json_object_object_add (o, "prealloc", json_object_new_boolean (p->prealloc));
  json_object_object_add (o, "scale", json_object_new_string (vmem_scale_to_string (p->scale)));
  json_object_object_add (o, "priority", json_object_new_int (p->priority));
  if (p->match != NULL)
    json_object_object_add (o, "match", json_object_new_string (p->match));
  if (p->created != 0)
    json_object_object_add (o, "created", json_object_new_int64 (p->created));
  if (p->updated != 0)
    json_object_object_add (o, "updated", json_object_new_int64 (p->updated));
  return o;
}

static gboolean
json_get_size (json_object *v, const char *key, guint64 *out, GError **error)
{
  /* Sizes are MiB integers on the wire; strings with units are accepted too
   * so that hand-written import files can say "2G". */
  if (json_object_is_type (v, json_type_int))
    {
      gint64 n = json_object_get_int64 (v);
      if (n < 0)
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                       "%s: must not be negative", key);
          return FALSE;
        }
      *out = (guint64) n;
      return TRUE;
    }
  if (json_object_is_type (v, json_type_string))
    {
      g_autoptr(GError) local = NULL;
      if (!vmem_size_parse (json_object_get_string (v), out, &local))
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "%s: %s", key,
                       local->message);
          return FALSE;
        }
      return TRUE;
    }
  if (json_object_is_type (v, json_type_null))
    {
      *out = 0;
      return TRUE;
    }
  g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
               "%s: must be a size in MiB", key);
  return FALSE;
}

static gboolean
json_get_number (json_object *v, const char *key, double *out, GError **error)
{
  if (!json_object_is_type (v, json_type_int) && !json_object_is_type (v, json_type_double))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "%s: must be a number", key);
      return FALSE;
    }
  *out = json_object_get_double (v);
  return TRUE;
}

VmemProfile *
vmem_profile_from_json (json_object *obj, const VmemProfile *base, GError **error)
{
  if (obj == NULL || !json_object_is_type (obj, json_type_object))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "profile: must be a JSON object");
      return NULL;
    }

  json_object *jname = NULL;
  if (!json_object_object_get_ex (obj, "name", &jname) && base == NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "name: missing");
      return NULL;
    }
  if (jname != NULL && !json_object_is_type (jname, json_type_string))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "name: must be a string");
      return NULL;
    }

  g_autoptr(VmemProfile) p = base ? vmem_profile_copy (base)
                                  : vmem_profile_new (json_object_get_string (jname));
  if (jname != NULL && base != NULL && !g_str_equal (json_object_get_string (jname), base->name))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "name: cannot rename profile '%s' to '%s'", base->name,
                   json_object_get_string (jname));
      return NULL;
    }

  json_object_object_foreach (obj, key, v)
    {
      if (g_str_equal (key, "name") || g_str_equal (key, "created") || g_str_equal (key, "updated"))
        continue;
      if (g_str_equal (key, "demand_mib"))
        {
          if (!json_get_size (v, key, &p->demand_mib, error))
            return NULL;
        }
      else if (g_str_equal (key, "floor_mib"))
        {
          if (!json_get_size (v, key, &p->floor_mib, error))
            return NULL;
        }
      else if (g_str_equal (key, "ceiling_mib"))
        {
          if (!json_get_size (v, key, &p->ceiling_mib, error))
            return NULL;
        }
      else if (g_str_equal (key, "margin_pct"))
        {
          if (!json_get_number (v, key, &p->margin_pct, error))
            return NULL;
        }
      else if (g_str_equal (key, "risk_pct"))
        {
          if (!json_get_number (v, key, &p->risk_pct, error))
            return NULL;
        }
      else if (g_str_equal (key, "quantile"))
        {
          if (!json_get_number (v, key, &p->quantile, error))
            return NULL;
        }
      else if (g_str_equal (key, "buffer_pct"))
        {
          if (!json_get_number (v, key, &p->buffer_pct, error))
            return NULL;
        }
      else if (g_str_equal (key, "priority"))
        {
          if (!json_object_is_type (v, json_type_int))
            {
              g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                           "priority: must be an integer");
              return NULL;
            }
          gint64 n = json_object_get_int64 (v);
          if (n < 0 || n > 100)
            {
              g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                           "priority: %" G_GINT64_FORMAT " is out of range (0 to 100)", n);
              return NULL;
            }
          p->priority = (int) n;
        }
      else if (g_str_equal (key, "mode"))
        {
          if (!json_object_is_type (v, json_type_string))
            {
              g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "mode: must be a string");
              return NULL;
            }
          if (!vmem_mode_from_string (json_object_get_string (v), &p->mode, error))
            return NULL;
        }
      else if (g_str_equal (key, "scale"))
        {
          if (!json_object_is_type (v, json_type_string))
            {
              g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "scale: must be a string");
              return NULL;
            }
          if (!vmem_scale_from_string (json_object_get_string (v), &p->scale, error))
            return NULL;
        }
      else if (g_str_equal (key, "prealloc"))
        {
          if (!json_object_is_type (v, json_type_boolean))
            {
              g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                           "prealloc: must be true or false");
              return NULL;
            }
          p->prealloc = json_object_get_boolean (v);
        }
      else if (g_str_equal (key, "match"))
        {
          g_clear_pointer (&p->match, g_free);
          if (json_object_is_type (v, json_type_null))
            continue;
          if (!json_object_is_type (v, json_type_string))
            {
              g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "match: must be a string");
              return NULL;
            }
          p->match = g_strdup (json_object_get_string (v));
          if (*p->match == '\0')
            g_clear_pointer (&p->match, g_free);
        }
      else
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "%s: unknown field", key);
          return NULL;
        }
    }

  if (!vmem_profile_validate (p, error))
    return NULL;
  return g_steal_pointer (&p);
}

gboolean
vmem_profile_matches (const VmemProfile *profile, const char *domain_name)
{
  if (profile->match == NULL || domain_name == NULL)
    return FALSE;
  return fnmatch (profile->match, domain_name, 0) == 0;
}

const VmemProfile *
vmem_profile_resolve (GHashTable *profiles, const char *tag, const char *domain_name)
{
  if (tag != NULL)
    return g_hash_table_lookup (profiles, tag);
  if (domain_name == NULL)
    return NULL;

  const VmemProfile *best = NULL;
  GHashTableIter it;
  const VmemProfile *p;
  g_hash_table_iter_init (&it, profiles);
  while (g_hash_table_iter_next (&it, NULL, (gpointer *) &p))
    if (vmem_profile_matches (p, domain_name) && (best == NULL || strcmp (p->name, best->name) < 0))
      best = p;
  return best;
}
