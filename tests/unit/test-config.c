/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-config.h"
#include "vmem-error.h"

#include <glib/gstdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

typedef struct {
  char *dir;
  char *path;
} Fixture;

static int
setup (void **state)
{
  g_autoptr(GError) error = NULL;
  Fixture *f = g_new0 (Fixture, 1);

  f->dir = g_dir_make_tmp ("vmemd-config-XXXXXX", &error);
  if (f->dir == NULL)
    fail_msg ("temporary directory: %s", error->message);
  f->path = g_build_filename (f->dir, "vmemd.conf", NULL);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  Fixture *f = *state;

  g_unlink (f->path);
  g_rmdir (f->dir);
  g_free (f->path);
  g_free (f->dir);
  g_free (f);
  return 0;
}

static void
write_file (Fixture *f, const char *contents, gssize len)
{
  g_autoptr(GError) error = NULL;

  if (!g_file_set_contents (f->path, contents, len, &error))
    fail_msg ("%s", error->message);
}

static VmemConfig *
load_ok (Fixture *f, const char *contents)
{
  g_autoptr(GError) error = NULL;

  write_file (f, contents, -1);
  VmemConfig *c = vmem_config_load (f->path, TRUE, &error);
  if (c == NULL)
    fail_msg ("refused: %s\n--- file ---\n%s", error->message, contents);
  assert_null (error);
  assert_string_equal (c->path, f->path);
  return c;
}

/* Loading must fail with VMEM_ERROR_CONFIG; every needle must be in the
 * message.  "@" in a needle stands for the file's path. */
static void
load_refused (Fixture *f, const char *contents, gssize len, const char *const *needles)
{
  g_autoptr(GError) error = NULL;

  write_file (f, contents, len);
  g_autoptr(VmemConfig) c = vmem_config_load (f->path, TRUE, &error);
  if (c != NULL)
    fail_msg ("accepted:\n%s", contents);
  assert_non_null (error);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_CONFIG));
  for (guint i = 0; needles[i] != NULL; i++)
    {
      g_autofree char *needle = NULL;
      if (g_str_has_prefix (needles[i], "@"))
        needle = g_strconcat (f->path, needles[i] + 1, NULL);
      else
        needle = g_strdup (needles[i]);
      if (strstr (error->message, needle) == NULL)
        fail_msg ("error \"%s\" does not contain \"%s\"", error->message, needle);
    }
}

static void
assert_defaults (const VmemConfig *c)
{
  assert_string_equal (c->uri, "qemu:///system");
  assert_string_equal (c->socket_path, RUNSTATEDIR "/vmemd/io.vmemd");
  assert_string_equal (c->admin_group, "vmemd");
  assert_int_equal (c->stats_interval, 10);
  assert_string_equal (c->log_level, "info");
  assert_non_null (c->host_name);
  assert_true (c->host_name[0] != '\0');
  assert_true (vmem_host_id_valid (c->host_id));
  assert_int_equal (c->max_clients, 64);
  assert_int_equal (c->root_clients, 16);
  assert_int_equal (c->request_timeout, 10);
  assert_int_equal (c->idle_timeout, 60);
  assert_null (c->metrics_textfile);
  assert_int_equal (c->silent_timeout, 5);

  assert_int_equal (c->backend, VMEM_STORE_SQLITE);
  assert_string_equal (c->database, LOCALSTATEDIR "/lib/vmemd/vmemd.db");
  assert_null (c->postgres);
  assert_int_equal (c->raw_retention_hours, 48);
  assert_int_equal (c->peak_retention_days, 90);
  assert_int_equal (c->buffer_samples, 100000);
  assert_int_equal (c->buffer_writes, 10000);

  assert_int_equal (c->hook_timeout_ms, 2000);
  assert_false (c->fail_closed);

  assert_int_equal (c->admission, VMEM_ADMISSION_ENFORCE);
  assert_int_equal (c->reserve_mib, 1024);
  assert_int_equal (c->capacity_mib, 0);
  assert_int_equal (c->not_ready, VMEM_NOT_READY_ADMIT);
  assert_int_equal (c->unchecked, VMEM_UNCHECKED_ADMIT);
  assert_int_equal (c->reservation_timeout, 300);

  assert_true (c->half_life_hours == 24.0);
  assert_true (c->quantile == 0.90);
  assert_true (c->margin_pct == 15.0);
  assert_int_equal (c->min_peers, 1);
  assert_true (c->min_history_hours == 6.0);
  assert_true (c->prior_hours == 24.0);
  assert_true (c->hysteresis_pct == 5.0);
  assert_int_equal (c->hysteresis_mib, 64);
  assert_int_equal (c->min_buffer_mib, 512);
  assert_true (c->min_buffer_pct == 10);
  assert_int_equal (c->surplus_hold, 3600);
  assert_int_equal (c->shrink_half_life, 3600);
}

