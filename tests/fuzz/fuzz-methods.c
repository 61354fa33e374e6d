/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's side of the protocol, through a real VmemServer with the
 * io.vmemd methods registered: the input is what a client writes on the
 * socket (NUL-separated messages), so the server's framing and dispatch
 * and each method's parameter handling (get_string, get_bool, check_keys,
 * the profile JSON, the hook's XML) run as they do in vmemd.
 *
 * The parts behind the methods are real but small: a SQLite store in a
 * scratch directory on its worker, a cache holding one managed and one
 * unmanaged domain, two profiles, and a libvirt connection that is never
 * opened (Assign and Unassign get "unavailable" from its worker).  Profile
 * writes change the store for the inputs that follow. */
#include "fuzz-common.h"
#include "vmem-cache.h"
#include "vmem-cleanup.h"
#include "vmem-methods.h"
#include "vmem-server.h"
#include "vmem-store.h"
#include "vmem-varlink.h"

#include <errno.h>
#include <fcntl.h>
#include <glib-unix.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define PLAN_TIME 1700000000

static const char managed_xml[] =
  "<domain type='kvm'><name>erp-1</name><uuid>6f3c8a52-3b1e-4c2f-9d7a-2a1b3c4d5e6f</uuid>"
  "<memory unit='MiB'>4096</memory><currentMemory unit='MiB'>4096</currentMemory>"
  "<vcpu>2</vcpu><os><type arch='x86_64'>hvm</type></os>"
  "<metadata><vmemd:workload xmlns:vmemd='urn:vmemd:1' name='erp'/></metadata>"
  "<devices><memballoon model='virtio'/></devices></domain>";
static const char unmanaged_xml[] =
  "<domain type='kvm'><name>other</name><uuid>0b6e7c2d-1111-4222-8333-944455566677</uuid>"
  "<memory unit='MiB'>1024</memory><vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os>"
  "</domain>";

typedef struct {
  VmemConfig  *config;
  VmemCache   *cache;
  GHashTable  *profiles;
  VmemStore   *store;
  VmemWorker  *store_worker;
  VmemVirt    *virt;
  VmemServer  *server;
  VmemMethods *methods;
  char        *socket_path;
} Fixture;

static Fixture fx;

static VmemStagedPlan *
plan_cb (const VmemProfile *profile, const VmemDomain *domain, gpointer user_data)
{
  return vmem_planner_plan (profile, domain, NULL, PLAN_TIME);
}

static void
profiles_changed_cb (GPtrArray *profiles, const char *workload, gpointer user_data)
{
  g_autoptr(GPtrArray) list = profiles;
  g_hash_table_remove_all (fx.profiles);
  for (guint i = 0; i < list->len; i++)
    {
      VmemProfile *p = g_ptr_array_index (list, i);
      g_hash_table_replace (fx.profiles, g_strdup (p->name), vmem_profile_copy (p));
    }
}

static void
domain_read_cb (VmemDomain *domain, gpointer user_data)
{
  vmem_cache_update (fx.cache, domain, g_get_monotonic_time ());
}

static void
start_admitted_cb (const char *uuid, const char *name, guint64 boot_mib, gpointer user_data)
{
  vmem_cache_reserve (fx.cache, uuid, name, boot_mib, g_get_monotonic_time ());
}

static void
start_ended_cb (const char *uuid, const char *why, gpointer user_data)
{
  vmem_cache_release (fx.cache, uuid);
}

static guint64
capacity_cb (gpointer user_data)
{
  return 16384;
}

static void
add_profile (const char *name, const char *match, guint64 demand_mib)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemProfile) p = vmem_profile_new (name);
  p->match = g_strdup (match);
  p->demand_mib = demand_mib;
  if (!vmem_store_profile_put (fx.store, p, VMEM_STORE_PUT_CREATE, &error))
    g_error ("fuzz: %s", error->message);
  g_hash_table_replace (fx.profiles, g_strdup (name), g_steal_pointer (&p));
}

static void
add_domain (const char *xml)
{
  g_autoptr(GError) error = NULL;
  VmemDomain *d = vmem_domain_new_from_xml (xml, &error);
  if (d == NULL)
    g_error ("fuzz: %s", error->message);
  vmem_cache_update (fx.cache, d, g_get_monotonic_time ());
}

