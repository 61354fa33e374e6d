/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Runs a fuzzer's LLVMFuzzerTestOneInput() on every file of the
 * directories (or the files) given, without libFuzzer: the corpus as an
 * ordinary test, built by any compiler.  A crash fails the test as it
 * would fail the fuzzer; the file being run is printed first. */
#include "fuzz-common.h"

#include <stdio.h>
#include <stdlib.h>

__attribute__ ((weak)) int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
  return 0;
}

static int
compare (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(char *const *) a, *(char *const *) b);
}

static void
run_file (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *data = NULL;
  gsize len = 0;
  if (!g_file_get_contents (path, &data, &len, &error))
    {
      fprintf (stderr, "%s\n", error->message);
      exit (1);
    }
  printf ("%s\n", path);
  fflush (stdout);
  /* A copy of the exact size, so that AddressSanitizer sees a read past
   * the input as it would under libFuzzer. */
  g_autofree guint8 *copy = g_memdup2 (data, len);
  LLVMFuzzerTestOneInput (copy, len);
}

int
main (int argc, char **argv)
{
  LLVMFuzzerInitialize (&argc, &argv);
  guint n = 0;
  for (int i = 1; i < argc; i++)
    {
      if (!g_file_test (argv[i], G_FILE_TEST_IS_DIR))
        {
          run_file (argv[i]);
          n++;
          continue;
        }
      g_autoptr(GError) error = NULL;
      g_autoptr(GDir) dir = g_dir_open (argv[i], 0, &error);
      if (dir == NULL)
        {
          fprintf (stderr, "%s\n", error->message);
          return 1;
        }
      g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
      const char *name;
      while ((name = g_dir_read_name (dir)) != NULL)
        g_ptr_array_add (names, g_build_filename (argv[i], name, NULL));
      g_ptr_array_sort (names, compare);
      for (guint k = 0; k < names->len; k++)
        run_file (g_ptr_array_index (names, k));
      n += names->len;
    }
  if (n == 0)
    {
      fprintf (stderr, "no input to run\n");
      return 1;
    }
  printf ("%u inputs ran\n", n);
  return 0;
}