static void
test_defaults (void **state)
{
  g_autoptr(VmemConfig) c = vmem_config_new_default ();

  assert_null (c->path);
  assert_defaults (c);
}

static void
test_missing_file (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;

  g_autoptr(VmemConfig) c = vmem_config_load (f->path, FALSE, &error);
  assert_non_null (c);
  assert_null (error);
  /* No file was read, and nothing pretends one was. */
  assert_null (c->path);
  assert_defaults (c);

  g_autoptr(VmemConfig) d = vmem_config_load (f->path, TRUE, &error);
  assert_null (d);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_CONFIG));
  assert_non_null (strstr (error->message, f->path));
}

static void
test_unreadable_is_not_missing (void **state)
{
  Fixture *f = *state;
  g_autoptr(GError) error = NULL;

  /* A directory where the file should be is an error even when the file
   * is optional: only a missing file falls back to the defaults. */
  assert_int_equal (g_mkdir (f->path, 0700), 0);
  g_autoptr(VmemConfig) c = vmem_config_load (f->path, FALSE, &error);
  g_rmdir (f->path);
  assert_null (c);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_CONFIG));
}

static void
test_empty_and_commented_file (void **state)
{
  Fixture *f = *state;

  g_autoptr(VmemConfig) c = load_ok (f, "");
  assert_defaults (c);

  g_autoptr(VmemConfig) d = load_ok (f, "# only comments\n\n[daemon]\n# uri = test:///default\n"
                                        "[estimator]\n");
  assert_defaults (d);
}

