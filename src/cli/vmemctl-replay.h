/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* `vmemctl replay TRACE.csv[.gz] [--summary] [--json] [--half-life H]
 * [--quantile Q] [--margin PCT] [--estimator vmemd|vpa|static]`.
 * @argv[0] is "replay".  Needs no daemon.  Returns the exit code: 0, 1 when
 * the trace is bad (the message names FILE:LINE), 2 for a usage error. */
int vmemctl_replay_main (int argc, char **argv);

G_END_DECLS
