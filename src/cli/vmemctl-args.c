/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmemctl-args.h"
#include "vmem-cleanup.h"
#include "vmem-error.h"
#include "vmem-profile.h"
#include "vmem-units.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct {
  const char *name;  /* "--demand" */
  gboolean value;    /* takes a value */
  const char *field; /* profile JSON key, NULL when not a profile field */
} OptSpec;

typedef struct {
  const OptSpec *spec;
  const char *value; /* borrowed from argv */
} OptHit;

static const OptSpec global_opts[] = {
  { "--socket", TRUE, NULL },
  { "--timeout", TRUE, NULL },
  { "--json", FALSE, NULL },
  { NULL, FALSE, NULL },
};

static const OptSpec profile_opts[] = {
  { "--demand", TRUE, "demand_mib" },
  { "--floor", TRUE, "floor_mib" },
  { "--ceiling", TRUE, "ceiling_mib" },
  { "--margin", TRUE, "margin_pct" },
  { "--quantile", TRUE, "quantile" },
  { "--risk", TRUE, "risk_pct" },
  { "--buffer", TRUE, "buffer_pct" },
  { "--mode", TRUE, "mode" },
  { "--prealloc", TRUE, "prealloc" },
  { "--scale", TRUE, "scale" },
  { "--priority", TRUE, "priority" },
  { "--match", TRUE, "match" },
  { "--no-match", FALSE, "match" },
  { NULL, FALSE, NULL },
};

static const OptSpec no_opts[] = { { NULL, FALSE, NULL } };
static const OptSpec remove_opts[] = { { "--force", FALSE, NULL }, { NULL, FALSE, NULL } };
static const OptSpec import_opts[] = { { "--replace", FALSE, NULL }, { NULL, FALSE, NULL } };
static const OptSpec unassign_opts[] = { { "--restore", FALSE, NULL }, { NULL, FALSE, NULL } };
static const OptSpec explain_opts[] = { { "--workload", TRUE, NULL }, { NULL, FALSE, NULL } };
static const OptSpec metrics_opts[] = { { "--format", TRUE, NULL }, { NULL, FALSE, NULL } };
static const OptSpec place_opts[] = { { "--memory", TRUE, NULL }, { NULL, FALSE, NULL } };
static const OptSpec history_opts[] = {
  { "--since", TRUE, NULL },
  { "--limit", TRUE, NULL },
  { NULL, FALSE, NULL },
};

/* --- help ------------------------------------------------------------------ */

typedef struct {
  const char *name;
  const char *synopsis; /* one or more "vmemctl ..." lines */
  const char *summary;
  const char *details;
} HelpEntry;

static const char profile_options_help[] =
  "Profile options (profile add and profile set):\n"
  "  --demand SIZE       memory the workload needs from the start (512M, 4G; none = unset)\n"
  "  --floor SIZE        never give a domain less (none = unset)\n"
  "  --ceiling SIZE      never give a domain more (none = unset)\n"
  "  --margin PCT        added on top of the estimate until there are enough outcomes\n"
  "                      to calibrate the margin, 0..400 (default 15)\n"
  "  --quantile Q        quantile of the peers' usage, relative to their <memory>:\n"
  "                      0.5..1, 50..100 or p90 (default 0.9)\n"
  "  --risk PCT          share of starts allowed to need more than they were given:\n"
  "                      an upper bound the margin is calibrated to hold with 90 %\n"
  "                      confidence, 0.1..50 (default 5)\n"
  "  --buffer PCT        free memory kept in a running guest, % of what it uses,\n"
  "                      0..400 (default 20)\n"
  "  --mode MODE         balloon (default): the balloon follows the guest after the\n"
  "                      start; observe: log the plan and the moves, change nothing;\n"
  "                      virtio-mem: boot with the demand, the rest of <memory> in a\n"
  "                      virtio-mem device plugged as the guest needs it (guest:\n"
  "                      Linux >= 5.8, virtio_mem, memhp_default_state=online_movable)\n"
  "  --prealloc on|off   allocate the guest's memory before it runs (default on): in\n"
  "                      balloon mode its whole <memory>, which the balloon then brings\n"
  "                      down to the demand; in virtio-mem mode the demand\n"
  "  --scale SCALE       absolute (default) or per-vcpu\n"
  "  --priority N        0..100 (default 50): a larger share when the host is short\n"
  "  --match GLOB        also manage domains whose name matches GLOB (erp-*)\n"
  "  --no-match          remove the name pattern\n";

