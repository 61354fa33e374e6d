/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-admission.h"
#include "vmem-xml.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#define GIB 1024

/* A ready host with 16G usable, 10G of it committed: 6G free. */
static VmemAdmissionRequest
request (void)
{
  VmemAdmissionRequest r = {
    .mode = VMEM_ADMISSION_ENFORCE,
    .not_ready = VMEM_NOT_READY_ADMIT,
    .ready = TRUE,
    .capacity_mib = 16 * GIB,
    .committed_mib = 10 * GIB,
    .name = "web-1",
    .workload = "web",
    .memory_mib = 8 * GIB,
    .current_mib = 4 * GIB,
    .prealloc = FALSE,
    .profile_mode = VMEM_MODE_BALLOON,
  };
  return r;
}

static void
assert_contains (const char *haystack, const char *needle)
{
  assert_non_null (haystack);
  if (strstr (haystack, needle) == NULL)
    fail_msg ("\"%s\" does not contain \"%s\"", haystack, needle);
}

/* Every decision carries one line naming the domain. */
static void
decide (const VmemAdmissionRequest *req, VmemAdmissionDecision *out)
{
  vmem_admission_decide (req, out);
  assert_non_null (out->event);
  assert_non_null (out->message);
  assert_null (strchr (out->message, '\n'));
  assert_contains (out->message, req->name);
  if (out->verdict == VMEM_ADMISSION_REFUSE)
    {
      assert_true (g_str_has_prefix (out->message, "vmemd: "));
      assert_false (out->warn);
    }
  else
    assert_false (g_str_has_prefix (out->message, "vmemd: "));
}

/* ---- the boot footprint ---- */

static void
test_needed_is_current (void **state)
{
  VmemAdmissionRequest r = request ();
  g_auto(VmemAdmissionDecision) d = { 0 };

  decide (&r, &d);
  assert_int_equal (d.verdict, VMEM_ADMISSION_ADMIT);
  assert_string_equal (d.event, "admitted");
  assert_false (d.warn);
  assert_int_equal (d.needed_mib, 4 * GIB);
  assert_false (d.prealloc_whole);
  assert_null (strstr (d.message, "preallocated"));
}

static void
test_needed_is_memory_without_current (void **state)
{
  VmemAdmissionRequest r = request ();
  g_auto(VmemAdmissionDecision) d = { 0 };

  r.current_mib = 0;
  r.memory_mib = 5 * GIB;
  decide (&r, &d);
  assert_int_equal (d.needed_mib, 5 * GIB);
  assert_false (d.prealloc_whole);
  assert_string_equal (d.event, "admitted");
}

static void
test_prealloc_balloon_needs_whole_memory (void **state)
{
  VmemAdmissionRequest r = request ();
  g_auto(VmemAdmissionDecision) d = { 0 };

  /* 8G preallocated does not fit in 6G free, although 4G would. */
  r.prealloc = TRUE;
  decide (&r, &d);
  assert_int_equal (d.needed_mib, 8 * GIB);
  assert_true (d.prealloc_whole);
  assert_int_equal (d.verdict, VMEM_ADMISSION_REFUSE);
  assert_contains (d.message, "needs 8G (whole <memory> preallocated)");
}

static void
test_prealloc_virtio_mem_needs_plugged (void **state)
{
  VmemAdmissionRequest r = request ();
  g_auto(VmemAdmissionDecision) d = { 0 };

  /* With virtio-mem devices only the base memory and what is plugged are
   * there at boot: 8G <memory> with a 6G device of which 1G is requested
   * is 3G. */
  r.prealloc = TRUE;
  r.profile_mode = VMEM_MODE_VIRTIO_MEM;
  r.virtio_mem_size_mib = 6 * GIB;
  r.virtio_mem_requested_mib = 1 * GIB;
  decide (&r, &d);
  assert_int_equal (d.needed_mib, 3 * GIB);
  assert_true (d.prealloc_whole);
  assert_int_equal (d.verdict, VMEM_ADMISSION_ADMIT);
  assert_string_equal (d.event, "admitted");
  assert_contains (d.message, "less unplugged virtio-mem");
}

