/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-xml.h"
#include "vmem-error.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <string.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlDoc, xmlFreeDoc)

void
vmem_domain_info_free (VmemDomainInfo *i)
{
  if (i == NULL)
    return;
  g_free (i->name);
  g_free (i->uuid);
  g_free (i->type);
  g_free (i->workload);
  g_free (i->balloon_model);
  g_free (i->unmanageable_reason);
  g_free (i->plan_source);
  g_free (i);
}

/* ---- helpers ------------------------------------------------------------ */

static void
silent_errors (void *ctx, const char *msg, ...)
{
}

static xmlDocPtr
parse (const char *xml, GError **error)
{
  if (xml == NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "no domain XML");
      return NULL;
    }
  gsize len = strlen (xml);
  if (len > VMEM_XML_MAX_SIZE)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "domain XML larger than %d MiB", VMEM_XML_MAX_SIZE >> 20);
      return NULL;
    }
  xmlSetGenericErrorFunc (NULL, silent_errors);
  /* No network, no entity expansion, no DTD loading: libvirt's XML has no
   * DOCTYPE, and one here is refused below. */
  xmlDocPtr doc = xmlReadMemory (xml, (int) len, "domain.xml", NULL,
                                 XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  if (doc == NULL)
    {
      const xmlError *e = xmlGetLastError ();
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "invalid domain XML, line %d: %s",
                   e ? e->line : 0, e && e->message ? g_strchomp (g_strdup (e->message)) : "parse error");
      return NULL;
    }
  if (doc->intSubset != NULL || doc->extSubset != NULL)
    {
      xmlFreeDoc (doc);
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "invalid domain XML: a DOCTYPE is not allowed");
      return NULL;
    }
  xmlNodePtr root = xmlDocGetRootElement (doc);
  if (root == NULL || xmlStrcmp (root->name, BAD_CAST "domain") != 0 || root->ns != NULL)
    {
      xmlFreeDoc (doc);
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "invalid domain XML: the root element is not <domain>");
      return NULL;
    }
  return doc;
}

static xmlNodePtr
child (xmlNodePtr parent, const char *name)
{
  for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
    if (n->type == XML_ELEMENT_NODE && n->ns == NULL && xmlStrcmp (n->name, BAD_CAST name) == 0)
      return n;
  return NULL;
}

static xmlNodePtr
child_ns (xmlNodePtr parent, const char *name, const char *ns)
{
  for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
    if (n->type == XML_ELEMENT_NODE && n->ns && xmlStrcmp (n->ns->href, BAD_CAST ns) == 0 &&
        xmlStrcmp (n->name, BAD_CAST name) == 0)
      return n;
  return NULL;
}

static char *
prop (xmlNodePtr n, const char *name)
{
  xmlChar *v = n ? xmlGetNoNsProp (n, BAD_CAST name) : NULL;
  char *r = v ? g_strdup ((const char *) v) : NULL;
  xmlFree (v);
  return r;
}

static char *
text (xmlNodePtr n)
{
  xmlChar *v = n ? xmlNodeGetContent (n) : NULL;
  char *r = v ? g_strstrip (g_strdup ((const char *) v)) : NULL;
  xmlFree (v);
  return r;
}

gboolean
vmem_xml_parse_memory_kib (const char *txt, const char *unit, guint64 *kib, GError **error)
{
  static const struct { const char *unit; guint64 mul, div; } units[] = {
    { "b", 1, 1024 }, { "bytes", 1, 1024 },
    { "KB", 1000, 1024 }, { "k", 1, 1 }, { "KiB", 1, 1 },
    { "MB", 1000000, 1024 }, { "M", 1024, 1 }, { "MiB", 1024, 1 },
    { "GB", 1000000000, 1024 }, { "G", 1048576, 1 }, { "GiB", 1048576, 1 },
    { "TB", 1000000000000, 1024 }, { "T", 1073741824, 1 }, { "TiB", 1073741824, 1 },
  };
  guint64 n;
  if (txt == NULL || !g_ascii_string_to_unsigned (txt, 10, 0, G_MAXUINT64 / 1048576, &n, NULL))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "invalid memory size '%s'",
                   txt ? txt : "");
      return FALSE;
    }
  if (unit == NULL)
    unit = "KiB";
  for (gsize i = 0; i < G_N_ELEMENTS (units); i++)
    if (g_str_equal (unit, units[i].unit))
      {
        *kib = n * units[i].mul / units[i].div;
        return TRUE;
      }
  g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "unknown memory unit '%s'", unit);
  return FALSE;
}

