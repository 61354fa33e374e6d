/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-admission.h"
#include "vmem-error.h"
#include "vmem-xml.h"

#include <glib/gstdio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

/* Golden files: tests/data/xml/NAME.in.xml, staged with the plan of
 * NAME.plan (a key file, group [plan]; defaults below when absent), must
 * give NAME.out.xml byte for byte, or the error of NAME.err.
 * VMEM_UPDATE_GOLDEN=1 rewrites the .out.xml files. */

#define PLAN_TIME 1767225600 /* 2026-01-01T00:00:00Z */
#define MIN_GOLDEN 22

static char *
data_dir (void)
{
  const char *src = g_getenv ("VMEM_TEST_SRCDIR");
  if (src == NULL)
    fail_msg ("VMEM_TEST_SRCDIR is not set");
  return g_build_filename (src, "data", "xml", NULL);
}

static char *
data_path (const char *file)
{
  g_autofree char *dir = data_dir ();
  return g_build_filename (dir, file, NULL);
}

static char *
read_file (const char *path)
{
  g_autoptr(GError) error = NULL;
  char *s = NULL;
  if (!g_file_get_contents (path, &s, NULL, &error))
    fail_msg ("cannot read %s: %s", path, error->message);
  return s;
}

static char *
read_data (const char *file)
{
  g_autofree char *p = data_path (file);
  return read_file (p);
}

typedef struct {
  VmemPlan plan;
  char    *workload;
  char    *source;
} TestPlan;

static void
test_plan_clear (TestPlan *tp)
{
  g_free (tp->workload);
  g_free (tp->source);
}

static void
test_plan_defaults (TestPlan *tp)
{
  memset (tp, 0, sizeof *tp);
  tp->workload = g_strdup ("erp");
  tp->source = g_strdup ("profile");
  tp->plan.demand_mib = 1024;
  tp->plan.prealloc = TRUE;
  tp->plan.stats_period = 5;
  tp->plan.mode = VMEM_MODE_BALLOON;
  tp->plan.time = PLAN_TIME;
  tp->plan.workload = tp->workload;
  tp->plan.source = tp->source;
}

static void
load_plan (const char *name, TestPlan *tp)
{
  g_autofree char *file = g_strdup_printf ("%s.plan", name);
  g_autofree char *path = data_path (file);
  g_autoptr(GKeyFile) kf = g_key_file_new ();
  g_autoptr(GError) error = NULL;

  test_plan_defaults (tp);
  if (!g_file_test (path, G_FILE_TEST_EXISTS))
    return;
  if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, &error))
    fail_msg ("%s: %s", path, error->message);
  if (g_key_file_has_key (kf, "plan", "demand_mib", NULL))
    tp->plan.demand_mib = g_key_file_get_uint64 (kf, "plan", "demand_mib", NULL);
  if (g_key_file_has_key (kf, "plan", "prealloc", NULL))
    tp->plan.prealloc = g_key_file_get_boolean (kf, "plan", "prealloc", NULL);
  if (g_key_file_has_key (kf, "plan", "stats_period", NULL))
    tp->plan.stats_period = (guint) g_key_file_get_integer (kf, "plan", "stats_period", NULL);
  if (g_key_file_has_key (kf, "plan", "peers", NULL))
    tp->plan.peers = (guint) g_key_file_get_integer (kf, "plan", "peers", NULL);
  if (g_key_file_has_key (kf, "plan", "time", NULL))
    tp->plan.time = g_key_file_get_int64 (kf, "plan", "time", NULL);
  g_autofree char *mode = g_key_file_get_string (kf, "plan", "mode", NULL);
  if (mode != NULL && !vmem_mode_from_string (mode, &tp->plan.mode, &error))
    fail_msg ("%s: %s", path, error->message);
  g_autofree char *w = g_key_file_get_string (kf, "plan", "workload", NULL);
  if (w != NULL)
    {
      g_free (tp->workload);
      tp->plan.workload = tp->workload = g_steal_pointer (&w);
    }
  g_autofree char *s = g_key_file_get_string (kf, "plan", "source", NULL);
  if (s != NULL)
    {
      g_free (tp->source);
      tp->plan.source = tp->source = g_steal_pointer (&s);
    }
}

/* virt-xml-validate must run: a missing validator is a failure, not a skip. */
static void
validate_file (const char *path)
{
  g_autofree char *prog = g_find_program_in_path ("virt-xml-validate");
  if (prog == NULL)
    fail_msg ("virt-xml-validate is not installed (package libvirt-clients)");
  const char *argv[] = { prog, path, "domain", NULL };
  g_autofree char *out = NULL, *err = NULL;
  g_autoptr(GError) error = NULL;
  int status = 0;
  if (!g_spawn_sync (NULL, (char **) argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status,
                     &error))
    fail_msg ("cannot run virt-xml-validate: %s", error->message);
  if (!g_spawn_check_wait_status (status, NULL))
    fail_msg ("%s does not validate:\n%s%s", path, out, err);
}

static void
validate_string (const char *xml, const char *what)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("vmem-xml-XXXXXX", &error);
  if (dir == NULL)
    fail_msg ("%s", error->message);
  g_autofree char *path = g_build_filename (dir, what, NULL);
  if (!g_file_set_contents (path, xml, -1, &error))
    fail_msg ("%s", error->message);
  validate_file (path);
  g_unlink (path);
  g_rmdir (dir);
}

static void
assert_same_text (const char *expected, const char *actual, const char *what)
{
  if (strcmp (expected, actual) == 0)
    return;
  gsize i = 0, line = 1;
  while (expected[i] && expected[i] == actual[i])
    line += expected[i++] == '\n';
  fail_msg ("%s differs at line %" G_GSIZE_FORMAT ":\n--- expected ---\n%.200s\n--- got ---\n%.200s",
            what, line, expected + i, actual + i);
}

static VmemDomainInfo *
parse_ok (const char *xml)
{
  g_autoptr(GError) error = NULL;
  VmemDomainInfo *i = vmem_xml_parse_domain (xml, &error);
  if (i == NULL)
    fail_msg ("cannot parse: %s", error->message);
  return i;
}

/* Every passwd='...' of @in is in @out unchanged. */
static void
assert_secrets_kept (const char *in, const char *out)
{
  g_autoptr(GRegex) re = g_regex_new ("passwd=('[^']*'|\"[^\"]*\")", 0, 0, NULL);
  g_autoptr(GMatchInfo) m = NULL;
  g_regex_match (re, in, 0, &m);
  while (g_match_info_matches (m))
    {
      g_autofree char *s = g_match_info_fetch (m, 0);
      if (strstr (out, s) == NULL)
        fail_msg ("secret %s lost", s);
      g_match_info_next (m, NULL);
    }
}

/* The domain's <memory> before vmemd staged anything. */
static guint64
original_memory_kib (const char *xml)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *r = vmem_xml_restore (xml, &error);
  if (r == NULL && error != NULL)
    fail_msg ("restore: %s", error->message);
  g_autoptr(VmemDomainInfo) i = parse_ok (r ? r : xml);
  return i->memory_kib;
}

/* The virtio-mem form: <memory> = the NUMA cell + the device, no balloon
 * target below it, the guest booting with the demand and the host holding
 * only that with preallocation. */
