/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-virt.h"
#include "vmem-error.h"
#include "vmem-worker.h"

#include <libvirt-glib/libvirt-glib.h>
#include <libvirt/virterror.h>
#include <string.h>

#define RECONNECT_MIN_S 1
#define RECONNECT_MAX_S 30

typedef struct {
  VmemVirt        *virt;
  VmemVirtWorkFunc work;
  VmemVirtDoneFunc done;
  gpointer         data;
  GDestroyNotify   data_free;
  gboolean         is_connect;
} VirtJob;

struct _VmemVirt {
  char             *uri;
  VmemVirtCallbacks callbacks;
  gpointer          user_data;
  VmemWorker       *worker;

  /* Worker-thread state. */
  virConnectPtr     conn;
  int               cb_lifecycle;
  int               cb_metadata;

  /* Main-context state. */
  gboolean          connected;
  gboolean          connecting;
  guint             reconnect_id;
  guint             closed_id;
  guint             backoff;
  gboolean          stopping;
};

void
vmem_virt_set_error (GError **error, int code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *ctx = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  const char *msg = virGetLastErrorMessage ();
  g_set_error (error, VMEM_ERROR, code, "%s: %s", ctx, msg ? msg : "unknown libvirt error");
  virResetLastError ();
}

static void
virt_job_free (VirtJob *job)
{
  if (job->data_free != NULL && job->data != NULL)
    job->data_free (job->data);
  g_free (job);
}

/* Worker thread. */
static gpointer
virt_job_work (gpointer state, gpointer data, GError **error)
{
  VmemVirt *virt = state;
  VirtJob *job = data;

  if (virt->conn == NULL && !job->is_connect)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE, "not connected to libvirt (%s)",
                   virt->uri);
      return NULL;
    }
  return job->work (virt->conn, job->data, error);
}

/* Main context. */
static void
virt_job_done (gpointer result, const GError *error, gpointer data)
{
  VirtJob *job = data;
  if (job->done != NULL)
    job->done (result, error, job->data);
}

static void connect_done (gpointer result, const GError *error, gpointer data);
static void close_cb (virConnectPtr conn, int reason, void *opaque);

/* ---- worker thread ---------------------------------------------------- */

static void
worker_close_conn (VmemVirt *virt)
{
  if (virt->conn == NULL)
    return;
  if (virt->cb_lifecycle >= 0)
    virConnectDomainEventDeregisterAny (virt->conn, virt->cb_lifecycle);
  if (virt->cb_metadata >= 0)
    virConnectDomainEventDeregisterAny (virt->conn, virt->cb_metadata);
  virt->cb_lifecycle = virt->cb_metadata = -1;
  virConnectUnregisterCloseCallback (virt->conn, close_cb);
  virResetLastError ();
  virConnectClose (virt->conn);
  virt->conn = NULL;
}

/* ---- events (main context) -------------------------------------------- */

static int
lifecycle_cb (virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
  VmemVirt *virt = opaque;
  char uuid[VIR_UUID_STRING_BUFLEN];

  if (virDomainGetUUIDString (dom, uuid) < 0)
    return 0;
  if (virt->callbacks.domain_event != NULL)
    virt->callbacks.domain_event (uuid, virDomainGetName (dom), event, detail, virt->user_data);
  return 0;
}

static void
metadata_cb (virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri, void *opaque)
{
  VmemVirt *virt = opaque;
  char uuid[VIR_UUID_STRING_BUFLEN];

  if (type != VIR_DOMAIN_METADATA_ELEMENT || g_strcmp0 (nsuri, VMEM_METADATA_URI) != 0)
    return;
  if (virDomainGetUUIDString (dom, uuid) < 0)
    return;
  if (virt->callbacks.domain_event != NULL)
    virt->callbacks.domain_event (uuid, virDomainGetName (dom), -1, 0, virt->user_data);
}

static void schedule_reconnect (VmemVirt *virt);

static gboolean
closed_idle (gpointer user_data)
{
  VmemVirt *virt = user_data;

  virt->closed_id = 0;
  if (!virt->connected || virt->stopping)
    return G_SOURCE_REMOVE;
  virt->connected = FALSE;
  g_warning ("libvirt connection to %s lost; reconnecting", virt->uri);
  if (virt->callbacks.disconnected != NULL)
    virt->callbacks.disconnected (virt->user_data);
  schedule_reconnect (virt);
  return G_SOURCE_REMOVE;
}

static void
close_cb (virConnectPtr conn, int reason, void *opaque)
{
  VmemVirt *virt = opaque;
  /* Called from libvirt's event dispatch; defer so no libvirt lock is held
   * while the owner reacts. */
  if (virt->closed_id == 0)
    virt->closed_id = g_idle_add (closed_idle, virt);
}