static void
test_every_key (void **state)
{
  Fixture *f = *state;
  g_autoptr(VmemConfig) c = load_ok (f,
    "[daemon]\n"
    "uri = qemu+ssh://root@host/system\n"
    "socket = /tmp/x/io.vmemd\n"
    "admin_group = wheel\n"
    "stats_interval = 30\n"
    "log_level = debug\n"
    "host_name = node-7\n"
    "host_id = rack2:node-7_a.b\n"
    "max_clients = 8\n"
    "root_clients = 2\n"
    "request_timeout = 3\n"
    "idle_timeout = 20\n"
    "silent_timeout = 1\n"
    "metrics_textfile = /var/lib/prometheus/node-exporter/vmemd.prom\n"
    "\n"
    "[store]\n"
    "backend = postgres\n"
    "database = /srv/vmemd.db\n"
    "postgres = host=db dbname=vmemd user=vmemd\n"
    "raw_retention_hours = 12\n"
    "peak_retention_days = 400\n"
    "\n"
    "[hook]\n"
    "timeout_ms = 500\n"
    "fail_closed = true\n"
    "\n"
    "[admission]\n"
    "mode = warn\n"
    "reserve = 2G\n"
    "capacity = 1.5T\n"
    "not_ready = refuse\n"
    "unchecked = refuse\n"
    "reservation_timeout = 90\n"
    "\n"
    "[estimator]\n"
    "half_life_hours = 12.5\n"
    "quantile = 0.99\n"
    "margin_pct = 25\n"
    "min_peers = 3\n"
    "min_history_hours = 0\n"
    "prior_hours = 48\n"
    "hysteresis_pct = 7.5\n"
    "hysteresis_mib = 128M\n");

  assert_string_equal (c->uri, "qemu+ssh://root@host/system");
  assert_string_equal (c->socket_path, "/tmp/x/io.vmemd");
  assert_string_equal (c->admin_group, "wheel");
  assert_int_equal (c->stats_interval, 30);
  assert_string_equal (c->log_level, "debug");
  assert_string_equal (c->host_name, "node-7");
  assert_string_equal (c->host_id, "rack2:node-7_a.b");
  assert_int_equal (c->max_clients, 8);
  assert_int_equal (c->root_clients, 2);
  assert_int_equal (c->request_timeout, 3);
  assert_int_equal (c->idle_timeout, 20);
  assert_int_equal (c->silent_timeout, 1);
  assert_string_equal (c->metrics_textfile, "/var/lib/prometheus/node-exporter/vmemd.prom");
  assert_int_equal (c->backend, VMEM_STORE_POSTGRES);
  assert_string_equal (c->database, "/srv/vmemd.db");
  assert_string_equal (c->postgres, "host=db dbname=vmemd user=vmemd");
  assert_int_equal (c->raw_retention_hours, 12);
  assert_int_equal (c->peak_retention_days, 400);
  assert_int_equal (c->hook_timeout_ms, 500);
  assert_true (c->fail_closed);
  assert_int_equal (c->admission, VMEM_ADMISSION_WARN);
  assert_int_equal (c->reserve_mib, 2048);
  assert_int_equal (c->capacity_mib, 1536 * 1024);
  assert_int_equal (c->not_ready, VMEM_NOT_READY_REFUSE);
  assert_int_equal (c->unchecked, VMEM_UNCHECKED_REFUSE);
  assert_int_equal (c->reservation_timeout, 90);
  assert_true (c->half_life_hours == 12.5);
  assert_true (c->quantile == 0.99);
  assert_true (c->margin_pct == 25.0);
  assert_int_equal (c->min_peers, 3);
  assert_true (c->min_history_hours == 0.0);
  assert_true (c->prior_hours == 48.0);
  assert_true (c->hysteresis_pct == 7.5);
  assert_int_equal (c->hysteresis_mib, 128);
}

static void
test_partial_file_keeps_other_defaults (void **state)
{
  Fixture *f = *state;
  g_autoptr(VmemConfig) c = load_ok (f, "[daemon]\nstats_interval=5\n");

  assert_int_equal (c->stats_interval, 5);
  assert_string_equal (c->uri, "qemu:///system");
  assert_int_equal (c->reserve_mib, 1024);
  assert_true (c->quantile == 0.90);
}

