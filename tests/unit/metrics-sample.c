/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Prints the metrics of a realistic snapshot (metrics-sample.h), for real
 * parsers to read (test_metrics_text.py):
 *   metrics-sample openmetrics|prometheus|json */
#include "metrics-sample.h"

#include <stdio.h>

int
main (int argc, char **argv)
{
  VmemMetricsFormat format = VMEM_METRICS_OPENMETRICS;
  gboolean json = argc == 2 && g_str_equal (argv[1], "json");

  if (argc != 2 || (!json && !vmem_metrics_format_from_string (argv[1], &format)))
    {
      fprintf (stderr, "usage: metrics-sample openmetrics|prometheus|json\n");
      return 2;
    }
  g_autoptr(VmemMetricsSnapshot) s = metrics_sample_snapshot ();
  if (json)
    {
      json_object *families = vmem_metrics_to_json (s);
      printf ("%s\n", json_object_to_json_string_ext (families, JSON_C_TO_STRING_PRETTY));
      json_object_put (families);
    }
  else
    {
      g_autofree char *text = vmem_metrics_format (s, format);
      fputs (text, stdout);
    }
  return fflush (stdout) == 0 ? 0 : 1;
}
