/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-server.h"
#include "vmem-cleanup.h"
#include "vmem-error.h"
#include "vmem-varlink.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <grp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct {
  VmemMethodFlags flags;
  VmemMethodFunc  func;
  gpointer        user_data;
} Method;

typedef struct _Client Client;

struct _VmemServer {
  VmemServerLimits limits;
  int              listen_fd;
  guint            listen_id;
  char            *path;       /* unlinked on free when we created it */
  GHashTable      *methods;    /* name -> Method */
  GHashTable      *interfaces; /* name -> description */
  GList           *clients;
  char            *admin_group;
};

struct _Client {
  VmemServer        *server;
  int                fd;
  guint              in_id;
  guint              out_id;
  guint              timeout_id;
  VmemVarlinkFramer *framer;
  GByteArray        *out;
  uid_t              uid;
  gid_t              gid;
  pid_t              pid;
  VmemCall          *current;   /* the call being answered; one at a time */
  gboolean           closing;   /* flush the output, then close */
  guint              dispatch_id;
};

struct _VmemCall {
  gint        ref;
  Client     *client;           /* NULL once the client has gone */
  char       *method;
  gboolean    oneway;
  gboolean    answered;
};

static void client_close (Client *c);
static void client_dispatch (Client *c);

/* ---- calls ------------------------------------------------------------ */

VmemCall *
vmem_call_ref (VmemCall *call)
{
  g_atomic_int_inc (&call->ref);
  return call;
}

void
vmem_call_unref (VmemCall *call)
{
  if (call == NULL || !g_atomic_int_dec_and_test (&call->ref))
    return;
  g_free (call->method);
  g_free (call);
}

const char *
vmem_call_get_method (VmemCall *call)
{
  return call->method;
}

uid_t
vmem_call_get_peer_uid (VmemCall *call)
{
  return call->client ? call->client->uid : (uid_t) -1;
}

pid_t
vmem_call_get_peer_pid (VmemCall *call)
{
  return call->client ? call->client->pid : 0;
}

static gboolean
client_flush (Client *c);

static gboolean
on_writable (gint fd, GIOCondition cond, gpointer user_data)
{
  Client *c = user_data;
  if (!client_flush (c))
    return G_SOURCE_REMOVE; /* closed */
  if (c->out->len > 0)
    return G_SOURCE_CONTINUE;
  c->out_id = 0;
  if (c->closing)
    client_close (c);
  return G_SOURCE_REMOVE;
}

/* Writes what the socket takes; FALSE when the client was closed. */
static gboolean
client_flush (Client *c)
{
  while (c->out->len > 0)
    {
      ssize_t n = send (c->fd, c->out->data, c->out->len, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0)
        {
          g_byte_array_remove_range (c->out, 0, (guint) n);
          continue;
        }
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        {
          if (c->out_id == 0)
            c->out_id = g_unix_fd_add (c->fd, G_IO_OUT, on_writable, c);
          return TRUE;
        }
      c->out_id = 0;
      client_close (c);
      return FALSE;
    }
  return TRUE;
}

static void
client_send (Client *c, json_object *msg)
{
  g_autoptr(GBytes) bytes = vmem_varlink_encode (msg);
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);
  g_byte_array_append (c->out, data, (guint) len);
  if (c->out_id == 0)
    {
      if (client_flush (c) && c->closing && c->out->len == 0)
        client_close (c);
    }
}

static gboolean
dispatch_idle (gpointer user_data)
{
  Client *c = user_data;
  c->dispatch_id = 0;
  client_dispatch (c);
  return G_SOURCE_REMOVE;
}

static void
call_finish (VmemCall *call, json_object *msg /* transfer full */)
{
  g_autoptr(json_object) owned = msg;
  Client *c = call->client;

  g_return_if_fail (!call->answered);
  call->answered = TRUE;
  if (c == NULL)
    return;
  if (!call->oneway)
    client_send (c, msg);
  /* client_send may have closed the client. */
  if (call->client == NULL)
    return;
  call->client = NULL;
  c->current = NULL;
  vmem_call_unref (call);
  if (c->dispatch_id == 0 && !c->closing)
    c->dispatch_id = g_idle_add (dispatch_idle, c);
}