static const HelpEntry help_entries[] = {
  { "profile",
    "vmemctl profile add NAME [OPTIONS]\n"
    "vmemctl profile set NAME [OPTIONS]\n"
    "vmemctl profile show NAME\n"
    "vmemctl profile list\n"
    "vmemctl profile remove NAME [--force]\n"
    "vmemctl profile import FILE|- [--replace]\n"
    "vmemctl profile export [FILE|-]\n",
    "manage workload profiles",
    "  add      create a profile; options not given take their defaults\n"
    "  set      change only the options given; like add, it applies from each\n"
    "           domain's next start: running domains keep their current memory\n"
    "  show     print one profile\n"
    "  list     print every profile\n"
    "  remove   delete a profile; --force even while domains are assigned to it\n"
    "  import   load profiles from a JSON file (an array, or {\"profiles\": [...]}),\n"
    "           all or nothing; every entry is checked before anything is sent;\n"
    "           --replace also deletes the profiles that are not in the file\n"
    "  export   write every profile as JSON that import accepts (default: standard output)\n" },
  { "assign", "vmemctl assign DOMAIN WORKLOAD\n", "tag a domain with a workload",
    "  Writes <vmemd:workload name=\"WORKLOAD\"/> into the domain's persistent\n"
    "  definition.  DOMAIN is a name or a UUID.\n" },
  { "unassign", "vmemctl unassign DOMAIN [--restore]\n", "remove a domain's workload tag",
    "  --restore also puts back, in the domain's persistent definition, the memory\n"
    "  settings that vmemd replaced.  They apply from its next start: a running\n"
    "  domain keeps its current memory until then.\n" },
  { "status", "vmemctl status\n", "show the daemon, the host's memory and the domains", NULL },
  { "explain", "vmemctl explain DOMAIN\nvmemctl explain --workload WORKLOAD\n",
    "show what a domain (or a workload) gets, and why",
    "  Prints the demand, where it comes from (peers or the profile), the quantile,\n"
    "  margin and clamps, and what is staged for the domain's next start.\n" },
  { "history", "vmemctl history DOMAIN [--since WHEN] [--limit N]\n",
    "show a domain's memory over time and the controller's moves",
    "  --since WHEN  a duration back from now (90s, 30m, 6h, 2d; default 6h) or an\n"
    "                ISO 8601 time (2026-12-02T06:00:00, local time unless zoned)\n"
    "  --limit N     at most N samples and N moves, the newest (default 2000)\n"
    "  Prints a chart of the guest's used memory against its balloon size, then\n"
    "  each move of the on-demand controller, applied or not, and why.\n" },
  { "metrics", "vmemctl metrics [--format FORMAT]\n", "print vmemd's metrics for Prometheus",
    "  --format FORMAT  openmetrics (default): the OpenMetrics text; prometheus: the\n"
    "                   Prometheus text format, as vmemd writes it for node exporter\n"
    "                   ([daemon] metrics_textfile in vmemd.conf)\n"
    "  Per managed domain its demand, target, balloon size and used memory; per\n"
    "  workload the estimate and its calibration; the host's capacity, committed\n"
    "  memory and boot reservations; the daemon's collector cycles, hook calls and\n"
    "  their latency, store errors, stage jobs and controller moves.  In JSON (the\n"
    "  global option), the metric families and their samples.\n" },
  { "hosts", "vmemctl hosts\n", "show the hosts sharing the store",
    "  Each host's id and name, capacity (less its reserve), reserve, committed and\n"
    "  free memory, boot reservations, managed domains, last heartbeat and whether\n"
    "  it is alive (a heartbeat within three of its intervals), as its last\n"
    "  heartbeat wrote them.\n" },
  { "place", "vmemctl place WORKLOAD [--memory SIZE]\n",
    "rank the live hosts for a new domain of a workload",
    "  --memory SIZE  the new domain's <memory> (default: its demand)\n"
    "  Estimates the workload's demand now, and what a new domain of it holds at\n"
    "  boot by its profile's mode (balloon with prealloc: its whole <memory>;\n"
    "  virtio-mem: the demand; observe: its <memory>), then ranks the live hosts:\n"
    "  those where it fits first, the most room left first.\n" },
  { "replay", "vmemctl replay TRACE.csv [OPTIONS]\n", "run the estimator offline on a usage trace",
    "  Needs no daemon.  See vmemctl replay --help for its options.\n" },
  { "version", "vmemctl version\n", "print the versions of vmemctl and vmemd", NULL },
  { "help", "vmemctl help [COMMAND]\n", "print this help, or a command's", NULL },
};

/* The one-line-per-command list at the top of vmemctl --help. */
static const struct {
  const char *usage, *summary;
} overview[] = {
  { "profile add NAME [OPTIONS]", "create a workload profile" },
  { "profile set NAME [OPTIONS]", "change the given options of a profile" },
  { "profile show NAME", "print one profile" },
  { "profile list", "print every profile" },
  { "profile remove NAME [--force]", "delete a profile" },
  { "profile import FILE|- [--replace]", "load profiles from JSON, all or nothing" },
  { "profile export [FILE|-]", "write every profile as JSON" },
  { "assign DOMAIN WORKLOAD", "tag a domain with a workload" },
  { "unassign DOMAIN [--restore]", "remove a domain's workload tag" },
  { "status", "show the daemon, the host's memory and the domains" },
  { "explain DOMAIN | --workload WORKLOAD", "show what a domain gets, and why" },
  { "history DOMAIN [--since WHEN]", "show a domain's memory over time and its moves" },
  { "hosts", "show the hosts sharing the store" },
  { "place WORKLOAD [--memory SIZE]", "rank the live hosts for a new domain of a workload" },
  { "metrics [--format FORMAT]", "print vmemd's metrics for Prometheus" },
  { "replay TRACE.csv [OPTIONS]", "run the estimator offline on a trace" },
  { "version", "print the versions of vmemctl and vmemd" },
  { "help [COMMAND]", "print this help, or a command's" },
};

static const char global_help[] =
  "Global options (before or after the command):\n"
  "  --socket PATH       vmemd's socket (default: $VMEMD_SOCKET, else socket in the\n"
  "                      config file $VMEMD_CONFIG or " SYSCONFDIR "/vmemd/vmemd.conf)\n"
  "  --json              print the daemon's reply as JSON\n"
  "  --timeout SEC       give up waiting for vmemd after SEC seconds (default 30)\n"
  "  -h, --help          print help (also: vmemctl COMMAND --help)\n"
  "\n"
  "Sizes take a unit: 512M, 4G, 4GiB, 1T; a bare number is MiB.\n"
  "\n"
  "Exit status:\n"
  "  0  success\n"
  "  1  vmemd reported a failure\n"
  "  2  usage error: bad option, argument, size or input file\n"
  "  3  no such profile or domain\n"
  "  4  vmemd is unreachable or did not answer in time\n"
  "  5  permission denied\n"
  "\n"
  "See vmemctl(8).\n";