static void
test_value_forms (void **state)
{
  Fixture *f = *state;

  /* Spaces around values are not part of them. */
  g_autoptr(VmemConfig) c = load_ok (f, "[daemon]\nstats_interval =   20   \n"
                                        "log_level= warning \n");
  assert_int_equal (c->stats_interval, 20);
  assert_string_equal (c->log_level, "warning");

  /* An empty path turns the metrics textfile off. */
  g_autoptr(VmemConfig) nofile = load_ok (f, "[daemon]\nmetrics_textfile = \n");
  assert_null (nofile->metrics_textfile);

  static const struct {
    const char *text;
    gboolean    value;
  } bools[] = {
    { "true", TRUE },  { "TRUE", TRUE },   { "yes", TRUE },  { "1", TRUE },
    { "false", FALSE }, { "False", FALSE }, { "no", FALSE }, { "0", FALSE },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (bools); i++)
    {
      g_autofree char *text = g_strdup_printf ("[hook]\nfail_closed=%s\n", bools[i].text);
      g_autoptr(VmemConfig) b = load_ok (f, text);
      assert_int_equal (!!b->fail_closed, bools[i].value);
    }

  static const char *const modes[] = { "enforce", "warn", "off" };
  for (gsize i = 0; i < G_N_ELEMENTS (modes); i++)
    {
      g_autofree char *text = g_strdup_printf ("[admission]\nmode=%s\n", modes[i]);
      g_autoptr(VmemConfig) m = load_ok (f, text);
      assert_int_equal (m->admission, (VmemAdmission) i);
      assert_string_equal (vmem_admission_to_string (m->admission), modes[i]);
    }
  assert_string_equal (vmem_admission_to_string ((VmemAdmission) 9), "unknown");

  static const char *const not_ready[] = { "admit", "refuse" };
  for (gsize i = 0; i < G_N_ELEMENTS (not_ready); i++)
    {
      g_autofree char *text = g_strdup_printf ("[admission]\nnot_ready = %s\n", not_ready[i]);
      g_autoptr(VmemConfig) n = load_ok (f, text);
      assert_int_equal (n->not_ready, (VmemNotReady) i);
      assert_string_equal (vmem_not_ready_to_string (n->not_ready), not_ready[i]);
    }
  assert_string_equal (vmem_not_ready_to_string ((VmemNotReady) 9), "unknown");

  for (gsize i = 0; i < G_N_ELEMENTS (not_ready); i++)
    {
      g_autofree char *text = g_strdup_printf ("[admission]\nunchecked = %s\n", not_ready[i]);
      g_autoptr(VmemConfig) u = load_ok (f, text);
      assert_int_equal (u->unchecked, (VmemUnchecked) i);
      assert_string_equal (vmem_unchecked_to_string (u->unchecked), not_ready[i]);
    }
  assert_string_equal (vmem_unchecked_to_string ((VmemUnchecked) 9), "unknown");

  static const char *const levels[] = { "error", "warning", "message", "info", "debug" };
  for (gsize i = 0; i < G_N_ELEMENTS (levels); i++)
    {
      g_autofree char *text = g_strdup_printf ("[daemon]\nlog_level=%s\n", levels[i]);
      g_autoptr(VmemConfig) l = load_ok (f, text);
      assert_string_equal (l->log_level, levels[i]);
    }

  g_autoptr(VmemConfig) s = load_ok (f, "[store]\nbackend=sqlite\n");
  assert_int_equal (s->backend, VMEM_STORE_SQLITE);
  g_autoptr(VmemConfig) p = load_ok (f, "[store]\nbackend=postgresql\npostgres=dbname=v\n");
  assert_int_equal (p->backend, VMEM_STORE_POSTGRES);

  /* Range ends are included. */
  g_autoptr(VmemConfig) r = load_ok (f, "[daemon]\nstats_interval=3600\nmax_clients=1\n"
                                        "[hook]\ntimeout_ms=100\n"
                                        "[admission]\nreservation_timeout=10\n"
                                        "[estimator]\nquantile=1\nhysteresis_pct=100\n");
  assert_int_equal (r->stats_interval, 3600);
  assert_int_equal (r->max_clients, 1);
  assert_int_equal (r->hook_timeout_ms, 100);
  assert_int_equal (r->reservation_timeout, 10);
  g_autoptr(VmemConfig) t = load_ok (f, "[admission]\nreservation_timeout=3600\n");
  assert_int_equal (t->reservation_timeout, 3600);
  assert_true (r->quantile == 1.0);
  assert_true (r->hysteresis_pct == 100.0);
}

static void
test_unknown_section (void **state)
{
  Fixture *f = *state;

  load_refused (f, "[daemon]\nuri=test:///default\n\n[deamon]\nuri=x\n", -1,
                (const char *const[]) { "@:4:", "[deamon]", "unknown section", NULL });
}

static void
test_unknown_key (void **state)
{
  Fixture *f = *state;

  load_refused (f, "# vmemd\n[daemon]\nuri=test:///default\nstats_intervall=5\n", -1,
                (const char *const[]) { "@:4:", "[daemon] stats_intervall", "unknown key", NULL });
  /* A key known in another section is still unknown here. */
  load_refused (f, "[store]\n\nuri=test:///default\n", -1,
                (const char *const[]) { "@:3:", "[store] uri", "unknown key", NULL });
}

typedef struct {
  const char *group;
  const char *key;
  const char *value;
  const char *needle;
} BadValue;