void
vmem_call_reply (VmemCall *call, json_object *parameters)
{
  call_finish (call, vmem_varlink_new_reply (parameters));
}

void
vmem_call_return_error (VmemCall *call, const GError *error)
{
  /* vmemd's own error names; the message names the parameter at fault. */
  call_finish (call, vmem_varlink_new_error (vmem_error_to_varlink (error), error->message));
}

void
vmem_call_return_varlink_error (VmemCall *call, const char *name, json_object *parameters)
{
  json_object *o = json_object_new_object ();
  json_object_object_add (o, "error", json_object_new_string (name));
  json_object_object_add (o, "parameters", parameters ? parameters : json_object_new_object ());
  call_finish (call, o);
}

/* ---- clients ---------------------------------------------------------- */

static void
client_close (Client *c)
{
  VmemServer *s = c->server;
  s->clients = g_list_remove (s->clients, c);
  g_clear_handle_id (&c->in_id, g_source_remove);
  g_clear_handle_id (&c->out_id, g_source_remove);
  g_clear_handle_id (&c->timeout_id, g_source_remove);
  g_clear_handle_id (&c->dispatch_id, g_source_remove);
  if (c->current != NULL)
    {
      c->current->client = NULL;
      vmem_call_unref (c->current);
    }
  close (c->fd);
  vmem_varlink_framer_free (c->framer);
  g_byte_array_unref (c->out);
  g_free (c);
}

/* Replies with an error and closes once the reply is out. */
static void
client_fail (Client *c, const char *name, const char *message)
{
  g_autoptr(json_object) msg = vmem_varlink_new_error (name, message);
  g_debug ("client pid %d: %s", (int) c->pid, message);
  g_clear_handle_id (&c->in_id, g_source_remove);
  c->closing = TRUE;
  client_send (c, msg);
}

static gboolean
in_group (Client *c, const char *group)
{
  if (group == NULL)
    return FALSE;
  struct group *gr = getgrnam (group);
  if (gr == NULL)
    return FALSE;
  if (c->gid == gr->gr_gid)
    return TRUE;
  /* Supplementary groups are not in SO_PEERCRED; read them from /proc. */
  g_autofree char *path = g_strdup_printf ("/proc/%d/status", (int) c->pid);
  g_autofree char *status = NULL;
  if (!g_file_get_contents (path, &status, NULL, NULL))
    return FALSE;
  const char *line = strstr (status, "\nGroups:");
  if (line == NULL)
    return FALSE;
  line += strlen ("\nGroups:");
  g_autofree char *rest = g_strndup (line, strcspn (line, "\n"));
  g_auto(GStrv) ids = g_strsplit_set (g_strstrip (rest), " \t", -1);
  for (guint i = 0; ids[i]; i++)
    if (*ids[i] && (gid_t) g_ascii_strtoull (ids[i], NULL, 10) == gr->gr_gid)
      return TRUE;
  return FALSE;
}

static json_object *
get_info (VmemServer *s)
{
  json_object *r = json_object_new_object ();
  json_object_object_add (r, "vendor", json_object_new_string ("vmemd"));
  json_object_object_add (r, "product", json_object_new_string ("vmemd"));
  json_object_object_add (r, "version", json_object_new_string (VMEM_VERSION));
  json_object_object_add (r, "url", json_object_new_string ("man:vmemd(8)"));
  json_object *ifs = json_object_new_array ();
  json_object_array_add (ifs, json_object_new_string ("org.varlink.service"));
  g_autoptr(GList) names = g_hash_table_get_keys (s->interfaces);
  names = g_list_sort (names, (GCompareFunc) strcmp);
  for (GList *l = names; l; l = l->next)
    json_object_array_add (ifs, json_object_new_string (l->data));
  json_object_object_add (r, "interfaces", ifs);
  return r;
}

