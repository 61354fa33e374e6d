/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-trace.h"
#include "vmem-error.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

/* Longer lines are refused rather than split, so a line number always
 * means one line of the file. */
#define LINE_MAX_BYTES 4096
#define N_FIELDS 6

struct _VmemTraceReader {
  char    *path;
  gzFile   gz;
  guint64  line;
  gint64   last_t;
  gint64   size;           /* bytes on disk, for progress */
  char     buf[LINE_MAX_BYTES + 2];
};

static const char *const field_names[N_FIELDS] = {
  "time", "domain", "workload", "vcpus", "ceiling_kib", "used_kib",
};

void
vmem_trace_reader_free (VmemTraceReader *reader)
{
  if (reader == NULL)
    return;
  if (reader->gz != NULL)
    gzclose (reader->gz);
  g_free (reader->path);
  g_free (reader);
}

const char *
vmem_trace_reader_path (VmemTraceReader *reader)
{
  return reader->path;
}

/* Reads one line without its end-of-line characters.  Returns FALSE at the
 * end of the file (error unset) or on error. */
static gboolean
stream_error (VmemTraceReader *r, guint64 line, GError **error)
{
  int errnum = Z_OK;
  const char *msg = gzerror (r->gz, &errnum);
  if (errnum == Z_OK)
    return FALSE;
  /* Z_BUF_ERROR is zlib's "unexpected end of file": a truncated file. */
  g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
               "%s:%" G_GUINT64_FORMAT ": cannot read: %s", r->path, line,
               errnum == Z_ERRNO ? g_strerror (errno) : msg);
  return TRUE;
}

/* Reads one line without its end-of-line characters.  Returns FALSE at the
 * end of the file (error unset) or on error. */
static gboolean
read_line (VmemTraceReader *r, char **out, GError **error)
{
  if (gzgets (r->gz, r->buf, sizeof r->buf) == NULL)
    {
      stream_error (r, r->line + 1, error);
      return FALSE;
    }
  r->line++;
  size_t len = strlen (r->buf);
  if (len > 0 && r->buf[len - 1] == '\n')
    r->buf[--len] = '\0';
  else if (len > LINE_MAX_BYTES)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s:%" G_GUINT64_FORMAT ": line longer than %d bytes", r->path, r->line,
                   LINE_MAX_BYTES);
      return FALSE;
    }
  else if (stream_error (r, r->line, error))
    return FALSE;
  else if (!gzeof (r->gz))
    {
      /* gzgets() stops short of a newline only at the end of the file. */
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s:%" G_GUINT64_FORMAT ": cannot read the line", r->path, r->line);
      return FALSE;
    }
  if (len > 0 && r->buf[len - 1] == '\r')
    r->buf[--len] = '\0';
  *out = r->buf;
  return TRUE;
}

VmemTraceReader *
vmem_trace_reader_open (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);

  g_autoptr(VmemTraceReader) r = g_new0 (VmemTraceReader, 1);
  r->path = g_strdup (path);
  r->last_t = G_MININT64;

  struct stat st;
  if (stat (path, &st) != 0)
    {
      int errsv = errno;
      g_set_error (error, VMEM_ERROR,
                   errsv == ENOENT ? VMEM_ERROR_NOT_FOUND : VMEM_ERROR_INVALID_ARGUMENT,
                   "%s: %s", path, g_strerror (errsv));
      return NULL;
    }
  if (S_ISDIR (st.st_mode))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "%s: is a directory", path);
      return NULL;
    }
  r->size = st.st_size;

  /* gzopen() reads plain files transparently, so one path serves both. */
  r->gz = gzopen (path, "rb");
  if (r->gz == NULL)
    {
      int errsv = errno;
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "%s: %s", path,
                   errsv != 0 ? g_strerror (errsv) : "cannot open");
      return NULL;
    }
  gzbuffer (r->gz, 128 * 1024);

  char *line = NULL;
  g_autoptr(GError) local = NULL;
  if (!read_line (r, &line, &local))
    {
      if (local != NULL)
        g_propagate_error (error, g_steal_pointer (&local));
      else
        g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                     "%s:1: empty file; expected the header \"%s\"", path, VMEM_TRACE_HEADER);
      return NULL;
    }
  if (!g_str_equal (line, VMEM_TRACE_HEADER))
    {
      g_autofree char *esc = g_strescape (line, NULL);
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s:1: header is \"%.80s\"; expected \"%s\"", path, esc, VMEM_TRACE_HEADER);
      return NULL;
    }
  return g_steal_pointer (&r);
}