static const HelpEntry *
help_find (const char *name)
{
  for (gsize i = 0; i < G_N_ELEMENTS (help_entries); i++)
    if (g_str_equal (help_entries[i].name, name))
      return &help_entries[i];
  return NULL;
}

char *
vmemctl_help_text (const char *topic)
{
  g_autoptr(GString) s = g_string_new (NULL);

  if (topic == NULL)
    {
      g_string_append (s,
                       "Usage: vmemctl [--socket PATH] [--json] [--timeout SEC] COMMAND [ARGS...]\n"
                       "\nCommands:\n");
      for (gsize i = 0; i < G_N_ELEMENTS (overview); i++)
        g_string_append_printf (s, "  %-38s %s\n", overview[i].usage, overview[i].summary);
      g_string_append_c (s, '\n');
      g_string_append (s, profile_options_help);
      g_string_append_c (s, '\n');
      g_string_append (s, global_help);
      return g_string_free (g_steal_pointer (&s), FALSE);
    }

  const HelpEntry *e = help_find (topic);
  if (e == NULL)
    return NULL;
  g_auto(GStrv) lines = g_strsplit (e->synopsis, "\n", -1);
  for (guint k = 0; lines[k] && *lines[k]; k++)
    g_string_append_printf (s, "%s %s\n", k == 0 ? "Usage:" : "      ", lines[k]);
  g_string_append_printf (s, "\n%c%s.\n", g_ascii_toupper (e->summary[0]), e->summary + 1);
  if (e->details != NULL)
    g_string_append_printf (s, "\n%s", e->details);
  if (g_str_equal (topic, "profile"))
    g_string_append_printf (s, "\n%s", profile_options_help);
  g_string_append_printf (s, "\n%s", global_help);
  return g_string_free (g_steal_pointer (&s), FALSE);
}

/* --- errors ---------------------------------------------------------------- */

int
vmemctl_exit_code (const GError *error)
{
  if (error == NULL)
    return VMEMCTL_EXIT_OK;
  if (error->domain != VMEM_ERROR)
    return VMEMCTL_EXIT_FAILED;
  switch (error->code)
    {
    case VMEM_ERROR_INVALID_ARGUMENT:
      return VMEMCTL_EXIT_USAGE;
    case VMEM_ERROR_NOT_FOUND:
      return VMEMCTL_EXIT_NOT_FOUND;
    case VMEM_ERROR_UNAVAILABLE:
    case VMEM_ERROR_TIMEOUT:
      return VMEMCTL_EXIT_UNAVAILABLE;
    case VMEM_ERROR_PERMISSION_DENIED:
      return VMEMCTL_EXIT_DENIED;
    default:
      return VMEMCTL_EXIT_FAILED;
    }
}

