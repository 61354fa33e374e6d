/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The replay trace reader on a file of arbitrary bytes, plain or gzip:
 * the header, then every line until the end or the first bad one. */
#include "fuzz-common.h"
#include "vmem-trace.h"

#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_silence_logs ();
  g_autofree char *path = fuzz_write_file ("trace.csv", data, size);
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemTraceReader) reader = vmem_trace_reader_open (path, &error);
  if (reader == NULL)
    {
      g_assert (error != NULL);
      return 0;
    }

  VmemTraceRow row;
  gint64 last = G_MININT64;
  while (vmem_trace_reader_next (reader, &row, &error))
    {
      /* What the reader promises about a row it accepts. */
      g_assert (row.t >= last);
      last = row.t;
      g_assert (*row.domain != '\0' && *row.workload != '\0');
      g_assert (row.vcpus >= 1 && row.ceiling_kib >= 1);
      g_assert (strchr (row.domain, ',') == NULL && strchr (row.workload, ',') == NULL);
      double progress = vmem_trace_reader_progress (reader);
      g_assert (progress >= 0.0 && progress <= 1.0);
    }
  if (error != NULL)
    g_assert (g_str_has_prefix (error->message, path));
  return 0;
}
