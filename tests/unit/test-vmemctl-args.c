/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmemctl's command line and import files, without a daemon. */
#include "vmemctl-args.h"
#include "vmem-cleanup.h"
#include "vmem-error.h"

#include <glib/gstdio.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

/* Parses a NULL-terminated argument list (without "vmemctl"); must succeed. */
static VmemctlRequest *
parse_ok_v (const char *first, va_list ap)
{
  g_autoptr(GPtrArray) args = g_ptr_array_new ();
  g_ptr_array_add (args, (gpointer) "vmemctl");
  for (const char *a = first; a != NULL; a = va_arg (ap, const char *))
    g_ptr_array_add (args, (gpointer) a);
  g_ptr_array_add (args, NULL);

  /* The request borrows argv for replay: keep a copy alive with it. */
  static GPtrArray *keep;
  if (keep == NULL)
    keep = g_ptr_array_new_with_free_func ((GDestroyNotify) g_strfreev);
  char **argv = g_strdupv ((char **) args->pdata);
  g_ptr_array_add (keep, argv);

  g_autoptr(GError) error = NULL;
  VmemctlRequest *req = vmemctl_request_parse ((int) args->len - 1, argv, &error);
  if (req == NULL)
    fail_msg ("refused: %s", error->message);
  assert_null (error);
  return req;
}

static G_GNUC_NULL_TERMINATED VmemctlRequest *
parse_ok (const char *first, ...)
{
  va_list ap;
  va_start (ap, first);
  VmemctlRequest *req = parse_ok_v (first, ap);
  va_end (ap);
  return req;
}

/* Must fail with INVALID_ARGUMENT and a message containing @needle. */
static G_GNUC_NULL_TERMINATED void
parse_fails (const char *needle, ...)
{
  va_list ap;
  g_autoptr(GPtrArray) args = g_ptr_array_new ();
  g_ptr_array_add (args, (gpointer) "vmemctl");
  va_start (ap, needle);
  for (const char *a = va_arg (ap, const char *); a != NULL; a = va_arg (ap, const char *))
    g_ptr_array_add (args, (gpointer) a);
  va_end (ap);
  g_ptr_array_add (args, NULL);

  g_autoptr(GError) error = NULL;
  g_autoptr(VmemctlRequest) req =
               vmemctl_request_parse ((int) args->len - 1, (char **) args->pdata, &error);
  g_autofree char *joined = g_strjoinv (" ", (char **) args->pdata);
  if (req != NULL)
    fail_msg ("'%s' was accepted", joined);
  assert_non_null (error);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  assert_int_equal (vmemctl_exit_code (error), VMEMCTL_EXIT_USAGE);
  if (strstr (error->message, needle) == NULL)
    fail_msg ("'%s': message '%s' lacks '%s'", joined, error->message, needle);
  /* One line, always. */
  assert_null (strchr (error->message, '\n'));
}

static json_object *
field (json_object *o, const char *key)
{
  json_object *v = NULL;
  if (!json_object_object_get_ex (o, key, &v))
    fail_msg ("no key '%s' in %s", key, json_object_to_json_string (o));
  return v;
}

static gint64
field_i64 (json_object *o, const char *key)
{
  return json_object_get_int64 (field (o, key));
}

static const char *
field_str (json_object *o, const char *key)
{
  return json_object_get_string (field (o, key));
}

static gboolean
field_bool (json_object *o, const char *key)
{
  json_object *v = field (o, key);
  assert_true (json_object_is_type (v, json_type_boolean));
  return json_object_get_boolean (v);
}

/* --- profile add / set ------------------------------------------------------ */

