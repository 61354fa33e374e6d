/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-units.h"
#include "vmem-error.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

gboolean
vmem_size_parse (const char *text, guint64 *out_mib, GError **error)
{
  g_return_val_if_fail (out_mib != NULL, FALSE);

  if (text == NULL || *text == '\0')
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "empty size");
      return FALSE;
    }

  const char *p = text;
  while (g_ascii_isspace (*p))
    p++;
  if (*p == '-' || *p == '+')
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "invalid size '%s': must be a positive number with an optional unit (K, M, G, T)",
                   text);
      return FALSE;
    }

  /* Decimal digits and one point only: strtod would also take hex, exponents,
   * "inf" and "nan". */
  gsize numlen = strspn (p, "0123456789.");
  char *end = NULL;
  errno = 0;
  double value = g_ascii_strtod (p, &end);
  if (end == p || end != p + numlen || errno != 0 || !isfinite (value) || value < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "invalid size '%s': must be a number with an optional unit (K, M, G, T)",
                   text);
      return FALSE;
    }

  g_autofree char *unit = g_ascii_strdown (end, -1);
  g_strstrip (unit);
  double kib_per_unit;
  if (*unit == '\0' || g_str_equal (unit, "m") || g_str_equal (unit, "mi") ||
      g_str_equal (unit, "mib") || g_str_equal (unit, "mb"))
    kib_per_unit = 1024.0;
  else if (g_str_equal (unit, "k") || g_str_equal (unit, "ki") ||
           g_str_equal (unit, "kib") || g_str_equal (unit, "kb"))
    kib_per_unit = 1.0;
  else if (g_str_equal (unit, "g") || g_str_equal (unit, "gi") ||
           g_str_equal (unit, "gib") || g_str_equal (unit, "gb"))
    kib_per_unit = 1024.0 * 1024.0;
  else if (g_str_equal (unit, "t") || g_str_equal (unit, "ti") ||
           g_str_equal (unit, "tib") || g_str_equal (unit, "tb"))
    kib_per_unit = 1024.0 * 1024.0 * 1024.0;
  else
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "invalid size '%s': unknown unit '%s' (use K, M, G or T)", text, unit);
      return FALSE;
    }

  double kib = value * kib_per_unit;
  if (kib > (double) VMEM_SIZE_MAX_MIB * 1024.0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "invalid size '%s': larger than 1 PiB", text);
      return FALSE;
    }
  double mib = kib / 1024.0;
  if (fabs (mib - round (mib)) > 1e-9)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "invalid size '%s': not a whole number of MiB", text);
      return FALSE;
    }

  *out_mib = (guint64) llround (mib);
  return TRUE;
}

char *
vmem_size_format (guint64 mib)
{
  if (mib != 0 && mib % (1024 * 1024) == 0)
    return g_strdup_printf ("%" G_GUINT64_FORMAT "T", mib / (1024 * 1024));
  if (mib != 0 && mib % 1024 == 0)
    return g_strdup_printf ("%" G_GUINT64_FORMAT "G", mib / 1024);
  return g_strdup_printf ("%" G_GUINT64_FORMAT "M", mib);
}
