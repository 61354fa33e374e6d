/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-config.h"
#include "vmem-error.h"
#include "vmem-units.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

gboolean
vmem_host_id_valid (const char *id)
{
  gsize n = id ? strlen (id) : 0;
  if (n == 0 || n > VMEM_HOST_ID_MAX)
    return FALSE;
  for (gsize i = 0; i < n; i++)
    if (!g_ascii_isalnum (id[i]) && strchr ("._:-", id[i]) == NULL)
      return FALSE;
  return TRUE;
}

/* The machine's systemd id (machine-id(5)), stable across reboots and
 * renames; a machine without one is known by its name. */
static char *
default_host_id (const char *host_name)
{
  const char *path = g_getenv ("VMEM_MACHINE_ID_FILE");
  g_autofree char *contents = NULL;
  if (path == NULL || *path == '\0')
    path = "/etc/machine-id";
  if (g_file_get_contents (path, &contents, NULL, NULL))
    {
      g_strstrip (contents);
      if (vmem_host_id_valid (contents))
        return g_steal_pointer (&contents);
    }
  return g_strdup (vmem_host_id_valid (host_name) ? host_name : "localhost");
}

VmemConfig *
vmem_config_new_default (void)
{
  VmemConfig *c = g_new0 (VmemConfig, 1);
  char host[256] = "";

  c->uri = g_strdup ("qemu:///system");
  c->socket_path = g_strdup (VMEM_DEFAULT_SOCKET);
  c->admin_group = g_strdup ("vmemd");
  c->stats_interval = 10;
  c->log_level = g_strdup ("info");
  if (gethostname (host, sizeof host - 1) != 0 || host[0] == '\0')
    g_strlcpy (host, "localhost", sizeof host);
  c->host_name = g_strdup (host);
  c->host_id = default_host_id (c->host_name);
  c->max_clients = 64;
  c->root_clients = 16;
  c->request_timeout = 10;
  c->idle_timeout = 60;
  c->silent_timeout = 5;

  c->backend = VMEM_STORE_SQLITE;
  c->database = g_strdup (LOCALSTATEDIR "/lib/vmemd/vmemd.db");
  c->raw_retention_hours = 48;
  c->raw_full_hours = 6;
  c->raw_thinned_seconds = 300;
  c->peak_retention_days = 90;
  c->buffer_samples = 100000;
  c->buffer_writes = 10000;

  c->hook_timeout_ms = VMEM_HOOK_DEFAULT_TIMEOUT_MS;
  c->fail_closed = FALSE;

  c->admission = VMEM_ADMISSION_ENFORCE;
  c->reserve_mib = 1024;
  c->capacity_mib = 0;
  c->not_ready = VMEM_NOT_READY_ADMIT;
  c->unchecked = VMEM_UNCHECKED_ADMIT;
  c->reservation_timeout = 300;

  c->half_life_hours = 24.0;
  c->quantile = 0.90;
  c->margin_pct = 15.0;
  c->min_peers = 1;
  c->min_history_hours = 6.0;
  c->prior_hours = 24.0;
  c->hysteresis_pct = 5.0;
  c->hysteresis_mib = 64;
  /* The controller's own defaults (vmem_controller_config_init). */
  c->min_buffer_mib = 512;
  c->min_buffer_pct = 10;
  c->surplus_hold = 3600;
  c->shrink_half_life = 3600;
  return c;
}

void
vmem_config_free (VmemConfig *c)
{
  if (c == NULL)
    return;
  g_free (c->path);
  g_free (c->uri);
  g_free (c->socket_path);
  g_free (c->admin_group);
  g_free (c->log_level);
  g_free (c->host_name);
  g_free (c->host_id);
  g_free (c->database);
  g_free (c->postgres);
  g_free (c->metrics_textfile);
  g_free (c);
}

const char *
vmem_config_default_path (void)
{
  const char *env = g_getenv ("VMEMD_CONFIG");
  return (env != NULL && *env != '\0') ? env : VMEM_CONFIG_DEFAULT_PATH;
}