static void
test_profile_add_every_option (void **state)
{
  g_autoptr(VmemctlRequest) r = parse_ok (
    "profile", "add", "erp", "--demand", "2G", "--floor", "512M", "--ceiling", "4GiB", "--margin",
    "20%", "--quantile", "p99", "--buffer", "25", "--mode", "virtio-mem", "--prealloc", "off",
    "--scale", "per-vcpu", "--priority", "70", "--match", "erp-*", NULL);
  assert_int_equal (r->command, VMEMCTL_CMD_PROFILE_ADD);
  assert_string_equal (r->method, "io.vmemd.ProfileSet");
  assert_true (field_bool (r->params, "create"));
  json_object *p = field (r->params, "profile");
  assert_string_equal (field_str (p, "name"), "erp");
  assert_int_equal (field_i64 (p, "demand_mib"), 2048);
  assert_int_equal (field_i64 (p, "floor_mib"), 512);
  assert_int_equal (field_i64 (p, "ceiling_mib"), 4096);
  assert_true (fabs (json_object_get_double (field (p, "margin_pct")) - 20) < 1e-9);
  assert_true (fabs (json_object_get_double (field (p, "quantile")) - 0.99) < 1e-9);
  assert_true (fabs (json_object_get_double (field (p, "buffer_pct")) - 25) < 1e-9);
  assert_string_equal (field_str (p, "mode"), "virtio-mem");
  assert_false (field_bool (p, "prealloc"));
  assert_string_equal (field_str (p, "scale"), "per-vcpu");
  assert_int_equal (field_i64 (p, "priority"), 70);
  assert_string_equal (field_str (p, "match"), "erp-*");
  assert_int_equal (json_object_object_length (p), 12);
}

static void
test_profile_add_equals_form_and_units (void **state)
{
  g_autoptr(VmemctlRequest) r = parse_ok ("profile", "add", "db", "--demand=1536", "--ceiling=1T",
                                           "--floor=1.5G", "--quantile=95", "--prealloc=on", NULL);
  json_object *p = field (r->params, "profile");
  assert_int_equal (field_i64 (p, "demand_mib"), 1536);
  assert_int_equal (field_i64 (p, "ceiling_mib"), 1024 * 1024);
  assert_int_equal (field_i64 (p, "floor_mib"), 1536);
  assert_true (fabs (json_object_get_double (field (p, "quantile")) - 0.95) < 1e-9);
  assert_true (field_bool (p, "prealloc"));
  /* Only what was given is sent: the daemon fills in the defaults. */
  assert_int_equal (json_object_object_length (p), 6);
}

static void
test_profile_add_name_only (void **state)
{
  g_autoptr(VmemctlRequest) r = parse_ok ("profile", "add", "web", NULL);
  json_object *p = field (r->params, "profile");
  assert_int_equal (json_object_object_length (p), 1);
  assert_string_equal (field_str (p, "name"), "web");
}

static void
test_profile_set_is_partial (void **state)
{
  g_autoptr(VmemctlRequest) r = parse_ok ("profile", "set", "erp", "--ceiling", "none",
                                           "--no-match", "--priority", "0", NULL);
  assert_int_equal (r->command, VMEMCTL_CMD_PROFILE_SET);
  assert_string_equal (r->method, "io.vmemd.ProfileSet");
  assert_false (field_bool (r->params, "create"));
  json_object *p = field (r->params, "profile");
  assert_int_equal (json_object_object_length (p), 4);
  assert_int_equal (field_i64 (p, "ceiling_mib"), 0);
  assert_null (field (p, "match")); /* JSON null clears the pattern */
  assert_int_equal (field_i64 (p, "priority"), 0);
}

static void
test_profile_option_errors_name_the_option (void **state)
{
  parse_fails ("--demand: invalid size '2Q'", "profile", "add", "erp", "--demand", "2Q", NULL);
  parse_fails ("--demand", "profile", "add", "erp", "--demand", "-1G", NULL);
  parse_fails ("--ceiling", "profile", "set", "erp", "--ceiling", "", NULL);
  parse_fails ("--floor", "profile", "set", "erp", "--floor=lots", NULL);
  parse_fails ("--demand: invalid size '0.3M'", "profile", "add", "erp", "--demand", "0.3M", NULL);
  parse_fails ("--demand: invalid size '2P'", "profile", "add", "erp", "--demand", "2P", NULL);
  parse_fails ("--margin: 'abc' is not a number", "profile", "add", "erp", "--margin", "abc", NULL);
  parse_fails ("--margin: 1000 is out of range", "profile", "add", "erp", "--margin", "1000", NULL);
  parse_fails ("--buffer", "profile", "add", "erp", "--buffer", "-5", NULL);
  parse_fails ("--quantile: 0.3 is out of range", "profile", "add", "erp", "--quantile", "0.3",
               NULL);
  parse_fails ("--quantile", "profile", "add", "erp", "--quantile", "nan", NULL);
  parse_fails ("--priority: '101'", "profile", "add", "erp", "--priority", "101", NULL);
  parse_fails ("--priority: '-1'", "profile", "add", "erp", "--priority", "-1", NULL);
  parse_fails ("--mode: 'fast'", "profile", "add", "erp", "--mode", "fast", NULL);
  parse_fails ("--scale: 'vcpu'", "profile", "add", "erp", "--scale", "vcpu", NULL);
  parse_fails ("--prealloc: 'maybe'", "profile", "add", "erp", "--prealloc", "maybe", NULL);
  parse_fails ("--match", "profile", "add", "erp", "--match", "a/b", NULL);
  parse_fails ("--floor: 4G is above the ceiling 2G", "profile", "add", "erp", "--floor", "4G",
               "--ceiling", "2G", NULL);
  parse_fails ("--demand: 8G is above the ceiling 4G", "profile", "add", "erp", "--demand", "8G",
               "--ceiling", "4G", NULL);
  parse_fails ("--demand needs a value", "profile", "add", "erp", "--demand", NULL);
  parse_fails ("--no-match takes no value", "profile", "set", "erp", "--no-match=x", NULL);
  parse_fails ("profile add: unknown option --demnad", "profile", "add", "erp", "--demnad", "2G",
               NULL);
  parse_fails ("profile add: unknown option --force", "profile", "add", "erp", "--force", NULL);
}