static void
test_prealloc_virtio_mem_mode_without_device_needs_memory (void **state)
{
  VmemAdmissionRequest r = request ();
  g_auto(VmemAdmissionDecision) d = { 0 };

  /* The profile says virtio-mem but the domain has no such device: QEMU
   * preallocates its whole <memory>. */
  r.prealloc = TRUE;
  r.profile_mode = VMEM_MODE_VIRTIO_MEM;
  decide (&r, &d);
  assert_int_equal (d.needed_mib, r.memory_mib);
  assert_true (d.prealloc_whole);
}

static void
test_prealloc_observe_needs_memory (void **state)
{
  VmemAdmissionRequest r = request ();
  g_auto(VmemAdmissionDecision) d = { 0 };

  /* observe stages nothing, but a preallocating definition still makes
   * QEMU touch the whole <memory>. */
  r.prealloc = TRUE;
  r.profile_mode = VMEM_MODE_OBSERVE;
  decide (&r, &d);
  assert_int_equal (d.needed_mib, r.memory_mib);
  assert_true (d.prealloc_whole);
}

/* A definition staged in virtio-mem mode, read by the one XML reader as
 * the hook's XML is: the boot footprint is the base, with preallocation or
 * without, and a start that fits in the base but not in <memory> is
 * admitted. */
static void
check_virtio_mem_boot (const char *xml, guint64 base_mib, guint64 memory_mib)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemDomainInfo) i = vmem_xml_parse_domain (xml, &error);
  if (i == NULL)
    fail_msg ("%s", error->message);
  assert_int_equal (i->memory_mib, memory_mib);
  assert_int_equal (i->numa_memory_mib, base_mib);
  assert_int_equal (i->current_mib, memory_mib);
  assert_int_equal (vmem_admission_boot_mib (i->memory_mib, i->current_mib, TRUE,
                                             i->virtio_mem_size_mib,
                                             i->virtio_mem_requested_mib),
                    base_mib);
  assert_int_equal (vmem_admission_boot_mib (i->memory_mib, i->current_mib, FALSE,
                                             i->virtio_mem_size_mib,
                                             i->virtio_mem_requested_mib),
                    base_mib);

  VmemAdmissionRequest r = request ();
  g_auto(VmemAdmissionDecision) d = { 0 };
  r.committed_mib = r.capacity_mib - base_mib - 1;
  r.memory_mib = i->memory_mib;
  r.current_mib = i->current_mib;
  r.prealloc = i->prealloc;
  r.virtio_mem_size_mib = i->virtio_mem_size_mib;
  r.virtio_mem_requested_mib = i->virtio_mem_requested_mib;
  r.profile_mode = VMEM_MODE_VIRTIO_MEM;
  decide (&r, &d);
  assert_int_equal (d.needed_mib, base_mib);
  assert_int_equal (d.verdict, VMEM_ADMISSION_ADMIT);
  if (r.prealloc)
    assert_contains (d.message, "less unplugged virtio-mem");
}

static void
test_staged_virtio_mem_boots_with_base (void **state)
{
  const char *in = "<domain type='kvm'>\n  <name>web-2</name>\n"
                   "  <memory unit='GiB'>8</memory>\n  <vcpu>4</vcpu>\n"
                   "  <os>\n    <type arch='x86_64'>hvm</type>\n  </os>\n"
                   "  <devices>\n    <memballoon model='none'/>\n  </devices>\n</domain>\n";
  VmemPlan plan = {
    .demand_mib = 3000,
    .prealloc = TRUE,
    .mode = VMEM_MODE_VIRTIO_MEM,
    .workload = "web",
    .source = "profile",
    .time = 1767225600,
  };
  g_autoptr(GError) error = NULL;
  g_autofree char *staged = vmem_xml_apply_plan (in, &plan, NULL, &error);
  if (staged == NULL)
    fail_msg ("%s", error->message);
  /* 3000 MiB at boot, the rest (5120 MiB in whole 128 MiB) plugged later. */
  check_virtio_mem_boot (staged, 3000, 8120);
  plan.prealloc = FALSE;
  g_autofree char *lazy = vmem_xml_apply_plan (in, &plan, NULL, &error);
  assert_non_null (lazy);
  check_virtio_mem_boot (lazy, 3000, 8120);

  /* The same definition as libvirt stored it. */
  const char *src = g_getenv ("VMEM_TEST_SRCDIR");
  assert_non_null (src);
  g_autofree char *path = g_build_filename (src, "data", "xml", "virtio-mem-roundtrip.xml", NULL);
  g_autofree char *rt = NULL;
  assert_true (g_file_get_contents (path, &rt, NULL, NULL));
  check_virtio_mem_boot (rt, 1024, 4096);
}