const char *
vmem_admission_to_string (VmemAdmission mode)
{
  switch (mode)
    {
    case VMEM_ADMISSION_ENFORCE:
      return "enforce";
    case VMEM_ADMISSION_WARN:
      return "warn";
    case VMEM_ADMISSION_OFF:
      return "off";
    default:
      return "unknown";
    }
}

const char *
vmem_not_ready_to_string (VmemNotReady not_ready)
{
  switch (not_ready)
    {
    case VMEM_NOT_READY_ADMIT:
      return "admit";
    case VMEM_NOT_READY_REFUSE:
      return "refuse";
    default:
      return "unknown";
    }
}

const char *
vmem_unchecked_to_string (VmemUnchecked unchecked)
{
  switch (unchecked)
    {
    case VMEM_UNCHECKED_ADMIT:
      return "admit";
    case VMEM_UNCHECKED_REFUSE:
      return "refuse";
    default:
      return "unknown";
    }
}

/* A key the file may contain; the parser rejects any other, so that a typo
 * is an error rather than a silently ignored setting. */
typedef enum {
  KEY_STRING,
  KEY_PATH,
  KEY_OPTIONAL_PATH, /* empty: unset (NULL) */
  KEY_UINT,
  KEY_BOOL,
  KEY_DOUBLE,
  KEY_SIZE,
  KEY_ADMISSION,
  KEY_NOT_READY,
  KEY_UNCHECKED,
  KEY_BACKEND,
  KEY_LOGLEVEL,
  KEY_HOST_ID,
} KeyType;

typedef struct {
  const char *group;
  const char *key;
  KeyType     type;
  gsize       offset;
  double      min;
  double      max;
} KeyDef;

#define OFF(field) G_STRUCT_OFFSET (VmemConfig, field)

static const KeyDef keys[] = {
  { "daemon", "uri", KEY_STRING, OFF (uri), 0, 0 },
  { "daemon", "socket", KEY_PATH, OFF (socket_path), 0, 0 },
  { "daemon", "admin_group", KEY_STRING, OFF (admin_group), 0, 0 },
  { "daemon", "stats_interval", KEY_UINT, OFF (stats_interval), 1, 3600 },
  { "daemon", "log_level", KEY_LOGLEVEL, OFF (log_level), 0, 0 },
  { "daemon", "host_name", KEY_STRING, OFF (host_name), 0, 0 },
  { "daemon", "host_id", KEY_HOST_ID, OFF (host_id), 0, 0 },
  { "daemon", "max_clients", KEY_UINT, OFF (max_clients), 1, 4096 },
  { "daemon", "root_clients", KEY_UINT, OFF (root_clients), 1, 4096 },
  { "daemon", "request_timeout", KEY_UINT, OFF (request_timeout), 1, 3600 },
  { "daemon", "idle_timeout", KEY_UINT, OFF (idle_timeout), 1, 3600 },
  { "daemon", "silent_timeout", KEY_UINT, OFF (silent_timeout), 1, 3600 },
  { "daemon", "metrics_textfile", KEY_OPTIONAL_PATH, OFF (metrics_textfile), 0, 0 },
  { "store", "backend", KEY_BACKEND, OFF (backend), 0, 0 },
  { "store", "database", KEY_PATH, OFF (database), 0, 0 },
  { "store", "postgres", KEY_STRING, OFF (postgres), 0, 0 },
  { "store", "raw_retention_hours", KEY_UINT, OFF (raw_retention_hours), 1, 24 * 365 },
  { "store", "raw_full_hours", KEY_UINT, OFF (raw_full_hours), 0, 24 * 365 },
  { "store", "raw_thinned_seconds", KEY_UINT, OFF (raw_thinned_seconds), 0, 86400 },
  { "store", "peak_retention_days", KEY_UINT, OFF (peak_retention_days), 1, 3650 },
  { "store", "buffer_samples", KEY_UINT, OFF (buffer_samples), 0, 10000000 },
  { "store", "buffer_writes", KEY_UINT, OFF (buffer_writes), 0, 1000000 },
  { "hook", "timeout_ms", KEY_UINT, OFF (hook_timeout_ms), VMEM_HOOK_MIN_TIMEOUT_MS,
    VMEM_HOOK_MAX_TIMEOUT_MS },
  { "hook", "fail_closed", KEY_BOOL, OFF (fail_closed), 0, 0 },
  { "admission", "mode", KEY_ADMISSION, OFF (admission), 0, 0 },
  { "admission", "reserve", KEY_SIZE, OFF (reserve_mib), 0, 0 },
  { "admission", "capacity", KEY_SIZE, OFF (capacity_mib), 0, 0 },
  { "admission", "not_ready", KEY_NOT_READY, OFF (not_ready), 0, 0 },
  { "admission", "unchecked", KEY_UNCHECKED, OFF (unchecked), 0, 0 },
  { "admission", "reservation_timeout", KEY_UINT, OFF (reservation_timeout), 10, 3600 },
  { "estimator", "half_life_hours", KEY_DOUBLE, OFF (half_life_hours), 0.1, 24 * 365 },
  { "estimator", "quantile", KEY_DOUBLE, OFF (quantile), 0.5, 1.0 },
  { "estimator", "margin_pct", KEY_DOUBLE, OFF (margin_pct), 0, 400 },
  { "estimator", "min_peers", KEY_UINT, OFF (min_peers), 1, 1000 },
  { "estimator", "min_history_hours", KEY_DOUBLE, OFF (min_history_hours), 0, 24 * 365 },
  { "estimator", "prior_hours", KEY_DOUBLE, OFF (prior_hours), 0, 24 * 365 },
  { "estimator", "hysteresis_pct", KEY_DOUBLE, OFF (hysteresis_pct), 0, 100 },
  { "estimator", "hysteresis_mib", KEY_SIZE, OFF (hysteresis_mib), 0, 0 },
  { "controller", "min_buffer", KEY_SIZE, OFF (min_buffer_mib), 0, 0 },
  { "controller", "min_buffer_pct", KEY_DOUBLE, OFF (min_buffer_pct), 0, 100 },
  { "controller", "surplus_hold", KEY_UINT, OFF (surplus_hold), 0, 7 * 86400 },
  { "controller", "shrink_half_life", KEY_UINT, OFF (shrink_half_life), 10, 7 * 86400 },
};