static void
test_profile_name_and_arguments (void **state)
{
  parse_fails ("profile add: missing profile NAME", "profile", "add", NULL);
  parse_fails ("profile add: missing profile NAME", "profile", "add", "--demand", "2G", NULL);
  parse_fails ("NAME: 'x y' may only contain", "profile", "add", "x y", NULL);
  parse_fails ("NAME", "profile", "add", "a/b", NULL);
  parse_fails ("NAME", "profile", "set", "-", "--demand", "1G", NULL);
  parse_fails ("profile add: unexpected argument 'extra'", "profile", "add", "erp", "extra", NULL);
  parse_fails ("profile set: nothing to change", "profile", "set", "erp", NULL);
  parse_fails ("profile: missing subcommand", "profile", NULL);
  parse_fails ("profile: unknown subcommand 'delete'", "profile", "delete", "erp", NULL);
}

/* --- the other profile commands --------------------------------------------- */

static void
test_profile_show_list_remove (void **state)
{
  g_autoptr(VmemctlRequest) show = parse_ok ("profile", "show", "erp", NULL);
  assert_int_equal (show->command, VMEMCTL_CMD_PROFILE_SHOW);
  assert_string_equal (show->method, "io.vmemd.ProfileGet");
  assert_string_equal (field_str (show->params, "name"), "erp");

  g_autoptr(VmemctlRequest) list = parse_ok ("profile", "list", NULL);
  assert_int_equal (list->command, VMEMCTL_CMD_PROFILE_LIST);
  assert_string_equal (list->method, "io.vmemd.ProfileList");
  assert_null (list->params);

  g_autoptr(VmemctlRequest) rm = parse_ok ("profile", "remove", "erp", NULL);
  assert_string_equal (rm->method, "io.vmemd.ProfileDelete");
  assert_false (field_bool (rm->params, "force"));
  g_autoptr(VmemctlRequest) rmf = parse_ok ("profile", "remove", "--force", "erp", NULL);
  assert_true (field_bool (rmf->params, "force"));
  assert_string_equal (field_str (rmf->params, "name"), "erp");

  parse_fails ("profile show: missing profile NAME", "profile", "show", NULL);
  parse_fails ("profile show: unexpected argument 'b'", "profile", "show", "a", "b", NULL);
  parse_fails ("profile list: unexpected argument 'x'", "profile", "list", "x", NULL);
  parse_fails ("profile remove: unknown option --forec", "profile", "remove", "erp", "--forec",
               NULL);
  parse_fails ("profile remove: missing profile NAME", "profile", "remove", "--force", NULL);
}

