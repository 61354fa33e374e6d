/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmemctl-replay-file.h"
#include "vmem-trace.h"

gboolean
vmemctl_replay_file (const char *path, const VmemEstimatorConfig *config,
                     gboolean first_start, VmemReplayCaseFunc on_case,
                     VmemctlReplayProgressFunc on_progress,
                     gpointer user_data, GError **error)
{
  g_return_val_if_fail (path != NULL && config != NULL, FALSE);

  g_autoptr(VmemReplay) replay = vmem_replay_new (config, first_start, on_case, user_data, error);
  if (replay == NULL)
    return FALSE;
  g_autoptr(VmemTraceReader) reader = vmem_trace_reader_open (path, error);
  if (reader == NULL)
    return FALSE;

  VmemTraceRow row;
  guint64 n = 0;
  for (;;)
    {
      g_autoptr(GError) local = NULL;
      if (!vmem_trace_reader_next (reader, &row, &local))
        {
          if (local != NULL)
            {
              g_propagate_error (error, g_steal_pointer (&local));
              return FALSE;
            }
          break;
        }
      if (!vmem_replay_feed (replay, &row, vmem_trace_reader_path (reader), error))
        return FALSE;
      if (on_progress != NULL && (++n & 0x3fff) == 0)
        on_progress (vmem_trace_reader_progress (reader), user_data);
    }
  if (!vmem_replay_finish (replay, error))
    return FALSE;
  if (on_progress != NULL)
    on_progress (1.0, user_data);
  return TRUE;
}
