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