static void
test_profile_import_export (void **state)
{
  g_autoptr(VmemctlRequest) imp = parse_ok ("profile", "import", "-", NULL);
  assert_int_equal (imp->command, VMEMCTL_CMD_PROFILE_IMPORT);
  assert_string_equal (imp->method, "io.vmemd.ProfileImport");
  assert_string_equal (imp->file, "-");
  assert_false (field_bool (imp->params, "replace"));
  g_autoptr(VmemctlRequest) rep = parse_ok ("profile", "import", "--replace", "p.json", NULL);
  assert_string_equal (rep->file, "p.json");
  assert_true (field_bool (rep->params, "replace"));

  g_autoptr(VmemctlRequest) out = parse_ok ("profile", "export", NULL);
  assert_int_equal (out->command, VMEMCTL_CMD_PROFILE_EXPORT);
  assert_string_equal (out->method, "io.vmemd.ProfileList");
  assert_string_equal (out->file, "-");
  g_autoptr(VmemctlRequest) outf = parse_ok ("profile", "export", "all.json", NULL);
  assert_string_equal (outf->file, "all.json");

  parse_fails ("profile import: missing FILE", "profile", "import", NULL);
  parse_fails ("profile import: unexpected argument 'b'", "profile", "import", "a", "b", NULL);
  parse_fails ("profile export: unexpected argument 'b'", "profile", "export", "a", "b", NULL);
  parse_fails ("profile export: unknown option --replace", "profile", "export", "--replace", NULL);
}

/* --- domains, status, explain, version, help, replay ------------------------ */

static void
test_assign_unassign (void **state)
{
  g_autoptr(VmemctlRequest) a = parse_ok ("assign", "vm1", "erp", NULL);
  assert_int_equal (a->command, VMEMCTL_CMD_ASSIGN);
  assert_string_equal (a->method, "io.vmemd.Assign");
  assert_string_equal (field_str (a->params, "domain"), "vm1");
  assert_string_equal (field_str (a->params, "workload"), "erp");

  g_autoptr(VmemctlRequest) u = parse_ok ("unassign", "vm1", NULL);
  assert_string_equal (u->method, "io.vmemd.Unassign");
  assert_string_equal (field_str (u->params, "domain"), "vm1");
  assert_false (field_bool (u->params, "restore"));
  g_autoptr(VmemctlRequest) ur = parse_ok ("unassign", "--restore", "vm1", NULL);
  assert_true (field_bool (ur->params, "restore"));

  parse_fails ("assign: missing DOMAIN and WORKLOAD", "assign", NULL);
  parse_fails ("assign: missing WORKLOAD", "assign", "vm1", NULL);
  parse_fails ("assign: unexpected argument 'x'", "assign", "vm1", "erp", "x", NULL);
  parse_fails ("assign: WORKLOAD", "assign", "vm1", "no good", NULL);
  parse_fails ("unassign: missing DOMAIN", "unassign", NULL);
  parse_fails ("unassign: unknown option --restor", "unassign", "vm1", "--restor", NULL);
}

static void
test_history (void **state)
{
  g_autoptr(VmemctlRequest) h = parse_ok ("history", "vm1", NULL);
  assert_int_equal (h->command, VMEMCTL_CMD_HISTORY);
  assert_string_equal (h->method, "io.vmemd.History");
  assert_string_equal (field_str (h->params, "domain"), "vm1");
  assert_int_equal (json_object_object_length (h->params), 1);

  gint64 now = g_get_real_time () / G_USEC_PER_SEC;
  g_autoptr(VmemctlRequest) s = parse_ok ("history", "vm1", "--since", "2h", "--limit", "50", NULL);
  gint64 since = json_object_get_int64 (field (s->params, "since"));
  assert_true (since >= now - 7200 - 2 && since <= now - 7200 + 2);
  assert_int_equal (json_object_get_int64 (field (s->params, "limit")), 50);

  parse_fails ("history: missing DOMAIN", "history", NULL);
  parse_fails ("--since: '3x' is neither", "history", "vm1", "--since", "3x", NULL);
  parse_fails ("--limit: '0' is not a number", "history", "vm1", "--limit", "0", NULL);
  parse_fails ("--limit: 'many'", "history", "vm1", "--limit", "many", NULL);

  gint64 t = 0;
  g_autoptr(GError) error = NULL;
  assert_true (vmemctl_parse_since ("90s", 1000, &t, &error));
  assert_int_equal (t, 910);
  assert_true (vmemctl_parse_since ("30m", 10000, &t, &error));
  assert_int_equal (t, 8200);
  assert_true (vmemctl_parse_since ("1d", 100000, &t, &error));
  assert_int_equal (t, 13600);
  assert_true (vmemctl_parse_since ("2026-12-02T06:00:00Z", 0, &t, &error));
  assert_int_equal (t, 1796191200);
  /* Before the epoch, or no unit: refused. */
  assert_false (vmemctl_parse_since ("2d", 1000, &t, &error));
  g_clear_error (&error);
  assert_false (vmemctl_parse_since ("12", 1000, &t, &error));
  g_clear_error (&error);
  assert_false (vmemctl_parse_since ("", 1000, &t, &error));
  g_clear_error (&error);
}

