/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* What vmem-hook shares with vmemd and vmemctl, in plain C: the hook links
 * only the C library (hooks/vmem-hook-lib.c), so that the run libvirt
 * makes of it at every domain start costs little more than an exec. */

/* vmemd's configuration file, unless $VMEMD_CONFIG names another. */
#define VMEM_CONFIG_DEFAULT_PATH SYSCONFDIR "/vmemd/vmemd.conf"
/* [daemon] socket */
#define VMEM_DEFAULT_SOCKET RUNSTATEDIR "/vmemd/io.vmemd"
/* [hook] timeout_ms: default and range */
#define VMEM_HOOK_DEFAULT_TIMEOUT_MS 2000
#define VMEM_HOOK_MIN_TIMEOUT_MS     100
#define VMEM_HOOK_MAX_TIMEOUT_MS     60000

#define VMEM_VARLINK_INTERFACE   "io.vmemd"
#define VMEM_VARLINK_MAX_MESSAGE (1024 * 1024) /* bytes, NUL excluded */
/* The largest domain XML vmemd takes anywhere: what the hook reads from
 * libvirt, what the XML reader parses and what one HookEvent carries. */
#define VMEM_VARLINK_MAX_XML (16 * 1024 * 1024)
/* The message limit for root (the hook) in both directions: a HookEvent
 * with the largest domain XML, JSON-escaped (valid XML at most doubles:
 * quotes, backslashes, tabs and newlines), and its reply. */
#define VMEM_VARLINK_MAX_ROOT_MESSAGE (2 * VMEM_VARLINK_MAX_XML + 64 * 1024)