static gboolean
parse_uint (VmemTraceReader *r, guint field, const char *text, guint64 min, guint64 max,
            guint64 *out, GError **error)
{
  g_autoptr(GError) local = NULL;
  if (!g_ascii_string_to_unsigned (text, 10, min, max, out, &local))
    {
      g_autofree char *esc = g_strescape (text, NULL);
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s:%" G_GUINT64_FORMAT ": %s: '%.40s' is not an integer from %"
                   G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT,
                   r->path, r->line, field_names[field], esc, min, max);
      return FALSE;
    }
  return TRUE;
}

static gboolean
check_name (VmemTraceReader *r, guint field, const char *text, GError **error)
{
  if (*text == '\0')
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s:%" G_GUINT64_FORMAT ": %s: must not be empty", r->path, r->line,
                   field_names[field]);
      return FALSE;
    }
  for (const char *c = text; *c; c++)
    if (g_ascii_iscntrl (*c) || *c == '"')
      {
        g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                     "%s:%" G_GUINT64_FORMAT ": %s: must not contain quotes or control "
                     "characters", r->path, r->line, field_names[field]);
        return FALSE;
      }
  return TRUE;
}

gboolean
vmem_trace_reader_next (VmemTraceReader *r, VmemTraceRow *row, GError **error)
{
  g_return_val_if_fail (r != NULL && row != NULL, FALSE);

  char *line = NULL;
  if (!read_line (r, &line, error))
    return FALSE;

  char *fields[N_FIELDS];
  guint n = 0;
  char *p = line;
  for (;;)
    {
      char *comma = strchr (p, ',');
      if (n == N_FIELDS)
        break;
      fields[n++] = p;
      if (comma == NULL)
        {
          p = NULL;
          break;
        }
      *comma = '\0';
      p = comma + 1;
    }
  if (n != N_FIELDS || p != NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s:%" G_GUINT64_FORMAT ": expected %d fields (%s), found %s",
                   r->path, r->line, N_FIELDS, VMEM_TRACE_HEADER,
                   n < N_FIELDS ? "fewer" : "more");
      return FALSE;
    }

  guint64 t, vcpus, ceiling, used;
  if (!parse_uint (r, 0, fields[0], 0, G_MAXINT64, &t, error) ||
      !check_name (r, 1, fields[1], error) ||
      !check_name (r, 2, fields[2], error) ||
      !parse_uint (r, 3, fields[3], 1, 65536, &vcpus, error) ||
      !parse_uint (r, 4, fields[4], 1, G_GUINT64_CONSTANT (1) << 50, &ceiling, error) ||
      !parse_uint (r, 5, fields[5], 0, G_GUINT64_CONSTANT (1) << 50, &used, error))
    return FALSE;
  if ((gint64) t < r->last_t)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "%s:%" G_GUINT64_FORMAT ": time: %" G_GUINT64_FORMAT
                   " is before the previous line's %" G_GINT64_FORMAT
                   " (the trace must be sorted by time)", r->path, r->line, t, r->last_t);
      return FALSE;
    }
  r->last_t = (gint64) t;

  row->t = (gint64) t;
  row->domain = fields[1];
  row->workload = fields[2];
  row->vcpus = (guint) vcpus;
  row->ceiling_kib = ceiling;
  row->used_kib = used;
  row->line = r->line;
  return TRUE;
}

double
vmem_trace_reader_progress (VmemTraceReader *r)
{
  if (r->size <= 0)
    return 0.0;
  z_off_t off = gzoffset (r->gz);
  if (off < 0)
    return 0.0;
  return MIN (1.0, (double) off / (double) r->size);
}
