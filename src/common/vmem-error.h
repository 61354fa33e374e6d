/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define VMEM_ERROR (vmem_error_quark ())

/* One error domain for the whole project.  Foreign errors (libvirt, sqlite,
 * json-c, libxml2, libpq) are translated into one of these at one boundary
 * each. The varlink error name of each code is given by vmem_error_to_varlink(). */
typedef enum {
  VMEM_ERROR_FAILED,            /* io.vmemd.Failed */
  VMEM_ERROR_INVALID_ARGUMENT,  /* org.varlink.service.InvalidParameter / io.vmemd.InvalidArgument */
  VMEM_ERROR_NOT_FOUND,         /* io.vmemd.NotFound */
  VMEM_ERROR_EXISTS,            /* io.vmemd.Exists */
  VMEM_ERROR_PERMISSION_DENIED, /* io.vmemd.PermissionDenied */
  VMEM_ERROR_REFUSED,           /* io.vmemd.Refused: admission control said no */
  VMEM_ERROR_UNMANAGEABLE,      /* io.vmemd.Unmanageable: domain cannot be managed */
  VMEM_ERROR_TIMEOUT,           /* io.vmemd.Timeout */
  VMEM_ERROR_PROTOCOL,          /* io.vmemd.ProtocolError: malformed message */
  VMEM_ERROR_UNAVAILABLE,       /* io.vmemd.Unavailable: libvirt or store unreachable */
  VMEM_ERROR_STORE,             /* io.vmemd.StoreError */
  VMEM_ERROR_CONFIG,            /* bad configuration */
  VMEM_ERROR_BUSY,              /* io.vmemd.Busy: domain is starting, try later */
  /* io.vmemd.StoreError as VMEM_ERROR_STORE, from which it differs only
   * in what a caller may do: the database could not be reached or written
   * for now (connection lost or refused, locked, full, a standby), and the
   * same call may succeed later.  VMEM_ERROR_STORE is a failure that
   * trying again would repeat (a constraint violated, bad data). */
  VMEM_ERROR_STORE_UNAVAILABLE,
} VmemErrorCode;

GQuark       vmem_error_quark (void);

/* Varlink error name ("io.vmemd.NotFound") for a GError; any non-VMEM error
 * maps to io.vmemd.Failed. */
const char  *vmem_error_to_varlink (const GError *error);

/* Inverse of vmem_error_to_varlink(); unknown names map to VMEM_ERROR_FAILED. */
VmemErrorCode vmem_error_from_varlink (const char *name);

G_END_DECLS
