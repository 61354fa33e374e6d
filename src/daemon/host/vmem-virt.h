/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The libvirt connection.
 *
 * Every libvirt call runs on one worker thread, never on the main loop: while
 * a domain is starting, libvirt holds its lock and even listing domains can
 * block until the start ends.  The main loop must stay free to answer the
 * hook of that very start, so it only queues work here and gets the result
 * back as a callback on the main context.  Events arrive on the main loop
 * through libvirt-glib. */

#include <glib.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "vmem-domain.h"

G_BEGIN_DECLS

G_DEFINE_AUTOPTR_CLEANUP_FUNC (virDomain, virDomainFree)

typedef struct _VmemVirt VmemVirt;

typedef struct {
  /* Main context.  Connected (again): the owner should refresh everything. */
  void (*connected) (gpointer user_data);
  void (*disconnected) (gpointer user_data);
  /* Main context.  A lifecycle or metadata event: event is the
   * virDomainEventType, or -1 for a metadata change. */
  void (*domain_event) (const char *uuid, const char *name, int event, int detail,
                        gpointer user_data);
} VmemVirtCallbacks;

/* Runs on the worker thread with a live connection. Returns a result (may be
 * NULL on success only when the done callback expects that) or sets error. */
typedef gpointer (*VmemVirtWorkFunc) (virConnectPtr conn, gpointer data, GError **error);
/* Runs on the main context; takes ownership of @result (NULL on error). */
typedef void (*VmemVirtDoneFunc) (gpointer result, const GError *error, gpointer data);

VmemVirt *vmem_virt_new (const char *uri, const VmemVirtCallbacks *callbacks, gpointer user_data);
void      vmem_virt_free (VmemVirt *virt);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemVirt, vmem_virt_free)

/* Starts connecting (in the background; retried with backoff until it works). */
void      vmem_virt_start (VmemVirt *virt);
gboolean  vmem_virt_is_connected (VmemVirt *virt);
const char *vmem_virt_get_uri (VmemVirt *virt);

/* Queues @work on the one worker thread (see vmem-worker.h: a queued job
 * with the same @key, when not NULL, is replaced); @done (may be NULL) gets
 * the outcome on the main context.  Without a connection, @done gets
 * VMEM_ERROR_UNAVAILABLE.  @result_free frees a result nobody takes.
 * Once vmem_virt_free has begun (its last callbacks may still submit), a
 * job is dropped: @data is freed and @done is not called. */
void      vmem_virt_submit (VmemVirt        *virt,
                            const char      *what,
                            const char      *key,
                            VmemVirtWorkFunc work,
                            VmemVirtDoneFunc done,
                            gpointer         data,
                            GDestroyNotify   data_free,
                            GDestroyNotify   result_free);

/* Worker-thread helpers: libvirt's last error as a GError. */
void      vmem_virt_set_error (GError **error, int code, const char *fmt, ...) G_GNUC_PRINTF (3, 4);

/* Worker-thread helpers for common jobs. */
virDomainPtr    vmem_virt_lookup (virConnectPtr conn, const char *name_or_uuid, GError **error);
/* The domain's definition (inactive when persistent), read through the one
 * XML reader, and its run-time state. */
VmemDomain     *vmem_virt_read_domain (virDomainPtr dom, GError **error);
/* Every domain (VmemDomain); one that vanishes while being read is left
 * out. */
GPtrArray      *vmem_virt_read_all (virConnectPtr conn, GError **error);

/* The workload tag's namespace and key in <metadata>. */
#define VMEM_METADATA_URI "urn:vmemd:1"
#define VMEM_METADATA_KEY "vmemd"

G_END_DECLS