static gboolean usage (GError **error, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static gboolean
usage (GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error_literal (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, msg);
  return FALSE;
}

/* The profile code names JSON fields ("margin: ..."); on the command line the
 * user wrote options, so the message should name the option. */
static const char *
option_for_field (const char *field)
{
  static const struct {
    const char *field, *option;
  } map[] = {
    { "name", "NAME" },
    { "demand", "--demand" },
    { "demand_mib", "--demand" },
    { "floor", "--floor" },
    { "floor_mib", "--floor" },
    { "ceiling", "--ceiling" },
    { "ceiling_mib", "--ceiling" },
    { "margin", "--margin" },
    { "margin_pct", "--margin" },
    { "quantile", "--quantile" },
    { "risk", "--risk" },
    { "risk_pct", "--risk" },
    { "buffer", "--buffer" },
    { "buffer_pct", "--buffer" },
    { "mode", "--mode" },
    { "prealloc", "--prealloc" },
    { "scale", "--scale" },
    { "priority", "--priority" },
    { "match", "--match" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (map); i++)
    if (g_str_equal (map[i].field, field))
      return map[i].option;
  return NULL;
}

static char *
message_with_option (const char *message)
{
  const char *colon = strstr (message, ": ");
  if (colon == NULL)
    return g_strdup (message);
  g_autofree char *field = g_strndup (message, (gsize) (colon - message));
  const char *option = option_for_field (field);
  if (option == NULL)
    return g_strdup (message);
  return g_strdup_printf ("%s%s", option, colon);
}

/* --- argv scanning --------------------------------------------------------- */

static const OptSpec *
spec_find (const OptSpec *specs, const char *name, gsize len)
{
  for (guint i = 0; specs[i].name != NULL; i++)
    if (strlen (specs[i].name) == len && strncmp (specs[i].name, name, len) == 0)
      return &specs[i];
  return NULL;
}

static gboolean
set_timeout (VmemctlRequest *req, const char *value, GError **error)
{
  char *end = NULL;
  errno = 0;
  double s = g_ascii_strtod (value, &end);
  if (end == value || *end != '\0' || errno != 0 || !(s > 0) || s > 3600)
    return usage (error, "--timeout: '%s' is not a number of seconds (more than 0, at most 3600)",
                  value);
  req->timeout_ms = MAX ((int) (s * 1000), 1);
  return TRUE;
}

/* Walks argv[first..]: global options are applied to @req, the command's own
 * options are collected in @hits (in order), the rest in @positional.  Stops
 * at --help with *help = TRUE. */
static gboolean
scan (VmemctlRequest *req, const char *cmd, int argc, char **argv, int first, const OptSpec *opts,
      GPtrArray *positional, GArray *hits, gboolean *help, GError **error)
{
  gboolean only_positional = FALSE;
  /* Options before the command belong to no command. */
  g_autofree char *pfx = cmd ? g_strdup_printf ("%s: ", cmd) : g_strdup ("");

  /* Asking for help wins over any mistake made on the way. */
  for (int i = first; i < argc && !g_str_equal (argv[i], "--"); i++)
    if (g_str_equal (argv[i], "--help") || g_str_equal (argv[i], "-h"))
      {
        *help = TRUE;
        return TRUE;
      }

  for (int i = first; i < argc; i++)
    {
      const char *a = argv[i];
      if (only_positional || a[0] != '-' || g_str_equal (a, "-"))
        {
          g_ptr_array_add (positional, (gpointer) a);
          continue;
        }
      if (g_str_equal (a, "--"))
        {
          only_positional = TRUE;
          continue;
        }
      if (g_str_equal (a, "--help") || g_str_equal (a, "-h"))
        {
          *help = TRUE;
          return TRUE;
        }

      const char *eq = strchr (a, '=');
      gsize len = eq ? (gsize) (eq - a) : strlen (a);
      const OptSpec *spec = spec_find (global_opts, a, len);
      gboolean global = spec != NULL;
      if (spec == NULL)
        spec = spec_find (opts, a, len);
      if (spec == NULL)
        {
          g_autofree char *name = g_strndup (a, len);
          return usage (error, "%sunknown option %s", pfx, name);
        }

      const char *value = NULL;
      if (spec->value)
        {
          if (eq != NULL)
            value = eq + 1;
          else if (i + 1 < argc)
            value = argv[++i];
          else
            return usage (error, "%s%s needs a value", pfx, spec->name);
        }
      else if (eq != NULL)
        return usage (error, "%s%s takes no value", pfx, spec->name);

      if (!global)
        {
          OptHit hit = { spec, value };
          g_array_append_val (hits, hit);
        }
      else if (g_str_equal (spec->name, "--json"))
        req->json = TRUE;
      else if (g_str_equal (spec->name, "--socket"))
        {
          if (*value == '\0')
            return usage (error, "--socket: the path is empty");
          g_free (req->socket);
          req->socket = g_strdup (value);
        }
      else if (!set_timeout (req, value, error))
        return FALSE;
    }
  return TRUE;
}

/* Consumes the global options at argv[*i..] up to the first word that is not
 * one (the command); "--version" is left for the caller as a command. */
static gboolean
scan_leading_globals (VmemctlRequest *req, const char *cmd, int argc, char **argv, int *i,
                      gboolean *help, GError **error)
{
  for (; *i < argc; (*i)++)
    {
      const char *a = argv[*i];
      if (a[0] != '-' || g_str_equal (a, "-") || g_str_equal (a, "--version"))
        return TRUE;
      if (g_str_equal (a, "--help") || g_str_equal (a, "-h"))
        {
          *help = TRUE;
          return TRUE;
        }
      const char *eq = strchr (a, '=');
      const OptSpec *spec = spec_find (global_opts, a, eq ? (gsize) (eq - a) : strlen (a));
      if (spec == NULL)
        {
          g_autofree char *name = g_strndup (a, eq ? (gsize) (eq - a) : strlen (a));
          return cmd ? usage (error, "%s: unknown option %s", cmd, name)
                     : usage (error, "unknown option %s", name);
        }
      int n = spec->value && eq == NULL ? 2 : 1;
      g_autoptr(GPtrArray) unused = g_ptr_array_new ();
      g_autoptr(GArray) hits = g_array_new (FALSE, FALSE, sizeof (OptHit));
      if (!scan (req, cmd, MIN (*i + n, argc), argv, *i, no_opts, unused, hits, help, error))
        return FALSE;
      *i += n - 1;
    }
  return TRUE;
}

static gboolean
has_flag (GArray *hits, const char *name)
{
  for (guint i = 0; i < hits->len; i++)
    if (g_str_equal (g_array_index (hits, OptHit, i).spec->name, name))
      return TRUE;
  return FALSE;
}

static const char *
flag_value (GArray *hits, const char *name)
{
  const char *v = NULL;
  for (guint i = 0; i < hits->len; i++)
    if (g_str_equal (g_array_index (hits, OptHit, i).spec->name, name))
      v = g_array_index (hits, OptHit, i).value;
  return v;
}

static gboolean
want_positional (const char *cmd, GPtrArray *positional, guint min, guint max, const char *what,
                 GError **error)
{
  if (positional->len < min)
    return usage (error, "%s: missing %s", cmd, what);
  if (positional->len > max)
    return usage (error, "%s: unexpected argument '%s'", cmd,
                  (const char *) g_ptr_array_index (positional, max));
  return TRUE;
}

/* --- profile fields -------------------------------------------------------- */

static gboolean
parse_number (const char *opt, const char *value, gboolean quantile, double *out, GError **error)
{
  g_autofree char *t = g_strstrip (g_strdup (value));
  gsize n = strlen (t);
  const char *start = t;
  gboolean percent = FALSE;

  if (n > 0 && t[n - 1] == '%')
    {
      t[--n] = '\0';
      percent = TRUE;
    }
  /* "p95" is how quantiles are usually written. */
  if (quantile && (*start == 'p' || *start == 'P'))
    {
      start++;
      percent = TRUE;
    }
  char *end = NULL;
  errno = 0;
  double d = g_ascii_strtod (start, &end);
  if (*start == '\0' || end == start || *end != '\0' || errno != 0 || !isfinite (d))
    return usage (error, "%s: '%s' is not a number", opt, value);
  if (quantile && (percent || d > 1.0))
    d /= 100.0;
  *out = d;
  return TRUE;
}

static gboolean
add_profile_field (json_object *o, const OptHit *hit, GError **error)
{
  const char *opt = hit->spec->name;
  const char *v = hit->value;
  const char *key = hit->spec->field;

  if (g_str_equal (opt, "--no-match"))
    {
      json_object_object_add (o, key, NULL);
      return TRUE;
    }
  if (g_str_has_suffix (key, "_mib"))
    {
      guint64 mib = 0;
      g_autoptr(GError) local = NULL;
      if (g_ascii_strcasecmp (v, "none") != 0 && !vmem_size_parse (v, &mib, &local))
        return usage (error, "%s: %s", opt, local->message);
      json_object_object_add (o, key, json_object_new_int64 ((gint64) mib));
      return TRUE;
    }
  if (g_str_equal (key, "margin_pct") || g_str_equal (key, "buffer_pct") ||
      g_str_equal (key, "risk_pct") || g_str_equal (key, "quantile"))
    {
      double d = 0;
      if (!parse_number (opt, v, g_str_equal (key, "quantile"), &d, error))
        return FALSE;
      json_object_object_add (o, key, json_object_new_double (d));
      return TRUE;
    }
  if (g_str_equal (key, "mode"))
    {
      VmemMode mode;
      if (!vmem_mode_from_string (v, &mode, NULL))
        return usage (error, "%s: '%s' is not balloon, virtio-mem or observe", opt, v);
      json_object_object_add (o, key, json_object_new_string (v));
      return TRUE;
    }
  if (g_str_equal (key, "scale"))
    {
      VmemScale scale;
      if (!vmem_scale_from_string (v, &scale, NULL))
        return usage (error, "%s: '%s' is not absolute or per-vcpu", opt, v);
      json_object_object_add (o, key, json_object_new_string (v));
      return TRUE;
    }
  if (g_str_equal (key, "prealloc"))
    {
      gboolean on = g_ascii_strcasecmp (v, "on") == 0 || g_ascii_strcasecmp (v, "yes") == 0 ||
                    g_ascii_strcasecmp (v, "true") == 0;
      gboolean off = g_ascii_strcasecmp (v, "off") == 0 || g_ascii_strcasecmp (v, "no") == 0 ||
                     g_ascii_strcasecmp (v, "false") == 0;
      if (!on && !off)
        return usage (error, "%s: '%s' is not on or off", opt, v);
      json_object_object_add (o, key, json_object_new_boolean (on));
      return TRUE;
    }
  if (g_str_equal (key, "priority"))
    {
      guint64 n;
      if (!g_ascii_string_to_unsigned (v, 10, 0, 100, &n, NULL))
        return usage (error, "%s: '%s' is not a whole number from 0 to 100", opt, v);
      json_object_object_add (o, key, json_object_new_int ((int) n));
      return TRUE;
    }
  /* --match: checked with the whole profile below. */
  json_object_object_add (o, key, json_object_new_string (v));
  return TRUE;
}

static gboolean
build_profile (VmemctlRequest *req, const char *cmd, const char *name, GArray *hits, GError **error)
{
  g_autoptr(GError) local = NULL;
  gboolean create = req->command == VMEMCTL_CMD_PROFILE_ADD;

  if (!vmem_profile_name_valid (name, &local))
    {
      g_autofree char *m = message_with_option (local->message);
      return usage (error, "%s: %s", cmd, m);
    }
  g_autoptr(json_object) fields = json_object_new_object ();
  json_object_object_add (fields, "name", json_object_new_string (name));
  for (guint i = 0; i < hits->len; i++)
    if (!add_profile_field (fields, &g_array_index (hits, OptHit, i), &local))
      return usage (error, "%s: %s", cmd, local->message);
  if (!create && json_object_object_length (fields) == 1)
    return usage (error, "%s: nothing to change (give at least one option, e.g. --demand 4G)", cmd);

  /* What the options say together (floor above ceiling, a bad pattern) is
   * checked here too, so a mistake never reaches the daemon.  For set, the
   * stored profile is not known here: the daemon checks the merged result. */
  g_autoptr(VmemProfile) base = vmem_profile_new (name);
  g_autoptr(VmemProfile) check = vmem_profile_from_json (fields, create ? NULL : base, &local);
  if (check == NULL)
    {
      g_autofree char *m = message_with_option (local->message);
      return usage (error, "%s: %s", cmd, m);
    }

  req->params = json_object_new_object ();
  json_object_object_add (req->params, "profile", g_steal_pointer (&fields));
  json_object_object_add (req->params, "create", json_object_new_boolean (create));
  return TRUE;
}

/* --- commands -------------------------------------------------------------- */

static json_object *
params_with_string (const char *key, const char *value)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, key, json_object_new_string (value));
  return o;
}

