/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The XML reader and rewriter on arbitrary domain XML: parse, stage two
 * plans, restore, and the migration variant, with the promises of
 * vmem-xml.h as checks: a staged document reads back, staging it again
 * changes nothing, and what staging did can be undone. */
#include "fuzz-common.h"
#include "vmem-domain.h"
#include "vmem-error.h"
#include "vmem-xml.h"

#include <string.h>

static const VmemPlan plans[] = {
  {
    .demand_mib = 1024,
    .prealloc = TRUE,
    .stats_period = 5,
    .mode = VMEM_MODE_BALLOON,
    .workload = "erp",
    .source = "profile",
    .time = 1700000000,
  },
  {
    .demand_mib = G_GUINT64_CONSTANT (1) << 44,
    .prealloc = FALSE,
    .stats_period = 0,
    .mode = VMEM_MODE_VIRTIO_MEM,
    .workload = NULL,
    .source = "peers",
    .peers = 3,
    .time = -1,
  },
};

static guint
count (const char *haystack, const char *needle)
{
  guint n = 0;
  for (const char *p = strstr (haystack, needle); p != NULL; p = strstr (p + 1, needle))
    n++;
  return n;
}

static void
check_error (const GError *error)
{
  g_assert (error != NULL && error->domain == VMEM_ERROR);
  /* Messages end up in varlink replies and logs, which are UTF-8. */
  if (!g_utf8_validate (error->message, -1, NULL))
    g_error ("error message is not UTF-8: %s", g_strescape (error->message, NULL));
}

/* @restorable: the input has no plan, or one that restores.  Staging
 * keeps an existing plan's record of the original, so a record that was
 * broken before stays broken. */
static void
stage (const char *xml, const VmemPlan *plan, gboolean restorable)
{
  g_autoptr(GError) error = NULL;
  gboolean changed = FALSE;
  g_autofree char *out = vmem_xml_apply_plan (xml, plan, &changed, &error);
  if (out == NULL)
    {
      check_error (error);
      return;
    }
  g_assert (error == NULL);

  g_autoptr(VmemDomainInfo) info = vmem_xml_parse_domain (out, &error);
  if (info == NULL)
    g_error ("the staged XML does not read back: %s\n%s", error->message, out);
  g_assert (info->has_plan);

  gboolean again_changed = TRUE;
  g_autofree char *again = vmem_xml_apply_plan (out, plan, &again_changed, &error);
  if (again == NULL)
    g_error ("staging the staged XML again fails: %s\n%s", error->message, out);
  if (again_changed || g_strcmp0 (again, out) != 0)
    g_error ("staging is not idempotent:\n%s\n---\n%s", out, again);

  if (!restorable)
    return;
  g_autofree char *restored = vmem_xml_restore (out, &error);
  if (restored == NULL)
    {
      if (error != NULL)
        g_error ("the staged XML cannot be restored: %s\n%s", error->message, out);
      g_error ("the staged XML has no plan to restore:\n%s", out);
    }
  g_autoptr(VmemDomainInfo) back = vmem_xml_parse_domain (restored, &error);
  if (back == NULL)
    g_error ("the restored XML does not read: %s\n%s", error->message, restored);
  /* libvirt keeps one element per namespace in <metadata>, and restore
   * undoes that one; a document with two plans did not come from it. */
  if (back->has_plan && count (out, VMEM_XML_NS_PLAN) == 1)
    g_error ("the restored XML still has a plan:\n%s\n---\n%s", out, restored);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_silence_logs ();
  g_autofree char *xml = g_strndup ((const char *) data, size);
  g_autoptr(GError) error = NULL;

  g_autoptr(VmemDomainInfo) info = vmem_xml_parse_domain (xml, &error);
  if (info == NULL)
    {
      check_error (error);
      g_clear_error (&error);
    }
  g_autoptr(VmemDomain) domain = vmem_domain_new_from_xml (xml, &error);
  g_assert ((domain == NULL) == (info == NULL));
  g_clear_error (&error);

  g_autofree char *restored = vmem_xml_restore (xml, &error);
  gboolean restorable = restored != NULL || error == NULL;
  if (!restorable)
    {
      check_error (error);
      g_clear_error (&error);
    }

  for (gsize i = 0; i < G_N_ELEMENTS (plans); i++)
    {
      stage (xml, &plans[i], restorable);
      g_autofree char *variant = vmem_xml_migrate_variant (xml, &plans[i], &error);
      if (error != NULL)
        {
          check_error (error);
          g_clear_error (&error);
        }
      else if (variant != NULL && info != NULL)
        {
          /* The hook path reads the domain before it asks for a variant:
           * only a readable one must stay readable. */
          g_autoptr(VmemDomainInfo) vi = vmem_xml_parse_domain (variant, &error);
          if (vi == NULL)
            g_error ("the migration variant does not read: %s\n%s", error->message, variant);
        }
    }

  return 0;
}