static void
test_metrics (void **state)
{
  g_autoptr(VmemctlRequest) m = parse_ok ("metrics", NULL);
  assert_int_equal (m->command, VMEMCTL_CMD_METRICS);
  assert_string_equal (m->method, "io.vmemd.Metrics");
  assert_string_equal (field_str (m->params, "format"), "openmetrics");
  assert_int_equal (json_object_object_length (m->params), 1);

  g_autoptr(VmemctlRequest) p = parse_ok ("metrics", "--format", "prometheus", NULL);
  assert_string_equal (field_str (p->params, "format"), "prometheus");
  g_autoptr(VmemctlRequest) o = parse_ok ("metrics", "--format=openmetrics", NULL);
  assert_string_equal (field_str (o->params, "format"), "openmetrics");
  /* --json asks for the families, wherever it stands. */
  g_autoptr(VmemctlRequest) j = parse_ok ("metrics", "--json", NULL);
  assert_string_equal (field_str (j->params, "format"), "json");
  g_autoptr(VmemctlRequest) j2 = parse_ok ("--json", "metrics", NULL);
  assert_string_equal (field_str (j2->params, "format"), "json");

  parse_fails ("metrics: --format: 'xml' is not openmetrics or prometheus", "metrics", "--format",
               "xml", NULL);
  parse_fails ("metrics: give --format or --json, not both", "metrics", "--json", "--format",
               "prometheus", NULL);
  parse_fails ("metrics", "metrics", "web-1", NULL);
  parse_fails ("metrics: unknown option --since", "metrics", "--since", "1h", NULL);
}

static void
test_status_explain_version (void **state)
{
  g_autoptr(VmemctlRequest) s = parse_ok ("status", NULL);
  assert_int_equal (s->command, VMEMCTL_CMD_STATUS);
  assert_string_equal (s->method, "io.vmemd.Status");
  assert_null (s->params);
  parse_fails ("status: unexpected argument 'x'", "status", "x", NULL);

  g_autoptr(VmemctlRequest) d = parse_ok ("explain", "vm1", NULL);
  assert_string_equal (d->method, "io.vmemd.Explain");
  assert_string_equal (field_str (d->params, "domain"), "vm1");
  assert_int_equal (json_object_object_length (d->params), 1);
  g_autoptr(VmemctlRequest) w = parse_ok ("explain", "--workload", "erp", NULL);
  assert_string_equal (field_str (w->params, "workload"), "erp");
  assert_int_equal (json_object_object_length (w->params), 1);
  parse_fails ("explain: missing DOMAIN", "explain", NULL);
  parse_fails ("not both", "explain", "vm1", "--workload", "erp", NULL);
  parse_fails ("explain: --workload needs a value", "explain", "--workload", NULL);

  g_autoptr(VmemctlRequest) v = parse_ok ("version", NULL);
  assert_int_equal (v->command, VMEMCTL_CMD_VERSION);
  assert_string_equal (v->method, "io.vmemd.Ping");
  g_autoptr(VmemctlRequest) v2 = parse_ok ("--version", NULL);
  assert_int_equal (v2->command, VMEMCTL_CMD_VERSION);
  parse_fails ("version: unexpected argument 'x'", "version", "x", NULL);
}

