/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Replays a trace file: reads it with the trace reader and feeds every row
 * to a VmemReplay.  The one file loop of `vmemctl replay` and the
 * benchmarks. */

#include <glib.h>

#include "vmem-replay.h"

G_BEGIN_DECLS

/* @fraction of the file read, 0..1. */
typedef void (*VmemctlReplayProgressFunc) (double fraction, gpointer user_data);

/* Replays @path (CSV, plain or gzip) with vmemd's estimator set by
 * @config, every start a first start when @first_start; @on_case and
 * @on_progress (either may be NULL) get @user_data.
 * Bad lines in the trace are errors naming FILE:LINE. */
gboolean vmemctl_replay_file (const char                *path,
                              const VmemEstimatorConfig *config,
                              gboolean                   first_start,
                              VmemReplayCaseFunc         on_case,
                              VmemctlReplayProgressFunc  on_progress,
                              gpointer                   user_data,
                              GError                   **error);

G_END_DECLS