static gboolean
parse_profile (VmemctlRequest *req, int argc, char **argv, int first, GError **error)
{
  static const struct {
    const char *name;
    VmemctlCommandId id;
    const OptSpec *opts;
    const char *method;
  } subs[] = {
    { "add", VMEMCTL_CMD_PROFILE_ADD, profile_opts, "io.vmemd.ProfileSet" },
    { "set", VMEMCTL_CMD_PROFILE_SET, profile_opts, "io.vmemd.ProfileSet" },
    { "show", VMEMCTL_CMD_PROFILE_SHOW, no_opts, "io.vmemd.ProfileGet" },
    { "list", VMEMCTL_CMD_PROFILE_LIST, no_opts, "io.vmemd.ProfileList" },
    { "remove", VMEMCTL_CMD_PROFILE_REMOVE, remove_opts, "io.vmemd.ProfileDelete" },
    { "import", VMEMCTL_CMD_PROFILE_IMPORT, import_opts, "io.vmemd.ProfileImport" },
    { "export", VMEMCTL_CMD_PROFILE_EXPORT, no_opts, "io.vmemd.ProfileList" },
  };

  /* Global options may precede the subcommand too. */
  int i = first;
  gboolean help = FALSE;
  if (!scan_leading_globals (req, "profile", argc, argv, &i, &help, error))
    return FALSE;
  if (help)
    {
      req->command = VMEMCTL_CMD_HELP;
      req->topic = g_strdup ("profile");
      return TRUE;
    }
  if (i >= argc)
    return usage (error,
                  "profile: missing subcommand (add, set, show, list, remove, import or export)");

  const char *sub = argv[i];
  guint k;
  for (k = 0; k < G_N_ELEMENTS (subs); k++)
    if (g_str_equal (subs[k].name, sub))
      break;
  if (k == G_N_ELEMENTS (subs))
    return usage (error,
                  "profile: unknown subcommand '%s' (use add, set, show, list, remove, "
                  "import or export)",
                  sub);

  g_autofree char *cmd = g_strdup_printf ("profile %s", sub);
  g_autoptr(GPtrArray) pos = g_ptr_array_new ();
  g_autoptr(GArray) hits = g_array_new (FALSE, FALSE, sizeof (OptHit));
  if (!scan (req, cmd, argc, argv, i + 1, subs[k].opts, pos, hits, &help, error))
    return FALSE;
  if (help)
    {
      req->command = VMEMCTL_CMD_HELP;
      req->topic = g_strdup ("profile");
      return TRUE;
    }
  req->command = subs[k].id;
  req->method = subs[k].method;

  switch (req->command)
    {
    case VMEMCTL_CMD_PROFILE_ADD:
    case VMEMCTL_CMD_PROFILE_SET:
      if (!want_positional (cmd, pos, 1, 1, "profile NAME", error))
        return FALSE;
      return build_profile (req, cmd, g_ptr_array_index (pos, 0), hits, error);
    case VMEMCTL_CMD_PROFILE_SHOW:
      if (!want_positional (cmd, pos, 1, 1, "profile NAME", error))
        return FALSE;
      req->params = params_with_string ("name", g_ptr_array_index (pos, 0));
      return TRUE;
    case VMEMCTL_CMD_PROFILE_LIST:
      return want_positional (cmd, pos, 0, 0, "", error);
    case VMEMCTL_CMD_PROFILE_REMOVE:
      if (!want_positional (cmd, pos, 1, 1, "profile NAME", error))
        return FALSE;
      req->params = params_with_string ("name", g_ptr_array_index (pos, 0));
      json_object_object_add (req->params, "force",
                              json_object_new_boolean (has_flag (hits, "--force")));
      return TRUE;
    case VMEMCTL_CMD_PROFILE_IMPORT:
      if (!want_positional (cmd, pos, 1, 1, "FILE (or - for standard input)", error))
        return FALSE;
      req->file = g_strdup (g_ptr_array_index (pos, 0));
      req->params = json_object_new_object ();
      json_object_object_add (req->params, "replace",
                              json_object_new_boolean (has_flag (hits, "--replace")));
      return TRUE;
    case VMEMCTL_CMD_PROFILE_EXPORT:
      if (!want_positional (cmd, pos, 0, 1, "", error))
        return FALSE;
      req->file = g_strdup (pos->len ? (const char *) g_ptr_array_index (pos, 0) : "-");
      return TRUE;
    default:
      g_assert_not_reached ();
    }
}