static void
test_help (void **state)
{
  g_autoptr(VmemctlRequest) h1 = parse_ok ("--help", NULL);
  assert_int_equal (h1->command, VMEMCTL_CMD_HELP);
  assert_null (h1->topic);
  g_autoptr(VmemctlRequest) h2 = parse_ok ("help", NULL);
  assert_int_equal (h2->command, VMEMCTL_CMD_HELP);
  g_autoptr(VmemctlRequest) h3 = parse_ok ("help", "explain", NULL);
  assert_string_equal (h3->topic, "explain");
  g_autoptr(VmemctlRequest) h4 = parse_ok ("profile", "add", "--help", NULL);
  assert_int_equal (h4->command, VMEMCTL_CMD_HELP);
  assert_string_equal (h4->topic, "profile");
  /* --help wins over what would be an error. */
  g_autoptr(VmemctlRequest) h5 =
               parse_ok ("profile", "add", "erp", "--demand", "2Q", "--bogus", "-h", NULL);
  assert_int_equal (h5->command, VMEMCTL_CMD_HELP);
  assert_string_equal (h5->topic, "profile");
  g_autoptr(VmemctlRequest) h6 = parse_ok ("status", "-h", NULL);
  assert_string_equal (h6->topic, "status");
  g_autoptr(VmemctlRequest) h7 = parse_ok ("profile", "--help", NULL);
  assert_string_equal (h7->topic, "profile");
  parse_fails ("help: unknown command 'frob'", "help", "frob", NULL);

  /* The overview lists every command and every exit code. */
  g_autofree char *all = vmemctl_help_text (NULL);
  static const char *const must[] = {
    "profile add NAME",
    "profile set NAME",
    "profile show NAME",
    "profile list",
    "profile remove NAME [--force]",
    "profile import FILE|- [--replace]",
    "profile export [FILE|-]",
    "assign DOMAIN WORKLOAD",
    "unassign DOMAIN [--restore]",
    "status",
    "explain DOMAIN | --workload WORKLOAD",
    "replay",
    "version",
    "help [COMMAND]",
    "--demand SIZE",
    "--floor SIZE",
    "--ceiling SIZE",
    "--margin PCT",
    "--quantile Q",
    "--buffer PCT",
    "--mode MODE",
    "--prealloc on|off",
    "--scale SCALE",
    "--priority N",
    "--match GLOB",
    "--socket PATH",
    "--json",
    "--timeout SEC",
    "0  success",
    "1  vmemd reported a failure",
    "2  usage error",
    "3  no such",
    "4  vmemd is unreachable",
    "5  permission denied",
  };
  for (gsize i = 0; i < G_N_ELEMENTS (must); i++)
    if (strstr (all, must[i]) == NULL)
      fail_msg ("vmemctl --help lacks '%s'", must[i]);
  for (const char *const *t = (const char *const[]){ "profile", "assign", "unassign", "status",
                                                     "explain", "replay", "version", "help", NULL };
       *t; t++)
    {
      g_autofree char *one = vmemctl_help_text (*t);
      assert_non_null (one);
      assert_non_null (strstr (one, "Usage: vmemctl "));
    }
  assert_null (vmemctl_help_text ("frob"));
}

static void
test_replay_gets_its_own_argv (void **state)
{
  g_autoptr(VmemctlRequest) r =
               parse_ok ("--json", "replay", "trace.csv", "--json", "--frob", NULL);
  assert_int_equal (r->command, VMEMCTL_CMD_REPLAY);
  assert_null (r->method);
  assert_int_equal (r->rest_argc, 4);
  assert_string_equal (r->rest_argv[0], "replay");
  assert_string_equal (r->rest_argv[1], "trace.csv");
  assert_string_equal (r->rest_argv[3], "--frob");
}

/* --- global options --------------------------------------------------------- */

static void
test_global_options_anywhere (void **state)
{
  g_autoptr(VmemctlRequest) a =
               parse_ok ("--socket", "/run/x.sock", "--json", "--timeout", "2.5", "status", NULL);
  assert_string_equal (a->socket, "/run/x.sock");
  assert_true (a->json);
  assert_int_equal (a->timeout_ms, 2500);

  g_autoptr(VmemctlRequest) b =
               parse_ok ("profile", "show", "erp", "--json", "--socket=/s", "--timeout=1", NULL);
  assert_string_equal (b->socket, "/s");
  assert_true (b->json);
  assert_int_equal (b->timeout_ms, 1000);

  g_autoptr(VmemctlRequest) c = parse_ok ("profile", "--json", "list", NULL);
  assert_true (c->json);
  assert_int_equal (c->command, VMEMCTL_CMD_PROFILE_LIST);

  g_autoptr(VmemctlRequest) d = parse_ok ("status", NULL);
  assert_null (d->socket);
  assert_false (d->json);
  assert_int_equal (d->timeout_ms, VMEMCTL_DEFAULT_TIMEOUT_MS);

  /* After "--" everything is an argument. */
  g_autoptr(VmemctlRequest) e = parse_ok ("profile", "show", "--", "-x", NULL);
  assert_string_equal (field_str (e->params, "name"), "-x");
}