static void
check_staged_virtio_mem (const char *name, const char *in, const char *out, const TestPlan *tp)
{
  g_autoptr(VmemDomainInfo) a = parse_ok (in);
  g_autoptr(VmemDomainInfo) b = parse_ok (out);
  g_autoptr(GError) error = NULL;
  guint64 top = original_memory_kib (in);
  guint64 demand = MIN (tp->plan.demand_mib * 1024, top);
  VmemVirtioMemLayout l;

  if (!vmem_xml_virtio_mem_layout (top, demand, &l, &error))
    fail_msg ("%s: %s", name, error->message);
  assert_true (l.memory_kib <= top);
  assert_true (l.base_kib + l.requested_kib >= MIN (demand, l.top_kib));
  assert_true (l.base_kib >= VMEM_XML_VIRTIO_MEM_MIN_BASE_MIB * 1024);
  assert_true (l.base_kib * 4 >= l.top_kib);
  assert_int_equal (l.size_kib % (VMEM_XML_VIRTIO_MEM_ALIGN_MIB * 1024), 0);
  assert_int_equal (l.base_kib % VMEM_XML_VIRTIO_MEM_BLOCK_KIB, 0);

  assert_int_equal (b->memory_kib, l.memory_kib);
  assert_int_equal (b->current_kib, l.memory_kib);
  assert_int_equal (b->numa_cells, 1);
  assert_int_equal (b->numa_memory_mib * 1024, l.base_kib);
  assert_int_equal (b->virtio_mem_devices, 1);
  assert_int_equal (b->memory_devices, 1);
  assert_int_equal (b->virtio_mem_size_mib * 1024, l.size_kib);
  assert_int_equal (b->virtio_mem_requested_mib * 1024, l.requested_kib);
  assert_true (b->max_memory_mib * 1024 >= b->memory_kib);
  assert_true (b->max_memory_slots >= 1);
  assert_true (b->virtio_mem_staged);
  assert_null (b->virtio_mem_unmanageable_reason);
  assert_true (b->has_plan);
  assert_int_equal (b->plan_demand_mib, MIN (demand, l.memory_kib) / 1024);
  assert_string_equal (b->plan_mode, "virtio-mem");
  assert_string_equal (b->plan_source, tp->plan.source);
  assert_int_equal (b->plan_time, tp->plan.time);
  assert_int_equal (b->prealloc, tp->plan.prealloc || (a->prealloc && !a->has_plan));
  /* The balloon stays as it was. */
  if (!a->has_plan)
    {
      assert_int_equal (b->has_balloon, a->has_balloon);
      assert_string_equal (b->balloon_model ? b->balloon_model : "-",
                           a->balloon_model ? a->balloon_model : "-");
      assert_int_equal (b->balloon_autodeflate, a->balloon_autodeflate);
      assert_int_equal (b->balloon_stats_period, a->balloon_stats_period);
    }
  /* What admission charges at boot is what the guest boots with. */
  guint64 boot = vmem_admission_boot_mib (b->memory_mib, b->current_mib, TRUE,
                                          b->virtio_mem_size_mib, b->virtio_mem_requested_mib);
  assert_int_equal (boot * 1024, l.base_kib + l.requested_kib);
  assert_string_equal (b->name, a->name);
  assert_int_equal (b->vcpus, a->vcpus);
  assert_secrets_kept (in, out);
}

static void
check_staged (const char *name, const char *in, const char *out, const TestPlan *tp)
{
  if (tp->plan.mode == VMEM_MODE_VIRTIO_MEM)
    {
      check_staged_virtio_mem (name, in, out, tp);
      return;
    }
  g_autoptr(VmemDomainInfo) a = parse_ok (in);
  g_autoptr(VmemDomainInfo) b = parse_ok (out);
  guint64 want_kib = MIN (tp->plan.demand_mib * 1024, original_memory_kib (in));

  if (b->current_kib != want_kib)
    fail_msg ("%s: currentMemory %" G_GUINT64_FORMAT " KiB, want %" G_GUINT64_FORMAT, name,
              b->current_kib, want_kib);
  assert_int_equal (b->memory_kib, original_memory_kib (in));
  assert_true (b->has_plan);
  assert_int_equal (b->plan_demand_mib, want_kib / 1024);
  assert_string_equal (b->plan_source, tp->plan.source);
  assert_string_equal (b->plan_workload, tp->plan.workload);
  assert_string_equal (b->plan_mode, vmem_mode_to_string (tp->plan.mode));
  assert_int_equal (b->plan_time, tp->plan.time);
  assert_int_equal (b->plan_peers, tp->plan.peers);
  if (tp->plan.prealloc)
    assert_true (b->prealloc);
  else if (!a->has_plan)
    /* Preallocation off never touches an administrator's own element. */
    assert_string_equal (b->allocation_mode ? b->allocation_mode : "-",
                         a->allocation_mode ? a->allocation_mode : "-");
  assert_true (b->has_balloon);
  assert_true (b->balloon_autodeflate);
  assert_true (b->balloon_free_page_reporting);
  assert_int_equal (b->balloon_stats_period,
                    tp->plan.stats_period ? tp->plan.stats_period
                    : a->balloon_stats_period ? a->balloon_stats_period : VMEM_XML_STATS_PERIOD);
  if (a->balloon_model != NULL)
    assert_string_equal (b->balloon_model, a->balloon_model);
  assert_string_equal (b->name, a->name);
  assert_string_equal (b->uuid ? b->uuid : "", a->uuid ? a->uuid : "");
  assert_string_equal (b->workload ? b->workload : "", a->workload ? a->workload : "");
  assert_int_equal (b->hugepages, a->hugepages);
  if (a->virtio_mem_staged)
    {
      /* Back from virtio-mem form: vmemd's cell and device are gone. */
      assert_false (b->virtio_mem_staged);
      assert_int_equal (b->numa_cells, 0);
      assert_int_equal (b->memory_devices, 0);
    }
  else
    {
      assert_int_equal (b->numa_cells, a->numa_cells);
      assert_int_equal (b->virtio_mem_devices, a->virtio_mem_devices);
      assert_int_equal (b->virtio_mem_size_mib, a->virtio_mem_size_mib);
      assert_int_equal (b->virtio_mem_requested_mib, a->virtio_mem_requested_mib);
    }
  assert_string_equal (b->memory_source ? b->memory_source : "", a->memory_source ? a->memory_source : "");
  assert_secrets_kept (in, out);
}

/* restore(apply(x)) puts back x's memory settings, and x itself when x
 * carried nothing of vmemd's. */
static void
check_restore (const char *name, const char *in, const char *out)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *r = vmem_xml_restore (out, &error);
  if (r == NULL)
    fail_msg ("%s: restore: %s", name, error ? error->message : "nothing to restore");
  g_autoptr(VmemDomainInfo) a = parse_ok (in);
  g_autoptr(VmemDomainInfo) b = parse_ok (r);

  assert_false (b->has_plan);
  assert_null (b->workload);
  assert_null (strstr (r, "urn:vmemd"));
  validate_string (r, "restored.xml");
  assert_secrets_kept (in, r);
  if (strstr (in, "urn:vmemd") == NULL)
    {
      /* Byte for byte, but for <currentMemory>, which comes back in KiB
       * whatever unit it had. */
      g_auto(GStrv) li = g_strsplit (in, "\n", -1);
      g_auto(GStrv) lr = g_strsplit (r, "\n", -1);
      if (g_strv_length (li) != g_strv_length (lr))
        assert_same_text (in, r, name);
      for (guint k = 0; li[k] != NULL; k++)
        if (strcmp (li[k], lr[k]) != 0 && strstr (li[k], "<currentMemory") == NULL)
          assert_same_text (in, r, name);
      assert_int_equal (b->current_kib, a->current_kib);
      return;
    }
  if (a->has_plan)
    return; /* the originals predate this input */
  assert_int_equal (b->current_kib, a->current_kib);
  assert_string_equal (b->allocation_mode ? b->allocation_mode : "-",
                       a->allocation_mode ? a->allocation_mode : "-");
  assert_int_equal (b->has_balloon, a->has_balloon);
  assert_string_equal (b->balloon_model ? b->balloon_model : "-",
                       a->balloon_model ? a->balloon_model : "-");
  assert_int_equal (b->balloon_autodeflate, a->balloon_autodeflate);
  assert_int_equal (b->balloon_free_page_reporting, a->balloon_free_page_reporting);
  assert_int_equal (b->balloon_stats_period, a->balloon_stats_period);
}

