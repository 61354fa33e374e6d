/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-hostmem.h"
#include "vmem-daemon.h"

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* --- the allocator as vmemd sets it ------------------------------------------- */

static gpointer
allocate_on_a_thread (gpointer data)
{
  /* A thread's first allocation takes an arena of its own unless limited. */
  for (int i = 0; i < 100; i++)
    free (g_malloc (4096 + (gsize) i));
  return NULL;
}

static guint
arenas (void)
{
  char *text = NULL;
  size_t len = 0;
  FILE *f = open_memstream (&text, &len);
  assert_non_null (f);
  assert_int_equal (malloc_info (0, f), 0);
  fclose (f);
  guint n = 0;
  for (const char *p = text; (p = strstr (p, "<heap nr=")) != NULL; p++)
    n++;
  free (text);
  return n;
}

/* Runs first, before any thread of this process has allocated. */
static void
test_one_arena (void **state)
{
  /* The administrator's choice is left alone. */
  g_setenv ("MALLOC_ARENA_MAX", "4", TRUE);
  assert_false (vmem_daemon_tune_allocator ());
  g_unsetenv ("MALLOC_ARENA_MAX");
  g_setenv ("GLIBC_TUNABLES", "glibc.malloc.arena_max=4", TRUE);
  assert_false (vmem_daemon_tune_allocator ());
  g_unsetenv ("GLIBC_TUNABLES");

  assert_true (vmem_daemon_tune_allocator ());
  for (int t = 0; t < 4; t++)
    g_thread_join (g_thread_new ("allocates", allocate_on_a_thread, NULL));
  assert_int_equal (arenas (), 1);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_one_arena),
    cmocka_unit_test (test_meminfo),
    cmocka_unit_test (test_psi),
    cmocka_unit_test (test_read),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