static const char service_description[] =
  "interface org.varlink.service\n"
  "method GetInfo() -> (vendor: string, product: string, version: string, url: string, interfaces: []string)\n"
  "method GetInterfaceDescription(interface: string) -> (description: string)\n"
  "error InterfaceNotFound (interface: string)\n"
  "error MethodNotFound (method: string)\n"
  "error MethodNotImplemented (method: string)\n"
  "error InvalidParameter (parameter: string)\n"
  "error PermissionDenied ()\n"
  "error ExpectedMore ()\n";

static json_object *
param_obj (const char *key, const char *value)
{
  json_object *p = json_object_new_object ();
  json_object_object_add (p, key, json_object_new_string (value));
  return p;
}

static void
handle_message (Client *c, json_object *msg)
{
  VmemServer *s = c->server;
  json_object *jmethod = NULL, *params = NULL, *jflag = NULL;

  VmemCall *call = g_new0 (VmemCall, 1);
  call->ref = 1;
  call->client = c;
  c->current = call;
  if (json_object_object_get_ex (msg, "oneway", &jflag) && json_object_get_boolean (jflag))
    call->oneway = TRUE;

  if (!json_object_object_get_ex (msg, "method", &jmethod) ||
      !json_object_is_type (jmethod, json_type_string))
    {
      call->method = g_strdup ("");
      vmem_call_return_varlink_error (call, "org.varlink.service.InvalidParameter",
                                      param_obj ("parameter", "method"));
      return;
    }
  call->method = g_strdup (json_object_get_string (jmethod));
  if (json_object_object_get_ex (msg, "parameters", &params) &&
      !json_object_is_type (params, json_type_object) && !json_object_is_type (params, json_type_null))
    {
      vmem_call_return_varlink_error (call, "org.varlink.service.InvalidParameter",
                                      param_obj ("parameter", "parameters"));
      return;
    }
  if (json_object_object_get_ex (msg, "more", &jflag) && json_object_get_boolean (jflag))
    {
      vmem_call_return_varlink_error (call, "org.varlink.service.InvalidParameter",
                                      param_obj ("parameter", "more"));
      return;
    }

  if (g_str_equal (call->method, "org.varlink.service.GetInfo"))
    {
      vmem_call_reply (call, get_info (s));
      return;
    }
  if (g_str_equal (call->method, "org.varlink.service.GetInterfaceDescription"))
    {
      json_object *jif = NULL;
      const char *name = NULL;
      if (params && json_object_object_get_ex (params, "interface", &jif) &&
          json_object_is_type (jif, json_type_string))
        name = json_object_get_string (jif);
      if (name == NULL)
        {
          vmem_call_return_varlink_error (call, "org.varlink.service.InvalidParameter",
                                          param_obj ("parameter", "interface"));
          return;
        }
      const char *desc = g_str_equal (name, "org.varlink.service")
                           ? service_description
                           : g_hash_table_lookup (s->interfaces, name);
      if (desc == NULL)
        {
          vmem_call_return_varlink_error (call, "org.varlink.service.InterfaceNotFound",
                                          param_obj ("interface", name));
          return;
        }
      vmem_call_reply (call, param_obj ("description", desc));
      return;
    }

  Method *m = g_hash_table_lookup (s->methods, call->method);
  if (m == NULL)
    {
      vmem_call_return_varlink_error (call, "org.varlink.service.MethodNotFound",
                                      param_obj ("method", call->method));
      return;
    }
  gboolean allowed = TRUE;
  if (m->flags & VMEM_METHOD_ROOT)
    allowed = c->uid == 0;
  else if (m->flags & VMEM_METHOD_ADMIN)
    allowed = c->uid == 0 || in_group (c, s->admin_group);
  if (!allowed)
    {
      g_autofree char *text = g_strdup_printf ("%s needs root%s%s", call->method,
                                               (m->flags & VMEM_METHOD_ROOT) ? "" : " or membership of group ",
                                               (m->flags & VMEM_METHOD_ROOT) ? "" : (s->admin_group ? s->admin_group : "vmemd"));
      g_autoptr(GError) error = g_error_new_literal (VMEM_ERROR, VMEM_ERROR_PERMISSION_DENIED, text);
      vmem_call_return_error (call, error);
      return;
    }

  /* The handler may reply before it returns; hold the call until then. */
  g_autoptr(VmemCall) hold = vmem_call_ref (call);
  m->func (call, params, m->user_data);
}