static void
test_global_option_errors (void **state)
{
  parse_fails ("no command given", NULL);
  parse_fails ("no command given", "--json", NULL);
  parse_fails ("unknown option --frob", "--frob", "status", NULL);
  parse_fails ("unknown command 'stauts'", "stauts", NULL);
  parse_fails ("--socket needs a value", "--socket", NULL);
  parse_fails ("--socket: the path is empty", "--socket=", "status", NULL);
  parse_fails ("--timeout: 'soon'", "--timeout", "soon", "status", NULL);
  parse_fails ("--timeout: '0'", "--timeout", "0", "status", NULL);
  parse_fails ("--timeout: '-3'", "status", "--timeout=-3", NULL);
  parse_fails ("--timeout: '7200'", "status", "--timeout", "7200", NULL);
  parse_fails ("--json takes no value", "status", "--json=yes", NULL);
}

static void
test_exit_codes (void **state)
{
  static const struct {
    VmemErrorCode code;
    int exit;
  } map[] = {
    { VMEM_ERROR_FAILED, VMEMCTL_EXIT_FAILED },
    { VMEM_ERROR_INVALID_ARGUMENT, VMEMCTL_EXIT_USAGE },
    { VMEM_ERROR_NOT_FOUND, VMEMCTL_EXIT_NOT_FOUND },
    { VMEM_ERROR_EXISTS, VMEMCTL_EXIT_FAILED },
    { VMEM_ERROR_PERMISSION_DENIED, VMEMCTL_EXIT_DENIED },
    { VMEM_ERROR_REFUSED, VMEMCTL_EXIT_FAILED },
    { VMEM_ERROR_TIMEOUT, VMEMCTL_EXIT_UNAVAILABLE },
    { VMEM_ERROR_UNAVAILABLE, VMEMCTL_EXIT_UNAVAILABLE },
    { VMEM_ERROR_BUSY, VMEMCTL_EXIT_FAILED },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (map); i++)
    {
      g_autoptr(GError) e = g_error_new_literal (VMEM_ERROR, map[i].code, "x");
      assert_int_equal (vmemctl_exit_code (e), map[i].exit);
    }
  g_autoptr(GError) foreign = g_error_new_literal (G_FILE_ERROR, G_FILE_ERROR_NOENT, "x");
  assert_int_equal (vmemctl_exit_code (foreign), VMEMCTL_EXIT_FAILED);
  assert_int_equal (vmemctl_exit_code (NULL), VMEMCTL_EXIT_OK);
}

/* --- import files ----------------------------------------------------------- */

typedef struct {
  char *dir;
} Fixture;

static int
setup_dir (void **state)
{
  Fixture *f = g_new0 (Fixture, 1);
  f->dir = g_dir_make_tmp ("vmemctl-args-XXXXXX", NULL);
  assert_non_null (f->dir);
  *state = f;
  return 0;
}

static int
teardown_dir (void **state)
{
  Fixture *f = *state;
  g_autoptr(GDir) d = g_dir_open (f->dir, 0, NULL);
  for (const char *n; d && (n = g_dir_read_name (d)) != NULL;)
    {
      g_autofree char *p = g_build_filename (f->dir, n, NULL);
      g_unlink (p);
    }
  g_rmdir (f->dir);
  g_free (f->dir);
  g_free (f);
  return 0;
}

static char *
write_file (Fixture *f, const char *name, const char *contents)
{
  char *path = g_build_filename (f->dir, name, NULL);
  assert_true (g_file_set_contents (path, contents, -1, NULL));
  return path;
}

static void
load_fails (Fixture *f, const char *contents, const char *needle)
{
  g_autofree char *path = write_file (f, "bad.json", contents);
  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) arr = vmemctl_load_profiles (path, &error);
  if (arr != NULL)
    fail_msg ("accepted: %s", contents);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  if (strstr (error->message, needle) == NULL)
    fail_msg ("message '%s' lacks '%s' (input %s)", error->message, needle, contents);
  /* The file is named, so the administrator knows which one. */
  assert_non_null (strstr (error->message, path));
  assert_null (strchr (error->message, '\n'));
}

