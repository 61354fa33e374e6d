/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* vmemctl's command line, parsed without a daemon: argv in, a request (the
 * varlink method and its parameters) out, or a GError whose message names the
 * option or argument that is wrong. */

#include <glib.h>
#include <json-c/json.h>

G_BEGIN_DECLS

/* Exit codes, documented in vmemctl(8) and in --help. */
enum {
  VMEMCTL_EXIT_OK = 0,
  VMEMCTL_EXIT_FAILED = 1,      /* the daemon reported a failure */
  VMEMCTL_EXIT_USAGE = 2,       /* bad command line or input file */
  VMEMCTL_EXIT_NOT_FOUND = 3,   /* no such profile or domain */
  VMEMCTL_EXIT_UNAVAILABLE = 4, /* vmemd unreachable or timed out */
  VMEMCTL_EXIT_DENIED = 5,      /* permission denied */
};

#define VMEMCTL_DEFAULT_TIMEOUT_MS 30000
/* Import files and standard input are read up to this size. */
#define VMEMCTL_MAX_IMPORT (16 * 1024 * 1024)

typedef enum {
  VMEMCTL_CMD_HELP,
  VMEMCTL_CMD_VERSION,
  VMEMCTL_CMD_PROFILE_ADD,
  VMEMCTL_CMD_PROFILE_SET,
  VMEMCTL_CMD_PROFILE_SHOW,
  VMEMCTL_CMD_PROFILE_LIST,
  VMEMCTL_CMD_PROFILE_REMOVE,
  VMEMCTL_CMD_PROFILE_IMPORT,
  VMEMCTL_CMD_PROFILE_EXPORT,
  VMEMCTL_CMD_ASSIGN,
  VMEMCTL_CMD_UNASSIGN,
  VMEMCTL_CMD_STATUS,
  VMEMCTL_CMD_EXPLAIN,
  VMEMCTL_CMD_HISTORY,
  VMEMCTL_CMD_METRICS,
  VMEMCTL_CMD_HOSTS,
  VMEMCTL_CMD_PLACE,
  VMEMCTL_CMD_REPLAY,
} VmemctlCommandId;

typedef struct {
  /* Global options; socket NULL = $VMEMD_SOCKET, else the config's. */
  char *socket;
  gboolean json;
  int timeout_ms;

  VmemctlCommandId command;
  const char *method;  /* "io.vmemd.ProfileGet"; NULL for help and replay */
  json_object *params; /* the method's parameters; NULL when it takes none */
  char *file;          /* profile import/export: FILE, "-" = standard input/output */
  char *topic;         /* help: the command asked about, NULL = all */
  int rest_argc;       /* replay: its own argv, argv[0] = "replay" (borrowed) */
  char **rest_argv;
} VmemctlRequest;

void vmemctl_request_free (VmemctlRequest *request);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemctlRequest, vmemctl_request_free)

/* Parses vmemctl's whole argv.  Global options (--socket, --json, --timeout)
 * may come before or after the command.  Fails with VMEM_ERROR_INVALID_ARGUMENT
 * and a message that starts with the command and names the option. */
VmemctlRequest *vmemctl_request_parse (int argc, char **argv, GError **error);

/* Help text: every command when @topic is NULL, else the one command
 * ("profile", "assign", ...).  NULL for an unknown topic. */
char *vmemctl_help_text (const char *topic);

/* Reads and validates an import file ("-" = standard input): an array of
 * profiles or {"profiles": [...]}.  Returns the array.  Errors name the entry
 * (its position and, when it has one, its name) and the field. */
json_object *vmemctl_load_profiles (const char *path, GError **error);

/* Validates a JSON array of profiles (as read by vmemctl_load_profiles);
 * @what prefixes the messages (the file name). */
gboolean vmemctl_check_profiles (json_object *array, const char *what, GError **error);

/* --since: a duration back from @now (90s, 30m, 6h, 2d) or an ISO 8601
 * time (2026-12-02T06:00:00, local time unless it carries a zone);
 * unix seconds out. */
gboolean vmemctl_parse_since (const char *text, gint64 now, gint64 *out, GError **error);

/* Exit code for an error from vmem_varlink_call() or from parsing. */
int vmemctl_exit_code (const GError *error);

G_END_DECLS