/* ---- fitting ---- */

static void
test_fits_up_to_free (void **state)
{
  VmemAdmissionRequest r = request ();

  r.current_mib = 6 * GIB;
  {
    g_auto(VmemAdmissionDecision) d = { 0 };
    decide (&r, &d);
    assert_int_equal (d.free_mib, 6 * GIB);
    assert_int_equal (d.verdict, VMEM_ADMISSION_ADMIT);
    assert_string_equal (d.event, "admitted");
    assert_contains (d.message, "needs 6G");
    assert_contains (d.message, "6G free of 16G usable");
    assert_contains (d.message, "10G committed");
  }
  r.current_mib = 6 * GIB + 1;
  {
    g_auto(VmemAdmissionDecision) d = { 0 };
    decide (&r, &d);
    assert_int_equal (d.verdict, VMEM_ADMISSION_REFUSE);
    assert_string_equal (d.event, "refused");
  }
}

static void
test_free_saturates (void **state)
{
  VmemAdmissionRequest r = request ();

  r.committed_mib = 20 * GIB;
  {
    g_auto(VmemAdmissionDecision) d = { 0 };
    decide (&r, &d);
    assert_int_equal (d.free_mib, 0);
    assert_int_equal (d.verdict, VMEM_ADMISSION_REFUSE);
    assert_contains (d.message, "0M free of 16G usable");
    assert_contains (d.message, "20G committed");
  }
  r.committed_mib = G_MAXUINT64;
  r.capacity_mib = 0;
  {
    g_auto(VmemAdmissionDecision) d = { 0 };
    decide (&r, &d);
    assert_int_equal (d.free_mib, 0);
    assert_int_equal (d.verdict, VMEM_ADMISSION_REFUSE);
  }
}

/* ---- modes ---- */

static void
test_enforce_refuses_over (void **state)
{
  VmemAdmissionRequest r = request ();
  g_auto(VmemAdmissionDecision) d = { 0 };

  r.current_mib = 7 * GIB;
  decide (&r, &d);
  assert_int_equal (d.verdict, VMEM_ADMISSION_REFUSE);
  assert_string_equal (d.event, "refused");
  assert_int_equal (d.needed_mib, 7 * GIB);
  assert_int_equal (d.free_mib, 6 * GIB);
  assert_contains (d.message, "vmemd: not enough host memory to start web-1");
  assert_contains (d.message, "needs 7G");
  assert_contains (d.message, "6G free of 16G usable");
  assert_contains (d.message, "(10G committed");
  assert_null (strstr (d.message, "preallocated"));
}

static void
test_warn_admits_over (void **state)
{
  VmemAdmissionRequest r = request ();

  r.mode = VMEM_ADMISSION_WARN;
  r.current_mib = 7 * GIB;
  {
    g_auto(VmemAdmissionDecision) d = { 0 };
    decide (&r, &d);
    assert_int_equal (d.verdict, VMEM_ADMISSION_ADMIT);
    assert_string_equal (d.event, "admitted-over");
    assert_true (d.warn);
    assert_contains (d.message, "not enough host memory to start web-1");
    assert_contains (d.message, "needs 7G");
    assert_contains (d.message, "6G free of 16G usable");
    assert_contains (d.message, "admitted anyway");
  }
  /* Under capacity, warn is like enforce. */
  r.current_mib = 2 * GIB;
  {
    g_auto(VmemAdmissionDecision) d = { 0 };
    decide (&r, &d);
    assert_string_equal (d.event, "admitted");
    assert_false (d.warn);
  }
}