VmemctlRequest *
vmemctl_request_parse (int argc, char **argv, GError **error)
{
  g_autoptr(VmemctlRequest) req = g_new0 (VmemctlRequest, 1);
  req->timeout_ms = VMEMCTL_DEFAULT_TIMEOUT_MS;

  /* Global options before the command. */
  int i = 1;
  gboolean help = FALSE;
  if (!scan_leading_globals (req, NULL, argc, argv, &i, &help, error))
    return NULL;
  if (help)
    {
      req->command = VMEMCTL_CMD_HELP;
      return g_steal_pointer (&req);
    }
  if (i >= argc)
    {
      usage (error, "no command given");
      return NULL;
    }

  /* "--version" is the version command spelled as an option. */
  const char *cmd = g_str_equal (argv[i], "--version") ? "version" : argv[i];
  if (g_str_equal (cmd, "replay"))
    {
      /* Its options are its own; it needs no daemon. */
      req->command = VMEMCTL_CMD_REPLAY;
      req->rest_argc = argc - i;
      req->rest_argv = argv + i;
      return g_steal_pointer (&req);
    }
  if (g_str_equal (cmd, "profile"))
    {
      if (!parse_profile (req, argc, argv, i + 1, error))
        return NULL;
      return g_steal_pointer (&req);
    }

  static const struct {
    const char *name;
    VmemctlCommandId id;
    const OptSpec *opts;
    const char *method;
  } cmds[] = {
    { "help", VMEMCTL_CMD_HELP, no_opts, NULL },
    { "version", VMEMCTL_CMD_VERSION, no_opts, "io.vmemd.Ping" },
    { "assign", VMEMCTL_CMD_ASSIGN, no_opts, "io.vmemd.Assign" },
    { "unassign", VMEMCTL_CMD_UNASSIGN, unassign_opts, "io.vmemd.Unassign" },
    { "status", VMEMCTL_CMD_STATUS, no_opts, "io.vmemd.Status" },
    { "explain", VMEMCTL_CMD_EXPLAIN, explain_opts, "io.vmemd.Explain" },
    { "history", VMEMCTL_CMD_HISTORY, history_opts, "io.vmemd.History" },
    { "metrics", VMEMCTL_CMD_METRICS, metrics_opts, "io.vmemd.Metrics" },
    { "hosts", VMEMCTL_CMD_HOSTS, no_opts, "io.vmemd.Hosts" },
    { "place", VMEMCTL_CMD_PLACE, place_opts, "io.vmemd.Place" },
  };
  guint k;
  for (k = 0; k < G_N_ELEMENTS (cmds); k++)
    if (g_str_equal (cmds[k].name, cmd))
      break;
  if (k == G_N_ELEMENTS (cmds))
    {
      usage (error, "unknown command '%s'", cmd);
      return NULL;
    }
  req->command = cmds[k].id;
  req->method = cmds[k].method;
  i++;

  const char *name = cmds[k].name;
  g_autoptr(GPtrArray) pos = g_ptr_array_new ();
  g_autoptr(GArray) hits = g_array_new (FALSE, FALSE, sizeof (OptHit));
  if (!scan (req, name, argc, argv, i, cmds[k].opts, pos, hits, &help, error))
    return NULL;
  if (help)
    {
      req->command = VMEMCTL_CMD_HELP;
      req->method = NULL;
      g_clear_pointer (&req->topic, g_free);
      req->topic = g_strdup (name);
      return g_steal_pointer (&req);
    }

  switch (req->command)
    {
    case VMEMCTL_CMD_HELP:
      if (!want_positional (name, pos, 0, 1, "", error))
        return NULL;
      if (pos->len == 1)
        {
          const char *topic = g_ptr_array_index (pos, 0);
          if (help_find (topic) == NULL)
            {
              usage (error, "help: unknown command '%s'", topic);
              return NULL;
            }
          req->topic = g_strdup (topic);
        }
      break;
    case VMEMCTL_CMD_VERSION:
    case VMEMCTL_CMD_STATUS:
      if (!want_positional (name, pos, 0, 0, "", error))
        return NULL;
      break;
    case VMEMCTL_CMD_ASSIGN:
      if (!want_positional (name, pos, 2, 2, pos->len == 0 ? "DOMAIN and WORKLOAD" : "WORKLOAD",
                            error))
        return NULL;
      {
        g_autoptr(GError) local = NULL;
        if (!vmem_profile_name_valid (g_ptr_array_index (pos, 1), &local))
          {
            g_autofree char *m = message_with_option (local->message);
            usage (error, "assign: WORKLOAD %s", strchr (m, ':') ? strchr (m, ':') + 2 : m);
            return NULL;
          }
      }
      req->params = params_with_string ("domain", g_ptr_array_index (pos, 0));
      json_object_object_add (req->params, "workload",
                              json_object_new_string (g_ptr_array_index (pos, 1)));
      break;
    case VMEMCTL_CMD_UNASSIGN:
      if (!want_positional (name, pos, 1, 1, "DOMAIN", error))
        return NULL;
      req->params = params_with_string ("domain", g_ptr_array_index (pos, 0));
      json_object_object_add (req->params, "restore",
                              json_object_new_boolean (has_flag (hits, "--restore")));
      break;
    case VMEMCTL_CMD_EXPLAIN:
      {
        const char *workload = flag_value (hits, "--workload");
        if (!want_positional (name, pos, 0, 1, "", error))
          return NULL;
        if (workload != NULL && pos->len == 1)
          {
            usage (error, "explain: give DOMAIN or --workload WORKLOAD, not both");
            return NULL;
          }
        if (workload == NULL && pos->len == 0)
          {
            usage (error, "explain: missing DOMAIN (or --workload WORKLOAD)");
            return NULL;
          }
        if (workload != NULL && *workload == '\0')
          {
            usage (error, "explain: --workload: the name is empty");
            return NULL;
          }
        req->params = workload ? params_with_string ("workload", workload)
                               : params_with_string ("domain", g_ptr_array_index (pos, 0));
      }
      break;
    case VMEMCTL_CMD_HISTORY:
      {
        const char *since = flag_value (hits, "--since");
        const char *limit = flag_value (hits, "--limit");
        if (!want_positional (name, pos, 1, 1, "DOMAIN", error))
          return NULL;
        req->params = params_with_string ("domain", g_ptr_array_index (pos, 0));
        if (since != NULL)
          {
            gint64 t = 0;
            g_autoptr(GError) local = NULL;
            if (!vmemctl_parse_since (since, g_get_real_time () / G_USEC_PER_SEC, &t, &local))
              {
                usage (error, "history: --since: %s", local->message);
                return NULL;
              }
            json_object_object_add (req->params, "since", json_object_new_int64 (t));
          }
        if (limit != NULL)
          {
            guint64 n = 0;
            if (!g_ascii_string_to_unsigned (limit, 10, 1, 100000, &n, NULL))
              {
                usage (error, "history: --limit: '%s' is not a number from 1 to 100000", limit);
                return NULL;
              }
            json_object_object_add (req->params, "limit", json_object_new_int64 ((gint64) n));
          }
      }
      break;
    case VMEMCTL_CMD_HOSTS:
      if (!want_positional (name, pos, 0, 0, "", error))
        return NULL;
      break;
    case VMEMCTL_CMD_PLACE:
      {
        const char *memory = flag_value (hits, "--memory");
        if (!want_positional (name, pos, 1, 1, "WORKLOAD", error))
          return NULL;
        req->params = params_with_string ("workload", g_ptr_array_index (pos, 0));
        if (memory != NULL)
          {
            guint64 mib = 0;
            g_autoptr(GError) local = NULL;
            if (!vmem_size_parse (memory, &mib, &local) || mib == 0 || mib > G_MAXINT32)
              {
                usage (error, "place: --memory: '%s' is not a size from 1M to 2047T", memory);
                return NULL;
              }
            json_object_object_add (req->params, "memory_mib", json_object_new_int64 ((gint64) mib));
          }
      }
      break;
    case VMEMCTL_CMD_METRICS:
      {
        const char *format = flag_value (hits, "--format");
        if (!want_positional (name, pos, 0, 0, "", error))
          return NULL;
        if (format != NULL && req->json)
          {
            usage (error, "metrics: give --format or --json, not both");
            return NULL;
          }
        if (format != NULL && !g_str_equal (format, "openmetrics") &&
            !g_str_equal (format, "prometheus"))
          {
            usage (error, "metrics: --format: '%s' is not openmetrics or prometheus", format);
            return NULL;
          }
        req->params = params_with_string ("format", req->json ? "json"
                                                    : format ? format
                                                             : "openmetrics");
      }
      break;
    default:
      g_assert_not_reached ();
    }
  return g_steal_pointer (&req);
}