static gboolean
memory_kib (xmlNodePtr n, guint64 *kib, GError **error)
{
  g_autofree char *t = text (n);
  g_autofree char *u = prop (n, "unit");
  if (!vmem_xml_parse_memory_kib (t, u, kib, error))
    {
      g_prefix_error (error, "<%s>: ", (const char *) n->name);
      return FALSE;
    }
  return TRUE;
}

static char *
serialize (xmlDocPtr doc)
{
  xmlNodePtr root = xmlDocGetRootElement (doc);
  xmlBufferPtr b = xmlBufferCreate ();
  xmlNodeDump (b, doc, root, 0, 0);
  char *out = g_strdup_printf ("%s\n", (const char *) xmlBufferContent (b));
  xmlBufferFree (b);
  return out;
}

/* ---- parse ------------------------------------------------------------- */

VmemDomainInfo *
vmem_xml_parse_domain (const char *xml, GError **error)
{
  g_autoptr(xmlDoc) doc = parse (xml, error);
  if (doc == NULL)
    return NULL;
  xmlNodePtr root = xmlDocGetRootElement (doc);
  g_autoptr(VmemDomainInfo) i = g_new0 (VmemDomainInfo, 1);

  i->type = prop (root, "type");
  i->name = text (child (root, "name"));
  i->uuid = text (child (root, "uuid"));
  if (i->name == NULL || *i->name == '\0')
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT, "invalid domain XML: no <name>");
      return NULL;
    }
  xmlNodePtr mem = child (root, "memory");
  guint64 kib = 0;
  if (mem != NULL)
    {
      if (!memory_kib (mem, &kib, error))
        return NULL;
      i->memory_mib = kib / 1024;
    }
  xmlNodePtr cur = child (root, "currentMemory");
  if (cur != NULL)
    {
      if (!memory_kib (cur, &kib, error))
        return NULL;
      i->current_mib = kib / 1024;
    }
  else
    i->current_mib = i->memory_mib;
  xmlNodePtr maxm = child (root, "maxMemory");
  if (maxm != NULL && memory_kib (maxm, &kib, NULL))
    i->max_memory_mib = kib / 1024;
  g_autofree char *vcpu = text (child (root, "vcpu"));
  i->vcpus = vcpu ? (guint) g_ascii_strtoull (vcpu, NULL, 10) : 1;

  xmlNodePtr meta = child (root, "metadata");
  xmlNodePtr tag = child_ns (meta, "workload", VMEM_XML_NS_WORKLOAD);
  i->workload = prop (tag, "name");
  if (i->workload != NULL && *i->workload == '\0')
    g_clear_pointer (&i->workload, g_free);
  xmlNodePtr plan = child_ns (meta, "plan", VMEM_XML_NS_PLAN);
  if (plan != NULL)
    {
      g_autofree char *d = prop (plan, "demand_mib");
      g_autofree char *t = prop (plan, "time");
      i->has_plan = TRUE;
      i->plan_demand_mib = d ? g_ascii_strtoull (d, NULL, 10) : 0;
      i->plan_source = prop (plan, "source");
      g_autoptr(GDateTime) dt = t ? g_date_time_new_from_iso8601 (t, NULL) : NULL;
      i->plan_time = dt ? g_date_time_to_unix (dt) : 0;
    }

  xmlNodePtr backing = child (root, "memoryBacking");
  xmlNodePtr alloc = child (backing, "allocation");
  g_autofree char *amode = prop (alloc, "mode");
  i->prealloc = g_strcmp0 (amode, "immediate") == 0;
  i->hugepages = child (backing, "hugepages") != NULL;

  xmlNodePtr numa = child (child (root, "cpu"), "numa");
  for (xmlNodePtr n = numa ? numa->children : NULL; n; n = n->next)
    i->numa_cells += n->type == XML_ELEMENT_NODE && xmlStrcmp (n->name, BAD_CAST "cell") == 0;

  xmlNodePtr devices = child (root, "devices");
  for (xmlNodePtr n = devices ? devices->children : NULL; n; n = n->next)
    {
      if (n->type != XML_ELEMENT_NODE)
        continue;
      if (xmlStrcmp (n->name, BAD_CAST "memballoon") == 0)
        i->balloon_model = prop (n, "model");
      if (xmlStrcmp (n->name, BAD_CAST "memory") == 0)
        {
          g_autofree char *model = prop (n, "model");
          i->virtio_mem_devices += g_strcmp0 (model, "virtio-mem") == 0;
        }
    }

  i->manageable = TRUE;
  if (i->memory_mib == 0)
    {
      i->manageable = FALSE;
      i->unmanageable_reason = g_strdup ("the domain has no <memory>");
    }
  else if (i->balloon_model != NULL && !g_str_equal (i->balloon_model, "virtio") &&
           !g_str_equal (i->balloon_model, "virtio-transitional") &&
           !g_str_equal (i->balloon_model, "virtio-non-transitional"))
    {
      i->manageable = FALSE;
      i->unmanageable_reason = g_strdup_printf ("<memballoon model='%s'>: vmemd needs a virtio balloon",
                                                i->balloon_model);
    }
  return g_steal_pointer (&i);
}