/* GKeyFile does not say on which line a key sits; find it so that errors
 * read FILE:LINE like a compiler's. */
static guint
find_line (const char *contents, const char *group, const char *key)
{
  g_auto(GStrv) lines = g_strsplit (contents, "\n", -1);
  gboolean in_group = FALSE;

  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_autofree char *l = g_strstrip (g_strdup (lines[i]));
      if (l[0] == '[')
        {
          g_autofree char *want = g_strdup_printf ("[%s]", group);
          in_group = g_str_equal (l, want);
          if (key == NULL && in_group)
            return i + 1;
          continue;
        }
      if (in_group && key != NULL && g_str_has_prefix (l, key))
        {
          const char *rest = l + strlen (key);
          while (*rest == ' ' || *rest == '\t')
            rest++;
          if (*rest == '=')
            return i + 1;
        }
    }
  return 0;
}

static gboolean
fail (GError **error, const char *path, const char *contents, const char *group,
      const char *key, const char *fmt, ...) G_GNUC_PRINTF (6, 7);

static gboolean
fail (GError **error, const char *path, const char *contents, const char *group,
      const char *key, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  guint line = find_line (contents, group, key);
  if (line > 0)
    g_set_error (error, VMEM_ERROR, VMEM_ERROR_CONFIG, "%s:%u: [%s]%s%s: %s", path, line, group,
                 key ? " " : "", key ? key : "", msg);
  else
    g_set_error (error, VMEM_ERROR, VMEM_ERROR_CONFIG, "%s: [%s]%s%s: %s", path, group,
                 key ? " " : "", key ? key : "", msg);
  return FALSE;
}

