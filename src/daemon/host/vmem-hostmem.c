/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-hostmem.h"
#include "vmem-error.h"

#include <stdlib.h>
#include <string.h>

/* The value of "KEY:   N kB" in @text, in MiB. */
static gboolean
meminfo_field (const char *text, const char *key, guint64 *mib)
{
  gsize klen = strlen (key);
  for (const char *line = text; line != NULL && *line != '\0';)
    {
      if (strncmp (line, key, klen) == 0 && line[klen] == ':')
        {
          const char *p = line + klen + 1;
          while (*p == ' ' || *p == '\t')
            p++;
          char *end = NULL;
          guint64 kib = g_ascii_strtoull (p, &end, 10);
          if (end == p)
            return FALSE;
          *mib = kib / 1024;
          return TRUE;
        }
      line = strchr (line, '\n');
      if (line != NULL)
        line++;
    }
  return FALSE;
}

gboolean
vmem_hostmem_parse_meminfo (const char *text, VmemHostMem *out)
{
  return text != NULL && meminfo_field (text, "MemTotal", &out->total_mib) &&
         meminfo_field (text, "MemAvailable", &out->available_mib);
}

/* "some avg10=0.00 avg60=0.00 avg300=0.00 total=0" */
static gboolean
psi_avg10 (const char *text, const char *kind, double *out)
{
  gsize klen = strlen (kind);
  for (const char *line = text; line != NULL && *line != '\0';)
    {
      if (strncmp (line, kind, klen) == 0 && line[klen] == ' ')
        {
          const char *p = strstr (line, "avg10=");
          const char *eol = strchr (line, '\n');
          if (p == NULL || (eol != NULL && p > eol))
            return FALSE;
          char *end = NULL;
          double v = g_ascii_strtod (p + 6, &end);
          if (end == p + 6 || !(v >= 0 && v <= 100))
            return FALSE;
          *out = v;
          return TRUE;
        }
      line = strchr (line, '\n');
      if (line != NULL)
        line++;
    }
  return FALSE;
}

gboolean
vmem_hostmem_parse_psi (const char *text, VmemHostMem *out)
{
  if (text == NULL || !psi_avg10 (text, "some", &out->psi_some_avg10))
    return FALSE;
  if (!psi_avg10 (text, "full", &out->psi_full_avg10))
    out->psi_full_avg10 = 0;
  out->has_psi = TRUE;
  return TRUE;
}

gboolean
vmem_hostmem_read (const char *meminfo_path, const char *psi_path, VmemHostMem *out,
                   GError **error)
{
  g_autofree char *meminfo = NULL;
  g_autofree char *psi = NULL;
  const char *mpath = meminfo_path ? meminfo_path : "/proc/meminfo";

  *out = (VmemHostMem){ 0 };
  if (!g_file_get_contents (mpath, &meminfo, NULL, error))
    return FALSE;
  if (!vmem_hostmem_parse_meminfo (meminfo, out))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "%s: no MemTotal or MemAvailable", mpath);
      return FALSE;
    }
  if (g_file_get_contents (psi_path ? psi_path : "/proc/pressure/memory", &psi, NULL, NULL))
    vmem_hostmem_parse_psi (psi, out);
  return TRUE;
}
