/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-admission.h"
#include "vmem-units.h"

static guint64
add_saturated (guint64 a, guint64 b)
{
  return a > G_MAXUINT64 - b ? G_MAXUINT64 : a + b;
}

guint64
vmem_admission_committed (const VmemCommitment *c, gsize n, const char *except_uuid)
{
  guint64 sum = 0;

  g_return_val_if_fail (c != NULL || n == 0, 0);

  for (gsize i = 0; i < n; i++)
    {
      if (except_uuid != NULL && g_strcmp0 (c[i].uuid, except_uuid) == 0)
        continue;
      sum = add_saturated (sum, MAX (c[i].running_mib, c[i].reserved_mib));
    }
  return sum;
}

/* The figures every message carries, formatted once. */
typedef struct {
  const char *name;
  const char *whole; /* " (whole <memory> preallocated)" or "" */
  const char *least; /* "at least " while the count is partial, or "" */
  char *need;
  char *free;
  char *capacity;
  char *committed;
} Figures;

static void
figures_clear (Figures *f)
{
  g_free (f->need);
  g_free (f->free);
  g_free (f->capacity);
  g_free (f->committed);
}

G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC (Figures, figures_clear)

static void
decide_over (const VmemAdmissionRequest *req, const Figures *f, VmemAdmissionDecision *out)
{
  g_autofree char *line =
    g_strdup_printf ("not enough host memory to start %s: needs %s%s, %s free of %s usable "
                     "(%s%s committed to running and starting domains)",
                     f->name, f->need, f->whole, f->free, f->capacity, f->least, f->committed);

  if (req->mode == VMEM_ADMISSION_WARN)
    {
      out->verdict = VMEM_ADMISSION_ADMIT;
      out->event = "admitted-over";
      out->warn = TRUE;
      out->message = g_strdup_printf ("%s; admitted anyway (admission=warn)", line);
      return;
    }
  out->verdict = VMEM_ADMISSION_REFUSE;
  out->event = "refused";
  out->message = g_strdup_printf ("vmemd: %s", line);
}

/* It fits by the domains read so far, but not all have been. */
static void
decide_not_ready (const VmemAdmissionRequest *req, const Figures *f, VmemAdmissionDecision *out)
{
  const char *unknown = "vmemd has not read every domain yet, so the memory committed to them "
                        "is unknown";

  if (req->not_ready == VMEM_NOT_READY_REFUSE && req->mode == VMEM_ADMISSION_ENFORCE)
    {
      out->verdict = VMEM_ADMISSION_REFUSE;
      out->event = "refused-not-ready";
      out->message =
        g_strdup_printf ("vmemd: cannot check the start of %s yet: %s (needs %s%s, "
                         "%s usable, at least %s committed); retry in a moment",
                         f->name, unknown, f->need, f->whole, f->capacity, f->committed);
      return;
    }
  out->verdict = VMEM_ADMISSION_ADMIT;
  out->event = "admitted-not-ready";
  out->warn = TRUE;
  out->message =
    g_strdup_printf ("start of %s admitted unchecked: %s (needs %s%s, %s usable, at "
                     "least %s committed; %s)",
                     f->name, unknown, f->need, f->whole, f->capacity, f->committed,
                     req->not_ready == VMEM_NOT_READY_ADMIT ? "admission not_ready = admit"
                                                            : "admission=warn");
}

/* The XML could not be used: nothing to measure. */
static void
decide_unchecked (const VmemAdmissionRequest *req, const char *name, VmemAdmissionDecision *out)
{
  if (req->mode == VMEM_ADMISSION_OFF)
    {
      out->verdict = VMEM_ADMISSION_ADMIT;
      out->event = "admitted-unchecked";
      out->message = g_strdup_printf ("start of %s admitted unchecked (admission mode = off; %s)",
                                      name, req->unchecked_why);
      return;
    }
  if (req->mode == VMEM_ADMISSION_ENFORCE && req->unchecked == VMEM_UNCHECKED_REFUSE)
    {
      out->verdict = VMEM_ADMISSION_REFUSE;
      out->event = "refused-not-checked";
      out->message = g_strdup_printf ("vmemd: cannot check the start of %s: %s; refused "
                                      "(admission unchecked = refuse)",
                                      name, req->unchecked_why);
      return;
    }
  out->verdict = VMEM_ADMISSION_ADMIT;
  out->event = "admitted-not-checked";
  out->warn = TRUE;
  out->message = g_strdup_printf ("the start of %s was not checked: %s; admitted (%s)",
                                  name, req->unchecked_why,
                                  req->unchecked == VMEM_UNCHECKED_ADMIT
                                    ? "admission unchecked = admit"
                                    : "admission mode = warn");
}