static void
golden_one (const char *name, gboolean update)
{
  g_autofree char *in_file = g_strdup_printf ("%s.in.xml", name);
  g_autofree char *out_file = g_strdup_printf ("%s.out.xml", name);
  g_autofree char *err_file = g_strdup_printf ("%s.err", name);
  g_autofree char *in_path = data_path (in_file);
  g_autofree char *out_path = data_path (out_file);
  g_autofree char *err_path = data_path (err_file);
  g_autofree char *in = read_file (in_path);
  g_autoptr(GError) error = NULL;
  TestPlan tp;
  gboolean changed = FALSE;

  load_plan (name, &tp);
  validate_file (in_path);
  g_autofree char *out = vmem_xml_apply_plan (in, &tp.plan, &changed, &error);

  if (g_file_test (err_path, G_FILE_TEST_EXISTS))
    {
      g_autofree char *want = read_file (err_path);
      if (out != NULL)
        fail_msg ("%s: staged, but %s expects an error", name, err_file);
      assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE));
      assert_same_text (g_strstrip (want), error->message, err_file);
      test_plan_clear (&tp);
      return;
    }
  if (out == NULL)
    fail_msg ("%s: %s", name, error->message);
  assert_true (changed);
  if (update)
    {
      if (!g_file_set_contents (out_path, out, -1, &error))
        fail_msg ("%s", error->message);
    }
  g_autofree char *want = read_file (out_path);
  assert_same_text (want, out, out_file);
  validate_file (out_path);

  /* The same plan on its own output changes nothing. */
  gboolean again_changed = TRUE;
  g_autofree char *again = vmem_xml_apply_plan (out, &tp.plan, &again_changed, &error);
  if (again == NULL)
    fail_msg ("%s: re-apply: %s", name, error->message);
  assert_same_text (out, again, "re-applied output");
  assert_false (again_changed);

  check_staged (name, in, out, &tp);
  check_restore (name, in, out);
  test_plan_clear (&tp);
}

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static void
test_golden (void **state)
{
  g_autofree char *dir = data_dir ();
  g_autoptr(GError) error = NULL;
  g_autoptr(GDir) d = g_dir_open (dir, 0, &error);
  gboolean update = g_strcmp0 (g_getenv ("VMEM_UPDATE_GOLDEN"), "1") == 0;
  g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);

  if (d == NULL)
    fail_msg ("%s", error->message);
  for (const char *f; (f = g_dir_read_name (d)) != NULL;)
    if (g_str_has_suffix (f, ".in.xml"))
      g_ptr_array_add (names, g_strndup (f, strlen (f) - strlen (".in.xml")));
  g_ptr_array_sort (names, compare_names);
  if (names->len < MIN_GOLDEN)
    fail_msg ("only %u golden inputs in %s", names->len, dir);
  for (guint i = 0; i < names->len; i++)
    {
      print_message ("golden %s\n", (const char *) names->pdata[i]);
      golden_one (names->pdata[i], update);
    }
}

static void
test_parse_domain (void **state)
{
  g_autofree char *deb = read_data ("debian-virt-install.in.xml");
  g_autoptr(VmemDomainInfo) i = parse_ok (deb);
  assert_string_equal (i->name, "erp-app-01");
  assert_string_equal (i->uuid, "5f3c1a2e-8d4b-4a7e-9c21-3b6f0e9d7a11");
  assert_string_equal (i->type, "kvm");
  assert_int_equal (i->memory_mib, 8192);
  assert_int_equal (i->current_mib, 8192);
  assert_int_equal (i->vcpus, 4);
  assert_string_equal (i->workload, "erp");
  assert_string_equal (i->balloon_model, "virtio");
  assert_false (i->balloon_autodeflate);
  assert_false (i->prealloc);
  assert_true (i->manageable);
  assert_false (i->has_plan);

  g_autofree char *numa = read_data ("numa-cells.in.xml");
  g_autoptr(VmemDomainInfo) n = parse_ok (numa);
  assert_int_equal (n->numa_cells, 2);
  assert_int_equal (n->numa_memory_mib, 16384);
  assert_int_equal (n->memory_mib, 16384);
  assert_null (n->workload);

  g_autofree char *huge = read_data ("hugepages.in.xml");
  g_autoptr(VmemDomainInfo) h = parse_ok (huge);
  assert_true (h->hugepages);
  g_autofree char *memfd = read_data ("memfd-shared.in.xml");
  g_autoptr(VmemDomainInfo) m = parse_ok (memfd);
  assert_string_equal (m->memory_source, "memfd");
  assert_string_equal (m->memory_access, "shared");

  g_autofree char *maxm = read_data ("maxmemory-slots.in.xml");
  g_autoptr(VmemDomainInfo) x = parse_ok (maxm);
  assert_int_equal (x->max_memory_mib, 32768);
  assert_int_equal (x->max_memory_slots, 16);

  g_autofree char *vm = read_data ("virtio-mem-own-device.in.xml");
  g_autoptr(VmemDomainInfo) v = parse_ok (vm);
  assert_int_equal (v->virtio_mem_devices, 1);
  assert_int_equal (v->virtio_mem_size_mib, 1024);
  assert_int_equal (v->virtio_mem_requested_mib, 0);
  assert_int_equal (v->current_mib, 256);

  g_autofree char *units = read_data ("units-gib-bytes.in.xml");
  g_autoptr(VmemDomainInfo) u = parse_ok (units);
  assert_int_equal (u->memory_mib, 6144);
  assert_int_equal (u->current_mib, 5120);

  g_autofree char *no_cur = read_data ("no-memballoon.in.xml");
  g_autoptr(VmemDomainInfo) nc = parse_ok (no_cur);
  assert_int_equal (nc->current_mib, 512);
  assert_false (nc->has_balloon);
  assert_null (nc->balloon_model);
  assert_true (nc->manageable);

  g_autofree char *threads = read_data ("allocation-ondemand-threads.in.xml");
  g_autoptr(VmemDomainInfo) t = parse_ok (threads);
  assert_string_equal (t->allocation_mode, "ondemand");
  assert_false (t->prealloc);

  g_autofree char *restage = read_data ("restage-existing-plan.in.xml");
  g_autoptr(VmemDomainInfo) r = parse_ok (restage);
  assert_true (r->has_plan);
  assert_int_equal (r->plan_demand_mib, 2048);
  assert_string_equal (r->plan_source, "profile");
  assert_string_equal (r->plan_mode, "balloon");
  assert_true (r->plan_prealloc);
  assert_int_equal (r->plan_time, 1764576000);
  assert_true (r->prealloc);

  g_autofree char *none = read_data ("memballoon-none.in.xml");
  g_autoptr(VmemDomainInfo) nb = parse_ok (none);
  assert_false (nb->manageable);
  assert_non_null (strstr (nb->unmanageable_reason, "model='none'"));
}

/* The tag is found by its namespace URI, whatever the prefix. */
static void
test_workload_by_namespace (void **state)
{
  const char *a = "<domain><name>a</name><memory>1048576</memory><metadata>"
                  "<w:workload xmlns:w='urn:vmemd:1' name='pg'/></metadata></domain>";
  const char *b = "<domain><name>b</name><memory>1048576</memory><metadata>"
                  "<vmemd:workload xmlns:vmemd='urn:not-vmemd' name='pg'/></metadata></domain>";
  const char *c = "<domain><name>c</name><memory>1048576</memory><metadata>"
                  "<workload xmlns='urn:vmemd:1' name='default-ns'/></metadata></domain>";
  g_autoptr(VmemDomainInfo) ia = parse_ok (a);
  g_autoptr(VmemDomainInfo) ib = parse_ok (b);
  g_autoptr(VmemDomainInfo) ic = parse_ok (c);
  assert_string_equal (ia->workload, "pg");
  assert_null (ib->workload);
  assert_string_equal (ic->workload, "default-ns");
}

static void
test_memory_units (void **state)
{
  static const struct { const char *text, *unit; guint64 kib; } ok[] = {
    { "1", "b", 1 }, { "1024", "bytes", 1 }, { "2048", "byte", 2 }, { "1", "KB", 1 },
    { "1", "MB", 977 }, { "1", "k", 1 }, { "7", NULL, 7 }, { "7", "", 7 }, { "3", "KiB", 3 },
    { "1", "M", 1024 }, { "1", "mib", 1024 }, { "2", "G", 2097152 }, { "2", "GiB", 2097152 },
    { "1", "GB", 976563 }, { "1", "T", 1073741824 }, { "1", "TiB", 1073741824 },
    { "1", "P", G_GUINT64_CONSTANT (1099511627776) }, { "1", "EiB", G_GUINT64_CONSTANT (1) << 50 },
  };
  static const struct { const char *text, *unit, *needle; } bad[] = {
    { "1", "XB", "unit 'XB'" }, { "1", "KiBB", "unit" }, { "1", "Q", "unit" },
    { "-1", NULL, "whole number" }, { "1.5", "GiB", "whole number" }, { "", NULL, "whole number" },
    { "abc", "KiB", "whole number" }, { "99999999999999999999", NULL, "whole number" },
    { "20", "EiB", "too large" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (ok); i++)
    {
      g_autoptr(GError) error = NULL;
      guint64 kib = 0;
      if (!vmem_xml_parse_memory_kib (ok[i].text, ok[i].unit, &kib, &error))
        fail_msg ("%s %s: %s", ok[i].text, ok[i].unit, error->message);
      if (kib != ok[i].kib)
        fail_msg ("%s %s: %" G_GUINT64_FORMAT " KiB, want %" G_GUINT64_FORMAT, ok[i].text,
                  ok[i].unit, kib, ok[i].kib);
    }
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      guint64 kib = 0;
      if (vmem_xml_parse_memory_kib (bad[i].text, bad[i].unit, &kib, &error))
        fail_msg ("'%s' '%s' accepted", bad[i].text, bad[i].unit);
      assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
      if (strstr (error->message, bad[i].needle) == NULL)
        fail_msg ("error '%s' does not mention '%s'", error->message, bad[i].needle);
    }
}