gboolean
vmemctl_parse_since (const char *text, gint64 now, gint64 *out, GError **error)
{
  static const struct {
    char unit;
    gint64 seconds;
  } units[] = { { 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 } };
  gsize len = text ? strlen (text) : 0;

  if (len >= 2 && g_ascii_isdigit (text[0]))
    for (guint i = 0; i < G_N_ELEMENTS (units); i++)
      if (text[len - 1] == units[i].unit)
        {
          g_autofree char *digits = g_strndup (text, len - 1);
          guint64 n = 0;
          if (!g_ascii_string_to_unsigned (digits, 10, 0, G_MAXINT64 / units[i].seconds, &n, NULL) ||
              (gint64) n * units[i].seconds > now)
            break;
          *out = now - (gint64) n * units[i].seconds;
          return TRUE;
        }
  if (len > 0)
    {
      g_autoptr(GTimeZone) local = g_time_zone_new_local ();
      g_autoptr(GDateTime) dt = g_date_time_new_from_iso8601 (text, local);
      if (dt != NULL)
        {
          *out = g_date_time_to_unix (dt);
          return TRUE;
        }
    }
  g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
               "'%s' is neither a duration (90s, 30m, 6h, 2d) nor an ISO 8601 time", text ? text : "");
  return FALSE;
}

