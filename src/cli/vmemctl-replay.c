/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmemctl replay: the estimator, offline, over a usage trace. */
#include "vmemctl-replay.h"
#include "vmemctl-args.h"
#include "vmemctl-replay-file.h"
#include "vmem-cleanup.h"
#include "vmem-error.h"
#include "vmem-replay.h"

#include <math.h>
#include <stdio.h>
#include <unistd.h>

#define CSV_HEADER "time,domain,estimate_kib,source\n"

typedef struct {
  VmemReplayEstimator estimator;
  gboolean            summary;
  gboolean            json;
  GString            *out;             /* printed once the whole trace is read */
  guint64             n_printed;
  VmemReplaySummary   totals;
  int                 progress_shown;  /* last percentage drawn; -1 = none */
} Output;

static void
print_case (const VmemReplayCase *c, gpointer user_data)
{
  Output *o = user_data;

  if (o->summary)
    {
      vmem_replay_summary_add (&o->totals, c, o->estimator);
      return;
    }
  if (o->json)
    {
      g_autoptr(json_object) obj = json_object_new_object ();
      json_object_object_add (obj, "time", json_object_new_int64 (c->t));
      json_object_object_add (obj, "domain", json_object_new_string (c->domain));
      json_object_object_add (obj, "workload", json_object_new_string (c->workload));
      json_object_object_add (obj, "estimate_kib",
                              json_object_new_int64 ((gint64) c->estimate_kib[o->estimator]));
      json_object_object_add (obj, "source", json_object_new_string (c->source[o->estimator]));
      json_object_object_add (obj, "peers", json_object_new_int64 (c->peers));
      json_object_object_add (obj, "peak_kib", json_object_new_int64 ((gint64) c->peak_kib));
      g_string_append_printf (o->out, "%s%s", o->n_printed == 0 ? "[\n  " : ",\n  ",
                              json_object_to_json_string_ext (obj, JSON_C_TO_STRING_PLAIN));
    }
  else
    g_string_append_printf (o->out, "%s%" G_GINT64_FORMAT ",%s,%" G_GUINT64_FORMAT ",%s\n",
                            o->n_printed == 0 ? CSV_HEADER : "", c->t, c->domain,
                            c->estimate_kib[o->estimator], c->source[o->estimator]);
  o->n_printed++;
}

static void
draw_progress (double fraction, gpointer user_data)
{
  Output *o = user_data;
  int pct = (int) floor (fraction * 100.0);
  if (pct == o->progress_shown)
    return;
  o->progress_shown = pct;
  int filled = pct * 40 / 100;
  fprintf (stderr, "\rreplay [%.*s%*s] %3d%%", filled, "########################################",
           40 - filled, "", pct);
  fflush (stderr);
}

static int
usage_error (const char *message)
{
  fprintf (stderr, "vmemctl replay: %s (see vmemctl replay --help)\n", message);
  return VMEMCTL_EXIT_USAGE;
}

/* A finite number, or a usage error naming the option; NULL @text (not
 * given) leaves *value alone. */
static gboolean
parse_number (const char *option, const char *text, double *value, GError **error)
{
  if (text == NULL)
    return TRUE;
  char *end = NULL;
  double d = g_ascii_strtod (text, &end);
  if (*text == '\0' || end == text || *end != '\0' || !isfinite (d))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "%s: '%s' is not a number",
                   option, text);
      return FALSE;
    }
  *value = d;
  return TRUE;
}