/* A second staging with another plan keeps the first one's originals, so
 * a restore still goes back to the administrator's definition. */
static void
test_restage_keeps_originals (void **state)
{
  g_autofree char *in = read_data ("debian-virt-install.in.xml");
  g_autoptr(GError) error = NULL;
  TestPlan tp;
  gboolean changed = FALSE;

  test_plan_defaults (&tp);
  g_autofree char *one = vmem_xml_apply_plan (in, &tp.plan, NULL, &error);
  assert_non_null (one);
  tp.plan.demand_mib = 6144;
  tp.plan.prealloc = FALSE;
  tp.plan.stats_period = 7;
  tp.plan.time = PLAN_TIME + 3600;
  g_autofree char *two = vmem_xml_apply_plan (one, &tp.plan, &changed, &error);
  assert_non_null (two);
  assert_true (changed);
  assert_non_null (strstr (two, "orig_current_kib='8388608'"));
  assert_non_null (strstr (two, "orig_allocation='none'"));
  assert_non_null (strstr (two, "time='2026-01-01T01:00:00Z'"));
  assert_null (strstr (two, "<allocation"));
  assert_null (strstr (two, "<memoryBacking"));
  g_autoptr(VmemDomainInfo) i = parse_ok (two);
  assert_int_equal (i->current_mib, 6144);
  assert_int_equal (i->balloon_stats_period, 7);
  assert_false (i->plan_prealloc);

  /* Back to the first plan: prealloc is added again, and still known to
   * be vmemd's own. */
  test_plan_clear (&tp);
  test_plan_defaults (&tp);
  g_autofree char *three = vmem_xml_apply_plan (two, &tp.plan, NULL, &error);
  assert_non_null (three);
  g_autofree char *restored = vmem_xml_restore (three, &error);
  assert_non_null (restored);
  g_autoptr(VmemDomainInfo) a = parse_ok (in);
  g_autoptr(VmemDomainInfo) b = parse_ok (restored);
  assert_int_equal (b->current_kib, a->current_kib);
  assert_null (b->allocation_mode);
  assert_false (b->balloon_autodeflate);
  assert_int_equal (b->balloon_stats_period, 0);
  assert_null (strstr (restored, "vmemd"));
  test_plan_clear (&tp);
}

static void
test_restore_edge_cases (void **state)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *in = read_data ("minimal.in.xml");

  /* No plan: nothing to do, and no error. */
  g_autofree char *none = vmem_xml_restore (in, &error);
  assert_null (none);
  assert_null (error);

  /* A damaged plan element is refused before anything changes. */
  const char *bad_kib = "<domain><name>x</name><memory>1048576</memory><metadata>"
                        "<p:plan xmlns:p='urn:vmemd:plan:1' orig_current_kib='lots'/>"
                        "</metadata></domain>";
  g_autofree char *r1 = vmem_xml_restore (bad_kib, &error);
  assert_null (r1);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  assert_non_null (strstr (error->message, "orig_current_kib"));
  g_clear_error (&error);
  const char *bad_balloon = "<domain><name>x</name><memory>1048576</memory><metadata>"
                            "<p:plan xmlns:p='urn:vmemd:plan:1' orig_memballoon='&lt;disk/&gt;'/>"
                            "</metadata><devices><memballoon model='virtio'/></devices></domain>";
  g_autofree char *r2 = vmem_xml_restore (bad_balloon, &error);
  assert_null (r2);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  assert_non_null (strstr (error->message, "orig_memballoon"));
  g_clear_error (&error);

  /* Other metadata stays; only vmemd's elements go. */
  g_autofree char *other = read_data ("other-metadata.in.xml");
  TestPlan tp;
  test_plan_defaults (&tp);
  g_autofree char *staged = vmem_xml_apply_plan (other, &tp.plan, NULL, &error);
  assert_non_null (staged);
  g_autofree char *back = vmem_xml_restore (staged, &error);
  assert_non_null (back);
  assert_non_null (strstr (back, "<nova:flavor name=\"m1.large\">"));
  assert_non_null (strstr (back, "env=prod &amp; critical</app:tags>"));
  assert_null (strstr (back, "urn:vmemd"));
  validate_string (back, "restored.xml");
  test_plan_clear (&tp);

  /* After libvirt has stored and formatted a staged definition (and
   * replaced the tag), restore still brings back the original balloon. */
  g_autofree char *rt = read_data ("libvirt-roundtrip.in.xml");
  g_autofree char *orig = read_data ("debian-virt-install.in.xml");
  g_autofree char *undone = vmem_xml_restore (rt, &error);
  assert_non_null (undone);
  const char *balloon = "    <memballoon model='virtio'>\n      <address type='pci' domain='0x0000' "
                        "bus='0x05' slot='0x00' function='0x0'/>\n    </memballoon>\n";
  assert_non_null (strstr (orig, balloon));
  assert_non_null (strstr (undone, balloon));
  assert_non_null (strstr (undone, "<currentMemory unit='KiB'>8388608</currentMemory>"));
  assert_null (strstr (undone, "memoryBacking"));
  assert_null (strstr (undone, "vmemd"));
  assert_non_null (strstr (undone, "<libosinfo:os id=\"http://debian.org/debian/12\"/>"));
  validate_string (undone, "undone.xml");
}

static void
test_migrate_variant (void **state)
{
  g_autoptr(GError) error = NULL;
  TestPlan tp;
  test_plan_defaults (&tp);

  g_autofree char *in = read_data ("debian-virt-install.in.xml");
  g_autofree char *out = vmem_xml_migrate_variant (in, &tp.plan, &error);
  assert_non_null (out);
  assert_null (error);
  g_autoptr(VmemDomainInfo) a = parse_ok (in);
  g_autoptr(VmemDomainInfo) b = parse_ok (out);
  assert_true (b->prealloc);
  /* ABI-checked parts stay as they are. */
  assert_int_equal (b->current_kib, a->current_kib);
  assert_false (b->balloon_autodeflate);
  assert_int_equal (b->balloon_stats_period, 0);
  assert_false (b->has_plan);
  assert_null (strstr (out, "vmemd-plan"));
  g_autofree char *want = g_strdup_printf ("%.*s\n  <memoryBacking>\n    <allocation mode='immediate'/>\n"
                                           "  </memoryBacking>%s",
                                           (int) (strstr (in, "</currentMemory>") + 16 - in), in,
                                           strstr (in, "</currentMemory>") + 16);
  assert_same_text (want, out, "migrate variant");
  validate_string (out, "migrate.xml");

  /* Already preallocated, or not wanted: nothing to change. */
  g_autofree char *again = vmem_xml_migrate_variant (out, &tp.plan, &error);
  assert_null (again);
  assert_null (error);
  tp.plan.prealloc = FALSE;
  g_autofree char *off = vmem_xml_migrate_variant (in, &tp.plan, &error);
  assert_null (off);
  assert_null (error);
  tp.plan.prealloc = TRUE;

  /* An administrator's allocation keeps its threads. */
  g_autofree char *threads = read_data ("allocation-ondemand-threads.in.xml");
  g_autofree char *t = vmem_xml_migrate_variant (threads, &tp.plan, &error);
  assert_non_null (t);
  assert_non_null (strstr (t, "<allocation mode=\"immediate\" threads=\"4\"/>"));

  /* Bad XML is an error, not a silent pass. */
  g_autofree char *bad = vmem_xml_migrate_variant ("<domain>", &tp.plan, &error);
  assert_null (bad);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  test_plan_clear (&tp);
}