guint64
vmem_admission_boot_mib (guint64 memory_mib, guint64 current_mib, gboolean prealloc,
                         guint64 virtio_mem_size_mib, guint64 virtio_mem_requested_mib)
{
  /* With preallocation QEMU touches all the memory present at boot,
   * whatever vmemd does with the domain (observe changes nothing): the
   * whole <memory> less the virtio-mem devices' unplugged part.  Without
   * it, what the guest is given at boot: its balloon target, and never
   * more than that same present memory (in virtio-mem form <currentMemory>
   * is the whole <memory>, and the unplugged part is not there to touch). */
  guint64 unplugged = virtio_mem_size_mib > virtio_mem_requested_mib
                        ? virtio_mem_size_mib - virtio_mem_requested_mib
                        : 0;
  guint64 present = memory_mib > unplugged ? memory_mib - unplugged : 0;
  if (prealloc)
    return present;
  return MIN (current_mib == 0 ? memory_mib : current_mib, present);
}

void
vmem_admission_decide (const VmemAdmissionRequest *req, VmemAdmissionDecision *out)
{
  g_return_if_fail (req != NULL);
  g_return_if_fail (out != NULL);

  *out = (VmemAdmissionDecision){ 0 };
  if (req->unchecked_why != NULL)
    {
      out->free_mib =
        req->capacity_mib > req->committed_mib ? req->capacity_mib - req->committed_mib : 0;
      decide_unchecked (req, req->name != NULL ? req->name : "(unnamed domain)", out);
      return;
    }
  out->prealloc_whole = req->prealloc;
  out->needed_mib = vmem_admission_boot_mib (req->memory_mib, req->current_mib, req->prealloc,
                                             req->virtio_mem_size_mib,
                                             req->virtio_mem_requested_mib);
  out->free_mib =
    req->capacity_mib > req->committed_mib ? req->capacity_mib - req->committed_mib : 0;
  gboolean fits = out->needed_mib <= out->free_mib;

  g_auto(Figures) f = {
    .name = req->name != NULL ? req->name : "(unnamed domain)",
    .whole = !out->prealloc_whole              ? ""
            : req->virtio_mem_size_mib > 0 ? " (preallocated: <memory> less unplugged virtio-mem)"
                                           : " (whole <memory> preallocated)",
    .least = req->ready ? "" : "at least ",
    .need = vmem_size_format (out->needed_mib),
    .free = vmem_size_format (out->free_mib),
    .capacity = vmem_size_format (req->capacity_mib),
    .committed = vmem_size_format (req->committed_mib),
  };

  if (req->mode == VMEM_ADMISSION_OFF)
    {
      out->verdict = VMEM_ADMISSION_ADMIT;
      out->event = "admitted-unchecked";
      out->message =
        g_strdup_printf ("start of %s admitted unchecked (admission mode = off): "
                         "needs %s%s, %s free of %s usable (%s%s committed)",
                         f.name, f.need, f.whole, f.free, f.capacity, f.least, f.committed);
      return;
    }

  /* What is committed only grows as more domains are read, so a start
   * that does not fit yet will not fit once they are. */
  if (!fits)
    {
      decide_over (req, &f, out);
      return;
    }
  if (!req->ready)
    {
      decide_not_ready (req, &f, out);
      return;
    }

  out->verdict = VMEM_ADMISSION_ADMIT;
  out->event = "admitted";
  out->message = g_strdup_printf ("start of %s admitted: needs %s%s, %s free of %s usable (%s "
                                  "committed)",
                                  f.name, f.need, f.whole, f.free, f.capacity, f.committed);
}

void
vmem_admission_decision_clear (VmemAdmissionDecision *d)
{
  if (d == NULL)
    return;
  g_clear_pointer (&d->message, g_free);
}
