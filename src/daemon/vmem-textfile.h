/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A file that another program reads whole while vmemd rewrites it, such as
 * the metrics for node exporter's textfile collector ([daemon]
 * metrics_textfile): written to PATH.tmp, which that collector ignores (it
 * reads *.prom), then renamed over PATH, so that a reader sees the old
 * file or the new one and never a part of either. */

#include <glib.h>

G_BEGIN_DECLS

/* Writes @text to @path as above, mode 0644 whatever the umask: node
 * exporter runs as another user.  On failure PATH is left as it was, no
 * PATH.tmp is left behind, and the error names the file. */
gboolean vmem_textfile_write (const char *path, const char *text, GError **error);

G_END_DECLS
