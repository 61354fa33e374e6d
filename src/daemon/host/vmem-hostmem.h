/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The host's memory as the kernel reports it: /proc/meminfo and, where the
 * kernel has it, pressure stall information (/proc/pressure/memory).  The
 * parsers are pure; vmem_hostmem_read reads the files (fast, never
 * blocking: procfs). */

#include <glib.h>

G_BEGIN_DECLS

typedef struct {
  guint64  total_mib;      /* MemTotal */
  guint64  available_mib;  /* MemAvailable */
  gboolean has_psi;
  double   psi_some_avg10; /* % of the last 10 s some task stalled on memory */
  double   psi_full_avg10; /* % of the last 10 s all tasks stalled */
} VmemHostMem;

/* FALSE when MemTotal or MemAvailable is missing or unreadable. */
gboolean vmem_hostmem_parse_meminfo (const char *text, VmemHostMem *out);
/* FALSE when the "some" line is missing; "full" is optional. */
gboolean vmem_hostmem_parse_psi (const char *text, VmemHostMem *out);

/* Reads @meminfo_path (NULL: /proc/meminfo) and @psi_path (NULL:
 * /proc/pressure/memory; a missing or unreadable file leaves has_psi
 * FALSE). */
gboolean vmem_hostmem_read (const char *meminfo_path, const char *psi_path, VmemHostMem *out,
                            GError **error);

G_END_DECLS
