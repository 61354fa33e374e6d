/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmemctl: the administrator's command line for vmemd. */
#include "vmemctl.h"
#include "vmem-cleanup.h"
#include "vmem-config.h"
#include "vmem-error.h"
#include "vmem-units.h"
#include "vmem-varlink.h"

#include "vmemctl-replay.h"

#include <errno.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *
vmemctl_get_str (json_object *o, const char *key)
{
  json_object *v = NULL;
  if (o == NULL || !json_object_object_get_ex (o, key, &v) || v == NULL)
    return "-";
  return json_object_get_string (v);
}

gint64
vmemctl_get_i64 (json_object *o, const char *key)
{
  json_object *v = NULL;
  if (o == NULL || !json_object_object_get_ex (o, key, &v) || v == NULL)
    return 0;
  return json_object_get_int64 (v);
}

double
vmemctl_get_double (json_object *o, const char *key)
{
  json_object *v = NULL;
  if (o == NULL || !json_object_object_get_ex (o, key, &v) || v == NULL)
    return 0.0;
  return json_object_get_double (v);
}

gboolean
vmemctl_get_bool (json_object *o, const char *key)
{
  json_object *v = NULL;
  if (o == NULL || !json_object_object_get_ex (o, key, &v) || v == NULL)
    return FALSE;
  return json_object_get_boolean (v);
}

char *
vmemctl_size (gint64 mib, gboolean dash_for_zero)
{
  if (mib <= 0 && dash_for_zero)
    return g_strdup ("-");
  return vmem_size_format ((guint64) MAX (mib, 0));
}

void
vmemctl_print_json (json_object *obj)
{
  printf ("%s\n",
          json_object_to_json_string_ext (obj, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                 JSON_C_TO_STRING_NOSLASHESCAPE));
}

json_object *
vmemctl_call (const VmemctlRequest *req, const char *method, json_object *params, int *code)
{
  g_autoptr(GError) error = NULL;
  json_object *reply = vmem_varlink_call (req->socket, method, params, req->timeout_ms, &error);
  if (reply != NULL)
    return reply;

  *code = vmemctl_exit_code (error);
  switch (*code)
    {
    case VMEMCTL_EXIT_UNAVAILABLE:
      /* connect() says EACCES when the socket's mode keeps us out: that is
       * a permission problem, not a daemon that is down. */
      if (error->code == VMEM_ERROR_UNAVAILABLE && access (req->socket, W_OK) < 0 &&
          errno == EACCES)
        {
          fprintf (stderr,
                   "vmemctl: permission denied on %s (run as root or as a member of "
                   "vmemd's admin group)\n",
                   req->socket);
          *code = VMEMCTL_EXIT_DENIED;
        }
      else if (strstr (error->message, req->socket) != NULL)
        fprintf (stderr, "vmemctl: cannot reach vmemd: %s\n", error->message);
      else
        fprintf (stderr, "vmemctl: cannot reach vmemd at %s: %s\n", req->socket, error->message);
      break;
    case VMEMCTL_EXIT_USAGE:
      /* The daemon refused the arguments: still the daemon's failure. */
      fprintf (stderr, "vmemctl: %s\n", error->message);
      *code = VMEMCTL_EXIT_FAILED;
      break;
    default:
      fprintf (stderr, "vmemctl: %s\n", error->message);
      break;
    }
  return NULL;
}

static int
run_help (VmemctlRequest *req)
{
  g_autofree char *text = vmemctl_help_text (req->topic);
  fputs (text, stdout);
  return VMEMCTL_EXIT_OK;
}

static int
run_version (VmemctlRequest *req)
{
  int code = VMEMCTL_EXIT_OK;
  g_autoptr(json_object) r = vmemctl_call (req, req->method, NULL, &code);
  if (req->json && r != NULL)
    {
      json_object_object_add (r, "vmemctl", json_object_new_string (VMEM_VERSION));
      vmemctl_print_json (r);
      return VMEMCTL_EXIT_OK;
    }
  /* vmemctl's own version is worth printing even when vmemd is down. */
  printf ("vmemctl %s\n", VMEM_VERSION);
  if (r != NULL)
    printf ("vmemd %s on %s\n", vmemctl_get_str (r, "version"), vmemctl_get_str (r, "host"));
  return code;
}

