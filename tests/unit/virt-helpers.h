/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* For the unit tests of the parts that talk to libvirt through VmemVirt,
 * against libvirt's test driver, in process: spin the main loop until
 * something happened (or fail, never hang), run a libvirt call on the
 * VmemVirt's own worker and connection, and hold that worker.
 *
 * Include after <cmocka.h>. */

#include "vmem-error.h"
#include "vmem-virt.h"

#include <stdlib.h>
#include <string.h>

/* Seconds any wait may take before the test fails. */
#define WAIT_S 20

static inline gboolean
helpers_timed_out_cb (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

/* Iterates the default main context until @cond holds; fails the test after
 * @secs seconds. */
#define WAIT_FOR_S(cond, secs)                                                \
  do                                                                          \
    {                                                                         \
      gboolean timed_out_ = FALSE;                                            \
      guint timer_ = g_timeout_add_seconds ((secs), helpers_timed_out_cb,     \
                                            &timed_out_);                     \
      while (!(cond) && !timed_out_)                                          \
        g_main_context_iteration (NULL, TRUE);                                \
      if (!timed_out_)                                                        \
        g_source_remove (timer_);                                             \
      if (!(cond))                                                            \
        fail_msg ("timed out after %d s waiting for %s", (int) (secs), #cond); \
    }                                                                         \
  while (0)
#define WAIT_FOR(cond) WAIT_FOR_S (cond, WAIT_S)

/* Runs the main context for @ms milliseconds. */
static inline void
spin_ms (guint ms)
{
  gboolean over = FALSE;
  g_timeout_add (ms, helpers_timed_out_cb, &over);
  while (!over)
    g_main_context_iteration (NULL, TRUE);
}

/* ---- a connected VmemVirt ---------------------------------------------- */

static inline void
helpers_connected_cb (gpointer user_data)
{
  (*(guint *) user_data)++;
}

/* A VmemVirt connected to @uri; @n_connected (may be NULL) counts its
 * connected callbacks and must outlive it. */
static inline VmemVirt *
virt_connect (const char *uri, guint *n_connected)
{
  static guint ignored;
  guint *counter = n_connected ? n_connected : &ignored;
  const VmemVirtCallbacks callbacks = { .connected = helpers_connected_cb };
  *counter = 0;
  VmemVirt *virt = vmem_virt_new (uri, &callbacks, counter);
  vmem_virt_start (virt);
  WAIT_FOR (vmem_virt_is_connected (virt));
  assert_int_equal (*counter, 1);
  return virt;
}

/* test:///ABSOLUTE/PATH of a host file under tests/data/libvirt: every
 * connection reads it afresh, so each test gets its own domains. */
static inline char *
node_uri (const char *file)
{
  const char *srcdir = g_getenv ("VMEM_TEST_SRCDIR");
  assert_non_null (srcdir);
  g_autofree char *path = g_build_filename (srcdir, "data", "libvirt", file, NULL);
  g_autofree char *abs = g_canonicalize_filename (path, NULL);
  assert_true (g_file_test (abs, G_FILE_TEST_IS_REGULAR));
  return g_strconcat ("test://", abs, NULL);
}

/* ---- calls on the VmemVirt's worker ---------------------------------- */

typedef struct {
  VmemVirtWorkFunc work;
  gpointer         data;
  gpointer         result;
  GError          *error;
  gboolean         done;
} SyncCall;

static inline gpointer
sync_work (virConnectPtr conn, gpointer data, GError **error)
{
  SyncCall *c = data;
  return c->work (conn, c->data, error);
}

static inline void
sync_done (gpointer result, const GError *error, gpointer data)
{
  SyncCall *c = data;
  c->result = result;
  c->error = error ? g_error_copy (error) : NULL;
  c->done = TRUE;
}

/* Runs @work on @virt's worker, behind what is queued there, and waits for
 * it; the result is the caller's.  (On a time-out the call is left behind,
 * not freed: its callback may still come.) */
static inline gpointer
virt_call (VmemVirt *virt, VmemVirtWorkFunc work, gpointer data, GError **error)
{
  SyncCall *c = g_new0 (SyncCall, 1);
  c->work = work;
  c->data = data;
  vmem_virt_submit (virt, "test call", NULL, sync_work, sync_done, c, NULL, NULL);
  WAIT_FOR (c->done);
  gpointer result = c->result;
  if (c->error != NULL)
    g_propagate_error (error, c->error);
  g_free (c);
  return result;
}

/* Runs @work and fails the test on error. */
static inline gpointer
virt_call_ok (VmemVirt *virt, VmemVirtWorkFunc work, gpointer data)
{
  g_autoptr(GError) error = NULL;
  gpointer result = virt_call (virt, work, data, &error);
  if (error != NULL)
    fail_msg ("%s", error->message);
  return result;
}

static inline gpointer
libvirt_failed (GError **error, const char *what)
{
  vmem_virt_set_error (error, VMEM_ERROR_FAILED, "%s", what);
  return NULL;
}

/* The persistent definition, as libvirt has it (uuid or name in). */
static inline gpointer
inactive_xml_work (virConnectPtr conn, gpointer data, GError **error)
{
  g_autoptr(virDomain) dom = vmem_virt_lookup (conn, data, error);
  if (dom == NULL)
    return NULL;
  char *xml = virDomainGetXMLDesc (dom, VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE);
  return xml ? xml : libvirt_failed (error, "virDomainGetXMLDesc");
}

static inline char *
inactive_xml (VmemVirt *virt, const char *uuid)
{
  return virt_call_ok (virt, inactive_xml_work, (gpointer) uuid);
}

static inline gpointer
live_xml_work (virConnectPtr conn, gpointer data, GError **error)
{
  g_autoptr(virDomain) dom = vmem_virt_lookup (conn, data, error);
  if (dom == NULL)
    return NULL;
  char *xml = virDomainGetXMLDesc (dom, 0);
  return xml ? xml : libvirt_failed (error, "virDomainGetXMLDesc");
}

static inline char *
live_xml (VmemVirt *virt, const char *uuid)
{
  return virt_call_ok (virt, live_xml_work, (gpointer) uuid);
}

/* The live balloon size, KiB (virDomainGetInfo). */
static inline gpointer
balloon_kib_work (virConnectPtr conn, gpointer data, GError **error)
{
  g_autoptr(virDomain) dom = vmem_virt_lookup (conn, data, error);
  virDomainInfo info;
  if (dom == NULL)
    return NULL;
  if (virDomainGetInfo (dom, &info) < 0)
    return libvirt_failed (error, "virDomainGetInfo");
  guint64 *kib = g_new (guint64, 1);
  *kib = info.memory;
  return kib;
}

static inline guint64
balloon_kib (VmemVirt *virt, const char *uuid)
{
  g_autofree guint64 *kib = virt_call_ok (virt, balloon_kib_work, (gpointer) uuid);
  return *kib;
}

/* The domain as the daemon reads it (vmem_virt_read_domain). */
static inline gpointer
read_domain_work (virConnectPtr conn, gpointer data, GError **error)
{
  g_autoptr(virDomain) dom = vmem_virt_lookup (conn, data, error);
  if (dom == NULL)
    return NULL;
  return vmem_virt_read_domain (dom, error);
}

static inline VmemDomain *
read_domain (VmemVirt *virt, const char *uuid)
{
  return virt_call_ok (virt, read_domain_work, (gpointer) uuid);
}

/* Sets (workload != NULL) or removes the workload tag in the persistent
 * definition, as `vmemctl assign` and `unassign` do. */
typedef struct {
  const char *uuid;
  const char *workload;
} TagCall;

static inline gpointer
set_tag_work (virConnectPtr conn, gpointer data, GError **error)
{
  TagCall *t = data;
  g_autoptr(virDomain) dom = vmem_virt_lookup (conn, t->uuid, error);
  if (dom == NULL)
    return NULL;
  g_autofree char *element = t->workload
                               ? g_markup_printf_escaped ("<workload name='%s'/>", t->workload)
                               : NULL;
  if (virDomainSetMetadata (dom, VIR_DOMAIN_METADATA_ELEMENT, element,
                            element ? VMEM_METADATA_KEY : NULL, VMEM_METADATA_URI,
                            VIR_DOMAIN_AFFECT_CONFIG) < 0)
    return libvirt_failed (error, "virDomainSetMetadata");
  return GINT_TO_POINTER (1);
}

static inline void
set_tag (VmemVirt *virt, const char *uuid, const char *workload)
{
  TagCall t = { uuid, workload };
  virt_call_ok (virt, set_tag_work, &t);
}

/* Defines @xml, as someone else than vmemd would. */
static inline gpointer
define_work (virConnectPtr conn, gpointer data, GError **error)
{
  virDomainPtr dom = virDomainDefineXML (conn, data);
  if (dom == NULL)
    return libvirt_failed (error, "virDomainDefineXML");
  virDomainFree (dom);
  return GINT_TO_POINTER (1);
}

static inline void
define_xml (VmemVirt *virt, const char *xml)
{
  virt_call_ok (virt, define_work, (gpointer) xml);
}

/* ---- holding the worker ------------------------------------------------ */

/* A job that keeps the worker busy until the test opens the gate: what is
 * submitted meanwhile waits in the queue. */
typedef struct {
  GMutex   lock;
  GCond    cond;
  gboolean running;
  gboolean open;
  gboolean done;
} Gate;

static inline gpointer
gate_work (virConnectPtr conn, gpointer data, GError **error)
{
  Gate *g = data;
  g_mutex_lock (&g->lock);
  g->running = TRUE;
  g_cond_broadcast (&g->cond);
  while (!g->open)
    g_cond_wait (&g->cond, &g->lock);
  g_mutex_unlock (&g->lock);
  return GINT_TO_POINTER (1);
}

static inline void
gate_done (gpointer result, const GError *error, gpointer data)
{
  ((Gate *) data)->done = TRUE;
}

static inline void
gate_init (Gate *g)
{
  memset (g, 0, sizeof *g);
  g_mutex_init (&g->lock);
  g_cond_init (&g->cond);
}

/* Queues the gate on @virt's worker and returns once the worker runs it
 * (so that everything queued before it has run); fails after WAIT_S.  The
 * main context is not iterated: the done callbacks of the jobs before it
 * stay pending. */
static inline void
gate_close (Gate *g, VmemVirt *virt)
{
  g->running = g->open = g->done = FALSE;
  vmem_virt_submit (virt, "test gate", NULL, gate_work, gate_done, g, NULL, NULL);
  gint64 deadline = g_get_monotonic_time () + WAIT_S * G_USEC_PER_SEC;
  g_mutex_lock (&g->lock);
  while (!g->running)
    if (!g_cond_wait_until (&g->cond, &g->lock, deadline))
      break;
  gboolean running = g->running;
  g_mutex_unlock (&g->lock);
  if (!running)
    fail_msg ("the worker did not reach the gate in %d s", WAIT_S);
}

/* Lets the worker go on (idempotent; safe when the gate was never closed).
 * Open it before freeing the VmemVirt, which waits for its worker. */
static inline void
gate_open (Gate *g)
{
  g_mutex_lock (&g->lock);
  g->open = TRUE;
  g_cond_broadcast (&g->cond);
  g_mutex_unlock (&g->lock);
}

/* After the VmemVirt is freed: no worker is left in the gate. */
static inline void
gate_clear (Gate *g)
{
  g_mutex_clear (&g->lock);
  g_cond_clear (&g->cond);
}
