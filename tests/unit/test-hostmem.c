/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-hostmem.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <glib/gstdio.h>

static const char meminfo[] =
  "MemTotal:       24542956 kB\n"
  "MemFree:        20000000 kB\n"
  "MemAvailable:   22000640 kB\n"
  "Buffers:          123456 kB\n";

static void
test_meminfo (void **state)
{
  VmemHostMem m = { 0 };
  assert_true (vmem_hostmem_parse_meminfo (meminfo, &m));
  assert_int_equal (m.total_mib, 24542956 / 1024);
  assert_int_equal (m.available_mib, 22000640 / 1024);

  /* MemAvailable must be there: a kernel without it cannot say. */
  VmemHostMem n = { 0 };
  assert_false (vmem_hostmem_parse_meminfo ("MemTotal: 1024 kB\nMemFree: 10 kB\n", &n));
  assert_false (vmem_hostmem_parse_meminfo ("MemTotal: kB\nMemAvailable: 5 kB\n", &n));
  assert_false (vmem_hostmem_parse_meminfo ("", &n));
  /* A key that only starts the same does not count. */
  assert_false (vmem_hostmem_parse_meminfo ("MemTotalX: 1 kB\nMemAvailable: 5 kB\n", &n));
}

static void
test_psi (void **state)
{
  VmemHostMem m = { 0 };
  assert_true (vmem_hostmem_parse_psi ("some avg10=1.50 avg60=0.20 avg300=0.00 total=123\n"
                                       "full avg10=0.75 avg60=0.10 avg300=0.00 total=45\n",
                                       &m));
  assert_true (m.has_psi);
  assert_true (m.psi_some_avg10 > 1.49 && m.psi_some_avg10 < 1.51);
  assert_true (m.psi_full_avg10 > 0.74 && m.psi_full_avg10 < 0.76);

  VmemHostMem s = { 0 };
  assert_true (vmem_hostmem_parse_psi ("some avg10=3.00 avg60=0 avg300=0 total=1\n", &s));
  assert_true (s.psi_some_avg10 > 2.99);
  assert_true (s.psi_full_avg10 == 0);

  VmemHostMem bad = { 0 };
  assert_false (vmem_hostmem_parse_psi ("full avg10=1.00 avg60=0 avg300=0 total=1\n", &bad));
  assert_false (vmem_hostmem_parse_psi ("some avg10=abc\n", &bad));
  assert_false (vmem_hostmem_parse_psi ("some avg10=250.0\n", &bad));
  assert_false (bad.has_psi);
}

static void
test_read (void **state)
{
  g_autofree char *dir = g_dir_make_tmp ("vmemd-hostmem-XXXXXX", NULL);
  g_autofree char *mi = g_build_filename (dir, "meminfo", NULL);
  g_autofree char *psi = g_build_filename (dir, "memory", NULL);
  g_autofree char *missing = g_build_filename (dir, "missing", NULL);
  assert_true (g_file_set_contents (mi, meminfo, -1, NULL));
  assert_true (g_file_set_contents (psi, "some avg10=9.00 avg60=0 avg300=0 total=1\n", -1, NULL));

  VmemHostMem m;
  g_autoptr(GError) error = NULL;
  assert_true (vmem_hostmem_read (mi, psi, &m, &error));
  assert_true (m.has_psi);
  /* No PSI (older kernels, or CONFIG_PSI off): not an error. */
  assert_true (vmem_hostmem_read (mi, missing, &m, &error));
  assert_false (m.has_psi);
  assert_int_equal (m.total_mib, 24542956 / 1024);
  /* No meminfo is. */
  assert_false (vmem_hostmem_read (missing, psi, &m, &error));
  assert_non_null (error);

  g_unlink (mi);
  g_unlink (psi);
  g_rmdir (dir);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_meminfo),
    cmocka_unit_test (test_psi),
    cmocka_unit_test (test_read),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