static void
assert_refused (const char *xml, const char *needle)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GError) error2 = NULL;
  TestPlan tp;
  test_plan_defaults (&tp);

  g_autoptr(VmemDomainInfo) i = vmem_xml_parse_domain (xml, &error);
  if (i != NULL)
    fail_msg ("accepted: %.80s", xml ? xml : "(null)");
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  if (needle != NULL && strstr (error->message, needle) == NULL)
    fail_msg ("error '%s' does not mention '%s'", error->message, needle);
  g_autofree char *out = vmem_xml_apply_plan (xml, &tp.plan, NULL, &error2);
  assert_null (out);
  assert_true (g_error_matches (error2, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  test_plan_clear (&tp);
}

static void
test_malformed (void **state)
{
  assert_refused (NULL, "no domain XML");
  assert_refused ("", "line");
  assert_refused ("not xml at all", "line 1");
  assert_refused ("<domain", "line 1");
  assert_refused ("<domain>\n  <name>x</name>\n  <memory>1</memry>\n</domain>\n", "line 3");
  assert_refused ("<domain><name>x</name></domai>", "line 1");
  assert_refused ("<domain><name>x</name></domain><domain/>", "line 1");
  assert_refused ("<notdomain><name>x</name></notdomain>", "<notdomain>, not <domain>");
  assert_refused ("<domain xmlns='urn:x'><name>x</name></domain>", "not <domain>");
  assert_refused ("<domain><memory>1048576</memory></domain>", "no <name>");
  assert_refused ("<domain><name>x</name><memory>abc</memory></domain>", "<memory>");
  assert_refused ("<domain><name>x</name><memory unit='furlong'>1</memory></domain>", "furlong");
  assert_refused ("<domain><name>x</name><memory>1048576</memory><currentMemory>-5</currentMemory>"
                  "</domain>", "<currentMemory>");
  assert_refused ("<?xml version='1.0' encoding='ISO-8859-1'?><domain><name>x</name></domain>",
                  "ISO-8859-1");

  /* Readable but not manageable: a clear error of its own kind. */
  g_autoptr(GError) error = NULL;
  TestPlan tp;
  test_plan_defaults (&tp);
  g_autofree char *nomem = vmem_xml_apply_plan ("<domain type='kvm'><name>x</name></domain>",
                                                &tp.plan, NULL, &error);
  assert_null (nomem);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE));
  assert_non_null (strstr (error->message, "no <memory>"));
  g_clear_error (&error);
  /* Only QEMU and KVM domains (and the test driver's) are vmemd's. */
  g_autofree char *notype = vmem_xml_apply_plan ("<domain><name>x</name><memory>1048576</memory>"
                                                 "</domain>", &tp.plan, NULL, &error);
  assert_null (notype);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE));
  assert_non_null (strstr (error->message, "names no type"));
  g_clear_error (&error);
  static const char *const types[] = { "kvm", "qemu", "test" };
  for (gsize i = 0; i < G_N_ELEMENTS (types); i++)
    assert_true (vmem_xml_type_is_managed (types[i]));
  static const char *const others[] = { "xen", "lxc", "vmware", "bhyve", "hyperv", "vbox",
                                        "KVM", "", NULL };
  for (gsize i = 0; i < G_N_ELEMENTS (others); i++)
    assert_false (vmem_xml_type_is_managed (others[i]));
  tp.plan.demand_mib = 0;
  g_autofree char *zero = vmem_xml_apply_plan ("<domain><name>x</name><memory>1048576</memory>"
                                               "</domain>", &tp.plan, NULL, &error);
  assert_null (zero);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  test_plan_clear (&tp);
}

/* An external entity or DTD is neither fetched nor expanded: a DOCTYPE is
 * refused, and nothing of the file it names shows up anywhere. */
static void
test_xxe (void **state)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_dir_make_tmp ("vmem-xxe-XXXXXX", &error);
  assert_non_null (dir);
  g_autofree char *secret = g_build_filename (dir, "secret", NULL);
  assert_true (g_file_set_contents (secret, "S3CR3T-CONTENT", -1, NULL));

  g_autofree char *ext = g_strdup_printf (
    "<?xml version='1.0'?>\n<!DOCTYPE domain [<!ENTITY xxe SYSTEM 'file://%s'>]>\n"
    "<domain><name>&xxe;</name><memory>1048576</memory></domain>", secret);
  g_autofree char *param = g_strdup_printf (
    "<!DOCTYPE domain [<!ENTITY %% p SYSTEM 'file://%s'> %%p;]>\n"
    "<domain><name>x</name><memory>1048576</memory></domain>", secret);
  const char *dtd = "<!DOCTYPE domain SYSTEM 'http://127.0.0.1:9/domain.dtd'>\n"
                    "<domain><name>x</name><memory>1048576</memory></domain>";
  const char *laughs =
    "<!DOCTYPE domain [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>"
    "<!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'><!ENTITY d '&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;'>"
    "<!ENTITY e '&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;'><!ENTITY f '&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;'>]>"
    "<domain><name>&f;&f;&f;&f;&f;&f;&f;&f;</name><memory>1048576</memory></domain>";
  const char *cases[] = { ext, param, dtd, laughs };
  TestPlan tp;
  test_plan_defaults (&tp);

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr(GError) e1 = NULL;
      g_autoptr(GError) e2 = NULL;
      g_autoptr(GError) e3 = NULL;
      g_autoptr(VmemDomainInfo) info = vmem_xml_parse_domain (cases[i], &e1);
      assert_null (info);
      assert_true (g_error_matches (e1, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
      assert_null (strstr (e1->message, "S3CR3T"));
      g_autofree char *out = vmem_xml_apply_plan (cases[i], &tp.plan, NULL, &e2);
      assert_null (out);
      assert_null (strstr (e2->message, "S3CR3T"));
      g_autofree char *mig = vmem_xml_migrate_variant (cases[i], &tp.plan, &e3);
      assert_null (mig);
      assert_non_null (e3);
    }
  g_unlink (secret);
  g_rmdir (dir);
  test_plan_clear (&tp);
}

static void
test_huge_input (void **state)
{
  g_autoptr(GError) error = NULL;
  TestPlan tp;
  test_plan_defaults (&tp);

  /* Over the cap: refused before parsing. */
  gsize n = VMEM_XML_MAX_SIZE + 1;
  g_autofree char *big = g_malloc (n + 1);
  memset (big, ' ', n);
  memcpy (big, "<domain>", 8);
  big[n] = '\0';
  g_autofree char *out = vmem_xml_apply_plan (big, &tp.plan, NULL, &error);
  assert_null (out);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  assert_non_null (strstr (error->message, "larger than the 16 MiB"));
  g_clear_error (&error);

  /* Under it, a large definition passes through whole. */
  g_autofree char *in = read_data ("minimal.in.xml");
  g_autofree char *filler = g_strnfill (8 * 1024 * 1024, 'x');
  g_autoptr(GString) s = g_string_new (in);
  g_string_replace (s, "</domain>", "  <description>", 1);
  g_string_append_printf (s, "%s</description>\n</domain>\n", filler);
  g_autofree char *staged = vmem_xml_apply_plan (s->str, &tp.plan, NULL, &error);
  if (staged == NULL)
    fail_msg ("%s", error->message);
  assert_non_null (strstr (staged, filler));
  g_autoptr(VmemDomainInfo) i = parse_ok (staged);
  assert_int_equal (i->current_mib, 1024);
  test_plan_clear (&tp);
}

/* Values vmemd writes are escaped, and read back as they were. */
static void
test_escaping (void **state)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *in = read_data ("minimal.in.xml");
  TestPlan tp;
  test_plan_defaults (&tp);
  g_free (tp.workload);
  tp.plan.workload = tp.workload = g_strdup ("it's <\"erp\"> & co\n\tv2");

  g_autofree char *out = vmem_xml_apply_plan (in, &tp.plan, NULL, &error);
  assert_non_null (out);
  g_autoptr(VmemDomainInfo) i = parse_ok (out);
  assert_string_equal (i->plan_workload, tp.workload);
  gboolean changed = TRUE;
  g_autofree char *again = vmem_xml_apply_plan (out, &tp.plan, &changed, &error);
  assert_same_text (out, again, "re-applied escaped plan");
  assert_false (changed);
  test_plan_clear (&tp);
}