static void
client_dispatch (Client *c)
{
  while (c->current == NULL && !c->closing)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(json_object) msg = vmem_varlink_framer_pop (c->framer, &error);
      if (error != NULL)
        {
          client_fail (c, "io.vmemd.ProtocolError", error->message);
          return;
        }
      if (msg == NULL)
        return;
      handle_message (c, msg);
    }
}

static gboolean
on_request_timeout (gpointer user_data)
{
  Client *c = user_data;
  c->timeout_id = 0;
  client_fail (c, "io.vmemd.Timeout", "request not completed in time");
  return G_SOURCE_REMOVE;
}

static gboolean
on_readable (gint fd, GIOCondition cond, gpointer user_data)
{
  Client *c = user_data;
  char buf[65536];

  ssize_t n = recv (fd, buf, sizeof buf, MSG_DONTWAIT);
  if (n < 0 && (errno == EINTR || errno == EAGAIN))
    return G_SOURCE_CONTINUE;
  if (n <= 0)
    {
      c->in_id = 0;
      client_close (c);
      return G_SOURCE_REMOVE;
    }
  g_autoptr(GError) error = NULL;
  if (!vmem_varlink_framer_feed (c->framer, buf, (gsize) n, &error))
    {
      c->in_id = 0;
      client_fail (c, "io.vmemd.ProtocolError", error->message);
      return G_SOURCE_REMOVE;
    }
  /* A message that has started must complete within the request time. */
  gboolean partial = buf[n - 1] != '\0';
  g_clear_handle_id (&c->timeout_id, g_source_remove);
  if (partial)
    c->timeout_id = g_timeout_add_seconds (c->server->limits.request_timeout_s,
                                           on_request_timeout, c);
  client_dispatch (c);
  return G_SOURCE_CONTINUE;
}