static void
test_bad_values (void **state)
{
  Fixture *f = *state;
  static const BadValue cases[] = {
    { "daemon", "uri", "", "must not be empty" },
    { "daemon", "socket", "run/io.vmemd", "not an absolute path" },
    { "daemon", "socket", "", "must not be empty" },
    { "daemon", "admin_group", "", "must not be empty" },
    { "daemon", "stats_interval", "0", "from 1 to 3600" },
    { "daemon", "stats_interval", "3601", "from 1 to 3600" },
    { "daemon", "stats_interval", "-5", "'-5'" },
    { "daemon", "stats_interval", "10s", "'10s'" },
    { "daemon", "stats_interval", "1.5", "'1.5'" },
    { "daemon", "stats_interval", "99999999999999999999", "not a whole number" },
    { "daemon", "log_level", "verbose", "'verbose' is not one of" },
    { "daemon", "log_level", "INFO", "'INFO'" },
    { "daemon", "host_name", "", "must not be empty" },
    { "daemon", "host_id", "", "is not a host id" },
    { "daemon", "host_id", "node 7", "'node 7' is not a host id" },
    { "daemon", "host_id", "node/7", "is not a host id" },
    { "daemon", "host_id", "node,7", "is not a host id" },
    { "daemon", "host_id",
      "00000000001111111111222222222233333333334444444444555555555566666", "is not a host id" },
    { "store", "buffer_samples", "10000001", "from 0 to 1e+07" },
    { "store", "buffer_samples", "-1", "'-1'" },
    { "store", "buffer_writes", "1000001", "from 0 to 1e+06" },
    { "store", "buffer_writes", "x", "'x'" },
    { "daemon", "max_clients", "0", "from 1 to 4096" },
    { "daemon", "max_clients", "4097", "from 1 to 4096" },
    { "daemon", "request_timeout", "0", "from 1 to 3600" },
    { "daemon", "root_clients", "0", "from 1 to 4096" },
    { "daemon", "idle_timeout", "0", "from 1 to 3600" },
    { "daemon", "idle_timeout", "3601", "from 1 to 3600" },
    { "daemon", "silent_timeout", "0", "from 1 to 3600" },
    { "daemon", "metrics_textfile", "vmemd.prom", "'vmemd.prom' is not an absolute path" },
    { "store", "backend", "mysql", "'mysql' is not one of sqlite, postgres" },
    { "store", "database", "vmemd.db", "'vmemd.db' is not an absolute path" },
    { "store", "database", "./vmemd.db", "not an absolute path" },
    { "store", "postgres", "", "must not be empty" },
    { "store", "raw_retention_hours", "0", "from 1 to 8760" },
    { "store", "peak_retention_days", "3651", "from 1 to 3650" },
    { "hook", "timeout_ms", "99", "from 100 to 60000" },
    { "hook", "timeout_ms", "60001", "from 100 to 60000" },
    { "hook", "fail_closed", "maybe", "'maybe' is not a boolean" },
    { "hook", "fail_closed", "", "is not a boolean" },
    { "admission", "mode", "strict", "'strict' is not one of enforce, warn, off" },
    { "admission", "reserve", "-1G", "invalid size" },
    { "admission", "reserve", "1K", "whole number of MiB" },
    { "admission", "capacity", "2X", "unknown unit" },
    { "admission", "capacity", "2P", "unknown unit" },
    { "admission", "capacity", "2000T", "larger than 1 PiB" },
    { "admission", "not_ready", "wait", "'wait' is not one of admit, refuse" },
    { "admission", "not_ready", "Admit", "'Admit' is not one of admit, refuse" },
    { "admission", "not_ready", "", "'' is not one of admit, refuse" },
    { "admission", "unchecked", "warn", "'warn' is not one of admit, refuse" },
    { "admission", "unchecked", "", "'' is not one of admit, refuse" },
    { "admission", "reservation_timeout", "9", "'9' is not a whole number from 10 to 3600" },
    { "admission", "reservation_timeout", "3601", "from 10 to 3600" },
    { "admission", "reservation_timeout", "0", "from 10 to 3600" },
    { "admission", "reservation_timeout", "5m", "'5m'" },
    { "admission", "reservation_timeout", "", "not a whole number" },
    { "estimator", "half_life_hours", "0", "from 0.1 to 8760" },
    { "estimator", "half_life_hours", "abc", "'abc' is not a number" },
    { "estimator", "quantile", "0.4", "from 0.5 to 1" },
    { "estimator", "quantile", "1.01", "from 0.5 to 1" },
    { "estimator", "quantile", "0.9x", "'0.9x'" },
    { "estimator", "quantile", "nan", "'nan'" },
    { "estimator", "margin_pct", "-1", "from 0 to 400" },
    { "estimator", "margin_pct", "inf", "'inf'" },
    { "estimator", "min_peers", "0", "from 1 to 1000" },
    { "estimator", "min_history_hours", "-0.5", "from 0 to 8760" },
    { "estimator", "hysteresis_pct", "101", "from 0 to 100" },
    { "estimator", "hysteresis_mib", "64K", "whole number of MiB" },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      /* The bad key sits on line 5, after a comment, a valid key and a
       * blank line, so that a wrong line number shows. */
      g_autofree char *text = g_strdup_printf ("# test\n[%s]\n# %s = default\n\n%s = %s\n",
                                               cases[i].group, cases[i].key, cases[i].key,
                                               cases[i].value);
      g_autofree char *where = g_strdup_printf ("@:5: [%s] %s: ", cases[i].group, cases[i].key);
      load_refused (f, text, -1, (const char *const[]) { where, cases[i].needle, NULL });
    }
}