static gboolean
apply_key (VmemConfig *c, GKeyFile *kf, const KeyDef *def, const char *path,
           const char *contents, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autofree char *raw = g_key_file_get_value (kf, def->group, def->key, &local);
  if (raw == NULL)
    return fail (error, path, contents, def->group, def->key, "%s", local->message);
  g_autofree char *value = g_key_file_get_string (kf, def->group, def->key, &local);
  /* On a bad escape GKeyFile sets the error but still returns a string. */
  if (local != NULL)
    return fail (error, path, contents, def->group, def->key, "%s", local->message);
  g_strstrip (value);
  void *field = G_STRUCT_MEMBER_P (c, def->offset);

  switch (def->type)
    {
    case KEY_OPTIONAL_PATH:
      if (*value == '\0')
        {
          g_clear_pointer ((char **) field, g_free);
          return TRUE;
        }
      if (!g_path_is_absolute (value))
        return fail (error, path, contents, def->group, def->key,
                     "'%s' is not an absolute path", value);
      g_free (*(char **) field);
      *(char **) field = g_steal_pointer (&value);
      return TRUE;

    case KEY_STRING:
    case KEY_PATH:
      if (*value == '\0')
        return fail (error, path, contents, def->group, def->key, "must not be empty");
      if (def->type == KEY_PATH && !g_path_is_absolute (value))
        return fail (error, path, contents, def->group, def->key,
                     "'%s' is not an absolute path", value);
      g_free (*(char **) field);
      *(char **) field = g_steal_pointer (&value);
      return TRUE;

    case KEY_UINT:
      {
        guint64 n;
        if (!g_ascii_string_to_unsigned (value, 10, (guint64) def->min, (guint64) def->max, &n,
                                         &local))
          return fail (error, path, contents, def->group, def->key,
                       "'%s' is not a whole number from %g to %g", value, def->min, def->max);
        *(guint *) field = (guint) n;
        return TRUE;
      }

    case KEY_DOUBLE:
      {
        char *end = NULL;
        double d = g_ascii_strtod (value, &end);
        if (end == value || *end != '\0' || !isfinite (d) || d < def->min || d > def->max)
          return fail (error, path, contents, def->group, def->key,
                       "'%s' is not a number from %g to %g", value, def->min, def->max);
        *(double *) field = d;
        return TRUE;
      }

    case KEY_BOOL:
      if (g_ascii_strcasecmp (value, "true") == 0 || g_str_equal (value, "1") ||
          g_ascii_strcasecmp (value, "yes") == 0)
        *(gboolean *) field = TRUE;
      else if (g_ascii_strcasecmp (value, "false") == 0 || g_str_equal (value, "0") ||
               g_ascii_strcasecmp (value, "no") == 0)
        *(gboolean *) field = FALSE;
      else
        return fail (error, path, contents, def->group, def->key,
                     "'%s' is not a boolean (true or false)", value);
      return TRUE;

    case KEY_SIZE:
      if (!vmem_size_parse (value, (guint64 *) field, &local))
        return fail (error, path, contents, def->group, def->key, "%s", local->message);
      return TRUE;

    case KEY_ADMISSION:
      if (g_str_equal (value, "enforce"))
        *(VmemAdmission *) field = VMEM_ADMISSION_ENFORCE;
      else if (g_str_equal (value, "warn"))
        *(VmemAdmission *) field = VMEM_ADMISSION_WARN;
      else if (g_str_equal (value, "off"))
        *(VmemAdmission *) field = VMEM_ADMISSION_OFF;
      else
        return fail (error, path, contents, def->group, def->key,
                     "'%s' is not one of enforce, warn, off", value);
      return TRUE;

    case KEY_NOT_READY:
      if (g_str_equal (value, "admit"))
        *(VmemNotReady *) field = VMEM_NOT_READY_ADMIT;
      else if (g_str_equal (value, "refuse"))
        *(VmemNotReady *) field = VMEM_NOT_READY_REFUSE;
      else
        return fail (error, path, contents, def->group, def->key,
                     "'%s' is not one of admit, refuse", value);
      return TRUE;

    case KEY_UNCHECKED:
      if (g_str_equal (value, "admit"))
        *(VmemUnchecked *) field = VMEM_UNCHECKED_ADMIT;
      else if (g_str_equal (value, "refuse"))
        *(VmemUnchecked *) field = VMEM_UNCHECKED_REFUSE;
      else
        return fail (error, path, contents, def->group, def->key,
                     "'%s' is not one of admit, refuse", value);
      return TRUE;

    case KEY_HOST_ID:
      if (!vmem_host_id_valid (value))
        return fail (error, path, contents, def->group, def->key,
                     "'%s' is not a host id: 1 to %d letters, digits and . _ : -", value,
                     VMEM_HOST_ID_MAX);
      g_free (*(char **) field);
      *(char **) field = g_steal_pointer (&value);
      return TRUE;

    case KEY_BACKEND:
      if (g_str_equal (value, "sqlite"))
        *(VmemStoreBackend *) field = VMEM_STORE_SQLITE;
      else if (g_str_equal (value, "postgres") || g_str_equal (value, "postgresql"))
        *(VmemStoreBackend *) field = VMEM_STORE_POSTGRES;
      else
        return fail (error, path, contents, def->group, def->key,
                     "'%s' is not one of sqlite, postgres", value);
      return TRUE;

    case KEY_LOGLEVEL:
      {
        static const char *const levels[] = { "error", "warning", "message", "info", "debug" };
        for (guint i = 0; i < G_N_ELEMENTS (levels); i++)
          if (g_str_equal (value, levels[i]))
            {
              g_free (*(char **) field);
              *(char **) field = g_steal_pointer (&value);
              return TRUE;
            }
        return fail (error, path, contents, def->group, def->key,
                     "'%s' is not one of error, warning, message, info, debug", value);
      }

    default:
      g_assert_not_reached ();
    }
}