static void
test_off_admits_everything (void **state)
{
  VmemAdmissionRequest r = request ();

  r.mode = VMEM_ADMISSION_OFF;
  r.prealloc = TRUE;
  r.memory_mib = 64 * GIB;
  {
    g_auto(VmemAdmissionDecision) d = { 0 };
    decide (&r, &d);
    assert_int_equal (d.verdict, VMEM_ADMISSION_ADMIT);
    assert_string_equal (d.event, "admitted-unchecked");
    assert_false (d.warn);
    /* The figures are still worked out, for the log. */
    assert_int_equal (d.needed_mib, 64 * GIB);
    assert_int_equal (d.free_mib, 6 * GIB);
    assert_contains (d.message, "needs 64G (whole <memory> preallocated)");
  }
  /* Not ready, and told to refuse then: off still admits. */
  r.ready = FALSE;
  r.not_ready = VMEM_NOT_READY_REFUSE;
  {
    g_auto(VmemAdmissionDecision) d = { 0 };
    decide (&r, &d);
    assert_int_equal (d.verdict, VMEM_ADMISSION_ADMIT);
    assert_string_equal (d.event, "admitted-unchecked");
  }
}

/* ---- before the first full refresh ---- */

static void
test_not_ready_admit (void **state)
{
  VmemAdmissionRequest r = request ();
  g_auto(VmemAdmissionDecision) d = { 0 };

  r.ready = FALSE;
  r.not_ready = VMEM_NOT_READY_ADMIT;
  decide (&r, &d);
  assert_int_equal (d.verdict, VMEM_ADMISSION_ADMIT);
  assert_string_equal (d.event, "admitted-not-ready");
  assert_true (d.warn);
  assert_contains (d.message, "not read every domain");
  assert_contains (d.message, "unknown");
  assert_contains (d.message, "needs 4G");
  assert_contains (d.message, "at least 10G committed");
}

static void
test_not_ready_refuse_enforce (void **state)
{
  VmemAdmissionRequest r = request ();
  g_auto(VmemAdmissionDecision) d = { 0 };

  r.ready = FALSE;
  r.not_ready = VMEM_NOT_READY_REFUSE;
  decide (&r, &d);
  assert_int_equal (d.verdict, VMEM_ADMISSION_REFUSE);
  assert_string_equal (d.event, "refused-not-ready");
  assert_contains (d.message, "not read every domain");
  assert_contains (d.message, "needs 4G");
  assert_contains (d.message, "16G usable");
}

static void
test_not_ready_refuse_warn (void **state)
{
  VmemAdmissionRequest r = request ();
  g_auto(VmemAdmissionDecision) d = { 0 };

  r.ready = FALSE;
  r.not_ready = VMEM_NOT_READY_REFUSE;
  r.mode = VMEM_ADMISSION_WARN;
  decide (&r, &d);
  assert_int_equal (d.verdict, VMEM_ADMISSION_ADMIT);
  assert_string_equal (d.event, "admitted-not-ready");
  assert_true (d.warn);
  assert_contains (d.message, "not read every domain");
}

/* What has been read is a lower bound: a start that does not fit in it
 * is over capacity whatever the rest holds. */
static void
test_not_ready_over_known (void **state)
{
  VmemAdmissionRequest r = request ();

  r.ready = FALSE;
  r.current_mib = 7 * GIB;
  {
    g_auto(VmemAdmissionDecision) d = { 0 };
    decide (&r, &d);
    assert_int_equal (d.verdict, VMEM_ADMISSION_REFUSE);
    assert_string_equal (d.event, "refused");
    assert_contains (d.message, "needs 7G");
    assert_contains (d.message, "at least 10G committed");
  }
  r.mode = VMEM_ADMISSION_WARN;
  {
    g_auto(VmemAdmissionDecision) d = { 0 };
    decide (&r, &d);
    assert_int_equal (d.verdict, VMEM_ADMISSION_ADMIT);
    assert_string_equal (d.event, "admitted-over");
    assert_true (d.warn);
  }
}