static void
test_line_in_later_section (void **state)
{
  Fixture *f = *state;

  /* The same key name in an earlier section must not be taken for the
   * bad one. */
  load_refused (f,
                "[admission]\nmode = warn\n\n[estimator]\nquantile = 0.9\n"
                "margin_pct = 10\n[daemon]\nlog_level=info\n[estimator]\nhalf_life_hours=0\n",
                -1, (const char *const[]) { "@:10: [estimator] half_life_hours:", NULL });
}

static void
test_bad_escape (void **state)
{
  Fixture *f = *state;

  load_refused (f, "[daemon]\n\nuri = qemu:\\q\n", -1,
                (const char *const[]) { "@:3: [daemon] uri:", NULL });
  load_refused (f, "[daemon]\nhost_name = node\\\n", -1,
                (const char *const[]) { "@:2: [daemon] host_name:", NULL });

  /* Valid escapes are decoded. */
  g_autoptr(VmemConfig) c = load_ok (f, "[store]\npostgres = host=db\\sdbname=v\n");
  assert_string_equal (c->postgres, "host=db dbname=v");
}

static void
test_not_utf8 (void **state)
{
  Fixture *f = *state;

  load_refused (f, "[daemon]\nhost_name = caf\xe9\n", -1,
                (const char *const[]) { "@: not a UTF-8 text file", NULL });
  load_refused (f, "[daemon]\0\nuri=x\n", 16,
                (const char *const[]) { "@: not a UTF-8 text file", NULL });
}

static void
test_not_a_key_file (void **state)
{
  Fixture *f = *state;

  load_refused (f, "uri = qemu:///system\n", -1, (const char *const[]) { "@: ", NULL });
  load_refused (f, "[daemon]\nthis line has no equals sign\n", -1,
                (const char *const[]) { "@: ", NULL });
  load_refused (f, "[daemon\nuri=x\n", -1, (const char *const[]) { "@: ", NULL });
}

static void
test_postgres_needs_conninfo (void **state)
{
  Fixture *f = *state;

  load_refused (f, "[store]\n# cluster\nbackend = postgres\n", -1,
                (const char *const[]) { "@:3: [store] backend:", "[store] postgres", NULL });

  g_autoptr(VmemConfig) c = load_ok (f, "[store]\npostgres = dbname=vmemd\nbackend = postgres\n");
  assert_int_equal (c->backend, VMEM_STORE_POSTGRES);
  assert_string_equal (c->postgres, "dbname=vmemd");

  /* A connection string alone does not switch the backend. */
  g_autoptr(VmemConfig) d = load_ok (f, "[store]\npostgres = dbname=vmemd\n");
  assert_int_equal (d->backend, VMEM_STORE_SQLITE);
}

