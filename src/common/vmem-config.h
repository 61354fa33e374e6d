/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <glib.h>

#include "vmem-shared.h"

G_BEGIN_DECLS

typedef enum {
  VMEM_ADMISSION_ENFORCE,
  VMEM_ADMISSION_WARN,
  VMEM_ADMISSION_OFF,
} VmemAdmission;

/* What admission does with a start before the daemon has read every
 * domain once, while the memory committed to the others is unknown. */
typedef enum {
  VMEM_NOT_READY_ADMIT,  /* admit, with a warning */
  VMEM_NOT_READY_REFUSE, /* refuse when mode = enforce */
} VmemNotReady;

/* What admission does with a start it cannot check: the hook could not
 * hand vmemd a domain XML it can use (too large, unreadable, another
 * domain's). */
typedef enum {
  VMEM_UNCHECKED_ADMIT,  /* admit, with a warning */
  VMEM_UNCHECKED_REFUSE, /* refuse when mode = enforce */
} VmemUnchecked;

typedef enum {
  VMEM_STORE_SQLITE,
  VMEM_STORE_POSTGRES,
} VmemStoreBackend;

/* /etc/vmemd/vmemd.conf (GKeyFile).  Every key is optional; see
 * data/vmemd.conf and vmemd.conf(5). */
typedef struct {
  char            *path;            /* the file it came from; NULL = defaults only */

  /* [daemon] */
  char            *uri;             /* libvirt URI, default qemu:///system */
  char            *socket_path;     /* default /run/vmemd/io.vmemd */
  char            *admin_group;     /* group allowed admin methods besides root, default vmemd */
  guint            stats_interval;  /* seconds, default 10 */
  char            *log_level;       /* error|warning|message|info|debug, default info */
  char            *host_name;       /* shown for the host; default: gethostname() */
  char            *host_id;         /* the host in a shared store; default: /etc/machine-id,
                                       else host_name */
  guint            max_clients;     /* default 64 */
  guint            root_clients;    /* more connections kept for root, default 16 */
  guint            request_timeout; /* seconds a client may take to send one request, default 10 */
  guint            idle_timeout;    /* seconds a connection may idle between calls, default 60 */
  guint            silent_timeout;  /* seconds a new connection may send nothing, default 5 */
  char            *metrics_textfile; /* metrics for node exporter, rewritten every
                                        stats_interval; NULL (default) = none */

  /* [store] */
  VmemStoreBackend backend;         /* sqlite (default) | postgres */
  char            *database;        /* sqlite path, default /var/lib/vmemd/vmemd.db */
  char            *postgres;        /* libpq conninfo for the postgres backend */
  guint            raw_retention_hours;  /* default 48 */
  guint            raw_full_hours;       /* every sample kept this long, default 6 */
  guint            raw_thinned_seconds;  /* then one per domain per this many s, 300 */
  guint            peak_retention_days;  /* default 90 */
  guint            buffer_samples;  /* samples kept while the store is unreachable, 100000 */
  guint            buffer_writes;   /* other writes kept meanwhile (runs, plans...), 10000 */

  /* [hook] */
  guint            hook_timeout_ms; /* default 2000 */
  gboolean         fail_closed;     /* default FALSE */

  /* [admission] */
  VmemAdmission    admission;       /* default enforce */
  guint64          reserve_mib;     /* host memory kept back, default 1024 */
  guint64          capacity_mib;    /* 0 = MemTotal from /proc/meminfo */
  VmemNotReady     not_ready;       /* before the first full refresh, default admit */
  VmemUnchecked    unchecked;       /* a start whose XML cannot be used, default admit */
  guint            reservation_timeout; /* seconds a boot reservation is held at most,
                                           default 300 */

  /* [estimator] */
  double           half_life_hours;   /* default 24 */
  double           quantile;          /* default 0.95 (a profile may override) */
  double           margin_pct;        /* default 15 (a profile may override) */
  guint            min_peers;         /* default 1 */
  double           min_history_hours; /* default 6 */
  double           prior_hours;       /* the most the peers weigh against own history; default 24 */
  double           hysteresis_pct;    /* default 5 */
  guint64          hysteresis_mib;    /* default 64 */

  /* [controller]: the on-demand controller after the start */
  guint64          min_buffer_mib;      /* free memory kept in a guest at least, default 512 */
  double           min_buffer_pct;      /* ... and at least this % of <memory>, default 10 */
  guint            surplus_hold;        /* seconds a surplus lasts before a shrink, default 3600 */
  guint            shrink_half_life;    /* seconds in which a surplus then halves, default 3600 */
} VmemConfig;


VmemConfig *vmem_config_new_default (void);
void        vmem_config_free (VmemConfig *config);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (VmemConfig, vmem_config_free)

/* Loads @path over the defaults.  A missing file is an error only when
 * @must_exist.  Every error names the file, and the line or group/key. */
VmemConfig *vmem_config_load (const char *path, gboolean must_exist, GError **error);

/* The config path to use: $VMEMD_CONFIG if set, else the default. */
const char *vmem_config_default_path (void);

const char *vmem_admission_to_string (VmemAdmission mode);
const char *vmem_not_ready_to_string (VmemNotReady not_ready);
const char *vmem_unchecked_to_string (VmemUnchecked unchecked);

/* A host id ([daemon] host_id): 1 to VMEM_HOST_ID_MAX ASCII letters,
 * digits and . _ : - */
#define VMEM_HOST_ID_MAX 64
gboolean vmem_host_id_valid (const char *id);

G_END_DECLS
