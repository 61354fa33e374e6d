/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-server.h"
#include "vmem-cleanup.h"
#include "vmem-error.h"
#include "vmem-varlink.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <grp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define READ_CHUNK       65536
#define ACCEPT_BACKOFF_MS 200

typedef struct {
  VmemMethodFlags flags;
  VmemMethodFunc  func;
  gpointer        user_data;
} Method;

typedef struct _Client Client;

struct _VmemServer {
  VmemServerLimits limits;
  int              listen_fd;
  GMainContext    *context;    /* where every source of the server runs */
  GSource         *listen_src;
  GSource         *backoff_src;
  char            *path;       /* the socket file we created, removed on free */
  dev_t            path_dev;
  ino_t            path_ino;
  GHashTable      *methods;    /* name -> Method */
  GHashTable      *interfaces; /* name -> IDL text */
  GList           *clients;
  guint            n_clients;
  char            *admin_group;
  gid_t            admin_gid;  /* (gid_t) -1: no such group */
};

struct _Client {
  gint               ref;
  VmemServer        *server;
  int                fd;        /* -1 once closed */
  GSource           *in_src;
  GSource           *out_src;
  GSource           *timer_src;
  gint64             timer_at;
  VmemVarlinkFramer *framer;
  GByteArray        *out;
  gint64             partial_since; /* a begun message waits for its end since */
  gint64             out_since;     /* a reply waits for the client to take it since */
  gint64             active_at;     /* accepted, or last read or reply */
  gboolean           spoke;         /* it has sent something */
  uid_t              uid;
  gid_t              gid;
  pid_t              pid;
  GArray            *groups;        /* gid_t; NULL when the kernel would not say */
  VmemCall          *current;       /* the call being answered; one at a time */
  gboolean           pumping;
  gboolean           closing;       /* flush the output, then close */
  gboolean           eof;           /* the peer will send no more */
};

struct _VmemCall {
  gint     ref;
  Client  *client; /* NULL once answered or the client has gone */
  char    *method;
  uid_t    uid;
  gid_t    gid;
  pid_t    pid;
  gboolean oneway;
  gboolean answered;
  gint64   received; /* monotonic µs when the message was taken in */
};

static void client_pump (Client *c);

static GSource *
attach_fd (VmemServer *s, int fd, GIOCondition cond, GUnixFDSourceFunc func, gpointer data)
{
  GSource *src = g_unix_fd_source_new (fd, cond);
  g_source_set_callback (src, (GSourceFunc) (void (*) (void)) func, data, NULL);
  g_source_attach (src, s->context);
  return src;
}

static GSource *
attach_timeout (VmemServer *s, guint ms, GSourceFunc func, gpointer data)
{
  GSource *src = g_timeout_source_new (ms);
  g_source_set_callback (src, func, data, NULL);
  g_source_attach (src, s->context);
  return src;
}

/* Safe on the source being dispatched. */
static void
drop_source (GSource **src)
{
  if (*src == NULL)
    return;
  g_source_destroy (*src);
  g_clear_pointer (src, g_source_unref);
}

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

gint64
vmem_call_get_received (VmemCall *call)
{
  return call->received;
}

const char *
vmem_call_get_method (VmemCall *call)
{
  return call->method;
}

uid_t
vmem_call_get_peer_uid (VmemCall *call)
{
  return call->uid;
}

gid_t
vmem_call_get_peer_gid (VmemCall *call)
{
  return call->gid;
}

pid_t
vmem_call_get_peer_pid (VmemCall *call)
{
  return call->pid;
}