/* ---- a domain XML that cannot be used ---- */

/* Whatever the figures would say, a start whose XML cannot be used is
 * not checked, and says so: the memory fields are not to be trusted. */
static void
test_unchecked_admit_warns (void **state)
{
  static const VmemAdmission modes[] = { VMEM_ADMISSION_ENFORCE, VMEM_ADMISSION_WARN };
  for (gsize i = 0; i < G_N_ELEMENTS (modes); i++)
    {
      VmemAdmissionRequest r = request ();
      g_auto(VmemAdmissionDecision) d = { 0 };
      r.mode = modes[i];
      r.current_mib = 64 * GIB; /* would not fit, were it known */
      r.unchecked_why = "its domain XML is larger than 16 MiB";
      r.unchecked = VMEM_UNCHECKED_ADMIT;
      decide (&r, &d);
      assert_int_equal (d.verdict, VMEM_ADMISSION_ADMIT);
      assert_string_equal (d.event, "admitted-not-checked");
      assert_true (d.warn);
      assert_int_equal (d.needed_mib, 0);
      assert_contains (d.message, "the start of web-1 was not checked");
      assert_contains (d.message, "larger than 16 MiB");
      assert_contains (d.message, "unchecked = admit");
    }
}

static void
test_unchecked_refuse (void **state)
{
  VmemAdmissionRequest r = request ();
  r.current_mib = 1; /* would fit, were it known */
  r.unchecked_why = "vmemd cannot read its domain XML";
  r.unchecked = VMEM_UNCHECKED_REFUSE;
  {
    g_auto(VmemAdmissionDecision) d = { 0 };
    decide (&r, &d);
    assert_int_equal (d.verdict, VMEM_ADMISSION_REFUSE);
    assert_string_equal (d.event, "refused-not-checked");
    assert_contains (d.message,
                     "cannot check the start of web-1: vmemd cannot read its domain XML");
    assert_contains (d.message, "unchecked = refuse");
  }
  /* Only enforce refuses. */
  r.mode = VMEM_ADMISSION_WARN;
  {
    g_auto(VmemAdmissionDecision) d = { 0 };
    decide (&r, &d);
    assert_int_equal (d.verdict, VMEM_ADMISSION_ADMIT);
    assert_string_equal (d.event, "admitted-not-checked");
    assert_true (d.warn);
    assert_contains (d.message, "admission mode = warn");
  }
  r.mode = VMEM_ADMISSION_OFF;
  {
    g_auto(VmemAdmissionDecision) d = { 0 };
    decide (&r, &d);
    assert_int_equal (d.verdict, VMEM_ADMISSION_ADMIT);
    assert_string_equal (d.event, "admitted-unchecked");
    assert_false (d.warn);
    assert_contains (d.message, "mode = off");
  }
  /* Not ready changes nothing: there is nothing to compare anyway. */
  r.mode = VMEM_ADMISSION_ENFORCE;
  r.ready = FALSE;
  r.not_ready = VMEM_NOT_READY_ADMIT;
  {
    g_auto(VmemAdmissionDecision) d = { 0 };
    decide (&r, &d);
    assert_int_equal (d.verdict, VMEM_ADMISSION_REFUSE);
    assert_string_equal (d.event, "refused-not-checked");
  }
}

/* ---- what is committed ---- */

static void
test_committed_running_only (void **state)
{
  const VmemCommitment c[] = {
    { "u1", "a", 2 * GIB, 0 },
    { "u2", "b", 3 * GIB, 0 },
  };

  assert_int_equal (vmem_admission_committed (c, G_N_ELEMENTS (c), NULL), 5 * GIB);
}

