/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-error.h"
#include "vmem-units.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

typedef struct {
  const char *text;
  guint64     mib;
} Accepted;

/* Parses @text, which must succeed with @want MiB and leave no error. */
static void
assert_parses (const char *text, guint64 want)
{
  g_autoptr(GError) error = NULL;
  guint64 got = G_MAXUINT64;

  gboolean ok = vmem_size_parse (text, &got, &error);
  if (!ok)
    fail_msg ("'%s' was refused: %s", text, error ? error->message : "(no error set)");
  assert_null (error);
  if (got != want)
    fail_msg ("'%s' gave %" G_GUINT64_FORMAT " MiB, expected %" G_GUINT64_FORMAT, text, got, want);
}

/* Parses @text, which must fail with a VMEM_ERROR_INVALID_ARGUMENT whose
 * message contains @needle, and must not touch the output. */
static void
assert_refused (const char *text, const char *needle)
{
  g_autoptr(GError) error = NULL;
  guint64 got = 4242;

  if (vmem_size_parse (text, &got, &error))
    fail_msg ("'%s' was accepted as %" G_GUINT64_FORMAT " MiB", text, got);
  assert_non_null (error);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  if (needle != NULL && strstr (error->message, needle) == NULL)
    fail_msg ("error for '%s' is \"%s\", which does not mention \"%s\"", text ? text : "(null)",
              error->message, needle);
  assert_int_equal (got, 4242);
}

static void
test_parse_bare_number_is_mib (void **state)
{
  assert_parses ("0", 0);
  assert_parses ("1", 1);
  assert_parses ("512", 512);
  assert_parses ("65536", 65536);
}