static void
test_default_path_env (void **state)
{
  g_autofree char *saved = g_strdup (g_getenv ("VMEMD_CONFIG"));

  g_unsetenv ("VMEMD_CONFIG");
  assert_string_equal (vmem_config_default_path (), SYSCONFDIR "/vmemd/vmemd.conf");
  assert_string_equal (vmem_config_default_path (), VMEM_CONFIG_DEFAULT_PATH);

  g_setenv ("VMEMD_CONFIG", "/srv/test/vmemd.conf", TRUE);
  assert_string_equal (vmem_config_default_path (), "/srv/test/vmemd.conf");

  /* Set but empty means unset. */
  g_setenv ("VMEMD_CONFIG", "", TRUE);
  assert_string_equal (vmem_config_default_path (), VMEM_CONFIG_DEFAULT_PATH);

  if (saved != NULL)
    g_setenv ("VMEMD_CONFIG", saved, TRUE);
  else
    g_unsetenv ("VMEMD_CONFIG");
}

static void
test_env_path_loads (void **state)
{
  Fixture *f = *state;
  g_autofree char *saved = g_strdup (g_getenv ("VMEMD_CONFIG"));
  g_autoptr(GError) error = NULL;

  write_file (f, "[daemon]\nstats_interval = 42\n", -1);
  g_setenv ("VMEMD_CONFIG", f->path, TRUE);
  g_autoptr(VmemConfig) c = vmem_config_load (vmem_config_default_path (), FALSE, &error);
  if (saved != NULL)
    g_setenv ("VMEMD_CONFIG", saved, TRUE);
  else
    g_unsetenv ("VMEMD_CONFIG");

  assert_non_null (c);
  assert_int_equal (c->stats_interval, 42);
  assert_string_equal (c->path, f->path);
}

/* Every key of the table, as "group.key". */
static const char *const all_keys[] = {
  "daemon.uri", "daemon.socket", "daemon.admin_group", "daemon.stats_interval",
  "daemon.log_level", "daemon.host_name", "daemon.host_id", "daemon.max_clients", "daemon.root_clients", "daemon.request_timeout",
  "daemon.idle_timeout", "daemon.silent_timeout", "daemon.metrics_textfile",
  "store.backend", "store.database", "store.postgres", "store.raw_retention_hours",
  "store.peak_retention_days", "store.buffer_samples", "store.buffer_writes", "hook.timeout_ms", "hook.fail_closed", "admission.mode",
  "admission.reserve", "admission.capacity", "admission.not_ready", "admission.unchecked",
  "admission.reservation_timeout", "estimator.half_life_hours", "estimator.quantile",
  "estimator.margin_pct", "estimator.min_peers", "estimator.min_history_hours",
  "estimator.prior_hours",
  "estimator.hysteresis_pct", "estimator.hysteresis_mib",
  "controller.min_buffer", "controller.min_buffer_pct", "controller.surplus_hold",
  "controller.shrink_half_life",
};

/* The shipped data/vmemd.conf loads as it is, names every key once, and
 * its commented-out values, once uncommented, load and are the defaults. */
/* Without host_id the host is known by its machine id, else its name. */
static void
test_host_id_default (void **state)
{
  Fixture *f = *state;
  g_autofree char *mid = g_build_filename (f->dir, "machine-id", NULL);
  g_assert_true (g_file_set_contents (mid, "0123456789abcdef0123456789abcdef\n", -1, NULL));
  g_setenv ("VMEM_MACHINE_ID_FILE", mid, TRUE);
  g_autoptr(VmemConfig) c = load_ok (f, "[daemon]\nhost_name = node-7\n");
  assert_string_equal (c->host_id, "0123456789abcdef0123456789abcdef");
  assert_string_equal (c->host_name, "node-7");

  g_assert_true (g_file_set_contents (mid, "", -1, NULL));
  g_autoptr(VmemConfig) d = vmem_config_new_default ();
  assert_string_equal (d->host_id, d->host_name);
  g_unlink (mid);
  g_autoptr(VmemConfig) e = vmem_config_new_default ();
  assert_string_equal (e->host_id, e->host_name);
  g_unsetenv ("VMEM_MACHINE_ID_FILE");
}

