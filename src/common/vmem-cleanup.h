/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Cleanup functions for foreign types used across the tree, declared once. */
#include <glib.h>
#include <json-c/json.h>

static inline void
vmem_json_put (json_object *obj)
{
  if (obj != NULL)
    json_object_put (obj);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (json_object, vmem_json_put)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (json_tokener, json_tokener_free)

#include <unistd.h>

/* GLib 2.74 has no g_autofd. */
static inline void
vmem_close_fdp (int *fd)
{
  if (*fd >= 0)
    close (*fd);
}
#define vmem_autofd __attribute__ ((cleanup (vmem_close_fdp)))