static void
test_parse_every_suffix (void **state)
{
  static const Accepted cases[] = {
    { "512M", 512 },         { "512MiB", 512 },       { "512MB", 512 },
    { "512Mi", 512 },        { "4G", 4096 },          { "4GiB", 4096 },
    { "4GB", 4096 },         { "4Gi", 4096 },         { "1T", 1048576 },
    { "1TiB", 1048576 },     { "1TB", 1048576 },      { "1Ti", 1048576 },
    { "1048576K", 1024 },    { "1048576KiB", 1024 },  { "1048576KB", 1024 },
    { "2048Ki", 2 },         { "1024K", 1 },          { "0G", 0 },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    assert_parses (cases[i].text, cases[i].mib);
}

static void
test_parse_case_insensitive (void **state)
{
  assert_parses ("4g", 4096);
  assert_parses ("4gib", 4096);
  assert_parses ("4GIB", 4096);
  assert_parses ("4gIb", 4096);
  assert_parses ("512m", 512);
  assert_parses ("512mib", 512);
  assert_parses ("1t", 1048576);
  assert_parses ("2048k", 2);
  assert_parses ("2048KIB", 2);
}

static void
test_parse_spaces (void **state)
{
  assert_parses (" 512", 512);
  assert_parses ("512 ", 512);
  assert_parses ("\t4G\n", 4096);
  assert_parses ("4 G", 4096);
  assert_parses ("4   GiB", 4096);
  assert_parses ("  1.5 G  ", 1536);
}

static void
test_parse_fractions (void **state)
{
  assert_parses ("1.5G", 1536);
  assert_parses ("0.5G", 512);
  assert_parses ("0.25G", 256);
  assert_parses ("2.0M", 2);
  assert_parses ("0.5T", 524288);
  assert_parses ("2048.0K", 2);
  assert_parses ("1.000G", 1024);
}

static void
test_parse_largest (void **state)
{
  /* Exactly 1 PiB is the limit and is accepted. */
  assert_parses ("1024T", VMEM_SIZE_MAX_MIB);
  assert_parses ("1048576G", VMEM_SIZE_MAX_MIB);
  assert_parses ("1073741824", VMEM_SIZE_MAX_MIB);
}

static void
test_refuse_empty (void **state)
{
  assert_refused (NULL, "empty");
  assert_refused ("", "empty");
  assert_refused ("   ", "invalid size");
  assert_refused ("G", "invalid size");
  assert_refused ("MiB", "invalid size");
}

static void
test_refuse_negative (void **state)
{
  assert_refused ("-1", "positive");
  assert_refused ("-1G", "positive");
  assert_refused (" -512", "positive");
  assert_refused ("+512", "positive");
  assert_refused ("-0", "positive");
}

static void
test_refuse_garbage (void **state)
{
  assert_refused ("abc", "invalid size 'abc'");
  assert_refused ("four gigabytes", "invalid size");
  assert_refused ("nan", "invalid size");
  assert_refused ("inf", "invalid size");
  assert_refused ("infinity", "invalid size");
  assert_refused ("4G4", "unknown unit");
  assert_refused ("4 4", "unknown unit");
  assert_refused ("4G;rm", "unknown unit");
  assert_refused ("1,5G", "unknown unit");
}

static void
test_refuse_non_decimal (void **state)
{
  /* Only plain decimals: no hex, exponents or special values. */
  assert_refused ("0x400", "must be a number");
  assert_refused ("0x1p10", "must be a number");
  assert_refused ("1e3", "must be a number");
  assert_refused ("1e30", "must be a number");
  assert_refused ("infG", "must be a number");
}

static void
test_refuse_unknown_unit (void **state)
{
  assert_refused ("4X", "unknown unit 'x'");
  assert_refused ("1P", "unknown unit 'p'");
  assert_refused ("1PiB", "unknown unit 'pib'");
  assert_refused ("4bytes", "unknown unit");
  assert_refused ("4GiBs", "unknown unit");
  assert_refused ("4 B", "unknown unit");
}

static void
test_refuse_overflow (void **state)
{
  assert_refused ("1025T", "larger than 1 PiB");
  assert_refused ("1048577G", "larger than 1 PiB");
  assert_refused ("1073741825", "larger than 1 PiB");
  assert_refused ("18446744073709551616", "larger than 1 PiB");
  assert_refused ("99999999999999999999999T", "larger than 1 PiB");
}

static void
test_refuse_partial_mib (void **state)
{
  assert_refused ("1K", "not a whole number of MiB");
  assert_refused ("1023K", "not a whole number of MiB");
  assert_refused ("1025K", "not a whole number of MiB");
  assert_refused ("0.5", "not a whole number of MiB");
  assert_refused ("0.5M", "not a whole number of MiB");
  assert_refused ("1.1G", "not a whole number of MiB");
  assert_refused ("0.0001T", "not a whole number of MiB");
}

static void
test_refuse_names_the_input (void **state)
{
  g_autoptr(GError) error = NULL;
  guint64 mib = 0;

  assert_false (vmem_size_parse ("12Q", &mib, &error));
  assert_non_null (strstr (error->message, "'12Q'"));
  assert_non_null (strstr (error->message, "K, M, G"));
}

static void
test_format (void **state)
{
  static const struct {
    guint64     mib;
    const char *text;
  } cases[] = {
    { 0, "0M" },
    { 1, "1M" },
    { 512, "512M" },
    { 1023, "1023M" },
    { 1024, "1G" },
    { 1536, "1536M" },
    { 4096, "4G" },
    { 1048575, "1048575M" },
    { 1048576, "1T" },
    { 1049600, "1025G" },
    { 3 * 1048576, "3T" },
    { VMEM_SIZE_MAX_MIB, "1024T" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *s = vmem_size_format (cases[i].mib);
      if (!g_str_equal (s, cases[i].text))
        fail_msg ("%" G_GUINT64_FORMAT " MiB formatted as '%s', expected '%s'", cases[i].mib, s,
                  cases[i].text);
    }
}

static void
test_format_parse_round_trip (void **state)
{
  static const guint64 sizes[] = { 0, 1, 7, 512, 1024, 1536, 4096, 65535, 1048576, 1049600,
                                   VMEM_SIZE_MAX_MIB };
  for (gsize i = 0; i < G_N_ELEMENTS (sizes); i++)
    {
      g_autofree char *s = vmem_size_format (sizes[i]);
      assert_parses (s, sizes[i]);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_bare_number_is_mib),
    cmocka_unit_test (test_parse_every_suffix),
    cmocka_unit_test (test_parse_case_insensitive),
    cmocka_unit_test (test_parse_spaces),
    cmocka_unit_test (test_parse_fractions),
    cmocka_unit_test (test_parse_largest),
    cmocka_unit_test (test_refuse_empty),
    cmocka_unit_test (test_refuse_negative),
    cmocka_unit_test (test_refuse_garbage),
    cmocka_unit_test (test_refuse_non_decimal),
    cmocka_unit_test (test_refuse_unknown_unit),
    cmocka_unit_test (test_refuse_overflow),
    cmocka_unit_test (test_refuse_partial_mib),
    cmocka_unit_test (test_refuse_names_the_input),
    cmocka_unit_test (test_format),
    cmocka_unit_test (test_format_parse_round_trip),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