static void
test_shipped_file (void **state)
{
  Fixture *f = *state;
  const char *srcdir = g_getenv ("VMEM_TEST_SRCDIR");
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;

  if (srcdir == NULL)
    fail_msg ("VMEM_TEST_SRCDIR is not set");
  g_autofree char *shipped = g_build_filename (srcdir, "..", "data", "vmemd.conf", NULL);
  if (!g_file_get_contents (shipped, &contents, NULL, &error))
    fail_msg ("%s", error->message);

  g_autoptr(VmemConfig) as_is = vmem_config_load (shipped, TRUE, &error);
  if (as_is == NULL)
    fail_msg ("%s", error->message);
  assert_defaults (as_is);

  g_autoptr(GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GString) uncommented = g_string_new (NULL);
  g_autoptr(GRegex) re = g_regex_new ("^#([a-z_]+) =\\s*(.*)$", 0, 0, NULL);
  g_auto(GStrv) lines = g_strsplit (contents, "\n", -1);
  g_autofree char *group = NULL;

  for (guint i = 0; lines[i] != NULL; i++)
    {
      g_autoptr(GMatchInfo) m = NULL;
      if (lines[i][0] == '[')
        {
          g_free (group);
          group = g_strndup (lines[i] + 1, strcspn (lines[i] + 1, "]"));
        }
      if (!g_regex_match (re, lines[i], 0, &m))
        {
          g_string_append_printf (uncommented, "%s\n", lines[i]);
          continue;
        }
      g_autofree char *key = g_match_info_fetch (m, 1);
      g_autofree char *value = g_match_info_fetch (m, 2);
      g_autofree char *name = g_strdup_printf ("%s.%s", group, key);
      if (!g_hash_table_add (seen, g_steal_pointer (&name)))
        fail_msg ("%s.%s appears twice", group, key);
      /* An empty value stands for a computed default (host_name). */
      if (*value == '\0')
        g_string_append_printf (uncommented, "%s\n", lines[i]);
      else
        g_string_append_printf (uncommented, "%s = %s\n", key, value);
    }

  for (gsize k = 0; k < G_N_ELEMENTS (all_keys); k++)
    if (!g_hash_table_contains (seen, all_keys[k]))
      fail_msg ("%s is not in the shipped file", all_keys[k]);
  assert_int_equal (g_hash_table_size (seen), G_N_ELEMENTS (all_keys));

  g_autoptr(VmemConfig) c = load_ok (f, uncommented->str);
  /* Paths depend on how this tree was configured, and the connection
   * string is an example. */
  assert_string_equal (c->socket_path, "/run/vmemd/io.vmemd");
  assert_string_equal (c->database, "/var/lib/vmemd/vmemd.db");
  assert_non_null (c->postgres);
  g_free (c->socket_path);
  c->socket_path = g_strdup (as_is->socket_path);
  g_free (c->database);
  c->database = g_strdup (as_is->database);
  g_clear_pointer (&c->postgres, g_free);
  assert_defaults (c);
}

#define T(fn) cmocka_unit_test_setup_teardown (fn, setup, teardown)

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_defaults),
    T (test_missing_file),
    T (test_unreadable_is_not_missing),
    T (test_empty_and_commented_file),
    T (test_every_key),
    T (test_partial_file_keeps_other_defaults),
    T (test_value_forms),
    T (test_unknown_section),
    T (test_unknown_key),
    T (test_bad_values),
    T (test_line_in_later_section),
    T (test_bad_escape),
    T (test_not_utf8),
    T (test_not_a_key_file),
    T (test_postgres_needs_conninfo),
    cmocka_unit_test (test_default_path_env),
    T (test_env_path_loads),
    T (test_shipped_file),
    T (test_host_id_default),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