/* ---- rewrite ----------------------------------------------------------- */

/* New element placed after @after (or appended to @parent), indented like
 * its siblings so the result stays readable. */
static xmlNodePtr
insert_element (xmlNodePtr parent, xmlNodePtr after, const char *name, const char *indent)
{
  xmlNodePtr n = xmlNewNode (NULL, BAD_CAST name);
  if (after != NULL)
    {
      xmlAddNextSibling (after, n);
      xmlAddPrevSibling (n, xmlNewText (BAD_CAST indent));
    }
  else
    {
      xmlNodePtr last = xmlGetLastChild (parent);
      if (last != NULL && last->type == XML_TEXT_NODE)
        {
          /* Keep the closing tag's indentation after the new element. */
          xmlAddPrevSibling (last, xmlNewText (BAD_CAST indent));
          xmlAddPrevSibling (last, n);
        }
      else
        xmlAddChild (parent, n);
    }
  return n;
}

static void
remove_node (xmlNodePtr n)
{
  /* Drop the whitespace that indented it too. */
  xmlNodePtr prev = n->prev;
  if (prev != NULL && prev->type == XML_TEXT_NODE && xmlIsBlankNode (prev))
    {
      xmlUnlinkNode (prev);
      xmlFreeNode (prev);
    }
  xmlUnlinkNode (n);
  xmlFreeNode (n);
}

static void
set_prop_u64 (xmlNodePtr n, const char *name, guint64 v)
{
  g_autofree char *s = g_strdup_printf ("%" G_GUINT64_FORMAT, v);
  xmlSetProp (n, BAD_CAST name, BAD_CAST s);
}

static char *
node_to_string (xmlDocPtr doc, xmlNodePtr n)
{
  xmlBufferPtr b = xmlBufferCreate ();
  xmlNodeDump (b, doc, n, 0, 0);
  char *s = g_strdup ((const char *) xmlBufferContent (b));
  xmlBufferFree (b);
  return s;
}

static xmlNodePtr
ensure_metadata (xmlNodePtr root)
{
  xmlNodePtr meta = child (root, "metadata");
  if (meta == NULL)
    {
      xmlNodePtr after = child (root, "uuid") ? child (root, "uuid") : child (root, "name");
      meta = insert_element (root, after, "metadata", "\n  ");
    }
  return meta;
}

/* Sets preallocation; returns whether it added or changed anything and
 * records the original in @plan_el (when given). */
static void
stage_prealloc (xmlNodePtr root, gboolean prealloc, xmlNodePtr plan_el, gboolean first)
{
  xmlNodePtr backing = child (root, "memoryBacking");
  xmlNodePtr alloc = child (backing, "allocation");

  if (!prealloc)
    {
      /* Only undo an allocation element vmemd added itself. */
      g_autofree char *added = prop (plan_el, "added_allocation");
      if (alloc != NULL && g_strcmp0 (added, "yes") == 0)
        {
          remove_node (alloc);
          g_autofree char *added_b = prop (plan_el, "added_memorybacking");
          if (g_strcmp0 (added_b, "yes") == 0 && child (backing, "hugepages") == NULL &&
              xmlFirstElementChild (backing) == NULL)
            remove_node (backing);
          xmlUnsetProp (plan_el, BAD_CAST "added_allocation");
          xmlUnsetProp (plan_el, BAD_CAST "added_memorybacking");
        }
      return;
    }
  if (backing == NULL)
    {
      xmlNodePtr after = child (root, "currentMemory") ? child (root, "currentMemory") : child (root, "memory");
      backing = insert_element (root, after, "memoryBacking", "\n  ");
      xmlAddChild (backing, xmlNewText (BAD_CAST "\n  "));
      if (plan_el && first)
        xmlSetProp (plan_el, BAD_CAST "added_memorybacking", BAD_CAST "yes");
    }
  if (alloc == NULL)
    {
      alloc = insert_element (backing, NULL, "allocation", "\n    ");
      if (plan_el && (first || prop (plan_el, "orig_allocation_mode") == NULL))
        xmlSetProp (plan_el, BAD_CAST "added_allocation", BAD_CAST "yes");
    }
  else if (plan_el && first)
    {
      g_autofree char *m = prop (alloc, "mode");
      xmlSetProp (plan_el, BAD_CAST "orig_allocation_mode", BAD_CAST (m ? m : ""));
    }
  xmlSetProp (alloc, BAD_CAST "mode", BAD_CAST "immediate");
}