gboolean
vmem_call_is_connected (VmemCall *call)
{
  Client *c = call->client;
  if (c == NULL || c->fd < 0 || c->eof)
    return FALSE;
  /* A client that has closed its end may still have unread bytes (its
   * call, among them): ask the socket rather than wait to read an EOF. */
  struct pollfd p = { .fd = c->fd, .events = POLLRDHUP };
  return poll (&p, 1, 0) <= 0 || !(p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Root (the hook) may exchange larger messages: a domain XML of any size
 * the XML reader takes. */
static gsize
client_max_message (Client *c)
{
  return c->uid == 0 ? c->server->limits.max_root_message : c->server->limits.max_message;
}

static void
client_queue (Client *c, json_object *msg)
{
  g_autoptr(GBytes) bytes = vmem_varlink_encode (msg);
  gsize len;
  const guint8 *data = g_bytes_get_data (bytes, &len);

  if (len - 1 > client_max_message (c))
    {
      g_warning ("reply to pid %d is %" G_GSIZE_FORMAT " bytes, over the message limit",
                 (int) c->pid, len - 1);
      g_autofree char *text = g_strdup_printf ("the reply is larger than %" G_GSIZE_FORMAT
                                               " bytes", client_max_message (c));
      g_autoptr(json_object) err = vmem_varlink_new_error ("io.vmemd.Failed", text);
      client_queue (c, err);
      return;
    }
  if (c->out->len == 0)
    c->out_since = g_get_monotonic_time ();
  c->active_at = g_get_monotonic_time ();
  g_byte_array_append (c->out, data, (guint) len);
}

static void
call_finish (VmemCall *call, json_object *msg /* transfer full */)
{
  g_autoptr(json_object) owned = msg;

  g_return_if_fail (!call->answered);
  call->answered = TRUE;
  Client *c = g_steal_pointer (&call->client);
  if (c == NULL)
    return;
  if (!call->oneway)
    client_queue (c, msg);
  c->current = NULL;
  vmem_call_unref (call); /* the client's reference */
  client_pump (c);
}

void
vmem_call_reply (VmemCall *call, json_object *parameters)
{
  call_finish (call, vmem_varlink_new_reply (parameters));
}

void
vmem_call_return_error (VmemCall *call, const GError *error)
{
  call_finish (call, vmem_varlink_new_error_from_gerror (error));
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

static Client *
client_ref (Client *c)
{
  c->ref++;
  return c;
}

static void
client_unref (Client *c)
{
  if (c == NULL || --c->ref > 0)
    return;
  vmem_varlink_framer_free (c->framer);
  g_byte_array_unref (c->out);
  if (c->groups != NULL)
    g_array_unref (c->groups);
  g_free (c);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Client, client_unref)

static void
client_close (Client *c)
{
  VmemServer *s = c->server;

  if (c->fd < 0)
    return;
  drop_source (&c->in_src);
  drop_source (&c->out_src);
  drop_source (&c->timer_src);
  if (c->current != NULL)
    {
      /* The handler still holds the call; its reply will go nowhere. */
      c->current->client = NULL;
      g_clear_pointer (&c->current, vmem_call_unref);
    }
  close (c->fd);
  c->fd = -1;
  s->clients = g_list_remove (s->clients, c);
  s->n_clients--;
  client_unref (c); /* the server's reference */
}

/* Replies with an error, then closes once the reply is out. */
static void
client_fail (Client *c, const char *name, const char *message)
{
  g_autoptr(json_object) msg = vmem_varlink_new_error (name, message);
  g_debug ("client pid %d uid %u: %s", (int) c->pid, (unsigned) c->uid, message);
  client_queue (c, msg);
  c->closing = TRUE;
  client_pump (c);
}

/* Writes what the socket takes; FALSE when the connection broke. */
static gboolean
client_flush (Client *c)
{
  while (c->out->len > 0)
    {
      ssize_t n = send (c->fd, c->out->data, c->out->len, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0)
        {
          g_byte_array_remove_range (c->out, 0, (guint) n);
          c->out_since = g_get_monotonic_time ();
          continue;
        }
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return TRUE;
      client_close (c);
      return FALSE;
    }
  return TRUE;
}

static gboolean
in_admin_group (Client *c)
{
  VmemServer *s = c->server;

  if (s->admin_gid == (gid_t) -1)
    return FALSE;
  if (c->gid == s->admin_gid)
    return TRUE;
  for (guint i = 0; c->groups != NULL && i < c->groups->len; i++)
    if (g_array_index (c->groups, gid_t, i) == s->admin_gid)
      return TRUE;
  return FALSE;
}

static json_object *
param_obj (const char *key, const char *value)
{
  json_object *p = json_object_new_object ();
  json_object_object_add (p, key, json_object_new_string (value));
  return p;
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
  "\n"
  "method GetInfo() -> (vendor: string, product: string, version: string, url: string, interfaces: []string)\n"
  "method GetInterfaceDescription(interface: string) -> (description: string)\n"
  "\n"
  "error InterfaceNotFound (interface: string)\n"
  "error MethodNotFound (method: string)\n"
  "error MethodNotImplemented (method: string)\n"
  "error InvalidParameter (parameter: string)\n"
  "error PermissionDenied ()\n"
  "error ExpectedMore ()\n";

static void
get_interface_description (VmemCall *call, VmemServer *s, json_object *params)
{
  json_object *jif = NULL;

  if (!json_object_object_get_ex (params, "interface", &jif) ||
      !json_object_is_type (jif, json_type_string))
    {
      vmem_call_return_varlink_error (call, "org.varlink.service.InvalidParameter",
                                      param_obj ("parameter", "interface"));
      return;
    }
  const char *name = json_object_get_string (jif);
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
}

/* A flag is absent, or a boolean. */
static gboolean
get_flag (json_object *msg, const char *key, gboolean *value)
{
  json_object *j = NULL;
  *value = FALSE;
  if (!json_object_object_get_ex (msg, key, &j) || j == NULL)
    return TRUE;
  if (!json_object_is_type (j, json_type_boolean))
    return FALSE;
  *value = json_object_get_boolean (j);
  return TRUE;
}

static void
handle_message (Client *c, json_object *msg)
{
  VmemServer *s = c->server;
  json_object *jmethod = NULL, *jparams = NULL;
  gboolean more, upgrade;

  VmemCall *call = g_new0 (VmemCall, 1);
  call->received = g_get_monotonic_time ();
  call->ref = 1; /* the client's, dropped on reply or close */
  call->client = c;
  call->uid = c->uid;
  call->gid = c->gid;
  call->pid = c->pid;
  c->current = call;
  /* Keep the call alive across a handler that replies before returning. */
  g_autoptr(VmemCall) hold = vmem_call_ref (call);

  if (json_object_object_get_ex (msg, "method", &jmethod) &&
      json_object_is_type (jmethod, json_type_string))
    call->method = g_strdup (json_object_get_string (jmethod));
  else
    call->method = g_strdup ("");

  const char *bad = NULL;
  if (!get_flag (msg, "oneway", &call->oneway))
    bad = "oneway";
  else if (*call->method == '\0')
    bad = "method";
  else if (!get_flag (msg, "more", &more) || more)
    bad = "more";
  else if (!get_flag (msg, "upgrade", &upgrade) || upgrade)
    bad = "upgrade";
  else if (json_object_object_get_ex (msg, "parameters", &jparams) &&
           !json_object_is_type (jparams, json_type_object))
    bad = "parameters";
  if (bad != NULL)
    {
      vmem_call_return_varlink_error (call, "org.varlink.service.InvalidParameter",
                                      param_obj ("parameter", bad));
      return;
    }
  g_autoptr(json_object) params = jparams ? json_object_get (jparams) : json_object_new_object ();

  if (g_str_equal (call->method, "org.varlink.service.GetInfo"))
    {
      vmem_call_reply (call, get_info (s));
      return;
    }
  if (g_str_equal (call->method, "org.varlink.service.GetInterfaceDescription"))
    {
      get_interface_description (call, s, params);
      return;
    }

  Method *m = g_hash_table_lookup (s->methods, call->method);
  if (m == NULL)
    {
      /* The interface is the name up to its last dot. */
      const char *dot = strrchr (call->method, '.');
      g_autofree char *iface =
        dot ? g_strndup (call->method, (gsize) (dot - call->method)) : g_strdup (call->method);
      if (!g_str_equal (iface, "org.varlink.service") &&
          !g_hash_table_contains (s->interfaces, iface))
        vmem_call_return_varlink_error (call, "org.varlink.service.InterfaceNotFound",
                                        param_obj ("interface", iface));
      else
        vmem_call_return_varlink_error (call, "org.varlink.service.MethodNotFound",
                                        param_obj ("method", call->method));
      return;
    }
  gboolean allowed = TRUE;
  if (m->flags & VMEM_METHOD_ROOT)
    allowed = c->uid == 0;
  else if (m->flags & VMEM_METHOD_ADMIN)
    allowed = c->uid == 0 || in_admin_group (c);
  if (!allowed)
    {
      g_autofree char *text = NULL;
      if (m->flags & VMEM_METHOD_ROOT)
        text = g_strdup_printf ("%s is for root only (caller uid %u)", call->method,
                                (unsigned) c->uid);
      else
        text = g_strdup_printf ("%s is for root and members of group %s (caller uid %u is neither)",
                                call->method, s->admin_group, (unsigned) c->uid);
      g_info ("refused %s to pid %d uid %u", call->method, (int) c->pid, (unsigned) c->uid);
      g_autoptr(GError) error = g_error_new_literal (VMEM_ERROR, VMEM_ERROR_PERMISSION_DENIED, text);
      vmem_call_return_error (call, error);
      return;
    }

  m->func (call, params, m->user_data);
}

static gboolean on_readable (gint fd, GIOCondition cond, gpointer user_data);
static gboolean on_writable (gint fd, GIOCondition cond, gpointer user_data);
static gboolean on_timer (gpointer user_data);

static gint64
seconds (guint s)
{
  return (gint64) s * G_USEC_PER_SEC;
}

/* When the connection must have made progress, or G_MAXINT64. */
static gint64
client_deadline (Client *c)
{
  const VmemServerLimits *l = &c->server->limits;

  if (c->out->len > 0)
    return c->out_since + seconds (l->request_timeout_s);
  if (c->current != NULL)
    return G_MAXINT64; /* our turn: the handler is working */
  if (c->partial_since != 0)
    return c->partial_since + seconds (l->request_timeout_s);
  /* A connection that has not said a word has less time: idle ones must
   * not hold every place for long. */
  return c->active_at + seconds (c->spoke ? l->idle_timeout_s : l->silent_timeout_s);
}

/* Reads only between calls, with nothing queued either way. */
static gboolean
client_wants_input (Client *c)
{
  return !c->closing && !c->eof && c->current == NULL && c->out->len == 0 &&
         vmem_varlink_framer_get_n_complete (c->framer) == 0;
}

static void
client_update_sources (Client *c)
{
  if (client_wants_input (c))
    {
      if (c->in_src == NULL)
        {
          c->in_src = attach_fd (c->server, c->fd, G_IO_IN | G_IO_HUP | G_IO_ERR, on_readable, c);
          /* The time to finish a message runs only while we listen. */
          if (vmem_varlink_framer_get_partial (c->framer) > 0)
            c->partial_since = g_get_monotonic_time ();
        }
    }
  else
    drop_source (&c->in_src);

  if (c->out->len > 0 && c->out_src == NULL)
    c->out_src = attach_fd (c->server, c->fd, G_IO_OUT | G_IO_ERR | G_IO_HUP, on_writable, c);
  else if (c->out->len == 0)
    drop_source (&c->out_src);

  /* A timer that fires early re-arms itself; only an earlier deadline
   * needs a new one, so steady traffic does not churn sources. */
  gint64 at = client_deadline (c);
  if (c->timer_src != NULL && c->timer_at <= at)
    return;
  drop_source (&c->timer_src);
  if (at == G_MAXINT64)
    return;
  gint64 ms = MAX ((at - g_get_monotonic_time () + 999) / 1000, 0);
  c->timer_at = at;
  c->timer_src = attach_timeout (c->server, (guint) MIN (ms, G_MAXUINT), on_timer, c);
}

/* Moves the connection forward as far as it can go without waiting: flush
 * replies, then take the next message.  Re-entered from a handler that
 * replies at once, it leaves the work to the outer loop, so pipelined
 * calls do not grow the stack. */
static void
client_pump (Client *c)
{
  if (c->pumping || c->fd < 0)
    return;
  g_autoptr(Client) hold = client_ref (c);
  c->pumping = TRUE;
  for (;;)
    {
      if (c->out->len > 0 && !client_flush (c))
        break;
      if (c->closing)
        {
          if (c->out->len == 0)
            client_close (c);
          break;
        }
      if (c->current != NULL || c->out->len > 0)
        break;
      if (vmem_varlink_framer_get_n_complete (c->framer) > 0)
        {
          g_autoptr(GError) error = NULL;
          g_autoptr(json_object) msg = vmem_varlink_framer_pop (c->framer, &error);
          if (msg == NULL)
            {
              g_autoptr(json_object) reply = vmem_varlink_new_error ("io.vmemd.ProtocolError",
                                                                     error->message);
              client_queue (c, reply);
              c->closing = TRUE;
              continue;
            }
          c->active_at = g_get_monotonic_time ();
          handle_message (c, msg);
          if (c->fd < 0)
            break;
          continue;
        }
      if (c->eof)
        client_close (c);
      break;
    }
  c->pumping = FALSE;
  if (c->fd >= 0)
    client_update_sources (c);
}

static gboolean
on_timer (gpointer user_data)
{
  Client *c = user_data;
  gint64 now = g_get_monotonic_time ();

  drop_source (&c->timer_src);
  if (client_deadline (c) > now)
    {
      client_update_sources (c);
      return G_SOURCE_REMOVE;
    }
  if (c->out->len > 0)
    {
      g_debug ("client pid %d does not take its reply: closing", (int) c->pid);
      client_close (c);
    }
  else if (c->partial_since != 0)
    client_fail (c, "io.vmemd.Timeout", "the message was not completed in time");
  else
    {
      g_debug ("client pid %d idle: closing", (int) c->pid);
      client_close (c);
    }
  return G_SOURCE_REMOVE;
}

static gboolean
on_writable (gint fd, GIOCondition cond, gpointer user_data)
{
  Client *c = user_data;
  g_autoptr(Client) hold = client_ref (c);
  client_pump (c);
  return c->out_src != NULL ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

static gboolean
on_readable (gint fd, GIOCondition cond, gpointer user_data)
{
  Client *c = user_data;
  g_autoptr(Client) hold = client_ref (c);
  g_autofree char *buf = g_malloc (READ_CHUNK);

  ssize_t n = recv (fd, buf, READ_CHUNK, MSG_DONTWAIT);
  if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
    return G_SOURCE_CONTINUE;
  if (n < 0)
    client_close (c);
  else if (n == 0)
    {
      c->eof = TRUE;
      client_pump (c);
    }
  else
    {
      c->active_at = g_get_monotonic_time ();
      c->spoke = TRUE;
      g_autoptr(GError) error = NULL;
      if (!vmem_varlink_framer_feed (c->framer, buf, (gsize) n, &error))
        client_fail (c, "io.vmemd.ProtocolError", error->message);
      else
        {
          /* A message that has begun must end within the request time,
           * counted from its first byte, however slowly the rest comes. */
          if (vmem_varlink_framer_get_partial (c->framer) == 0)
            c->partial_since = 0;
          else if (c->partial_since == 0 || memchr (buf, '\0', (gsize) n) != NULL)
            c->partial_since = c->active_at;
          client_pump (c);
        }
    }
  /* client_pump keeps this source while it wants input, or drops it. */
  return c->in_src != NULL ? G_SOURCE_CONTINUE : G_SOURCE_REMOVE;
}

/* Supplementary groups of the peer.  SO_PEERGROUPS gives them as they
 * were at connect time; /proc is the fallback for old kernels and can only
 * tell about the process as it is now. */
static GArray *
peer_groups (int fd, pid_t pid)
{
  g_autoptr(GArray) groups = g_array_new (FALSE, TRUE, sizeof (gid_t));
  socklen_t len = 64 * sizeof (gid_t);

  for (int attempt = 0; attempt < 2; attempt++)
    {
      g_array_set_size (groups, len / sizeof (gid_t));
      if (getsockopt (fd, SOL_SOCKET, SO_PEERGROUPS, groups->data, &len) == 0)
        {
          g_array_set_size (groups, len / sizeof (gid_t));
          return g_steal_pointer (&groups);
        }
      if (errno != ERANGE)
        break;
    }

  g_autofree char *path = g_strdup_printf ("/proc/%d/status", (int) pid);
  g_autofree char *status = NULL;
  if (pid <= 0 || !g_file_get_contents (path, &status, NULL, NULL))
    return NULL;
  const char *line = strstr (status, "\nGroups:");
  if (line == NULL)
    return NULL;
  line += strlen ("\nGroups:");
  g_autofree char *rest = g_strndup (line, strcspn (line, "\n"));
  g_auto(GStrv) ids = g_strsplit_set (rest, " \t", -1);
  g_array_set_size (groups, 0);
  for (guint i = 0; ids[i] != NULL; i++)
    {
      guint64 id;
      if (*ids[i] != '\0' && g_ascii_string_to_unsigned (ids[i], 10, 0, G_MAXUINT32 - 1, &id, NULL))
        {
          gid_t gid = (gid_t) id;
          g_array_append_val (groups, gid);
        }
    }
  return g_steal_pointer (&groups);
}

static gboolean
on_accept (gint fd, GIOCondition cond, gpointer user_data);

static gboolean
on_backoff (gpointer user_data)
{
  VmemServer *s = user_data;
  drop_source (&s->backoff_src);
  s->listen_src = attach_fd (s, s->listen_fd, G_IO_IN, on_accept, s);
  return G_SOURCE_REMOVE;
}

static void
refuse_busy (int fd)
{
  g_autoptr(json_object) msg = vmem_varlink_new_error ("io.vmemd.Busy",
                                                       "too many clients, try again later");
  g_autoptr(GBytes) bytes = vmem_varlink_encode (msg);
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);
  /* Best effort: a fresh socket buffer takes this whole. */
  if (send (fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
    g_debug ("cannot tell a client it is refused: %s", g_strerror (errno));
  close (fd);
}

static gboolean
on_accept (gint fd, GIOCondition cond, gpointer user_data)
{
  VmemServer *s = user_data;
  int cfd = accept4 (fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (cfd < 0)
    {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
        {
          /* The pending connection keeps the socket readable: pause rather
           * than spin until descriptors are free again. */
          g_warning ("cannot accept a client: %s", g_strerror (errno));
          drop_source (&s->listen_src);
          s->backoff_src = attach_timeout (s, ACCEPT_BACKOFF_MS, on_backoff, s);
          return G_SOURCE_REMOVE;
        }
      return G_SOURCE_CONTINUE;
    }

  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt (cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    {
      g_warning ("no credentials for a client: %s", g_strerror (errno));
      close (cfd);
      return G_SOURCE_CONTINUE;
    }
  /* Root (the hook among them) has places of its own: others cannot lock
   * it out by filling the rest. */
  guint limit = s->limits.max_clients + (cred.uid == 0 ? s->limits.root_clients : 0);
  if (s->n_clients >= limit)
    {
      g_info ("refusing pid %d uid %u: %u clients already", (int) cred.pid, (unsigned) cred.uid,
              s->n_clients);
      refuse_busy (cfd);
      return G_SOURCE_CONTINUE;
    }

  Client *c = g_new0 (Client, 1);
  c->ref = 1; /* the server's */
  c->server = s;
  c->fd = cfd;
  c->out = g_byte_array_new ();
  c->uid = cred.uid;
  c->framer = vmem_varlink_framer_new (client_max_message (c));
  c->gid = cred.gid;
  c->pid = cred.pid;
  c->groups = peer_groups (cfd, cred.pid);
  c->active_at = g_get_monotonic_time ();
  s->clients = g_list_prepend (s->clients, c);
  s->n_clients++;
  client_update_sources (c);
  return G_SOURCE_CONTINUE;
}

/* ---- server ----------------------------------------------------------- */

void
vmem_server_set_limits (VmemServer *s, const VmemServerLimits *limits)
{
  s->limits = limits != NULL ? *limits : (VmemServerLimits){ 0 };
  if (s->limits.max_message == 0)
    s->limits.max_message = VMEM_VARLINK_MAX_MESSAGE;
  if (s->limits.max_root_message == 0)
    s->limits.max_root_message = VMEM_VARLINK_MAX_ROOT_MESSAGE;
  s->limits.max_root_message = MAX (s->limits.max_root_message, s->limits.max_message);
  if (s->limits.max_clients == 0)
    s->limits.max_clients = 64;
  if (s->limits.root_clients == 0)
    s->limits.root_clients = 16;
  if (s->limits.request_timeout_s == 0)
    s->limits.request_timeout_s = 10;
  if (s->limits.idle_timeout_s == 0)
    s->limits.idle_timeout_s = 60;
  if (s->limits.silent_timeout_s == 0)
    s->limits.silent_timeout_s = 5;
}

VmemServer *
vmem_server_new (const VmemServerLimits *limits)
{
  VmemServer *s = g_new0 (VmemServer, 1);
  vmem_server_set_limits (s, limits);
  s->listen_fd = -1;
  s->context = g_main_context_ref_thread_default ();
  s->methods = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  s->interfaces = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  vmem_server_set_admin_group (s, "vmemd");
  return s;
}

void
vmem_server_free (VmemServer *s)
{
  if (s == NULL)
    return;
  while (s->clients != NULL)
    client_close (s->clients->data);
  drop_source (&s->listen_src);
  drop_source (&s->backoff_src);
  if (s->listen_fd >= 0)
    close (s->listen_fd);
  /* Only our own socket: a newer daemon may have replaced it since. */
  struct stat st;
  if (s->path != NULL && lstat (s->path, &st) == 0 && st.st_dev == s->path_dev &&
      st.st_ino == s->path_ino)
    unlink (s->path);
  g_free (s->path);
  g_free (s->admin_group);
  g_hash_table_unref (s->methods);
  g_hash_table_unref (s->interfaces);
  g_main_context_unref (s->context);
  g_free (s);
}

/* getgrnam_r: the daemon has threads, and getgrnam's static result is
 * shared by them all. */
static gboolean
group_gid (const char *group, gid_t *gid)
{
  long max = sysconf (_SC_GETGR_R_SIZE_MAX);
  gsize len = max > 0 ? (gsize) max : 16384;
  for (;;)
    {
      g_autofree char *buf = g_malloc (len);
      struct group grp;
      struct group *found = NULL;
      int r = getgrnam_r (group, &grp, buf, len, &found);
      if (r == ERANGE && len < 1024 * 1024)
        {
          len *= 2;
          continue;
        }
      if (r != 0 || found == NULL)
        return FALSE;
      *gid = grp.gr_gid;
      return TRUE;
    }
}

void
vmem_server_set_admin_group (VmemServer *s, const char *group)
{
  g_free (s->admin_group);
  s->admin_group = g_strdup (group);
  s->admin_gid = (gid_t) -1;
  if (group == NULL)
    return;
  /* Resolved once: a lookup per call could block the main loop on NSS. */
  gid_t gid;
  if (group_gid (group, &gid))
    s->admin_gid = gid;
  else
    g_info ("group %s does not exist: admin methods are for root only", group);
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
  return s->n_clients;
}

gboolean
vmem_server_adopt_fd (VmemServer *s, int fd, GError **error)
{
  if (s->listen_fd >= 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "the server is already listening");
      return FALSE;
    }
  int type = 0;
  socklen_t len = sizeof type;
  if (getsockopt (fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "fd %d is not a stream socket", fd);
      return FALSE;
    }
  int flags = fcntl (fd, F_GETFL);
  if (flags < 0 || fcntl (fd, F_SETFL, flags | O_NONBLOCK) < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "fd %d: %s", fd, g_strerror (errno));
      return FALSE;
    }
  s->listen_fd = fd;
  s->listen_src = attach_fd (s, fd, G_IO_IN, on_accept, s);
  return TRUE;
}

/* TRUE when a server answers on @addr.  Non-blocking, so a live but busy
 * daemon (full backlog) counts as alive instead of hanging us. */
static gboolean
socket_is_live (const struct sockaddr_un *addr)
{
  vmem_autofd int probe = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (probe < 0)
    return FALSE;
  if (connect (probe, (const struct sockaddr *) addr, sizeof *addr) == 0)
    return TRUE;
  return errno == EAGAIN || errno == EINPROGRESS;
}

gboolean
vmem_server_listen (VmemServer *s, const char *path, guint mode, const char *group,
                    GError **error)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };

  if (s->listen_fd >= 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "the server is already listening");
      return FALSE;
    }
  if (*path == '\0' || strlen (path) >= sizeof addr.sun_path)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_CONFIG,
                   "socket path is empty or longer than %zu bytes: '%s'",
                   sizeof addr.sun_path - 1, path);
      return FALSE;
    }
  strcpy (addr.sun_path, path);

  gid_t gid = (gid_t) -1;
  if (group != NULL)
    {
      if (!group_gid (group, &gid))
        g_info ("group %s does not exist: only root can use %s", group, path);
      vmem_server_set_admin_group (s, group);
    }

  g_autofree char *dir = g_path_get_dirname (path);
  if (g_mkdir_with_parents (dir, 0755) < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "cannot create %s: %s", dir,
                   g_strerror (errno));
      return FALSE;
    }

  /* A socket file left by a daemon that died is replaced; one that still
   * answers belongs to a running server. */
  struct stat st;
  if (lstat (path, &st) == 0)
    {
      if (!S_ISSOCK (st.st_mode))
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "%s exists and is not a socket", path);
          return FALSE;
        }
      if (socket_is_live (&addr))
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_EXISTS,
                       "another server is already listening on %s", path);
          return FALSE;
        }
      if (unlink (path) < 0 && errno != ENOENT)
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "cannot remove stale %s: %s", path,
                       g_strerror (errno));
          return FALSE;
        }
    }

  vmem_autofd int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "socket: %s", g_strerror (errno));
      return FALSE;
    }
  /* No window where the socket is reachable with wider permissions. */
  mode_t old = umask (0777 & ~mode);
  int r = bind (fd, (struct sockaddr *) &addr, sizeof addr);
  umask (old);
  if (r < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "cannot bind %s: %s", path,
                   g_strerror (errno));
      /* cppcheck-suppress resourceLeak ; vmem_autofd closes fd */
      return FALSE;
    }
  if (lstat (path, &st) == 0)
    {
      s->path_dev = st.st_dev;
      s->path_ino = st.st_ino;
    }
  s->path = g_strdup (path);
  if (gid != (gid_t) -1 && chown (path, (uid_t) -1, gid) < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "cannot give %s to group %s: %s", path,
                   group, g_strerror (errno));
      /* cppcheck-suppress resourceLeak ; vmem_autofd closes fd */
      return FALSE;
    }
  if (chmod (path, mode) < 0 || listen (fd, 128) < 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "cannot listen on %s: %s", path,
                   g_strerror (errno));
      /* cppcheck-suppress resourceLeak ; vmem_autofd closes fd */
      return FALSE;
    }
  s->listen_fd = g_steal_fd (&fd);
  s->listen_src = attach_fd (s, s->listen_fd, G_IO_IN, on_accept, s);
  return TRUE;
}
