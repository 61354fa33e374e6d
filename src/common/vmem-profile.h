/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>
#include <json-c/json.h>

G_BEGIN_DECLS

typedef enum {
  VMEM_MODE_BALLOON,
  VMEM_MODE_VIRTIO_MEM,
  VMEM_MODE_OBSERVE,
} VmemMode;

typedef enum {
  VMEM_SCALE_ABSOLUTE,
  VMEM_SCALE_PER_VCPU,
} VmemScale;

/* Per-workload settings.  Sizes in MiB; 0 means "not set" for demand, floor
 * and ceiling. */
typedef struct {
  char     *name;        /* [A-Za-z0-9_.-], 1..64 chars, not starting with '.' or '-' */
  guint64   demand_mib;  /* administrator's manual demand (embodiment 1); 0 = none */
  guint64   floor_mib;   /* never below; 0 = none */
  guint64   ceiling_mib; /* never above; 0 = none (the domain's <memory> still applies) */
  double    margin_pct;  /* added on top of the quantile, 0..400; default 15 */
  double    quantile;    /* of the peers' levels, 0.5..1.0; default 0.90 */
  double    risk_pct;    /* share of starts allowed to need more than they were given,
                          * the target the margin is calibrated to, 0.1..50; default 5 */
  double    buffer_pct;  /* free memory kept in the guest, % of used, 0..400; default 20 */
  VmemMode  mode;        /* default balloon */
  gboolean  prealloc;    /* default TRUE */
  VmemScale scale;       /* default absolute */
  int       priority;    /* 0..100, higher wins when memory is short; default 50 */
  char     *match;       /* domain-name glob ("erp-*"), NULL = none */
  gint64    created;     /* unix seconds; set by the store */
  gint64    updated;     /* unix seconds; set by the store */
} VmemProfile;

VmemProfile *vmem_profile_new (const char *name);   /* with defaults */
VmemProfile *vmem_profile_copy (const VmemProfile *profile);
void         vmem_profile_free (VmemProfile *profile);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemProfile, vmem_profile_free)

/* Checks every field; the message names the offending field. */
gboolean     vmem_profile_validate (const VmemProfile *profile, GError **error);
gboolean     vmem_profile_name_valid (const char *name, GError **error);

const char  *vmem_mode_to_string (VmemMode mode);
gboolean     vmem_mode_from_string (const char *s, VmemMode *out, GError **error);
const char  *vmem_scale_to_string (VmemScale scale);
gboolean     vmem_scale_from_string (const char *s, VmemScale *out, GError **error);

/* JSON form (the varlink wire form and the import/export file form):
 * {"name":"erp","demand_mib":2048,"floor_mib":0,"ceiling_mib":0,
 *  "margin_pct":15,"quantile":0.9,"risk_pct":5,"buffer_pct":20,"mode":"balloon",
 *  "prealloc":true,"scale":"absolute","priority":50,"match":"erp-*"}
 * created/updated are emitted when non-zero and ignored on input. */
json_object *vmem_profile_to_json (const VmemProfile *profile);

/* Parses and validates.  Unknown keys and wrongly typed values are errors
 * naming the key.  Missing keys take defaults (or, when @base is given, the
 * values of @base: that is how a partial "profile set" is merged). */
VmemProfile *vmem_profile_from_json (json_object       *obj,
                                     const VmemProfile *base,
                                     GError           **error);

/* Does this profile's pattern match a domain name? */
gboolean     vmem_profile_matches (const VmemProfile *profile, const char *domain_name);

/* The profile that manages a domain: the one its workload @tag names (NULL
 * when there is none of that name), else, untagged, the first profile by
 * name whose pattern matches @domain_name.  @profiles maps names to
 * VmemProfile. */
const VmemProfile *vmem_profile_resolve (GHashTable *profiles, const char *tag,
                                         const char *domain_name);

G_END_DECLS
