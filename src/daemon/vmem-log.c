/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-log.h"

#include <stdio.h>
#include <unistd.h>

static GLogLevelFlags max_level = G_LOG_LEVEL_INFO;
static gboolean to_journal;

static const char *const level_names[] = { "error", "warning", "message", "info", "debug", NULL };

gboolean
vmem_log_level_valid (const char *level)
{
  return level != NULL && g_strv_contains (level_names, level);
}

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

/* One MESSAGE_ID per decision, so that the journal's message catalog
 * (data/vmemd.catalog, installed in /usr/lib/systemd/catalog) explains it
 * (journalctl -x).  An ID never changes once shipped; a new event gets a new
 * one here and an entry in the catalog: tools/check-docs compares the two. */
static const struct {
  const char *event;
  const char *message_id;
} message_ids[] = {
  { "admitted", "5d65703bd54b45b2837df3ad48cc198a" },
  { "admitted-over", "b2256c135426483897c5d98b76dd20cd" },
  { "admitted-not-ready", "694240edcee44441a646f9d69745429f" },
  { "admitted-unchecked", "a0f719e25bd5432aa74416054fc6e340" },
  { "refused", "486280cfa7f34787b856c0627743c36a" },
  { "refused-not-ready", "f1a32be1578849c0ba50a27df83d8415" },
  { "staged", "9f7ad0d76f16439bac03861a529983ef" },
  { "observed", "af38b1643d5947788c411318329d1e72" },
  { "not-staged", "346c0624e28445949550c11f9054e05c" },
  { "plan-stale", "f54d188ea32949eb86db48b0453a9042" },
  { "balloon-target", "707f72a90f4d4f51a8906fc17e3967aa" },
  { "reservation-expired", "1b086a1b6cd94a97a6fc5150c4120928" },
  { "assigned", "9d635da0ba0f4e87a9d02216779bae23" },
  { "unassigned", "a1289cbee29546daac6c91e9824a63ac" },
  { "profile-added", "59b21f5cf77c4d1e922ca83ca697f19a" },
  { "profile-changed", "ff1ecc06df014541b882b2042fbfe78a" },
  { "profile-removed", "6f2240333a2e44b0843890ee1c7a8a6e" },
  { "profiles-imported", "a335b84d293f40baa11be1c01c5adce8" },
  { "migrate", "d4264f9425644afba157538a2a067158" },
  { "restore", "c5c414a2ac3d4b509312aa6bd59f4092" },
  { "admitted-not-checked", "4320a87efed94e1b866f798c32919d17" },
  { "refused-not-checked", "3bf898a217904917b27ded82b08a295f" },
  { "reservation-dropped", "a26f9857d05143d3afa5c9d3f6766dcf" },
  { "grow", "5fd31fa9fb4f42feacea93cf9276f5b9" },
  { "shrink", "b7e7f74635f8446d8cd73afc0b33eabb" },
  { "stuck", "597de45dfdc84ce182c8921469c7e33d" },
  { "no-driver", "7c12d59650e8431dad1e801515e01b18" },
  { "virtio-mem-requested", "c6ffbb87a34f4e74b0e23f376b2622a9" },
};

const char *
vmem_log_message_id (const char *event)
{
  for (gsize i = 0; event != NULL && i < G_N_ELEMENTS (message_ids); i++)
    if (g_str_equal (message_ids[i].event, event))
      return message_ids[i].message_id;
  return NULL;
}

static void
log_decision (GLogLevelFlags level, const char *priority, const char *domain,
              const char *workload, const char *event, const char *msg)
{
  const char *id = vmem_log_message_id (event);
  /* MESSAGE_ID last, so that an event without one leaves it out. */
  const GLogField fields[] = {
    { "MESSAGE", msg, -1 },
    { "PRIORITY", priority, -1 },
    { "GLIB_DOMAIN", G_LOG_DOMAIN, -1 },
    { "VMEMD_DOMAIN", domain ? domain : "", -1 },
    { "VMEMD_WORKLOAD", workload ? workload : "", -1 },
    { "VMEMD_EVENT", event ? event : "", -1 },
    { "VMEMD_DECISION", event ? event : "", -1 },
    { "MESSAGE_ID", id, -1 },
  };
  g_log_structured_array (level, fields, G_N_ELEMENTS (fields) - (id == NULL ? 1 : 0));
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
