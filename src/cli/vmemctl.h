/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Declarations shared by vmemctl's command files. */

#include "vmemctl-args.h"

#include <glib.h>
#include <json-c/json.h>

G_BEGIN_DECLS

/* Calls @method with @params (transfer none, may be NULL) on the request's
 * socket within its timeout.  On failure prints one line on stderr, sets
 * *code to the exit code and returns NULL. */
json_object *vmemctl_call (const VmemctlRequest *req, const char *method, json_object *params,
                           int *code);

/* Pretty JSON on standard output. */
void vmemctl_print_json (json_object *obj);

/* Reply fields for tables: what is missing reads "-" or 0. */
const char *vmemctl_get_str (json_object *obj, const char *key);
gint64 vmemctl_get_i64 (json_object *obj, const char *key);
double vmemctl_get_double (json_object *obj, const char *key);
gboolean vmemctl_get_bool (json_object *obj, const char *key);
/* "4G", "512M"; "-" when @mib is 0 and @dash_for_zero. */
char *vmemctl_size (gint64 mib, gboolean dash_for_zero);

/* One runner per command group; each returns the exit code. */
int vmemctl_profile_run (VmemctlRequest *req);
int vmemctl_domain_run (VmemctlRequest *req);

G_END_DECLS