static void
test_committed_reservation_only (void **state)
{
  const VmemCommitment c[] = {
    { "u1", "a", 0, 8 * GIB },
    { "u2", "b", 0, 1 * GIB },
  };

  assert_int_equal (vmem_admission_committed (c, G_N_ELEMENTS (c), NULL), 9 * GIB);
}

static void
test_committed_both_counts_max (void **state)
{
  /* Booting with its whole <memory> reserved, already ballooned down;
   * and the other way round. */
  const VmemCommitment c[] = {
    { "u1", "a", 2 * GIB, 8 * GIB },
    { "u2", "b", 6 * GIB, 4 * GIB },
  };

  assert_int_equal (vmem_admission_committed (c, G_N_ELEMENTS (c), NULL), 14 * GIB);
}

static void
test_committed_except (void **state)
{
  const VmemCommitment c[] = {
    { "u1", "a", 2 * GIB, 0 },
    { "u2", "b", 0, 3 * GIB },
    { NULL, "c", 1 * GIB, 0 },
  };

  assert_int_equal (vmem_admission_committed (c, 3, NULL), 6 * GIB);
  /* The requester's own reservation is not counted against it. */
  assert_int_equal (vmem_admission_committed (c, 3, "u2"), 3 * GIB);
  assert_int_equal (vmem_admission_committed (c, 3, "u1"), 4 * GIB);
  /* An entry without a uuid is never taken for the requester. */
  assert_int_equal (vmem_admission_committed (c, 3, "u9"), 6 * GIB);
  assert_int_equal (vmem_admission_committed (NULL, 0, "u1"), 0);
}

static void
test_committed_saturates (void **state)
{
  const VmemCommitment c[] = {
    { "u1", "a", G_MAXUINT64 - 1, 0 },
    { "u2", "b", 0, 5 },
    { "u3", "c", G_MAXUINT64, G_MAXUINT64 },
  };

  assert_true (vmem_admission_committed (c, 2, NULL) == G_MAXUINT64);
  assert_true (vmem_admission_committed (c, 3, NULL) == G_MAXUINT64);
  assert_true (vmem_admission_committed (c, 3, "u3") == G_MAXUINT64);
  assert_true (vmem_admission_committed (c + 1, 1, NULL) == 5);
}

static void
test_decision_clear (void **state)
{
  VmemAdmissionRequest r = request ();
  VmemAdmissionDecision d;

  r.name = NULL;
  vmem_admission_decide (&r, &d);
  assert_non_null (d.message);
  vmem_admission_decision_clear (&d);
  assert_null (d.message);
  vmem_admission_decision_clear (&d);
  vmem_admission_decision_clear (NULL);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_needed_is_current),
    cmocka_unit_test (test_needed_is_memory_without_current),
    cmocka_unit_test (test_prealloc_balloon_needs_whole_memory),
    cmocka_unit_test (test_prealloc_virtio_mem_needs_plugged),
    cmocka_unit_test (test_prealloc_virtio_mem_mode_without_device_needs_memory),
    cmocka_unit_test (test_staged_virtio_mem_boots_with_base),
    cmocka_unit_test (test_prealloc_observe_needs_memory),
    cmocka_unit_test (test_fits_up_to_free),
    cmocka_unit_test (test_free_saturates),
    cmocka_unit_test (test_enforce_refuses_over),
    cmocka_unit_test (test_warn_admits_over),
    cmocka_unit_test (test_off_admits_everything),
    cmocka_unit_test (test_not_ready_admit),
    cmocka_unit_test (test_not_ready_refuse_enforce),
    cmocka_unit_test (test_not_ready_refuse_warn),
    cmocka_unit_test (test_not_ready_over_known),
    cmocka_unit_test (test_unchecked_admit_warns),
    cmocka_unit_test (test_unchecked_refuse),
    cmocka_unit_test (test_committed_running_only),
    cmocka_unit_test (test_committed_reservation_only),
    cmocka_unit_test (test_committed_both_counts_max),
    cmocka_unit_test (test_committed_except),
    cmocka_unit_test (test_committed_saturates),
    cmocka_unit_test (test_decision_clear),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
