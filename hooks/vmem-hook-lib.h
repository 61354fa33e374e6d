/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Largest domain XML read from standard input; a larger one is not sent. */
#define VMEM_HOOK_MAX_XML (16 * 1024 * 1024)
/* Time allowed beyond the configured timeout before the hook exits anyway. */
#define VMEM_HOOK_GRACE_MS 400

/* The whole hook: libvirt's arguments (NAME OP SUBOP EXTRA), the domain XML
 * on @in_fd; prints a replacement XML on @out_fd only for migrate/restore,
 * and one line on @err_fd when refusing or when vmemd could not be asked.
 * Returns the exit status.  Reading the XML and the call to vmemd share one
 * deadline (the config's hook timeout); a timer ends the process at that
 * deadline plus VMEM_HOOK_GRACE_MS whatever else blocks. */
int vmem_hook_run (int argc, char **argv, int in_fd, int out_fd, int err_fd);

/* May this event stop what libvirt is doing?  Only prepare/start begin:
 * failing the others gains nothing, and failing reconnect kills a running
 * domain. */
gboolean vmem_hook_may_refuse (const char *op, const char *subop);

/* Does libvirt use what the hook prints for this event? */
gboolean vmem_hook_prints_xml (const char *op, const char *subop);

/* Cheap scan for the domain's <uuid> (no XML parser in the hook); NULL when
 * there is none or it does not look like a UUID. */
char *vmem_hook_find_uuid (const char *xml);

G_END_DECLS