static void
setup (void)
{
  static gsize once;
  if (!g_once_init_enter (&once))
    return;
  fuzz_silence_logs ();
  g_autoptr(GError) error = NULL;

  fx.config = vmem_config_new_default ();
  fx.cache = vmem_cache_new ();
  fx.profiles = g_hash_table_new_full (g_str_hash, g_str_equal, g_free,
                                       (GDestroyNotify) vmem_profile_free);
  g_autofree char *db = g_build_filename (fuzz_tmpdir (), "vmemd.db", NULL);
  fx.store = vmem_store_open_sqlite (db, &error);
  if (fx.store == NULL)
    g_error ("fuzz: %s", error->message);
  add_profile ("erp", "erp-*", 2048);
  add_profile ("web", NULL, 0);
  add_domain (managed_xml);
  add_domain (unmanaged_xml);
  fx.store_worker = vmem_worker_new ("fuzz-store", fx.store);
  fx.virt = vmem_virt_new ("test:///default", NULL, NULL);

  fx.server = vmem_server_new (NULL);
  fx.socket_path = g_build_filename (fuzz_tmpdir (), "io.vmemd", NULL);
  if (!vmem_server_listen (fx.server, fx.socket_path, 0600, NULL, &error))
    g_error ("fuzz: %s", error->message);
  const VmemMethodsContext ctx = {
    .config = &fx.config,
    .cache = fx.cache,
    .profiles = fx.profiles,
    .virt = fx.virt,
    .store = fx.store_worker,
    .store_backend = "sqlite",
    .store_location = "fuzz.db",
    .schema_version = vmem_store_schema_version (fx.store),
    .started_at = PLAN_TIME,
    .plan = plan_cb,
    .profiles_changed = profiles_changed_cb,
    .domain_read = domain_read_cb,
    .start_admitted = start_admitted_cb,
    .start_ended = start_ended_cb,
    .capacity = capacity_cb,
  };
  fx.methods = vmem_methods_register (fx.server, &ctx);
  g_once_init_leave (&once, 1);
}

/* The client: writes the input as the socket takes it, then half-closes,
 * and reads every reply until the server hangs up. */
typedef struct {
  const char  *data;
  gsize        left;
  gboolean     sent;    /* the writer is done and gone */
  gboolean     done;    /* the server hung up */
  GByteArray  *replies;
} Client;

static gboolean
on_writable (gint fd, GIOCondition cond, gpointer user_data)
{
  Client *c = user_data;
  while (c->left > 0)
    {
      ssize_t n = send (fd, c->data, c->left, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return G_SOURCE_CONTINUE;
      if (n <= 0)
        break; /* the server hung up on us: the reader sees it */
      c->data += n;
      c->left -= (gsize) n;
    }
  shutdown (fd, SHUT_WR);
  c->sent = TRUE;
  return G_SOURCE_REMOVE;
}

static gboolean
on_readable (gint fd, GIOCondition cond, gpointer user_data)
{
  Client *c = user_data;
  for (;;)
    {
      char buf[65536];
      ssize_t n = recv (fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0)
        {
          g_byte_array_append (c->replies, (const guint8 *) buf, (guint) n);
          continue;
        }
      if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return G_SOURCE_CONTINUE;
      c->done = TRUE;
      return G_SOURCE_REMOVE;
    }
}

/* Every reply the server sent is a JSON object with "parameters" or an
 * "error" name: the client's own framer must read it. */
static void
check_replies (GByteArray *replies)
{
  if (replies->len == 0)
    return;
  g_autoptr(VmemVarlinkFramer) framer = vmem_varlink_framer_new (VMEM_VARLINK_MAX_MESSAGE);
  g_assert (vmem_varlink_framer_feed (framer, (const char *) replies->data, replies->len, NULL));
  g_assert_cmpuint (vmem_varlink_framer_get_partial (framer), ==, 0);
  while (vmem_varlink_framer_get_n_complete (framer) > 0)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(json_object) reply = vmem_varlink_framer_pop (framer, &error);
      if (reply == NULL)
        g_error ("the server sent a reply a client cannot read: %s", error->message);
      if (g_getenv ("FUZZ_VERBOSE") != NULL)
        g_printerr ("reply: %.300s\n", json_object_to_json_string (reply));
      json_object *err = NULL, *params = NULL;
      if (json_object_object_get_ex (reply, "error", &err))
        g_assert (json_object_is_type (err, json_type_string));
      g_assert (json_object_object_get_ex (reply, "parameters", &params));
      g_assert (json_object_is_type (params, json_type_object));
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  setup ();
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  g_strlcpy (addr.sun_path, fx.socket_path, sizeof addr.sun_path);
  vmem_autofd int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  g_assert (fd >= 0);
  if (connect (fd, (struct sockaddr *) &addr, sizeof addr) != 0)
    g_error ("fuzz: connect: %s", g_strerror (errno));

  g_autoptr(GByteArray) replies = g_byte_array_new ();
  Client c = { .data = (const char *) data, .left = size, .replies = replies };
  guint out_id = g_unix_fd_add (fd, G_IO_OUT | G_IO_ERR | G_IO_HUP, on_writable, &c);
  g_unix_fd_add (fd, G_IO_IN | G_IO_ERR | G_IO_HUP, on_readable, &c);
  while (!c.done)
    g_main_context_iteration (NULL, TRUE);
  /* Hung up on before all was sent: the writer is still there. */
  if (!c.sent)
    g_source_remove (out_id);
  /* Let the server see the hang-up and drop the connection. */
  while (vmem_server_n_clients (fx.server) > 0)
    g_main_context_iteration (NULL, TRUE);
  check_replies (replies);
  return 0;
}
