/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmemctl.h"
#include "vmem-cleanup.h"
#include "vmem-config.h"
#include "vmem-error.h"
#include "vmem-varlink.h"

#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const VmemctlCommand commands[] = {
  { "profile", "add|set|show|list|remove|import|export ...", "manage workload profiles", vmemctl_cmd_profile },
  { "assign", "DOMAIN WORKLOAD", "tag a domain with a workload", vmemctl_cmd_assign },
  { "unassign", "[--restore] DOMAIN", "remove a domain's workload tag", vmemctl_cmd_unassign },
  { "status", "", "show the daemon, the host and the domains", vmemctl_cmd_status },
  { "explain", "DOMAIN | --workload WORKLOAD", "show what a domain gets and why", vmemctl_cmd_explain },
};

static void
usage (FILE *f)
{
  fprintf (f,
           "Usage: vmemctl [--socket PATH] [--json] [--timeout SECONDS] COMMAND [ARGS...]\n"
           "\n"
           "Commands:\n");
  for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
    fprintf (f, "  %-9s %-36s %s\n", commands[i].name, commands[i].args, commands[i].summary);
  fprintf (f,
           "  %-9s %-36s %s\n"
           "\n"
           "Profile commands:\n"
           "  profile add NAME [OPTIONS]     create a profile\n"
           "  profile set NAME [OPTIONS]     change the given fields of a profile\n"
           "  profile show NAME              show one profile\n"
           "  profile list                   list profiles\n"
           "  profile remove NAME [--force]  delete a profile (--force even if domains use it)\n"
           "  profile import FILE|- [--replace]  load profiles from JSON, all or nothing\n"
           "  profile export [FILE|-]        write all profiles as JSON\n"
           "\n"
           "Profile options:\n"
           "  --demand SIZE     memory the workload needs from the start (512M, 4G)\n"
           "  --floor SIZE      never give less\n"
           "  --ceiling SIZE    never give more\n"
           "  --margin PCT      added on top of the observed quantile (default 15)\n"
           "  --quantile Q      quantile of peer usage, 0.5..1 or 50..100 (default 0.95)\n"
           "  --buffer PCT      free memory kept in the guest, %% of used (default 20)\n"
           "  --mode MODE       balloon (default), virtio-mem or observe\n"
           "  --prealloc on|off preallocate the boot memory (default on)\n"
           "  --scale SCALE     absolute (default) or per-vcpu\n"
           "  --priority N      0..100, higher wins when memory is short (default 50)\n"
           "  --match GLOB      also manage domains whose name matches; --no-match clears it\n"
           "\n"
           "Options:\n"
           "  --socket PATH     vmemd's socket (default: $VMEMD_SOCKET, else the config's)\n"
           "  --json            print the daemon's JSON reply\n"
           "  --timeout SEC     give up waiting for vmemd after SEC seconds (default 30)\n"
           "\n"
           "Exit status: 0 success, 1 failure reported by vmemd, 2 usage error,\n"
           "3 not found, 4 vmemd unreachable or timed out, 5 permission denied.\n"
           "See vmemctl(8).\n",
           "version", "", "print vmemctl's and vmemd's versions");
}

int
vmemctl_usage_error (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  fprintf (stderr, "vmemctl: %s (see vmemctl --help)\n", msg);
  return VMEMCTL_EXIT_USAGE;
}

void
vmemctl_print_json (json_object *obj)
{
  printf ("%s\n", json_object_to_json_string_ext (obj, JSON_C_TO_STRING_PRETTY |
                                                       JSON_C_TO_STRING_SPACED |
                                                       JSON_C_TO_STRING_NOSLASHESCAPE));
}

json_object *
vmemctl_call (VmemctlGlobal *g, const char *method, json_object *params, int *code)
{
  g_autoptr(GError) error = NULL;
  json_object *reply = vmem_varlink_call (g->socket, method, params, g->timeout_ms, &error);
  if (reply == NULL)
    {
      *code = vmemctl_exit_code (error);
      if (*code == VMEMCTL_EXIT_UNAVAILABLE)
        fprintf (stderr, "vmemctl: vmemd at %s: %s\n", g->socket, error->message);
      else
        fprintf (stderr, "vmemctl: %s\n", error->message);
      /* A usage-like error from the daemon is still the daemon's failure. */
      if (*code == VMEMCTL_EXIT_USAGE)
        *code = VMEMCTL_EXIT_FAILED;
    }
  return reply;
}

static int
cmd_version (VmemctlGlobal *g)
{
  int code = 0;
  g_autoptr(json_object) r = vmemctl_call (g, "io.vmemd.Ping", NULL, &code);
  if (g->json && r != NULL)
    {
      json_object_object_add (r, "vmemctl", json_object_new_string (VMEM_VERSION));
      vmemctl_print_json (r);
      return 0;
    }
  printf ("vmemctl %s\n", VMEM_VERSION);
  if (r != NULL)
    {
      json_object *v = NULL;
      json_object_object_get_ex (r, "version", &v);
      printf ("vmemd %s\n", v ? json_object_get_string (v) : "?");
    }
  return code;
}

int
main (int argc, char **argv)
{
  setlocale (LC_ALL, "");
  VmemctlGlobal g = { .timeout_ms = 30000 };
  g_autoptr(GError) error = NULL;

  if (!vmemctl_parse_global (&argc, &argv, &g, &error))
    return vmemctl_usage_error ("%s", error->message);
  if (argc < 2 || g_str_equal (argv[1], "--help") || g_str_equal (argv[1], "-h") ||
      g_str_equal (argv[1], "help"))
    {
      usage (argc < 2 ? stderr : stdout);
      return argc < 2 ? VMEMCTL_EXIT_USAGE : VMEMCTL_EXIT_OK;
    }

  if (g.socket == NULL)
    {
      const char *env = g_getenv ("VMEMD_SOCKET");
      if (env != NULL && *env != '\0')
        g.socket = g_strdup (env);
      else
        {
          g_autoptr(GError) cerr = NULL;
          g_autoptr(VmemConfig) config = vmem_config_load (vmem_config_default_path (), FALSE, &cerr);
          if (config == NULL)
            {
              fprintf (stderr, "vmemctl: %s\n", cerr->message);
              return VMEMCTL_EXIT_USAGE;
            }
          g.socket = g_strdup (config->socket_path);
        }
    }

  const char *name = argv[1];
  int code;
  if (g_str_equal (name, "version") || g_str_equal (name, "--version"))
    code = cmd_version (&g);
  else
    {
      const VmemctlCommand *cmd = NULL;
      for (gsize i = 0; i < G_N_ELEMENTS (commands); i++)
        if (g_str_equal (commands[i].name, name))
          cmd = &commands[i];
      if (cmd == NULL)
        code = vmemctl_usage_error ("unknown command '%s'", name);
      else
        {
          /* --json may also follow the command. */
          for (int i = 2; i < argc; i++)
            if (g_str_equal (argv[i], "--json"))
              g.json = TRUE;
          code = cmd->run (&g, argc - 1, argv + 1);
        }
    }
  g_free (g.socket);
  return code;
}