/* The tag and the plan live in two namespaces, so replacing the tag the
 * way virDomainSetMetadata does leaves the plan alone, and a re-stage
 * leaves the new tag alone. */
static void
test_tag_and_plan_independent (void **state)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *in = read_data ("vnc-passwd.in.xml");
  TestPlan tp;
  test_plan_defaults (&tp);

  g_autofree char *out = vmem_xml_apply_plan (in, &tp.plan, NULL, &error);
  assert_non_null (out);
  g_autoptr(GString) s = g_string_new (out);
  assert_int_equal (g_string_replace (s, "<vmemd:workload xmlns:vmemd=\"urn:vmemd:1\" name=\"desktop\"/>",
                                      "<vmemd:workload xmlns:vmemd=\"urn:vmemd:1\" name=\"erp\"/>", 0), 1);
  g_autoptr(VmemDomainInfo) i = parse_ok (s->str);
  assert_string_equal (i->workload, "erp");
  assert_true (i->has_plan);
  g_autofree char *again = vmem_xml_apply_plan (s->str, &tp.plan, NULL, &error);
  assert_same_text (s->str, again, "re-staged after a new tag");
  test_plan_clear (&tp);
}

/* ---- virtio-mem mode ---- */

static void
test_plan_virtio_mem (TestPlan *tp, guint64 demand_mib)
{
  test_plan_defaults (tp);
  tp->plan.mode = VMEM_MODE_VIRTIO_MEM;
  tp->plan.demand_mib = demand_mib;
}

static char *
apply_ok (const char *xml, const VmemPlan *plan, gboolean *changed)
{
  g_autoptr(GError) error = NULL;
  char *out = vmem_xml_apply_plan (xml, plan, changed, &error);
  if (out == NULL)
    fail_msg ("cannot stage: %s", error->message);
  return out;
}

static char *
restore_ok (const char *xml)
{
  g_autoptr(GError) error = NULL;
  char *out = vmem_xml_restore (xml, &error);
  if (out == NULL)
    fail_msg ("cannot restore: %s", error ? error->message : "no plan");
  return out;
}

static void
test_virtio_mem_layout (void **state)
{
  static const struct {
    guint64 top_mib, demand_mib;
    guint64 base_mib, size_mib, requested_mib, memory_mib;
  } ok[] = {
    /* The demand, and the rest in whole 128 MiB. */
    { 8192, 3072, 3072, 5120, 0, 8192 },
    { 8192, 3000, 3000, 5120, 0, 8120 },
    /* At least a quarter of the top, and 128 MiB. */
    { 8192, 512, 2048, 6144, 0, 8192 },
    { 1024, 100, 256, 768, 0, 1024 },
    { 256, 1, 128, 128, 0, 256 },
    /* Rounded up to the 2 MiB block. */
    { 4096, 1025, 1026, 2944, 0, 3970 },
    /* Near the top: the device one unit below it, partly plugged. */
    { 4096, 4000, 3968, 128, 32, 4096 },
    { 4096, 4096, 3968, 128, 128, 4096 },
    { 4096, 99999, 3968, 128, 128, 4096 },
    { 4096, 3968, 3968, 128, 0, 4096 },
    /* A top off the block is rounded down first. */
    { 4097, 1024, 1024, 3072, 0, 4096 },
  };
  for (gsize k = 0; k < G_N_ELEMENTS (ok); k++)
    {
      g_autoptr(GError) error = NULL;
      VmemVirtioMemLayout l;
      if (!vmem_xml_virtio_mem_layout (ok[k].top_mib * 1024, ok[k].demand_mib * 1024, &l, &error))
        fail_msg ("%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT ": %s", ok[k].top_mib,
                  ok[k].demand_mib, error->message);
      if (l.base_kib != ok[k].base_mib * 1024 || l.size_kib != ok[k].size_mib * 1024 ||
          l.requested_kib != ok[k].requested_mib * 1024 ||
          l.memory_kib != ok[k].memory_mib * 1024)
        fail_msg ("top %" G_GUINT64_FORMAT " demand %" G_GUINT64_FORMAT ": base %" G_GUINT64_FORMAT
                  " size %" G_GUINT64_FORMAT " requested %" G_GUINT64_FORMAT " memory %"
                  G_GUINT64_FORMAT " (KiB)", ok[k].top_mib, ok[k].demand_mib, l.base_kib,
                  l.size_kib, l.requested_kib, l.memory_kib);
    }

  /* Odd sizes in KiB still give whole blocks. */
  VmemVirtioMemLayout l;
  assert_true (vmem_xml_virtio_mem_layout (3145729, 1000001, &l, NULL));
  assert_int_equal (l.base_kib % VMEM_XML_VIRTIO_MEM_BLOCK_KIB, 0);
  assert_int_equal (l.size_kib % (VMEM_XML_VIRTIO_MEM_ALIGN_MIB * 1024), 0);
  assert_true (l.base_kib >= 1000001);
  assert_true (l.memory_kib <= 3145729);

  g_autoptr(GError) error = NULL;
  assert_false (vmem_xml_virtio_mem_layout (255 * 1024, 64 * 1024, &l, &error));
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE));
  assert_non_null (strstr (error->message, "below the 256 MiB"));
}

/* Which mode a domain can be staged in, and why not. */
static void
test_virtio_mem_manageable (void **state)
{
  g_autofree char *none = read_data ("memballoon-none.in.xml");
  g_autoptr(VmemDomainInfo) n = parse_ok (none);
  assert_non_null (vmem_xml_unmanageable_reason (n, VMEM_MODE_BALLOON));
  assert_non_null (vmem_xml_unmanageable_reason (n, VMEM_MODE_OBSERVE));
  assert_null (vmem_xml_unmanageable_reason (n, VMEM_MODE_VIRTIO_MEM));

  g_autofree char *numa = read_data ("numa-cells.in.xml");
  g_autoptr(VmemDomainInfo) u = parse_ok (numa);
  assert_null (vmem_xml_unmanageable_reason (u, VMEM_MODE_BALLOON));
  assert_non_null (strstr (vmem_xml_unmanageable_reason (u, VMEM_MODE_VIRTIO_MEM), "NUMA"));

  /* A memory device of its own, NUMA or not. */
  const char *dimm = "<domain type='kvm'><name>d</name><memory unit='GiB'>4</memory>"
                     "<devices><memory model='dimm'><target><size unit='GiB'>1</size>"
                     "<node>0</node></target></memory></devices></domain>";
  g_autoptr(VmemDomainInfo) d = parse_ok (dimm);
  assert_int_equal (d->memory_devices, 1);
  assert_non_null (strstr (vmem_xml_unmanageable_reason (d, VMEM_MODE_VIRTIO_MEM),
                           "memory devices of its own"));
  TestPlan tp;
  test_plan_virtio_mem (&tp, 1024);
  g_autoptr(GError) error = NULL;
  g_autofree char *out = vmem_xml_apply_plan (dimm, &tp.plan, NULL, &error);
  assert_null (out);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE));
  assert_non_null (strstr (error->message, "cannot be managed in virtio-mem mode: it has memory "
                                           "devices of its own"));
  g_clear_error (&error);

  /* Once staged, the cell and the device are vmemd's; a second cell is
   * not. */
  g_autofree char *in = read_data ("virtio-mem-minimal.in.xml");
  g_autofree char *staged = apply_ok (in, &tp.plan, NULL);
  g_autoptr(VmemDomainInfo) s = parse_ok (staged);
  assert_true (s->virtio_mem_staged);
  assert_null (vmem_xml_unmanageable_reason (s, VMEM_MODE_VIRTIO_MEM));
  g_autoptr(GString) two = g_string_new (staged);
  g_string_replace (two, "</numa>", "  <cell id='1' cpus='0' memory='1048576' unit='KiB'/>\n    </numa>", 1);
  g_autoptr(VmemDomainInfo) t = parse_ok (two->str);
  assert_non_null (strstr (vmem_xml_unmanageable_reason (t, VMEM_MODE_VIRTIO_MEM), "besides"));
  /* A device with vmemd's alias in a domain vmemd never staged is not
   * vmemd's. */
  g_autofree char *restored = restore_ok (staged);
  g_autoptr(GString) alias = g_string_new (restored);
  g_string_replace (alias, "</os>", "</os>\n  <devices>\n    <memory model='virtio-mem'><target>"
                    "<size unit='KiB'>131072</size><node>0</node><block unit='KiB'>2048</block>"
                    "<requested unit='KiB'>0</requested></target><alias name='ua-vmemd-mem'/>"
                    "</memory>\n  </devices>", 1);
  g_autoptr(VmemDomainInfo) a = parse_ok (alias->str);
  assert_false (a->virtio_mem_staged);
  assert_non_null (vmem_xml_unmanageable_reason (a, VMEM_MODE_VIRTIO_MEM));
  test_plan_clear (&tp);
}