char *
vmem_xml_apply_plan (const char *xml, const VmemPlan *plan, gboolean *changed, GError **error)
{
  g_autoptr(VmemDomainInfo) info = vmem_xml_parse_domain (xml, error);
  if (info == NULL)
    return NULL;
  if (!info->manageable)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE, "%s", info->unmanageable_reason);
      return NULL;
    }
  g_autoptr(xmlDoc) doc = parse (xml, error);
  if (doc == NULL)
    return NULL;
  g_autofree char *before = serialize (doc);
  xmlNodePtr root = xmlDocGetRootElement (doc);

  /* The plan element, created the first time with what we replace. */
  xmlNodePtr meta = ensure_metadata (root);
  xmlNodePtr plan_el = child_ns (meta, "plan", VMEM_XML_NS_PLAN);
  gboolean first = plan_el == NULL;
  if (first)
    {
      plan_el = insert_element (meta, NULL, "plan", "\n    ");
      xmlNsPtr ns = xmlNewNs (plan_el, BAD_CAST VMEM_XML_NS_PLAN, BAD_CAST "vmemd-plan");
      xmlSetNs (plan_el, ns);
      xmlNodePtr cur = child (root, "currentMemory");
      guint64 kib = 0;
      if (cur != NULL && memory_kib (cur, &kib, NULL))
        set_prop_u64 (plan_el, "orig_current_kib", kib);
      else
        xmlSetProp (plan_el, BAD_CAST "orig_current_kib", BAD_CAST "");
      xmlNodePtr devices = child (root, "devices");
      xmlNodePtr balloon = child (devices, "memballoon");
      g_autofree char *orig = balloon ? node_to_string (doc, balloon) : g_strdup ("");
      xmlSetProp (plan_el, BAD_CAST "orig_memballoon", BAD_CAST orig);
    }

  /* <currentMemory>: the balloon target at boot, never above <memory>. */
  guint64 demand_kib = MIN (plan->demand_mib, info->memory_mib) * 1024;
  xmlNodePtr cur = child (root, "currentMemory");
  if (cur == NULL)
    cur = insert_element (root, child (root, "memory"), "currentMemory", "\n  ");
  g_autofree char *kib_text = g_strdup_printf ("%" G_GUINT64_FORMAT, demand_kib);
  xmlNodeSetContent (cur, BAD_CAST kib_text);
  xmlSetProp (cur, BAD_CAST "unit", BAD_CAST "KiB");

  stage_prealloc (root, plan->prealloc, plan_el, first);

  /* A virtio balloon that deflates on guest OOM, reports free pages and
   * sends statistics. */
  xmlNodePtr devices = child (root, "devices");
  if (devices == NULL)
    {
      devices = insert_element (root, NULL, "devices", "\n  ");
      xmlAddChild (devices, xmlNewText (BAD_CAST "\n  "));
    }
  xmlNodePtr balloon = child (devices, "memballoon");
  if (balloon == NULL)
    {
      balloon = insert_element (devices, NULL, "memballoon", "\n    ");
      xmlSetProp (balloon, BAD_CAST "model", BAD_CAST "virtio");
    }
  xmlSetProp (balloon, BAD_CAST "autodeflate", BAD_CAST "on");
  xmlSetProp (balloon, BAD_CAST "freePageReporting", BAD_CAST "on");
  xmlNodePtr stats = child (balloon, "stats");
  if (stats == NULL)
    {
      if (balloon->children == NULL)
        xmlAddChild (balloon, xmlNewText (BAD_CAST "\n    "));
      stats = insert_element (balloon, NULL, "stats", "\n      ");
    }
  set_prop_u64 (stats, "period", plan->stats_period ? plan->stats_period : 5);

  /* What was decided, for `vmemctl explain` and `unassign --restore`. */
  set_prop_u64 (plan_el, "demand_mib", demand_kib / 1024);
  xmlSetProp (plan_el, BAD_CAST "source", BAD_CAST (plan->source ? plan->source : "profile"));
  xmlSetProp (plan_el, BAD_CAST "workload", BAD_CAST (plan->workload ? plan->workload : ""));
  xmlSetProp (plan_el, BAD_CAST "mode", BAD_CAST vmem_mode_to_string (plan->mode));
  xmlSetProp (plan_el, BAD_CAST "prealloc", BAD_CAST (plan->prealloc ? "yes" : "no"));
  set_prop_u64 (plan_el, "peers", plan->peers);
  g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc (plan->time);
  g_autofree char *iso = dt ? g_date_time_format (dt, "%Y-%m-%dT%H:%M:%SZ") : g_strdup ("");
  xmlSetProp (plan_el, BAD_CAST "time", BAD_CAST iso);

  char *after = serialize (doc);
  if (changed != NULL)
    *changed = g_strcmp0 (before, after) != 0;
  return after;
}