int
vmemctl_replay_main (int argc, char **argv)
{
  gboolean summary = FALSE, json = FALSE, first_start = FALSE;
  g_autofree char *half_life = NULL, *quantile = NULL, *margin = NULL, *risk = NULL;
  g_autofree char *estimator_name = NULL;
  GOptionEntry entries[] = {
    { "summary", 0, 0, G_OPTION_ARG_NONE, &summary,
      "Print under-provisioned starts, waste and GiB-days instead of the estimates", NULL },
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print JSON", NULL },
    { "first-start", 0, 0, G_OPTION_ARG_NONE, &first_start,
      "Size every start as if the domain were new, from its peers alone", NULL },
    { "half-life", 0, 0, G_OPTION_ARG_STRING, &half_life,
      "Half-life of peak weights in hours (default 24)", "H" },
    { "quantile", 0, 0, G_OPTION_ARG_STRING, &quantile,
      "Quantile of the peer levels, 0.5 to 1 (default 0.95)", "Q" },
    { "margin", 0, 0, G_OPTION_ARG_STRING, &margin,
      "Margin in percent until there are outcomes to calibrate it (default 15)", "PCT" },
    { "risk", 0, 0, G_OPTION_ARG_STRING, &risk,
      "Share of starts allowed to need more than they were given, in percent: "
      "an upper bound the margin is calibrated to hold with 90 % confidence (default 5)", "PCT" },
    { "estimator", 0, 0, G_OPTION_ARG_STRING, &estimator_name,
      "vmemd (default), vpa (Kubernetes VPA: p90 of daily peaks +15 %), vpa-upper "
      "(VPA's upper bound) or static (the domain's memory)", "NAME" },
    { NULL },
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new ("TRACE.csv[.gz]");
  g_autoptr(GError) error = NULL;

  g_option_context_set_summary (ctx,
    "Replays a usage trace (time,domain,workload,vcpus,ceiling_kib,used_kib) through\n"
    "the estimator: every domain starts at every 24 h boundary, sized as the daemon\n"
    "sizes it from the history before that instant (its own and its peers' hourly\n"
    "peaks; with --first-start its peers' alone), with the margin calibrated to the\n"
    "risk on the outcomes complete by then, and the estimate is compared with its\n"
    "peak over the next 24 h.  Prints time,domain,estimate_kib,source, once the\n"
    "whole trace has been read.\n"
    "\n"
    "Exit status: 0 success; 1 the output could not be written; 2 a bad option,\n"
    "or a trace that cannot be read or has a bad line (named; nothing printed).");
  g_option_context_add_main_entries (ctx, entries, NULL);
  g_option_context_set_help_enabled (ctx, TRUE);

  /* g_option_context_parse() takes what it consumed out of the array it
   * is given without freeing it: parse a copy of the pointers and keep
   * every string owned by args. */
  g_auto(GStrv) args = g_new0 (char *, argc + 1);
  for (int i = 0; i < argc; i++)
    args[i] = g_strdup (argv[i]);
  g_autofree char **parse_argv = g_memdup2 (args, sizeof (char *) * (argc + 1));
  int parse_argc = argc;
  if (!g_option_context_parse (ctx, &parse_argc, &parse_argv, &error))
    return usage_error (error->message);
  if (parse_argc != 2)
    return usage_error (parse_argc < 2 ? "missing TRACE.csv" : "more than one trace given");

  g_autoptr(GString) out = g_string_new (NULL);
  Output o = { .progress_shown = -1, .summary = summary, .json = json, .out = out };
  if (estimator_name != NULL &&
      !vmem_replay_estimator_from_string (estimator_name, &o.estimator, &error))
    return usage_error (error->message);

  VmemEstimatorConfig config;
  vmem_estimator_config_init (&config);
  if (!parse_number ("--half-life", half_life, &config.half_life_hours, &error) ||
      !parse_number ("--quantile", quantile, &config.quantile, &error) ||
      !parse_number ("--margin", margin, &config.margin_pct, &error) ||
      !parse_number ("--risk", risk, &config.risk_pct, &error) ||
      !vmem_estimator_config_validate (&config, &error))
    return usage_error (error->message);

  gboolean tty = isatty (STDERR_FILENO);
  gboolean ok = vmemctl_replay_file (parse_argv[1], &config, first_start, print_case,
                                     tty ? draw_progress : NULL, &o, &error);
  if (o.progress_shown >= 0)
    fprintf (stderr, "\r%*s\r", 60, "");
  if (!ok)
    {
      /* The trace is the input: a file that cannot be read or has a bad
       * line is a usage error, and no estimate made before it is printed. */
      fprintf (stderr, "vmemctl replay: %s\n", error->message);
      return VMEMCTL_EXIT_USAGE;
    }
  fwrite (out->str, 1, out->len, stdout);

  if (o.summary && o.json)
    {
      g_autoptr(json_object) obj = json_object_new_object ();
      json_object_object_add (obj, "estimator",
                              json_object_new_string (vmem_replay_estimator_to_string (o.estimator)));
      json_object_object_add (obj, "summary", vmem_replay_summary_to_json (&o.totals));
      printf ("%s\n", json_object_to_json_string_ext (obj, JSON_C_TO_STRING_PRETTY |
                                                      JSON_C_TO_STRING_SPACED));
    }
  else if (o.summary)
    {
      g_autofree char *table = vmem_replay_summary_format (&o.totals);
      printf ("estimator %s: under-provisioned = next-24 h peak above the estimate; "
              "waste = sum(max(0, estimate - peak)) / sum(estimate)\n%s",
              vmem_replay_estimator_to_string (o.estimator), table);
    }
  else if (o.json)
    printf ("%s]\n", o.n_printed == 0 ? "[" : "\n");
  else if (o.n_printed == 0)
    printf (CSV_HEADER);

  if (fflush (stdout) != 0 || ferror (stdout))
    return VMEMCTL_EXIT_FAILED;
  return VMEMCTL_EXIT_OK;
}