static gboolean
on_accept (gint fd, GIOCondition cond, gpointer user_data)
{
  VmemServer *s = user_data;
  int cfd = accept4 (fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (cfd < 0)
    return G_SOURCE_CONTINUE;

  Client *c = g_new0 (Client, 1);
  c->server = s;
  c->fd = cfd;
  c->framer = vmem_varlink_framer_new (s->limits.max_message);
  c->out = g_byte_array_new ();
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt (cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
    {
      c->uid = cred.uid;
      c->gid = cred.gid;
      c->pid = cred.pid;
    }
  else
    c->uid = (uid_t) -1;
  s->clients = g_list_prepend (s->clients, c);

  if (g_list_length (s->clients) > s->limits.max_clients)
    {
      client_fail (c, "io.vmemd.Busy", "too many clients, try again later");
      return G_SOURCE_CONTINUE;
    }
  c->in_id = g_unix_fd_add (cfd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_readable, c);
  return G_SOURCE_CONTINUE;
}

/* ---- server ----------------------------------------------------------- */

VmemServer *
vmem_server_new (const VmemServerLimits *limits)
{
  VmemServer *s = g_new0 (VmemServer, 1);
  s->limits.max_message = limits && limits->max_message ? limits->max_message : VMEM_VARLINK_MAX_MESSAGE;
  s->limits.max_clients = limits && limits->max_clients ? limits->max_clients : 64;
  s->limits.request_timeout_s = limits && limits->request_timeout_s ? limits->request_timeout_s : 10;
  s->listen_fd = -1;
  s->methods = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  s->interfaces = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  s->admin_group = g_strdup ("vmemd");
  return s;
}

void
vmem_server_free (VmemServer *s)
{
  if (s == NULL)
    return;
  while (s->clients != NULL)
    client_close (s->clients->data);
  g_clear_handle_id (&s->listen_id, g_source_remove);
  if (s->listen_fd >= 0)
    close (s->listen_fd);
  if (s->path != NULL)
    unlink (s->path);
  g_free (s->path);
  g_free (s->admin_group);
  g_hash_table_unref (s->methods);
  g_hash_table_unref (s->interfaces);
  g_free (s);
}

void
vmem_server_set_admin_group (VmemServer *s, const char *group)
{
  g_free (s->admin_group);
  s->admin_group = g_strdup (group);
}

void
vmem_server_add_interface (VmemServer *s, const char *name, const char *description)
{
  g_hash_table_replace (s->interfaces, g_strdup (name), g_strdup (description));
}

void
vmem_server_add_method (VmemServer *s, const char *method, VmemMethodFlags flags,
                        VmemMethodFunc func, gpointer user_data)
{
  Method *m = g_new0 (Method, 1);
  m->flags = flags;
  m->func = func;
  m->user_data = user_data;
  g_hash_table_replace (s->methods, g_strdup (method), m);
}

guint
vmem_server_n_clients (VmemServer *s)
{
  return g_list_length (s->clients);
}

gboolean
vmem_server_adopt_fd (VmemServer *s, int fd, GError **error)
{
  if (s->listen_fd >= 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "already listening");
      return FALSE;
    }
  int flags = fcntl (fd, F_GETFL);
  if (flags < 0 || fcntl (fd, F_SETFL, flags | O_NONBLOCK) < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "bad listening socket: %s",
                   g_strerror (errno));
      return FALSE;
    }
  s->listen_fd = fd;
  s->listen_id = g_unix_fd_add (fd, G_IO_IN, on_accept, s);
  return TRUE;
}

gboolean
vmem_server_listen (VmemServer *s, const char *path, guint mode, const char *group,
                    GError **error)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if (strlen (path) >= sizeof addr.sun_path)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_CONFIG, "socket path too long: %s", path);
      return FALSE;
    }
  strcpy (addr.sun_path, path);

  g_autofree char *dir = g_path_get_dirname (path);
  if (g_mkdir_with_parents (dir, 0755) < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "cannot create %s: %s", dir,
                   g_strerror (errno));
      return FALSE;
    }

  /* A socket file left by a daemon that died is replaced; one that still
   * answers belongs to a running vmemd. */
  struct stat st;
  if (lstat (path, &st) == 0)
    {
      if (!S_ISSOCK (st.st_mode))
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "%s exists and is not a socket", path);
          return FALSE;
        }
      vmem_autofd int probe = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (probe >= 0 && connect (probe, (struct sockaddr *) &addr, sizeof addr) == 0)
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED,
                       "another vmemd is already listening on %s", path);
          return FALSE;
        }
      unlink (path);
    }

  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "socket: %s", g_strerror (errno));
      return FALSE;
    }
  /* No window where the socket is reachable with wider permissions. */
  mode_t old = umask (0777 & ~mode);
  int r = bind (fd, (struct sockaddr *) &addr, sizeof addr);
  umask (old);
  if (r < 0 || listen (fd, 128) < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "cannot listen on %s: %s", path,
                   g_strerror (errno));
      close (fd);
      return FALSE;
    }
  chmod (path, mode);
  if (group != NULL)
    {
      vmem_server_set_admin_group (s, group);
      struct group *gr = getgrnam (group);
      if (gr != NULL && chown (path, (uid_t) -1, gr->gr_gid) < 0)
        g_warning ("cannot give %s to group %s: %s", path, group, g_strerror (errno));
      else if (gr == NULL)
        g_info ("group %s does not exist: only root can use %s", group, path);
    }
  s->path = g_strdup (path);
  s->listen_fd = fd;
  s->listen_id = g_unix_fd_add (fd, G_IO_IN, on_accept, s);
  return TRUE;
}
