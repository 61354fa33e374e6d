/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-error.h"

G_DEFINE_QUARK (vmem-error-quark, vmem_error)

static const struct {
  VmemErrorCode code;
  const char   *name;
} varlink_names[] = {
  { VMEM_ERROR_FAILED, "io.vmemd.Failed" },
  { VMEM_ERROR_INVALID_ARGUMENT, "io.vmemd.InvalidArgument" },
  { VMEM_ERROR_NOT_FOUND, "io.vmemd.NotFound" },
  { VMEM_ERROR_EXISTS, "io.vmemd.Exists" },
  { VMEM_ERROR_PERMISSION_DENIED, "io.vmemd.PermissionDenied" },
  { VMEM_ERROR_REFUSED, "io.vmemd.Refused" },
  { VMEM_ERROR_UNMANAGEABLE, "io.vmemd.Unmanageable" },
  { VMEM_ERROR_TIMEOUT, "io.vmemd.Timeout" },
  { VMEM_ERROR_PROTOCOL, "io.vmemd.ProtocolError" },
  { VMEM_ERROR_UNAVAILABLE, "io.vmemd.Unavailable" },
  { VMEM_ERROR_STORE, "io.vmemd.StoreError" },
  { VMEM_ERROR_CONFIG, "io.vmemd.ConfigError" },
  { VMEM_ERROR_BUSY, "io.vmemd.Busy" },
  /* After VMEM_ERROR_STORE: a client reads StoreError back as that. */
  { VMEM_ERROR_STORE_UNAVAILABLE, "io.vmemd.StoreError" },
};

const char *
vmem_error_to_varlink (const GError *error)
{
  if (error == NULL || error->domain != VMEM_ERROR)
    return "io.vmemd.Failed";
  for (gsize i = 0; i < G_N_ELEMENTS (varlink_names); i++)
    if (varlink_names[i].code == (VmemErrorCode) error->code)
      return varlink_names[i].name;
  return "io.vmemd.Failed";
}

VmemErrorCode
vmem_error_from_varlink (const char *name)
{
  if (name == NULL)
    return VMEM_ERROR_FAILED;
  if (g_str_equal (name, "org.varlink.service.InvalidParameter") ||
      g_str_equal (name, "org.varlink.service.MethodNotFound") ||
      g_str_equal (name, "org.varlink.service.InterfaceNotFound"))
    return VMEM_ERROR_INVALID_ARGUMENT;
  if (g_str_equal (name, "org.varlink.service.PermissionDenied"))
    return VMEM_ERROR_PERMISSION_DENIED;
  for (gsize i = 0; i < G_N_ELEMENTS (varlink_names); i++)
    if (g_str_equal (varlink_names[i].name, name))
      return varlink_names[i].code;
  return VMEM_ERROR_FAILED;
}