char *
vmem_xml_restore (const char *xml, GError **error)
{
  g_autoptr(xmlDoc) doc = parse (xml, error);
  if (doc == NULL)
    return NULL;
  xmlNodePtr root = xmlDocGetRootElement (doc);
  xmlNodePtr meta = child (root, "metadata");
  xmlNodePtr plan_el = child_ns (meta, "plan", VMEM_XML_NS_PLAN);
  if (plan_el == NULL)
    return NULL;

  g_autofree char *orig_cur = prop (plan_el, "orig_current_kib");
  xmlNodePtr cur = child (root, "currentMemory");
  if (orig_cur != NULL && *orig_cur != '\0')
    {
      if (cur == NULL)
        cur = insert_element (root, child (root, "memory"), "currentMemory", "\n  ");
      xmlNodeSetContent (cur, BAD_CAST orig_cur);
      xmlSetProp (cur, BAD_CAST "unit", BAD_CAST "KiB");
    }
  else if (cur != NULL)
    remove_node (cur);

  xmlNodePtr backing = child (root, "memoryBacking");
  xmlNodePtr alloc = child (backing, "allocation");
  g_autofree char *added_alloc = prop (plan_el, "added_allocation");
  g_autofree char *orig_mode = prop (plan_el, "orig_allocation_mode");
  if (alloc != NULL && g_strcmp0 (added_alloc, "yes") == 0)
    {
      remove_node (alloc);
      g_autofree char *added_b = prop (plan_el, "added_memorybacking");
      if (g_strcmp0 (added_b, "yes") == 0 && xmlFirstElementChild (backing) == NULL)
        remove_node (backing);
    }
  else if (alloc != NULL && orig_mode != NULL)
    {
      if (*orig_mode)
        xmlSetProp (alloc, BAD_CAST "mode", BAD_CAST orig_mode);
      else
        xmlUnsetProp (alloc, BAD_CAST "mode");
    }

  g_autofree char *orig_balloon = prop (plan_el, "orig_memballoon");
  xmlNodePtr devices = child (root, "devices");
  xmlNodePtr balloon = child (devices, "memballoon");
  if (orig_balloon != NULL && balloon != NULL)
    {
      if (*orig_balloon == '\0')
        remove_node (balloon);
      else
        {
          xmlNodePtr parsed = NULL;
          if (xmlParseInNodeContext (devices, orig_balloon, (int) strlen (orig_balloon), 0, &parsed) ==
                XML_ERR_OK && parsed != NULL)
            {
              xmlReplaceNode (balloon, parsed);
              xmlFreeNode (balloon);
            }
          else
            {
              xmlFreeNodeList (parsed);
              g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                           "the plan's recorded <memballoon> is not valid XML");
              return NULL;
            }
        }
    }
  remove_node (plan_el);
  /* Restoring ends management: the workload tag goes too, and a <metadata>
   * that only held vmemd's elements. */
  xmlNodePtr tag = child_ns (meta, "workload", VMEM_XML_NS_WORKLOAD);
  if (tag != NULL)
    remove_node (tag);
  if (xmlFirstElementChild (meta) == NULL)
    remove_node (meta);
  return serialize (doc);
}

char *
vmem_xml_migrate_variant (const char *xml, const VmemPlan *plan, GError **error)
{
  g_autoptr(xmlDoc) doc = parse (xml, error);
  if (doc == NULL || !plan->prealloc)
    return NULL;
  xmlNodePtr root = xmlDocGetRootElement (doc);
  xmlNodePtr alloc = child (child (root, "memoryBacking"), "allocation");
  g_autofree char *mode = prop (alloc, "mode");
  if (g_strcmp0 (mode, "immediate") == 0)
    return NULL;
  stage_prealloc (root, TRUE, NULL, FALSE);
  return serialize (doc);
}