/* ---- connecting --------------------------------------------------------- */

static gpointer
connect_work (virConnectPtr unused, gpointer data, GError **error)
{
  VmemVirt *virt = data;

  worker_close_conn (virt);
  virConnectPtr conn = virConnectOpen (virt->uri);
  if (conn == NULL)
    {
      vmem_virt_set_error (error, VMEM_ERROR_UNAVAILABLE, "cannot connect to %s", virt->uri);
      return NULL;
    }
  /* The test driver has no keepalive: not an error. */
  if (virConnectSetKeepAlive (conn, 5, 3) < 0)
    virResetLastError ();
  if (virConnectRegisterCloseCallback (conn, close_cb, virt, NULL) < 0)
    virResetLastError ();

  virt->cb_lifecycle = virConnectDomainEventRegisterAny (conn, NULL,
                                                         VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                         VIR_DOMAIN_EVENT_CALLBACK (lifecycle_cb),
                                                         virt, NULL);
  if (virt->cb_lifecycle < 0)
    {
      vmem_virt_set_error (error, VMEM_ERROR_UNAVAILABLE,
                           "cannot register for lifecycle events on %s", virt->uri);
      virConnectClose (conn);
      return NULL;
    }
  virt->cb_metadata = virConnectDomainEventRegisterAny (conn, NULL,
                                                        VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
                                                        VIR_DOMAIN_EVENT_CALLBACK (metadata_cb),
                                                        virt, NULL);
  if (virt->cb_metadata < 0)
    virResetLastError ();
  virt->conn = conn;
  return GINT_TO_POINTER (1);
}

static gboolean
reconnect_timeout (gpointer user_data)
{
  VmemVirt *virt = user_data;
  virt->reconnect_id = 0;
  vmem_virt_start (virt);
  return G_SOURCE_REMOVE;
}

static void
schedule_reconnect (VmemVirt *virt)
{
  if (virt->reconnect_id != 0 || virt->stopping)
    return;
  virt->backoff = CLAMP (virt->backoff * 2, RECONNECT_MIN_S, RECONNECT_MAX_S);
  virt->reconnect_id = g_timeout_add_seconds (virt->backoff, reconnect_timeout, virt);
}

static void
connect_done (gpointer result, const GError *error, gpointer data)
{
  VmemVirt *virt = data;

  virt->connecting = FALSE;
  if (virt->stopping)
    return;
  if (error != NULL)
    {
      if (virt->backoff <= RECONNECT_MIN_S)
        g_warning ("%s", error->message);
      else
        g_debug ("%s", error->message);
      schedule_reconnect (virt);
      return;
    }
  virt->connected = TRUE;
  virt->backoff = 0;
  g_message ("connected to libvirt at %s", virt->uri);
  if (virt->callbacks.connected != NULL)
    virt->callbacks.connected (virt->user_data);
}

void
vmem_virt_start (VmemVirt *virt)
{
  if (virt->connected || virt->connecting || virt->stopping)
    return;
  virt->connecting = TRUE;
  VirtJob *job = g_new0 (VirtJob, 1);
  job->virt = virt;
  job->work = connect_work;
  job->done = connect_done;
  job->data = virt;
  job->is_connect = TRUE;
  const VmemWorkerJob spec = {
    .what = "connect",
    .key = "connect",
    .work = virt_job_work,
    .done = virt_job_done,
    .data = job,
    .data_free = (GDestroyNotify) virt_job_free,
  };
  vmem_worker_submit (virt->worker, &spec);
}

/* ---- public ----------------------------------------------------------- */

static void
silent_error_func (void *data, virErrorPtr err)
{
  /* Errors are reported where they happen, as GErrors, not on stderr. */
}

VmemVirt *
vmem_virt_new (const char *uri, const VmemVirtCallbacks *callbacks, gpointer user_data)
{
  static gsize once = 0;
  VmemVirt *virt = g_new0 (VmemVirt, 1);

  if (g_once_init_enter (&once))
    {
      virSetErrorFunc (NULL, silent_error_func);
      gvir_init (NULL, NULL);
      gvir_event_register ();
      g_once_init_leave (&once, 1);
    }

  virt->uri = g_strdup (uri);
  if (callbacks != NULL)
    virt->callbacks = *callbacks;
  virt->user_data = user_data;
  virt->cb_lifecycle = virt->cb_metadata = -1;
  virt->worker = vmem_worker_new ("vmemd-virt", virt);
  return virt;
}

