/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Sizes are carried in MiB everywhere inside vmemd (guint64).  Parsing
 * accepts "512", "512M", "512MiB", "4G", "4GiB", "1T", "1TiB", "1048576K"
 * (K only when it is a whole number of MiB); suffixes are case-insensitive.
 * A bare number is MiB.  Fractions ("1.5G") are accepted when they give a
 * whole number of MiB. */
gboolean vmem_size_parse (const char *text,
                          guint64    *out_mib,
                          GError    **error);

/* "4G" when a whole number of GiB, else "512M". */
char    *vmem_size_format (guint64 mib);

/* Largest size vmemd accepts: 1 PiB in MiB. */
#define VMEM_SIZE_MAX_MIB (G_GUINT64_CONSTANT (1) << 30)

G_END_DECLS
