/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Admission control at prepare (DESIGN.md 4.5).  Pure: the daemon hands in
 * what its cache knows -- host capacity, what the other domains hold, the
 * domain asking -- and gets a verdict and the line to log or show.  No
 * libvirt, clock, files or logging in here.
 *
 * A start needs its boot footprint: the whole <memory> when it
 * preallocates in balloon mode (QEMU touches every page before the
 * balloon can take any back), else its <currentMemory>; in virtio-mem
 * form never the device's unplugged part, so just the base and what is
 * plugged at boot.  It fits when
 * that is no more than capacity minus what is committed.  Then, by mode:
 *   off      admit, unchecked;
 *   warn     admit; over capacity, with a warning;
 *   enforce  over capacity, refuse.
 * Before the daemon's first full refresh what is committed is only known
 * in part (a lower bound): a start that does not fit even so is judged as
 * above; one that does is admitted with a warning or, with
 * not_ready = refuse and mode = enforce, refused.
 *
 * A start whose domain XML cannot be used (the hook could not read it all
 * or send it, vmemd cannot parse it, it is another domain's) cannot be
 * judged: its boot footprint is unknown.  The definition in the daemon's
 * cache is no substitute: the XML being started is not always the
 * persistent one (a restore, an incoming migration, a transient domain,
 * a define not yet seen), and what the hook cannot deliver the daemon
 * could not read from libvirt either (the same reader, the same limit).
 * Such a start is "not checked": admitted with a warning or, with
 * unchecked = refuse and mode = enforce, refused; mode off admits it as
 * it admits everything. */

#include <glib.h>

#include "vmem-config.h"
#include "vmem-profile.h"

G_BEGIN_DECLS

/* What is already committed on the host. */
typedef struct {
  const char *uuid;
  const char *name;
  guint64     running_mib;  /* balloon size when running, else 0 */
  guint64     reserved_mib; /* boot reservation still held, else 0 */
} VmemCommitment;

/* The sum over @c of max (running_mib, reserved_mib), skipping the domain
 * whose uuid is @except_uuid (may be NULL): a reservation taken at prepare
 * covers the boot until STARTED replaces it with the balloon size.
 * Saturates at G_MAXUINT64. */
guint64 vmem_admission_committed (const VmemCommitment *c, gsize n, const char *except_uuid);

/* The memory a domain holds at boot: with preallocation all the memory
 * present at boot (<memory> less the virtio-mem devices' unplugged part),
 * else its <currentMemory> (0 = <memory>) and no more than that. */
guint64 vmem_admission_boot_mib (guint64 memory_mib, guint64 current_mib, gboolean prealloc,
                                 guint64 virtio_mem_size_mib, guint64 virtio_mem_requested_mib);

typedef struct {
  VmemAdmission mode;          /* enforce | warn | off */
  VmemNotReady  not_ready;     /* what to do before the daemon's first full refresh */
  gboolean      ready;         /* the daemon has read every domain at least once */
  guint64       capacity_mib;  /* usable: MemTotal (or configured) minus reserve */
  guint64       committed_mib; /* vmem_admission_committed (..., the requester's uuid) */
  /* the start being asked for */
  const char   *name;
  const char   *workload;
  guint64       memory_mib;    /* <memory> */
  guint64       current_mib;   /* <currentMemory>; 0 = same as memory */
  gboolean      prealloc;      /* <allocation mode='immediate'/> */
  guint64       virtio_mem_size_mib;      /* the virtio-mem devices' <size>, summed */
  guint64       virtio_mem_requested_mib; /* their <requested>, summed */
  VmemMode      profile_mode;  /* balloon | virtio-mem | observe */
  /* Set when the domain XML cannot be used: why, for the message (the
   * memory fields above are then unknown and ignored). */
  const char   *unchecked_why;
  VmemUnchecked unchecked;     /* what to do then */
} VmemAdmissionRequest;

typedef enum {
  VMEM_ADMISSION_ADMIT,
  VMEM_ADMISSION_REFUSE,
} VmemAdmissionVerdict;

typedef struct {
  VmemAdmissionVerdict verdict;
  /* Static, for the decision log: "admitted", "admitted-over" (warn,
   * over capacity), "refused", "admitted-not-ready", "refused-not-ready",
   * "admitted-unchecked" (mode off), "admitted-not-checked",
   * "refused-not-checked" (the XML could not be used). */
  const char          *event;
  guint64              needed_mib;     /* the boot footprint; 0 when not checked */
  guint64              free_mib;       /* capacity - committed, 0 at least */
  gboolean             prealloc_whole; /* needed_mib is all the memory present at boot, preallocated */
  /* One line for the log; for a refusal, the line `virsh start` shows,
   * starting with "vmemd: ". */
  char                *message;
  /* Admitted, but log the message as a warning; the hook shows it too. */
  gboolean             warn;
} VmemAdmissionDecision;

/* Fills @out; free its message with vmem_admission_decision_clear(). */
void vmem_admission_decide (const VmemAdmissionRequest *req, VmemAdmissionDecision *out);
void vmem_admission_decision_clear (VmemAdmissionDecision *d);

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (VmemAdmissionDecision, vmem_admission_decision_clear)

G_END_DECLS