void
vmem_virt_free (VmemVirt *virt)
{
  if (virt == NULL)
    return;
  virt->stopping = TRUE;
  /* Parts that ask see no connection from now on, and start no work. */
  virt->connected = FALSE;
  g_clear_handle_id (&virt->reconnect_id, g_source_remove);
  g_clear_handle_id (&virt->closed_id, g_source_remove);
  /* Runs what is queued and its callbacks, then the connection closes.
   * Those callbacks, and whatever else the main context dispatches
   * meanwhile, may still submit: see vmem_virt_submit. */
  g_clear_pointer (&virt->worker, vmem_worker_free);
  worker_close_conn (virt);
  g_free (virt->uri);
  g_free (virt);
}

gboolean
vmem_virt_is_connected (VmemVirt *virt)
{
  return virt->connected;
}

const char *
vmem_virt_get_uri (VmemVirt *virt)
{
  return virt->uri;
}

void
vmem_virt_submit (VmemVirt *virt, const char *what, const char *key, VmemVirtWorkFunc work,
                  VmemVirtDoneFunc done, gpointer data, GDestroyNotify data_free,
                  GDestroyNotify result_free)
{
  if (virt->worker == NULL)
    {
      /* vmem_virt_free is under way: the job is dropped. */
      if (data_free != NULL && data != NULL)
        data_free (data);
      return;
    }
  VirtJob *job = g_new0 (VirtJob, 1);
  job->virt = virt;
  job->work = work;
  job->done = done;
  job->data = data;
  job->data_free = data_free;
  const VmemWorkerJob spec = {
    .what = what,
    .key = key,
    .work = virt_job_work,
    .done = virt_job_done,
    .data = job,
    .data_free = (GDestroyNotify) virt_job_free,
    .result_free = result_free,
  };
  vmem_worker_submit (virt->worker, &spec);
}

/* ---- worker helpers --------------------------------------------------- */

virDomainPtr
vmem_virt_lookup (virConnectPtr conn, const char *name_or_uuid, GError **error)
{
  virDomainPtr dom = NULL;

  if (strlen (name_or_uuid) == VIR_UUID_STRING_BUFLEN - 1)
    dom = virDomainLookupByUUIDString (conn, name_or_uuid);
  if (dom == NULL)
    {
      virResetLastError ();
      dom = virDomainLookupByName (conn, name_or_uuid);
    }
  if (dom == NULL)
    {
      virErrorPtr err = virGetLastError ();
      gboolean missing = err != NULL && err->code == VIR_ERR_NO_DOMAIN;
      virResetLastError ();
      if (missing)
        g_set_error (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND, "no domain named '%s'",
                     name_or_uuid);
      else
        vmem_virt_set_error (error, VMEM_ERROR_UNAVAILABLE, "cannot look up domain '%s'",
                             name_or_uuid);
    }
  return dom;
}

VmemDomain *
vmem_virt_read_domain (virDomainPtr dom, GError **error)
{
  virDomainInfo info;
  const char *name = virDomainGetName (dom);

  int persistent = virDomainIsPersistent (dom);
  /* Not SECURE: reading the facts needs no secrets. */
  g_autofree char *xml = virDomainGetXMLDesc (dom, persistent == 1 ? VIR_DOMAIN_XML_INACTIVE : 0);
  if (xml == NULL)
    {
      vmem_virt_set_error (error, VMEM_ERROR_UNAVAILABLE, "cannot read domain '%s'", name);
      return NULL;
    }
  g_autoptr(GError) local = NULL;
  g_autoptr(VmemDomain) d = vmem_domain_new_from_xml (xml, &local);
  if (d == NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNAVAILABLE, "cannot read domain '%s': %s",
                   name, local->message);
      return NULL;
    }
  if (virDomainGetInfo (dom, &info) < 0)
    {
      vmem_virt_set_error (error, VMEM_ERROR_UNAVAILABLE, "cannot read domain '%s'", name);
      return NULL;
    }
  d->state = (VmemDomainState) info.state;
  d->active = virDomainIsActive (dom) == 1;
  d->persistent = persistent == 1;
  if (d->active)
    d->current_mib = info.memory / 1024;
  return g_steal_pointer (&d);
}

GPtrArray *
vmem_virt_read_all (virConnectPtr conn, GError **error)
{
  virDomainPtr *doms = NULL;
  int n = virConnectListAllDomains (conn, &doms, 0);
  if (n < 0)
    {
      vmem_virt_set_error (error, VMEM_ERROR_UNAVAILABLE, "cannot list domains");
      return NULL;
    }
  g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func ((GDestroyNotify) vmem_domain_free);
  for (int i = 0; i < n; i++)
    {
      g_autoptr(GError) local = NULL;
      VmemDomain *d = vmem_virt_read_domain (doms[i], &local);
      /* A domain that vanished between list and read is simply gone. */
      if (d != NULL)
        g_ptr_array_add (out, d);
      else
        g_debug ("%s", local->message);
      virDomainFree (doms[i]);
    }
  free (doms);
  return g_steal_pointer (&out);
}