static int
run_replay (VmemctlRequest *req)
{
  return vmemctl_replay_main (req->rest_argc, req->rest_argv);
}

static const struct {
  VmemctlCommandId id;
  gboolean needs_daemon;
  int (*run) (VmemctlRequest *req);
} commands[] = {
  { VMEMCTL_CMD_HELP, FALSE, run_help },
  { VMEMCTL_CMD_VERSION, TRUE, run_version },
  { VMEMCTL_CMD_PROFILE_ADD, TRUE, vmemctl_profile_run },
  { VMEMCTL_CMD_PROFILE_SET, TRUE, vmemctl_profile_run },
  { VMEMCTL_CMD_PROFILE_SHOW, TRUE, vmemctl_profile_run },
  { VMEMCTL_CMD_PROFILE_LIST, TRUE, vmemctl_profile_run },
  { VMEMCTL_CMD_PROFILE_REMOVE, TRUE, vmemctl_profile_run },
  { VMEMCTL_CMD_PROFILE_IMPORT, TRUE, vmemctl_profile_run },
  { VMEMCTL_CMD_PROFILE_EXPORT, TRUE, vmemctl_profile_run },
  { VMEMCTL_CMD_ASSIGN, TRUE, vmemctl_domain_run },
  { VMEMCTL_CMD_UNASSIGN, TRUE, vmemctl_domain_run },
  { VMEMCTL_CMD_STATUS, TRUE, vmemctl_domain_run },
  { VMEMCTL_CMD_EXPLAIN, TRUE, vmemctl_domain_run },
  { VMEMCTL_CMD_HISTORY, TRUE, vmemctl_domain_run },
  { VMEMCTL_CMD_METRICS, TRUE, vmemctl_domain_run },
  { VMEMCTL_CMD_HOSTS, TRUE, vmemctl_domain_run },
  { VMEMCTL_CMD_PLACE, TRUE, vmemctl_domain_run },
  { VMEMCTL_CMD_REPLAY, FALSE, run_replay },
};

/* --socket, else $VMEMD_SOCKET, else the config file's. */
static gboolean
resolve_socket (VmemctlRequest *req, GError **error)
{
  if (req->socket != NULL)
    return TRUE;
  const char *env = g_getenv ("VMEMD_SOCKET");
  if (env != NULL && *env != '\0')
    {
      req->socket = g_strdup (env);
      return TRUE;
    }
  g_autoptr(VmemConfig) config = vmem_config_load (vmem_config_default_path (), FALSE, error);
  if (config == NULL)
    return FALSE;
  req->socket = g_strdup (config->socket_path);
  return TRUE;
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  /* A closed pipe (vmemctl ... | head) must not kill us mid-write with a
   * signal; the write simply fails. */
  signal (SIGPIPE, SIG_IGN);

  g_autoptr(GError) error = NULL;
  g_autoptr(VmemctlRequest) req = vmemctl_request_parse (argc, argv, &error);
  if (req == NULL)
    {
      fprintf (stderr, "vmemctl: %s (see vmemctl --help)\n", error->message);
      return VMEMCTL_EXIT_USAGE;
    }

  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    {
      if (commands[i].id != req->command)
        continue;
      if (commands[i].needs_daemon && !resolve_socket (req, &error))
        {
          fprintf (stderr, "vmemctl: %s\n", error->message);
          return VMEMCTL_EXIT_USAGE;
        }
      int code = commands[i].run (req);
      if ((fflush (stdout) != 0 || ferror (stdout)) && code == VMEMCTL_EXIT_OK)
        {
          /* A reader that went away (| head) needs no message. */
          if (errno != EPIPE)
            fprintf (stderr, "vmemctl: cannot write the output: %s\n", g_strerror (errno));
          return VMEMCTL_EXIT_FAILED;
        }
      return code;
    }
  g_assert_not_reached ();
}
