/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-log.h"

#include <stdio.h>
#include <unistd.h>

static GLogLevelFlags max_level = G_LOG_LEVEL_INFO;
static gboolean to_journal;

static GLogLevelFlags
level_from_string (const char *level)
{
  if (g_strcmp0 (level, "error") == 0)
    return G_LOG_LEVEL_CRITICAL;
  if (g_strcmp0 (level, "warning") == 0)
    return G_LOG_LEVEL_WARNING;
  if (g_strcmp0 (level, "message") == 0)
    return G_LOG_LEVEL_MESSAGE;
  if (g_strcmp0 (level, "debug") == 0)
    return G_LOG_LEVEL_DEBUG;
  return G_LOG_LEVEL_INFO;
}

static const char *
level_name (GLogLevelFlags level)
{
  if (level & G_LOG_LEVEL_ERROR)
    return "error";
  if (level & G_LOG_LEVEL_CRITICAL)
    return "critical";
  if (level & G_LOG_LEVEL_WARNING)
    return "warning";
  if (level & G_LOG_LEVEL_MESSAGE)
    return "notice";
  if (level & G_LOG_LEVEL_INFO)
    return "info";
  return "debug";
}

static GLogWriterOutput
writer (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer user_data)
{
  GLogLevelFlags lvl = level & G_LOG_LEVEL_MASK;

  /* GLib's levels are bits that grow as severity falls. */
  if (lvl > max_level)
    return G_LOG_WRITER_HANDLED;
  if (to_journal && (lvl != G_LOG_LEVEL_DEBUG || max_level == G_LOG_LEVEL_DEBUG) &&
      g_log_writer_journald (level, fields, n_fields, user_data) == G_LOG_WRITER_HANDLED)
    return G_LOG_WRITER_HANDLED;

  const char *message = NULL, *domain = NULL;
  for (gsize i = 0; i < n_fields; i++)
    if (g_str_equal (fields[i].key, "MESSAGE"))
      message = fields[i].value;
    else if (g_str_equal (fields[i].key, "GLIB_DOMAIN"))
      domain = fields[i].value;
  /* Libraries' own debug chatter (libvirt-glib's event loop) is not ours. */
  if (lvl == G_LOG_LEVEL_DEBUG && g_strcmp0 (domain, G_LOG_DOMAIN) != 0)
    return G_LOG_WRITER_HANDLED;
  g_autoptr(GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *ts = g_date_time_format (now, "%Y-%m-%d %H:%M:%S.%f");
  /* %f gives microseconds; milliseconds are enough. */
  if (ts != NULL && strlen (ts) > 23)
    ts[23] = '\0';
  g_autofree char *line = g_strchomp (g_strdup (message ? message : ""));
  fprintf (stderr, "%s vmemd[%d] %s: %s\n", ts ? ts : "", (int) getpid (), level_name (lvl), line);
  fflush (stderr);
  return G_LOG_WRITER_HANDLED;
}

void
vmem_log_set_level (const char *level)
{
  max_level = level_from_string (level);
}

void
vmem_log_setup (const char *level)
{
  vmem_log_set_level (level);
  to_journal = g_log_writer_is_journald (fileno (stderr));
  g_log_set_writer_func (writer, NULL, NULL);
}

static void
log_decision (GLogLevelFlags level, const char *priority, const char *domain,
              const char *workload, const char *event, const char *msg)
{
  const GLogField fields[] = {
    { "MESSAGE", msg, -1 },
    { "PRIORITY", priority, -1 },
    { "GLIB_DOMAIN", G_LOG_DOMAIN, -1 },
    { "VMEMD_DOMAIN", domain ? domain : "", -1 },
    { "VMEMD_WORKLOAD", workload ? workload : "", -1 },
    { "VMEMD_EVENT", event ? event : "", -1 },
  };
  g_log_structured_array (level, fields, G_N_ELEMENTS (fields));
}

void
vmem_log_decision (const char *domain, const char *workload, const char *event, const char *fmt,
                   ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  log_decision (G_LOG_LEVEL_INFO, "6", domain, workload, event, msg);
}

void
vmem_log_decision_warning (const char *domain, const char *workload, const char *event,
                           const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  log_decision (G_LOG_LEVEL_WARNING, "4", domain, workload, event, msg);
}

/* key -> LimitState; main thread only. */
typedef struct {
  gint64 last;       /* monotonic µs of the last line written */
  guint  suppressed; /* lines dropped since */
} LimitState;

static GHashTable *limits;

void
vmem_log_warning_limited (const char *key, guint interval_s, const char *fmt, ...)
{
  gint64 now = g_get_monotonic_time ();
  if (limits == NULL)
    limits = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  LimitState *st = g_hash_table_lookup (limits, key);
  if (st == NULL)
    {
      st = g_new0 (LimitState, 1);
      g_hash_table_insert (limits, g_strdup (key), st);
    }
  else if (now - st->last < (gint64) interval_s * G_USEC_PER_SEC)
    {
      st->suppressed++;
      return;
    }
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  if (st->suppressed > 0)
    g_warning ("%s (%u more like it in the last %u s)", msg, st->suppressed,
               (guint) ((now - st->last) / G_USEC_PER_SEC));
  else
    g_warning ("%s", msg);
  st->last = now;
  st->suppressed = 0;
}
