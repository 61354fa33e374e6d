/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "fuzz-common.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static char *tmpdir;

static void
remove_tmpdir (void)
{
  g_autoptr(GDir) dir = g_dir_open (tmpdir, 0, NULL);
  const char *name;
  while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (tmpdir, name, NULL);
      g_unlink (path);
    }
  g_rmdir (tmpdir);
}

const char *
fuzz_tmpdir (void)
{
  if (tmpdir == NULL)
    {
      g_autoptr(GError) error = NULL;
      tmpdir = g_dir_make_tmp ("vmem-fuzz-XXXXXX", &error);
      if (tmpdir == NULL)
        {
          fprintf (stderr, "fuzz: %s\n", error->message);
          abort ();
        }
      atexit (remove_tmpdir);
    }
  return tmpdir;
}

char *
fuzz_write_file (const char *name, const uint8_t *data, size_t size)
{
  /* Plain writes: g_file_set_contents() syncs to disk, which costs more
   * than the parser does. */
  char *path = g_build_filename (fuzz_tmpdir (), name, NULL);
  FILE *f = fopen (path, "wb");
  if (f == NULL || (size > 0 && fwrite (data, 1, size, f) != size) || fclose (f) != 0)
    {
      fprintf (stderr, "fuzz: cannot write %s\n", path);
      abort ();
    }
  return path;
}

static GLogWriterOutput
drop_log (GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer user_data)
{
  /* What aborts the run is worth its line. */
  if (level & (G_LOG_FLAG_FATAL | G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL))
    return g_log_writer_default (level, fields, n_fields, user_data);
  return G_LOG_WRITER_HANDLED;
}

/* g_error() and fatal criticals end in a breakpoint, which libFuzzer does
 * not catch: turn it into the abort it reports, with the input saved. */
static void
trap_to_abort (int sig)
{
  abort ();
}

void
fuzz_silence_logs (void)
{
  static gsize once;
  if (g_once_init_enter (&once))
    {
      /* A critical is a g_return_if_fail() that input reached: a bug
       * (runtime input never trips one), so it ends the run. */
      g_log_set_always_fatal (G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
      signal (SIGTRAP, trap_to_abort);
      if (g_getenv ("FUZZ_VERBOSE") == NULL)
        g_log_set_writer_func (drop_log, NULL, NULL);
      g_once_init_leave (&once, 1);
    }
}
