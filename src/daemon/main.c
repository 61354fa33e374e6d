/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "config.h"

#include "vmem-config.h"
#include "vmem-daemon.h"
#include "vmem-log.h"
#include "vmem-store.h"

#include <glib-unix.h>
#include <errno.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#if HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
#endif

typedef struct {
  GMainLoop  *loop;
  VmemDaemon *daemon;
  char       *config_path;
  gboolean    config_explicit;
  char       *log_level; /* --log-level, which wins over the file's; NULL when not given */
} App;

static gboolean
on_term (gpointer user_data)
{
  App *app = user_data;
  g_message ("stopping");
#if HAVE_LIBSYSTEMD
  sd_notify (0, "STOPPING=1");
#endif
  g_main_loop_quit (app->loop);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_hup (gpointer user_data)
{
  App *app = user_data;
  g_autoptr(GError) error = NULL;

  if (app->daemon == NULL)
    return G_SOURCE_CONTINUE;
#if HAVE_LIBSYSTEMD
  sd_notify (0, "RELOADING=1");
#endif
  g_autoptr(VmemConfig) config = vmem_config_load (app->config_path, app->config_explicit, &error);
  if (config == NULL)
    g_warning ("reload refused, keeping the running configuration: %s", error->message);
  else
    {
      g_autofree char *restart = NULL;
      if (app->log_level != NULL)
        {
          g_free (config->log_level);
          config->log_level = g_strdup (app->log_level);
        }
      vmem_daemon_reload (app->daemon, g_steal_pointer (&config), &restart);
      if (restart != NULL)
        g_warning ("configuration reloaded from %s, except what needs a restart of vmemd: %s",
                   app->config_path, restart);
      else
        g_message ("configuration reloaded from %s", app->config_path);
    }
#if HAVE_LIBSYSTEMD
  sd_notify (0, "READY=1");
#endif
  return G_SOURCE_CONTINUE;
}

#if HAVE_LIBSYSTEMD
static gboolean
on_watchdog (gpointer user_data)
{
  sd_notify (0, "WATCHDOG=1");
  return G_SOURCE_CONTINUE;
}
#endif

/* Every client holds a descriptor: up to max_clients + root_clients of
 * them, which may be more than the usual soft limit of 1024.  Nothing here
 * uses select(), so the soft limit goes up to the hard one; a server out
 * of descriptors still pauses accepting rather than spin. */
static void
raise_fd_limit (void)
{
  struct rlimit rl;
  if (getrlimit (RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
    return;
  rlim_t was = rl.rlim_cur;
  rl.rlim_cur = rl.rlim_max;
  if (setrlimit (RLIMIT_NOFILE, &rl) < 0)
    g_warning ("cannot raise the open files limit from %llu: %s", (unsigned long long) was,
               g_strerror (errno));
  else
    g_debug ("open files limit raised from %llu to %llu", (unsigned long long) was,
             (unsigned long long) rl.rlim_cur);
}

int
main (int argc, char **argv)
{
  g_autofree char *config_path = NULL;
  g_autofree char *log_level = NULL;
  gboolean version = FALSE, check = FALSE, foreground = FALSE;
  g_autoptr(GError) error = NULL;
  const GOptionEntry entries[] = {
    { "config", 'c', 0, G_OPTION_ARG_FILENAME, &config_path,
      "Configuration file (default: $VMEMD_CONFIG or " VMEM_CONFIG_DEFAULT_PATH ")", "FILE" },
    { "log-level", 0, 0, G_OPTION_ARG_STRING, &log_level,
      "Log threshold: error, warning, message, info or debug (overrides log_level in the "
      "configuration file)", "LEVEL" },
    { "foreground", 'f', 0, G_OPTION_ARG_NONE, &foreground,
      "Run in the foreground (always the case; accepted for scripts)", NULL },
    { "check-config", 0, 0, G_OPTION_ARG_NONE, &check,
      "Check the configuration file and exit", NULL },
    { "version", 0, 0, G_OPTION_ARG_NONE, &version, "Print the version and exit", NULL },
    { NULL }
  };

  setlocale (LC_ALL, "");
  g_autoptr(GOptionContext) ctx = g_option_context_new ("- workload-aware memory for libvirt guests");
  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    {
      fprintf (stderr, "vmemd: %s\n", error->message);
      return 2;
    }
  if (argc > 1)
    {
      fprintf (stderr, "vmemd: unexpected argument '%s'\n", argv[1]);
      return 2;
    }
  if (log_level != NULL && !vmem_log_level_valid (log_level))
    {
      fprintf (stderr,
               "vmemd: --log-level: '%s' is not one of error, warning, message, info, debug\n",
               log_level);
      return 2;
    }
  if (version)
    {
      printf ("vmemd %s\n", VMEM_VERSION);
      return 0;
    }

  App app = { 0 };
  app.config_explicit = config_path != NULL;
  app.config_path = config_path ? config_path : g_strdup (vmem_config_default_path ());
  config_path = NULL;

  g_autoptr(VmemConfig) config = vmem_config_load (app.config_path, app.config_explicit, &error);
  if (config == NULL)
    {
      fprintf (stderr, "vmemd: %s\n", error->message);
      g_free (app.config_path);
      return 1;
    }
  if (check)
    {
      /* What the store would refuse before connecting, too. */
      if (!vmem_store_check_config (config, &error))
        {
          fprintf (stderr, "vmemd: %s: %s\n", config->path ? config->path : "defaults",
                   error->message);
          g_free (app.config_path);
          return 1;
        }
      printf ("%s: OK\n", config->path ? config->path : "defaults (no file)");
      g_free (app.config_path);
      return 0;
    }

  if (log_level != NULL)
    {
      g_free (config->log_level);
      config->log_level = g_strdup (log_level);
    }
  vmem_log_setup (config->log_level);
  app.log_level = g_steal_pointer (&log_level);
  raise_fd_limit ();

  int listen_fd = -1;
#if HAVE_LIBSYSTEMD
  int n = sd_listen_fds (1);
  if (n > 1)
    {
      g_critical ("socket activation passed %d sockets, expected 1", n);
      return 1;
    }
  if (n == 1)
    listen_fd = SD_LISTEN_FDS_START;
#endif

  app.loop = g_main_loop_new (NULL, FALSE);
  /* Before anything slow: a SIGHUP or SIGTERM during start-up must not take
   * the default action (terminate). */
  g_unix_signal_add (SIGTERM, on_term, &app);
  g_unix_signal_add (SIGINT, on_term, &app);
  g_unix_signal_add (SIGHUP, on_hup, &app);
  signal (SIGPIPE, SIG_IGN);
  app.daemon = vmem_daemon_new (g_steal_pointer (&config), &error);
  if (app.daemon == NULL || !vmem_daemon_start (app.daemon, listen_fd, &error))
    {
      g_critical ("%s", error->message);
      g_clear_pointer (&app.daemon, vmem_daemon_free);
      g_main_loop_unref (app.loop);
      g_free (app.config_path);
      g_free (app.log_level);
      return 1;
    }


#if HAVE_LIBSYSTEMD
  guint64 watchdog_usec = 0;
  if (sd_watchdog_enabled (0, &watchdog_usec) > 0 && watchdog_usec > 0)
    g_timeout_add ((guint) (watchdog_usec / 2000), on_watchdog, NULL);
  sd_notify (0, "READY=1\nSTATUS=Serving");
#endif
  g_message ("vmemd %s ready", VMEM_VERSION);

  g_main_loop_run (app.loop);

  vmem_daemon_free (app.daemon);
  g_main_loop_unref (app.loop);
  g_free (app.config_path);
  g_free (app.log_level);
  g_message ("stopped");
  return 0;
}