void
vmemctl_request_free (VmemctlRequest *req)
{
  if (req == NULL)
    return;
  g_free (req->socket);
  vmem_json_put (req->params);
  g_free (req->file);
  g_free (req->topic);
  g_free (req);
}

/* --- import files ---------------------------------------------------------- */

static gboolean
read_all (const char *path, char **out, gsize *len, GError **error)
{
  if (!g_str_equal (path, "-"))
    {
      g_autoptr(GError) local = NULL;
      if (!g_file_get_contents (path, out, len, &local))
        return usage (error, "%s", local->message);
      return TRUE;
    }
  g_autoptr(GString) s = g_string_new (NULL);
  for (;;)
    {
      char buf[65536];
      ssize_t n = read (STDIN_FILENO, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return usage (error, "standard input: %s", g_strerror (errno));
      if (n == 0)
        break;
      g_string_append_len (s, buf, n);
      if (s->len > VMEMCTL_MAX_IMPORT)
        break;
    }
  *len = s->len;
  *out = g_string_free (g_steal_pointer (&s), FALSE);
  return TRUE;
}

gboolean
vmemctl_check_profiles (json_object *arr, const char *what, GError **error)
{
  g_autoptr(GHashTable) names = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  for (size_t i = 0; i < json_object_array_length (arr); i++)
    {
      json_object *item = json_object_array_get_idx (arr, i);
      json_object *jn = NULL;
      const char *name = NULL;
      if (json_object_is_type (item, json_type_object) &&
          json_object_object_get_ex (item, "name", &jn) &&
          json_object_is_type (jn, json_type_string))
        name = json_object_get_string (jn);
      g_autofree char *entry = name ? g_strdup_printf ("profile %zu ('%s')", i + 1, name)
                                    : g_strdup_printf ("profile %zu", i + 1);
      g_autoptr(GError) local = NULL;
      g_autoptr(VmemProfile) p = vmem_profile_from_json (item, NULL, &local);
      if (p == NULL)
        return usage (error, "%s: %s: %s", what, entry, local->message);
      if (!g_hash_table_add (names, g_strdup (p->name)))
        return usage (error, "%s: %s: the name appears more than once", what, entry);
    }
  return TRUE;
}

json_object *
vmemctl_load_profiles (const char *path, GError **error)
{
  g_autofree char *contents = NULL;
  gsize len = 0;
  const char *what = g_str_equal (path, "-") ? "standard input" : path;

  if (!read_all (path, &contents, &len, error))
    return NULL;
  if (len > VMEMCTL_MAX_IMPORT)
    {
      usage (error, "%s: larger than 16 MiB", what);
      return NULL;
    }
  if (memchr (contents, '\0', len) != NULL)
    {
      usage (error, "%s: not valid JSON: contains a NUL byte", what);
      return NULL;
    }

  g_autoptr(json_tokener) tok = json_tokener_new ();
  g_autoptr(json_object) doc = json_tokener_parse_ex (tok, contents, (int) len);
  enum json_tokener_error jerr = json_tokener_get_error (tok);
  if (jerr == json_tokener_continue)
    {
      usage (error, "%s: not valid JSON: unexpected end of input", what);
      return NULL;
    }
  if (jerr != json_tokener_success)
    {
      usage (error, "%s: not valid JSON at byte %zu: %s", what, json_tokener_get_parse_end (tok),
             json_tokener_error_desc (jerr));
      return NULL;
    }
  for (gsize rest = json_tokener_get_parse_end (tok); rest < len; rest++)
    if (!g_ascii_isspace (contents[rest]))
      {
        usage (error, "%s: not valid JSON: trailing data at byte %zu", what, rest);
        return NULL;
      }

  json_object *arr = doc;
  if (json_object_is_type (doc, json_type_object))
    {
      if (!json_object_object_get_ex (doc, "profiles", &arr))
        arr = NULL;
      json_object_object_foreach (doc, key, v)
        {
          (void) v;
          if (!g_str_equal (key, "profiles"))
            {
              usage (error, "%s: unknown key '%s' (expected only \"profiles\")", what, key);
              return NULL;
            }
        }
    }
  if (arr == NULL || !json_object_is_type (arr, json_type_array))
    {
      usage (error, "%s: expected an array of profiles or {\"profiles\": [...]}", what);
      return NULL;
    }
  if (!vmemctl_check_profiles (arr, what, error))
    return NULL;
  return json_object_get (arr);
}