/* balloon -> virtio-mem -> balloon gives the balloon staging back byte for
 * byte, each step valid, each restorable to the original. */
static void
test_virtio_mem_switch (void **state)
{
  static const char *const inputs[] = {
    "debian-virt-install.in.xml", "virtio-mem-minimal.in.xml", "virtio-mem-cpu-model.in.xml",
    "virtio-mem-units.in.xml", "virtio-mem-one-line.in.xml", "no-devices.in.xml",
    "spice-passwd.in.xml",
  };
  for (gsize k = 0; k < G_N_ELEMENTS (inputs); k++)
    {
      g_autofree char *in = read_data (inputs[k]);
      TestPlan b, v;
      gboolean changed = FALSE;
      test_plan_defaults (&b);
      b.plan.demand_mib = 640;
      test_plan_virtio_mem (&v, 700);
      print_message ("switch %s\n", inputs[k]);

      g_autofree char *b1 = apply_ok (in, &b.plan, NULL);
      g_autofree char *v1 = apply_ok (b1, &v.plan, &changed);
      assert_true (changed);
      validate_string (v1, "v1.xml");
      g_autoptr(VmemDomainInfo) iv = parse_ok (v1);
      assert_true (iv->virtio_mem_staged);
      assert_string_equal (iv->plan_mode, "virtio-mem");
      g_autofree char *b2 = apply_ok (v1, &b.plan, &changed);
      assert_true (changed);
      assert_same_text (b1, b2, "balloon staging after virtio-mem");

      /* And the other way round. */
      g_autofree char *v2 = apply_ok (in, &v.plan, NULL);
      g_autofree char *b3 = apply_ok (v2, &b.plan, NULL);
      validate_string (b3, "b3.xml");
      g_autoptr(VmemDomainInfo) ib = parse_ok (b3);
      assert_false (ib->virtio_mem_staged);
      assert_int_equal (ib->numa_cells, 0);
      assert_int_equal (ib->memory_devices, 0);
      assert_null (strstr (b3, "orig_memory="));
      assert_null (strstr (b3, "maxMemory"));
      assert_int_equal (ib->current_kib, 640 * 1024);
      g_autofree char *v3 = apply_ok (b3, &v.plan, NULL);
      validate_string (v3, "v3.xml");
      g_autofree char *again = apply_ok (v3, &v.plan, &changed);
      assert_false (changed);

      /* Whatever the path, restore gives the original back. */
      const char *const staged[] = { v1, b2, v2, b3, v3 };
      for (gsize m = 0; m < G_N_ELEMENTS (staged); m++)
        check_restore (inputs[k], in, staged[m]);
      test_plan_clear (&b);
      test_plan_clear (&v);
    }
}

/* A re-stage with another demand moves only the base, the device and the
 * sizes that follow; a restore still gives the original. */
static void
test_virtio_mem_restage (void **state)
{
  g_autofree char *in = read_data ("virtio-mem-debian.in.xml");
  TestPlan tp;
  gboolean changed = FALSE;
  test_plan_virtio_mem (&tp, 3072);

  g_autofree char *one = apply_ok (in, &tp.plan, NULL);
  tp.plan.demand_mib = 5000;
  tp.plan.prealloc = FALSE;
  g_autofree char *two = apply_ok (one, &tp.plan, &changed);
  assert_true (changed);
  validate_string (two, "two.xml");
  g_autoptr(VmemDomainInfo) i = parse_ok (two);
  assert_int_equal (i->numa_memory_mib, 5000);
  assert_int_equal (i->virtio_mem_size_mib, 3072);
  assert_int_equal (i->memory_mib, 8072);
  assert_int_equal (i->current_mib, 8072);
  assert_int_equal (i->max_memory_mib, 8072);
  assert_false (i->prealloc);
  /* The originals stay the first staging's. */
  assert_non_null (strstr (two, "orig_memory=\"&lt;memory unit='KiB'&gt;8388608&lt;/memory&gt;\""));
  assert_non_null (strstr (two, "orig_current_kib='8388608'"));
  /* One cell and one device, however often it is staged. */
  assert_int_equal (i->numa_cells, 1);
  assert_int_equal (i->virtio_mem_devices, 1);
  check_restore ("virtio-mem-debian", in, two);

  /* The same plan again: the same bytes. */
  g_autofree char *three = apply_ok (two, &tp.plan, &changed);
  assert_false (changed);
  assert_same_text (two, three, "re-staged");
  test_plan_clear (&tp);
}

/* After libvirt stored and formatted a staged definition (adding a
 * default CPU model, addresses and its own quoting), the same plan
 * changes nothing and a restore takes vmemd's parts out again. */
static void
test_virtio_mem_libvirt_roundtrip (void **state)
{
  g_autofree char *rt = read_data ("virtio-mem-roundtrip.xml");
  TestPlan tp;
  gboolean changed = TRUE;
  test_plan_virtio_mem (&tp, 1024);

  g_autofree char *again = apply_ok (rt, &tp.plan, &changed);
  assert_false (changed);
  assert_same_text (rt, again, "re-staged after libvirt");

  g_autofree char *undone = restore_ok (rt);
  validate_string (undone, "undone.xml");
  g_autoptr(VmemDomainInfo) u = parse_ok (undone);
  assert_int_equal (u->memory_kib, 4194304);
  assert_int_equal (u->max_memory_mib, 0);
  assert_int_equal (u->numa_cells, 0);
  assert_int_equal (u->memory_devices, 0);
  assert_false (u->has_plan);
  assert_null (strstr (undone, "currentMemory"));
  assert_null (strstr (undone, "memoryBacking"));
  assert_null (strstr (undone, "vmemd"));
  /* What libvirt filled in stays, as it holds for any domain without
   * <cpu>; the balloon libvirt added goes with orig_memballoon='none'. */
  assert_non_null (strstr (undone, "  <cpu mode='custom' match='exact' check='none'>\n"
                                   "    <model fallback='forbid'>qemu64</model>\n  </cpu>\n"));
  assert_null (strstr (undone, "memballoon"));
  assert_non_null (strstr (undone, "<controller type='pci' index='0' model='pci-root'/>"));

  /* Back to balloon mode from libvirt's form. */
  TestPlan b;
  test_plan_defaults (&b);
  g_autofree char *bal = apply_ok (rt, &b.plan, NULL);
  validate_string (bal, "balloon.xml");
  g_autoptr(VmemDomainInfo) bi = parse_ok (bal);
  assert_int_equal (bi->memory_kib, 4194304);
  assert_int_equal (bi->current_kib, 1048576);
  assert_int_equal (bi->numa_cells, 0);
  assert_int_equal (bi->memory_devices, 0);
  assert_true (bi->balloon_free_page_reporting);
  test_plan_clear (&b);
  test_plan_clear (&tp);
}

/* A <memballoon model='none'> domain: staged and restored in virtio-mem
 * mode; balloon mode refuses it and leaves the virtio-mem form as it is. */