static void
test_import_accepts_both_forms (void **state)
{
  Fixture *f = *state;
  g_autofree char *a =
    write_file (f, "a.json",
                "[{\"name\":\"erp\",\"demand_mib\":2048},"
                " {\"name\":\"web\",\"demand_mib\":\"512M\",\"mode\":\"observe\","
                "  \"created\": 1700000000}]\n");
  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) arr = vmemctl_load_profiles (a, &error);
  assert_null (error);
  assert_int_equal (json_object_array_length (arr), 2);

  g_autofree char *b = write_file (f, "b.json", "{ \"profiles\": [ {\"name\":\"db\"} ] }");
  g_autoptr(json_object) arr2 = vmemctl_load_profiles (b, &error);
  assert_null (error);
  assert_int_equal (json_object_array_length (arr2), 1);

  g_autofree char *c = write_file (f, "c.json", "[]");
  g_autoptr(json_object) arr3 = vmemctl_load_profiles (c, &error);
  assert_null (error);
  assert_int_equal (json_object_array_length (arr3), 0);
}

static void
test_import_errors_name_the_entry (void **state)
{
  Fixture *f = *state;
  load_fails (f, "[{\"name\":\"erp\"}, {\"name\":\"web\",\"demand_mib\":-1}]",
              "profile 2 ('web'): demand_mib: must not be negative");
  load_fails (f, "[{\"name\":\"erp\",\"floor_mib\":4096,\"ceiling_mib\":1024}]",
              "profile 1 ('erp'): floor");
  load_fails (f, "[{\"name\":\"erp\"}, {\"name\":\"x y\"}]", "profile 2 ('x y'): name");
  load_fails (f, "[{\"demand_mib\":1}]", "profile 1: name: missing");
  load_fails (f, "[{\"name\":\"erp\",\"colour\":\"red\"}]", "profile 1 ('erp'): ");
  load_fails (f, "[{\"name\":\"erp\",\"colour\":\"red\"}]", "colour");
  load_fails (f, "[{\"name\":\"erp\",\"mode\":\"fast\"}]", "mode");
  load_fails (f, "[{\"name\":\"erp\",\"quantile\":\"high\"}]", "quantile");
  load_fails (f, "[{\"name\":\"a\"}, 42]", "profile 2: profile: must be a JSON object");
  load_fails (f, "[{\"name\":\"a\"}, {\"name\":\"b\"}, {\"name\":\"a\"}]",
              "profile 3 ('a'): the name appears more than once");
}

static void
test_import_errors_in_the_file (void **state)
{
  Fixture *f = *state;
  load_fails (f, "", "not valid JSON");
  load_fails (f, "[{\"name\":\"erp\"}", "not valid JSON");
  load_fails (f, "[{\"name\":erp}]", "not valid JSON");
  load_fails (f, "[] []", "trailing data");
  load_fails (f, "{\"name\":\"erp\"}", "unknown key 'name'");
  load_fails (f, "{}", "expected an array of profiles");
  load_fails (f, "{\"profiles\": {}}", "expected an array of profiles");
  load_fails (f, "\"erp\"", "expected an array of profiles");

  g_autofree char *missing = g_build_filename (f->dir, "missing.json", NULL);
  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) arr = vmemctl_load_profiles (missing, &error);
  assert_null (arr);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  assert_non_null (strstr (error->message, "missing.json"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_profile_add_every_option),
    cmocka_unit_test (test_profile_add_equals_form_and_units),
    cmocka_unit_test (test_profile_add_name_only),
    cmocka_unit_test (test_profile_set_is_partial),
    cmocka_unit_test (test_profile_option_errors_name_the_option),
    cmocka_unit_test (test_profile_name_and_arguments),
    cmocka_unit_test (test_profile_show_list_remove),
    cmocka_unit_test (test_profile_import_export),
    cmocka_unit_test (test_assign_unassign),
    cmocka_unit_test (test_history),
    cmocka_unit_test (test_metrics),
    cmocka_unit_test (test_status_explain_version),
    cmocka_unit_test (test_help),
    cmocka_unit_test (test_replay_gets_its_own_argv),
    cmocka_unit_test (test_global_options_anywhere),
    cmocka_unit_test (test_global_option_errors),
    cmocka_unit_test (test_exit_codes),
    cmocka_unit_test_setup_teardown (test_import_accepts_both_forms, setup_dir, teardown_dir),
    cmocka_unit_test_setup_teardown (test_import_errors_name_the_entry, setup_dir, teardown_dir),
    cmocka_unit_test_setup_teardown (test_import_errors_in_the_file, setup_dir, teardown_dir),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