VmemConfig *
vmem_config_load (const char *path, gboolean must_exist, GError **error)
{
  g_autoptr(VmemConfig) c = vmem_config_new_default ();
  g_autofree char *contents = NULL;
  gsize len = 0;
  g_autoptr(GError) local = NULL;

  g_return_val_if_fail (path != NULL, NULL);

  if (!g_file_get_contents (path, &contents, &len, &local))
    {
      if (g_error_matches (local, G_FILE_ERROR, G_FILE_ERROR_NOENT) && !must_exist)
        return g_steal_pointer (&c);
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_CONFIG, "%s", local->message);
      return NULL;
    }
  if (!g_utf8_validate (contents, (gssize) len, NULL) || memchr (contents, '\0', len) != NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_CONFIG, "%s: not a UTF-8 text file", path);
      return NULL;
    }

  g_autoptr(GKeyFile) kf = g_key_file_new ();
  if (!g_key_file_load_from_data (kf, contents, len, G_KEY_FILE_NONE, &local))
    {
      /* GKeyFile's own messages already carry the line number. */
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_CONFIG, "%s: %s", path, local->message);
      return NULL;
    }

  g_auto(GStrv) groups = g_key_file_get_groups (kf, NULL);
  for (guint g = 0; groups[g] != NULL; g++)
    {
      gboolean known_group = FALSE;
      for (gsize k = 0; k < G_N_ELEMENTS (keys); k++)
        known_group |= g_str_equal (keys[k].group, groups[g]);
      if (!known_group)
        {
          fail (error, path, contents, groups[g], NULL,
                "unknown section (known: daemon, store, hook, admission, estimator)");
          return NULL;
        }

      g_auto(GStrv) names = g_key_file_get_keys (kf, groups[g], NULL, NULL);
      for (guint n = 0; names != NULL && names[n] != NULL; n++)
        {
          const KeyDef *def = NULL;
          for (gsize k = 0; k < G_N_ELEMENTS (keys); k++)
            if (g_str_equal (keys[k].group, groups[g]) && g_str_equal (keys[k].key, names[n]))
              def = &keys[k];
          if (def == NULL)
            {
              fail (error, path, contents, groups[g], names[n], "unknown key");
              return NULL;
            }
          if (!apply_key (c, kf, def, path, contents, error))
            return NULL;
        }
    }

  if (c->backend == VMEM_STORE_POSTGRES && c->postgres == NULL)
    {
      fail (error, path, contents, "store", "backend",
            "backend postgres needs [store] postgres (a libpq connection string)");
      return NULL;
    }

  c->path = g_strdup (path);
  return g_steal_pointer (&c);
}