static void
test_virtio_mem_balloon_none (void **state)
{
  g_autofree char *in = read_data ("memballoon-none.in.xml");
  g_autoptr(GError) error = NULL;
  TestPlan v, b;
  test_plan_virtio_mem (&v, 300);
  test_plan_defaults (&b);

  g_autofree char *staged = apply_ok (in, &v.plan, NULL);
  validate_string (staged, "staged.xml");
  assert_non_null (strstr (staged, "<memballoon model='none'/>"));
  g_autofree char *bal = vmem_xml_apply_plan (staged, &b.plan, NULL, &error);
  assert_null (bal);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE));
  assert_non_null (strstr (error->message, "model='none'"));
  g_autofree char *restored = restore_ok (staged);
  assert_same_text (in, restored, "restored");
  test_plan_clear (&v);
  test_plan_clear (&b);
}

static void
test_virtio_mem_restore_damaged (void **state)
{
  static const struct { const char *attrs, *needle; } bad[] = {
    { "orig_memory='&lt;disk/&gt;'", "orig_memory" },
    { "orig_memory='&lt;memory&gt;lots&lt;/memory&gt;'", "<memory>" },
    { "orig_memory='&lt;memory&gt;1048576&lt;/memory&gt;' orig_maxmemory='junk'", "orig_maxmemory" },
    { "orig_memory='&lt;memory&gt;1048576&lt;/memory&gt;' orig_cpu='&lt;numa/&gt;'", "orig_cpu" },
  };
  for (gsize k = 0; k < G_N_ELEMENTS (bad); k++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(GError) error2 = NULL;
      g_autofree char *xml = g_strdup_printf ("<domain><name>x</name><memory>1048576</memory>"
                                              "<metadata><p:plan xmlns:p='urn:vmemd:plan:1' %s/>"
                                              "</metadata></domain>", bad[k].attrs);
      g_autofree char *r = vmem_xml_restore (xml, &error);
      assert_null (r);
      assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
      if (strstr (error->message, bad[k].needle) == NULL)
        fail_msg ("'%s' does not mention %s", error->message, bad[k].needle);
      TestPlan tp;
      test_plan_defaults (&tp);
      g_autofree char *s = vmem_xml_apply_plan (xml, &tp.plan, NULL, &error2);
      assert_null (s);
      assert_non_null (error2);
      test_plan_clear (&tp);
    }
}

static void
test_virtio_mem_request (void **state)
{
  g_autofree char *live = read_data ("virtio-mem-live.xml");
  g_autoptr(GError) error = NULL;
  VmemVirtioMemRequest r;

  /* Whole blocks, rounded up; the rest of the element as libvirt wrote it. */
  g_autofree char *dev = vmem_xml_virtio_mem_request (live, 701, &r, &error);
  if (dev == NULL)
    fail_msg ("%s", error->message);
  assert_int_equal (r.size_kib, 1572864);
  assert_int_equal (r.block_kib, 2048);
  assert_int_equal (r.previous_kib, 0);
  assert_int_equal (r.current_kib, 0);
  assert_int_equal (r.requested_kib, 702 * 1024);
  assert_true (r.changed);
  const char *want =
    "<memory model='virtio-mem'>\n"
    "      <target>\n"
    "        <size unit='KiB'>1572864</size>\n"
    "        <node>0</node>\n"
    "        <block unit='KiB'>2048</block>\n"
    "        <requested unit='KiB'>718848</requested>\n"
    "        <current unit='KiB'>0</current>\n"
    "      </target>\n"
    "      <alias name='ua-vmemd-mem'/>\n"
    "      <address type='pci' domain='0x0000' bus='0x02' slot='0x00' function='0x0'/>\n"
    "    </memory>";
  assert_same_text (want, dev, "device XML");

  /* Clamped to the device; 0 unplugs all. */
  g_autofree char *most = vmem_xml_virtio_mem_request (live, 1 << 30, &r, &error);
  assert_non_null (most);
  assert_int_equal (r.requested_kib, 1572864);
  g_autofree char *zero = vmem_xml_virtio_mem_request (live, 0, &r, &error);
  assert_non_null (zero);
  assert_int_equal (r.requested_kib, 0);
  assert_false (r.changed);
  assert_non_null (strstr (zero, "<requested unit='KiB'>0</requested>"));

  /* From a live XML where it is plugged already. */
  g_autoptr(GString) plugged = g_string_new (live);
  g_string_replace (plugged, "<requested unit='KiB'>0</requested>",
                    "<requested unit='KiB'>524288</requested>", 1);
  g_string_replace (plugged, "<current unit='KiB'>0</current>",
                    "<current unit='KiB'>524288</current>", 1);
  g_autofree char *same = vmem_xml_virtio_mem_request (plugged->str, 512, &r, NULL);
  assert_non_null (same);
  assert_false (r.changed);
  assert_int_equal (r.previous_kib, 524288);
  assert_int_equal (r.current_kib, 524288);
  g_autofree char *less = vmem_xml_virtio_mem_request (plugged->str, 256, &r, NULL);
  assert_true (r.changed);
  assert_non_null (strstr (less, "<requested unit='KiB'>262144</requested>"));

  /* No device of vmemd's: not found, clearly. */
  g_autofree char *plain = read_data ("virtio-mem-own-device.in.xml");
  g_autofree char *none = vmem_xml_virtio_mem_request (plain, 512, &r, &error);
  assert_null (none);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND));
  assert_non_null (strstr (error->message, "ua-vmemd-mem"));
  g_clear_error (&error);

  /* A device without <requested>, and bad XML. */
  g_autoptr(GString) noreq = g_string_new (live);
  g_string_replace (noreq, "<requested unit='KiB'>0</requested>", "", 1);
  g_autofree char *nr = vmem_xml_virtio_mem_request (noreq->str, 512, &r, &error);
  assert_null (nr);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  assert_non_null (strstr (error->message, "<requested>"));
  g_clear_error (&error);
  g_autofree char *bad = vmem_xml_virtio_mem_request ("<domain>", 512, &r, &error);
  assert_null (bad);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
}

/* Incoming migration of a domain in virtio-mem form: preallocation only. */
static void
test_virtio_mem_migrate_variant (void **state)
{
  g_autofree char *in = read_data ("virtio-mem-cpu-model.out.xml");
  g_autoptr(GError) error = NULL;
  TestPlan tp;
  test_plan_virtio_mem (&tp, 1536);

  g_autofree char *out = vmem_xml_migrate_variant (in, &tp.plan, &error);
  assert_non_null (out);
  g_autoptr(VmemDomainInfo) a = parse_ok (in);
  g_autoptr(VmemDomainInfo) b = parse_ok (out);
  assert_true (b->prealloc);
  assert_int_equal (b->memory_kib, a->memory_kib);
  assert_int_equal (b->numa_memory_mib, a->numa_memory_mib);
  assert_int_equal (b->virtio_mem_size_mib, a->virtio_mem_size_mib);
  assert_int_equal (b->virtio_mem_requested_mib, a->virtio_mem_requested_mib);
  assert_int_equal (b->current_kib, a->current_kib);
  g_autoptr(GString) s = g_string_new (out);
  assert_int_equal (g_string_replace (s, "  <memoryBacking>\n    <allocation mode='immediate'/>\n"
                                         "  </memoryBacking>\n", "", 1), 1);
  assert_same_text (in, s->str, "migrate variant");
  validate_string (out, "migrate.xml");
  test_plan_clear (&tp);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_domain),
    cmocka_unit_test (test_workload_by_namespace),
    cmocka_unit_test (test_memory_units),
    cmocka_unit_test (test_golden),
    cmocka_unit_test (test_restage_keeps_originals),
    cmocka_unit_test (test_restore_edge_cases),
    cmocka_unit_test (test_migrate_variant),
    cmocka_unit_test (test_malformed),
    cmocka_unit_test (test_xxe),
    cmocka_unit_test (test_huge_input),
    cmocka_unit_test (test_escaping),
    cmocka_unit_test (test_tag_and_plan_independent),
    cmocka_unit_test (test_virtio_mem_layout),
    cmocka_unit_test (test_virtio_mem_manageable),
    cmocka_unit_test (test_virtio_mem_switch),
    cmocka_unit_test (test_virtio_mem_restage),
    cmocka_unit_test (test_virtio_mem_libvirt_roundtrip),
    cmocka_unit_test (test_virtio_mem_balloon_none),
    cmocka_unit_test (test_virtio_mem_restore_damaged),
    cmocka_unit_test (test_virtio_mem_request),
    cmocka_unit_test (test_virtio_mem_migrate_variant),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
