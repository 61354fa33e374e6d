/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Streaming reader of replay traces: a CSV file, plain or gzip-compressed,
 * with the header line
 *
 *     time,domain,workload,vcpus,ceiling_kib,used_kib
 *
 * and one sample per line, sorted by time.  The reader is strict: a bad
 * line is a VMEM_ERROR_INVALID_ARGUMENT whose message starts with
 * "FILE:LINE:" and names the field. */

#include <glib.h>

G_BEGIN_DECLS

#define VMEM_TRACE_HEADER "time,domain,workload,vcpus,ceiling_kib,used_kib"

/* One sample.  The strings belong to the reader and stay valid until the
 * next call to vmem_trace_reader_next(). */
typedef struct {
  gint64      t;            /* unix seconds, never decreasing */
  const char *domain;
  const char *workload;
  guint       vcpus;
  guint64     ceiling_kib;  /* the domain's provisioned memory */
  guint64     used_kib;
  guint64     line;         /* 1-based line number in the file */
} VmemTraceRow;

typedef struct _VmemTraceReader VmemTraceReader;

/* Opens @path and checks the header line. */
VmemTraceReader *vmem_trace_reader_open (const char *path, GError **error);
void             vmem_trace_reader_free (VmemTraceReader *reader);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemTraceReader, vmem_trace_reader_free)

/* Reads the next sample into @row.  Returns FALSE at the end of the file
 * with @error unset, or FALSE with @error set when the line is bad. */
gboolean         vmem_trace_reader_next (VmemTraceReader *reader,
                                         VmemTraceRow    *row,
                                         GError         **error);

/* How far through the file the reader is, 0..1 (by compressed bytes for a
 * gzip file); for progress display only. */
double           vmem_trace_reader_progress (VmemTraceReader *reader);

const char      *vmem_trace_reader_path (VmemTraceReader *reader);

G_END_DECLS
