/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Installs the log writer: the journal when stderr is connected to it,
 * otherwise one timestamped line per message on stderr.  Messages below
 * @level ("error", "warning", "message", "info", "debug") are dropped. */
void vmem_log_setup (const char *level);
void vmem_log_set_level (const char *level);

/* Whether @level is one of the names vmem_log_setup() takes. */
gboolean vmem_log_level_valid (const char *level);

/* The journal MESSAGE_ID (32 hex digits) of a decision's @event, as in the
 * message catalog vmemd.catalog; NULL for an event that has none. */
const char *vmem_log_message_id (const char *event);

/* One structured line per decision: MESSAGE plus VMEMD_DOMAIN,
 * VMEMD_WORKLOAD, VMEMD_EVENT, VMEMD_DECISION (the same as VMEMD_EVENT) and
 * the event's MESSAGE_ID fields in the journal. */
void vmem_log_decision (const char *domain,
                        const char *workload,
                        const char *event,
                        const char *fmt,
                        ...) G_GNUC_PRINTF (4, 5);

/* The same, at warning level: a decision an administrator should see
 * (admitted over capacity, admitted without a check). */
void vmem_log_decision_warning (const char *domain,
                                const char *workload,
                                const char *event,
                                const char *fmt,
                                ...) G_GNUC_PRINTF (4, 5);

/* A warning written at most once per @interval_s for each @key (say, the
 * failing operation and the domain); the next one written says how many
 * were dropped meanwhile.  Main thread only. */
void vmem_log_warning_limited (const char *key,
                               guint       interval_s,
                               const char *fmt,
                               ...) G_GNUC_PRINTF (3, 4);

G_END_DECLS
