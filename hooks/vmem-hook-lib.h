/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The whole hook: libvirt's arguments (NAME OP SUBOP EXTRA), the domain XML
 * on @in_fd; prints a replacement XML on @out_fd only for migrate/restore,
 * and one line on @err_fd when refusing.  Returns the exit status.  Never
 * takes longer than the configured timeout plus the time to read stdin,
 * which shares the same deadline. */
int vmem_hook_run (int argc, char **argv, int in_fd, int out_fd, int err_fd);

/* Cheap <uuid> scan of the domain XML (no XML parser in the hook). */
char *vmem_hook_find_uuid (const char *xml);

G_END_DECLS
