/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <json-c/json.h>

G_BEGIN_DECLS

/* Exit codes, documented in vmemctl(8). */
enum {
  VMEMCTL_EXIT_OK = 0,
  VMEMCTL_EXIT_FAILED = 1,      /* the daemon reported a failure */
  VMEMCTL_EXIT_USAGE = 2,       /* bad command line or input file */
  VMEMCTL_EXIT_NOT_FOUND = 3,   /* no such profile or domain */
  VMEMCTL_EXIT_UNAVAILABLE = 4, /* vmemd unreachable or timed out */
  VMEMCTL_EXIT_DENIED = 5,      /* permission denied */
};

typedef struct {
  char    *socket;
  gboolean json;
  int      timeout_ms;
} VmemctlGlobal;

typedef struct {
  const char *name;
  const char *args;
  const char *summary;
  int (*run) (VmemctlGlobal *g, int argc, char **argv);
} VmemctlCommand;

/* vmemctl-args.c: pure parsing, no daemon. */
gboolean     vmemctl_parse_global (int *argc, char ***argv, VmemctlGlobal *g, GError **error);
/* Profile options from argv[first..] into a JSON object of profile fields. */
json_object *vmemctl_parse_profile_options (int argc, char **argv, int first, GError **error);
/* Flags: "--force" style booleans; returns positional arguments. */
GPtrArray   *vmemctl_parse_simple (int argc, char **argv, int first, const char *const *flags,
                                   GHashTable *seen, GError **error);
/* Reads and validates an import file ("-" = stdin): an array of profiles or
 * {"profiles": [...]}. Returns the array. */
json_object *vmemctl_load_profiles (const char *path, GError **error);
int          vmemctl_exit_code (const GError *error);

/* Calls the daemon, printing errors; returns the reply or NULL with *code. */
json_object *vmemctl_call (VmemctlGlobal *g, const char *method, json_object *params, int *code);
void         vmemctl_print_json (json_object *obj);
int          vmemctl_usage_error (const char *fmt, ...) G_GNUC_PRINTF (1, 2);

int vmemctl_cmd_profile (VmemctlGlobal *g, int argc, char **argv);
int vmemctl_cmd_assign (VmemctlGlobal *g, int argc, char **argv);
int vmemctl_cmd_unassign (VmemctlGlobal *g, int argc, char **argv);
int vmemctl_cmd_status (VmemctlGlobal *g, int argc, char **argv);
int vmemctl_cmd_explain (VmemctlGlobal *g, int argc, char **argv);

G_END_DECLS
