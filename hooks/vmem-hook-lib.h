/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Plain C: the hook links only the C library (see vmem-hook-lib.c). */
#include <stdbool.h>

#include "vmem-shared.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Largest domain XML read from standard input; a larger one is not sent. */
#define VMEM_HOOK_MAX_XML VMEM_VARLINK_MAX_XML
/* Time allowed beyond the deadline before the hook exits anyway. */
#define VMEM_HOOK_GRACE_MS 400
/* After a call that vmemd left unanswered for the whole timeout, the calls
 * of the next this many seconds wait only vmem_hook_short_ms(), until
 * vmemd answers one: the timeout is a budget per start, and a restore or
 * an incoming migration asks twice (restore/migrate begin, prepare). */
#define VMEM_HOOK_SILENT_WINDOW_S 60

/* The whole hook: libvirt's arguments (NAME OP SUBOP EXTRA), the domain XML
 * on @in_fd; prints a replacement XML on @out_fd only for migrate/restore,
 * and one line on @err_fd when refusing, when vmemd warns, or when vmemd
 * could not be asked.  Returns the exit status.
 *
 * Events vmemd does nothing with (vmem_hook_passes_on) return 0 before
 * anything is read, and leave standard input unread (libvirt ignores the
 * closed pipe).  Only the events that need vmemd's answer
 * (vmem_hook_may_refuse) wait for it: reading the XML and the call share
 * one deadline, the config's hook timeout (vmem_hook_short_ms of it while
 * vmemd is known to be silent, see VMEM_HOOK_SILENT_WINDOW_S).  The
 * others passed on (stopped, release) are sent as oneway calls within
 * vmem_hook_short_ms and nothing is waited for.  A timer ends the process
 * at the deadline plus VMEM_HOOK_GRACE_MS whatever else blocks.
 *
 * Of vmemd's configuration file the hook reads [daemon] socket, [hook]
 * timeout_ms and [hook] fail_closed, checked as vmemd checks them; a file
 * it cannot read or parse, or a bad value of one of those keys, makes it
 * use the defaults of all three and log why.  The other keys are vmemd's
 * to check. */
int vmem_hook_run (int argc, char **argv, int in_fd, int out_fd, int err_fd);

/* What the hook takes of vmemd's configuration file @path: *socket_path
 * (free()), *timeout_ms and *fail_closed, the defaults where the file has
 * none.  A missing file is the defaults.  Returns false with *error set
 * (free()) when the file cannot be read or parsed or one of the three
 * values is bad: then all three are the defaults. */
bool vmem_hook_read_config (const char *path, char **socket_path, unsigned *timeout_ms,
                            bool *fail_closed, char **error);

/* Does vmemd do anything with this event?  prepare, migrate and restore
 * begin (see vmem_hook_may_refuse), and stopped and release, whatever
 * their subop (the end of a start's reservation).  vmemd only logs the
 * others (start, started, reconnect, attach, ...): on those vmem_hook_run
 * returns 0 at once, before it reads its configuration or standard input
 * or connects. */
bool vmem_hook_passes_on (const char *op, const char *subop);

/* Does this event wait for vmemd's answer, and may it stop what libvirt
 * is doing?  prepare begin (admission control), migrate begin and restore
 * begin (libvirt uses the XML the hook prints; they start a domain too).
 * The others are notifications: failing them gains nothing, and failing
 * reconnect kills a running domain. */
bool vmem_hook_may_refuse (const char *op, const char *subop);

/* What a notification may take, and a call while vmemd is known to be
 * silent: a small fraction of the hook timeout. */
unsigned vmem_hook_short_ms (unsigned timeout_ms);

/* Does libvirt use what the hook prints for this event? */
bool vmem_hook_prints_xml (const char *op, const char *subop);

/* Cheap scan for the domain's <uuid> (no XML parser in the hook); NULL when
 * there is none or it does not look like a UUID.  Free with free(). */
char *vmem_hook_find_uuid (const char *xml);

/* Cheap scan for the domain's <name> (the first <name> element: libvirt
 * writes it first), its character references decoded; NULL when there is
 * none or it cannot be decoded.  Free with free(). */
char *vmem_hook_find_name (const char *xml);

#ifdef __cplusplus
}
#endif
