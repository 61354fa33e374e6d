/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-xml.h"
#include "vmem-error.h"
#include "vmem-units.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <string.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlDoc, xmlFreeDoc)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (xmlParserCtxt, xmlFreeParserCtxt)

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
  g_free (i->allocation_mode);
  g_free (i->memory_source);
  g_free (i->memory_access);
  g_free (i->unmanageable_reason);
  g_free (i->virtio_mem_unmanageable_reason);
  g_free (i->plan_source);
  g_free (i->plan_workload);
  g_free (i->plan_mode);
  g_free (i);
}

/* ---- the document: libxml2's tree plus where each element's bytes are --- */

typedef struct {
  gsize    start;      /* its '<' */
  gsize    stag_end;   /* just after the start tag's '>' */
  gsize    etag_start; /* the end tag's '<'; = end for <x/> */
  gsize    end;        /* just after the element */
  gboolean empty;      /* written <x/> */
} Span;

typedef struct {
  gsize    start, end;
  guint    seq;
  gboolean before; /* an insertion that belongs to the element at end */
  char    *text;
} Splice;

typedef struct {
  const char *xml;
  gsize       len;
  xmlDocPtr   doc;
  GArray     *spans;   /* Span, in document order; node->_private = index + 1 */
  GPtrArray  *splices; /* Splice */
  char       *unit;    /* one level of the document's indentation */
} Ctx;

static void
splice_free (Splice *s)
{
  g_free (s->text);
  g_free (s);
}

static void
ctx_free (Ctx *c)
{
  if (c == NULL)
    return;
  if (c->doc != NULL)
    xmlFreeDoc (c->doc);
  if (c->spans != NULL)
    g_array_unref (c->spans);
  if (c->splices != NULL)
    g_ptr_array_unref (c->splices);
  g_free (c->unit);
  g_free (c);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC (Ctx, ctx_free)

static void
ensure_libxml (void)
{
  static gsize once = 0;

  /* xmlInitParser() is not safe to race; the stager parses off the main
   * thread. */
  if (g_once_init_enter (&once))
    {
      xmlInitParser ();
      g_once_init_leave (&once, 1);
    }
}

static xmlDocPtr
parse (const char *xml, gsize len, GError **error)
{
  ensure_libxml ();
  g_autoptr(xmlParserCtxt) ctxt = xmlNewParserCtxt ();
  if (ctxt == NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED, "cannot create an XML parser");
      return NULL;
    }
  /* No network and no entity substitution: an external entity or DTD is
   * never fetched, and a DOCTYPE is refused below anyway.  A parser context
   * of our own keeps the error for this call only, whatever other threads
   * parse. */
  g_autoptr(xmlDoc) doc = xmlCtxtReadMemory (ctxt, xml, (int) len, "domain.xml", NULL,
                                             XML_PARSE_NONET | XML_PARSE_NOERROR |
                                             XML_PARSE_NOWARNING);
  if (doc == NULL)
    {
      const xmlError *e = xmlCtxtGetLastError (ctxt);
      /* libxml2 quotes the input's bytes (a broken tag name), which need
       * not be UTF-8; the message goes into varlink replies, which must. */
      g_autofree char *msg = g_utf8_make_valid (e != NULL && e->message ? e->message : "cannot parse", -1);
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "invalid domain XML, line %d: %s", e != NULL ? e->line : 0, g_strstrip (msg));
      return NULL;
    }
  if (doc->intSubset != NULL || doc->extSubset != NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "invalid domain XML: a DOCTYPE is not allowed in domain XML");
      return NULL;
    }
  /* Splices are made in the input's bytes with UTF-8 text. */
  if (doc->encoding != NULL && g_ascii_strcasecmp ((const char *) doc->encoding, "UTF-8") != 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "invalid domain XML: encoding '%s' is not supported, only UTF-8",
                   (const char *) doc->encoding);
      return NULL;
    }
  return g_steal_pointer (&doc);
}

static gboolean
has_prefix_at (const char *s, gsize i, const char *p)
{
  return strncmp (s + i, p, strlen (p)) == 0;
}

/* Finds @end (a NUL-terminated marker) from @i; the document is known to be
 * well-formed, so it is there. */
static gsize
skip_past (const char *s, gsize i, const char *end)
{
  const char *p = strstr (s + i, end);
  return p != NULL ? (gsize) (p - s) + strlen (end) : strlen (s);
}

/* Locates every element.  Runs only on a document libxml2 accepted without
 * a DOCTYPE, so there are no entities that could expand into elements and
 * the n-th start tag here is the n-th element of the tree. */
static gboolean
scan (Ctx *c, GError **error)
{
  const char *s = c->xml;
  g_autoptr(GArray) stack = g_array_new (FALSE, FALSE, sizeof (guint));
  gsize i = 0;

  c->spans = g_array_new (FALSE, TRUE, sizeof (Span));
  while (i < c->len)
    {
      const char *lt = memchr (s + i, '<', c->len - i);
      if (lt == NULL)
        {
          i = c->len;
          break;
        }
      i = (gsize) (lt - s);
      if (has_prefix_at (s, i, "<!--"))
        i = skip_past (s, i + 4, "-->");
      else if (has_prefix_at (s, i, "<![CDATA["))
        i = skip_past (s, i + 9, "]]>");
      else if (has_prefix_at (s, i, "<?"))
        i = skip_past (s, i + 2, "?>");
      else if (has_prefix_at (s, i, "</"))
        {
          if (stack->len == 0)
            break;
          guint idx = g_array_index (stack, guint, stack->len - 1);
          g_array_set_size (stack, stack->len - 1);
          Span *sp = &g_array_index (c->spans, Span, idx);
          sp->etag_start = i;
          i = skip_past (s, i, ">");
          sp->end = i;
        }
      else if (s[i + 1] == '!')
        break;
      else
        {
          Span sp = { .start = i };
          gsize j = i + 1;
          while (j < c->len && s[j] != '>')
            {
              if (s[j] == '"' || s[j] == '\'')
                {
                  const char *q = strchr (s + j + 1, s[j]);
                  j = q != NULL ? (gsize) (q - s) : c->len;
                }
              j++;
            }
          if (j >= c->len)
            break;
          sp.stag_end = j + 1;
          sp.empty = s[j - 1] == '/';
          if (sp.empty)
            sp.etag_start = sp.end = sp.stag_end;
          else
            {
              guint idx = c->spans->len;
              g_array_append_val (stack, idx);
            }
          g_array_append_val (c->spans, sp);
          i = j + 1;
        }
    }
  if (stack->len != 0 || i < c->len)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "invalid domain XML: cannot locate its elements near byte %" G_GSIZE_FORMAT, i);
      return FALSE;
    }
  return TRUE;
}

static char *
qname (xmlNodePtr n)
{
  if (n->ns != NULL && n->ns->prefix != NULL)
    return g_strdup_printf ("%s:%s", (const char *) n->ns->prefix, (const char *) n->name);
  return g_strdup ((const char *) n->name);
}

/* Ties each element of the tree to its span, checking that the names agree. */
static gboolean
link_spans (Ctx *c, xmlNodePtr n, guint *next, GError **error)
{
  for (; n != NULL; n = n->next)
    {
      if (n->type != XML_ELEMENT_NODE)
        continue;
      g_autofree char *name = qname (n);
      gsize l = strlen (name);
      if (*next >= c->spans->len)
        break;
      const Span *sp = &g_array_index (c->spans, Span, *next);
      char after = c->xml[sp->start + 1 + l];
      if (strncmp (c->xml + sp->start + 1, name, l) != 0 ||
          !(after == '>' || after == '/' || g_ascii_isspace (after)))
        break;
      n->_private = GSIZE_TO_POINTER (++*next);
      if (!link_spans (c, n->children, next, error))
        return FALSE;
    }
  if (n != NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "invalid domain XML: cannot locate element <%s>", (const char *) n->name);
      return FALSE;
    }
  return TRUE;
}

static const Span *
span (Ctx *c, xmlNodePtr n)
{
  return &g_array_index (c->spans, Span, GPOINTER_TO_SIZE (n->_private) - 1);
}

/* The whitespace before @pos on its line, or NULL when something else
 * precedes it there. */
static char *
line_indent (const char *s, gsize pos)
{
  gsize i = pos;
  while (i > 0 && (s[i - 1] == ' ' || s[i - 1] == '\t'))
    i--;
  if (i == 0 || s[i - 1] == '\n')
    return g_strndup (s + i, pos - i);
  return NULL;
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

static xmlNodePtr
last_element_child (xmlNodePtr parent)
{
  xmlNodePtr last = NULL;
  for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
    if (n->type == XML_ELEMENT_NODE)
      last = n;
  return last;
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

static Ctx *
ctx_new (const char *xml, GError **error)
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
                   "domain XML of %" G_GSIZE_FORMAT " bytes is larger than the %d MiB vmemd reads",
                   len, VMEM_XML_MAX_SIZE >> 20);
      return NULL;
    }
  g_autoptr(Ctx) c = g_new0 (Ctx, 1);
  c->xml = xml;
  c->len = len;
  c->doc = parse (xml, len, error);
  if (c->doc == NULL)
    return NULL;
  xmlNodePtr root = xmlDocGetRootElement (c->doc);
  if (root == NULL || xmlStrcmp (root->name, BAD_CAST "domain") != 0 || root->ns != NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "invalid domain XML: the root element is <%s>, not <domain>",
                   root ? (const char *) root->name : "");
      return NULL;
    }
  guint next = 0;
  if (!scan (c, error) || !link_spans (c, root, &next, error))
    return NULL;
  c->splices = g_ptr_array_new_with_free_func ((GDestroyNotify) splice_free);

  /* New elements are indented like the document's own. */
  xmlNodePtr first = xmlFirstElementChild (root);
  g_autofree char *ri = line_indent (xml, span (c, root)->start);
  g_autofree char *fi = first ? line_indent (xml, span (c, first)->start) : NULL;
  if (fi != NULL && strlen (fi) > (ri ? strlen (ri) : 0))
    c->unit = g_strdup (fi + (ri ? strlen (ri) : 0));
  else
    c->unit = g_strdup ("  ");
  return g_steal_pointer (&c);
}

/* ---- splices ------------------------------------------------------------ */

static void
splice (Ctx *c, gsize start, gsize end, char *text_owned)
{
  Splice *s = g_new0 (Splice, 1);
  s->start = start;
  s->end = end;
  s->seq = c->splices->len;
  s->text = text_owned;
  g_ptr_array_add (c->splices, s);
}

static gint
splice_cmp (gconstpointer a, gconstpointer b)
{
  const Splice *x = *(const Splice *const *) a;
  const Splice *y = *(const Splice *const *) b;

  if (x->start != y->start)
    return x->start < y->start ? -1 : 1;
  /* At one position, insertions go before a replacement that starts there,
   * in the order they were made, but for those that belong to the element
   * that follows, which go last. */
  gboolean xi = x->start == x->end, yi = y->start == y->end;
  if (xi != yi)
    return xi ? -1 : 1;
  if (x->before != y->before)
    return x->before ? 1 : -1;
  return x->seq < y->seq ? -1 : (x->seq > y->seq ? 1 : 0);
}

/* The input with every splice made; the result is parsed again so that a
 * mistake here can never reach libvirt as a broken definition. */
static char *
ctx_finish (Ctx *c, GError **error)
{
  g_ptr_array_sort (c->splices, splice_cmp);
  g_autoptr(GString) out = g_string_sized_new (c->len + 1024);
  gsize pos = 0;
  for (guint i = 0; i < c->splices->len; i++)
    {
      const Splice *s = g_ptr_array_index (c->splices, i);
      if (s->start < pos)
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED,
                       "internal error: overlapping edits at byte %" G_GSIZE_FORMAT, s->start);
          return NULL;
        }
      g_string_append_len (out, c->xml + pos, (gssize) (s->start - pos));
      g_string_append (out, s->text);
      pos = s->end;
    }
  g_string_append_len (out, c->xml + pos, (gssize) (c->len - pos));

  g_autoptr(GError) local = NULL;
  g_autoptr(xmlDoc) check = parse (out->str, out->len, &local);
  if (check == NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED,
                   "internal error: the rewritten domain XML does not parse: %s", local->message);
      return NULL;
    }
  return g_string_free (g_steal_pointer (&out), FALSE);
}

static void
escape_attr (GString *out, const char *v, char quote)
{
  for (const char *p = v; *p; p++)
    switch (*p)
      {
      case '&': g_string_append (out, "&amp;"); break;
      case '<': g_string_append (out, "&lt;"); break;
      case '>': g_string_append (out, "&gt;"); break;
      /* Literal newlines and tabs would be normalised to spaces. */
      case '\n': g_string_append (out, "&#10;"); break;
      case '\r': g_string_append (out, "&#13;"); break;
      case '\t': g_string_append (out, "&#9;"); break;
      case '"':
        g_string_append (out, quote == '"' ? "&quot;" : "\"");
        break;
      case '\'':
        g_string_append (out, quote == '\'' ? "&apos;" : "'");
        break;
      default: g_string_append_c (out, *p);
      }
}

static void
append_attr (GString *out, const char *name, const char *value, char quote)
{
  /* The other quote when it saves escaping (e.g. a recorded element). */
  char other = quote == '\'' ? '"' : '\'';
  if (strchr (value, quote) != NULL && strchr (value, other) == NULL)
    quote = other;
  g_string_append_printf (out, " %s=%c", name, quote);
  escape_attr (out, value, quote);
  g_string_append_c (out, quote);
}

typedef struct {
  gsize from;        /* the whitespace before the name */
  gsize name, name_end;
  gsize value, value_end;
  char  quote;
} RawAttr;

/* The attributes of a start tag as written. */
static GArray *
raw_attrs (const char *s, const Span *sp, gsize *name_end)
{
  GArray *a = g_array_new (FALSE, TRUE, sizeof (RawAttr));
  gsize j = sp->start + 1;
  while (!g_ascii_isspace (s[j]) && s[j] != '/' && s[j] != '>')
    j++;
  *name_end = j;
  for (;;)
    {
      RawAttr r = { .from = j };
      while (g_ascii_isspace (s[j]))
        j++;
      if (s[j] == '/' || s[j] == '>' || j >= sp->stag_end)
        break;
      r.name = j;
      while (s[j] != '=' && !g_ascii_isspace (s[j]))
        j++;
      r.name_end = j;
      while (s[j] != '"' && s[j] != '\'')
        j++;
      r.quote = s[j];
      r.value = j + 1;
      r.value_end = (gsize) (strchr (s + r.value, r.quote) - s);
      j = r.value_end + 1;
      g_array_append_val (a, r);
    }
  return a;
}

/* The start tag of @n with the attributes of @kv (name, value, ...,
 * NULL; a NULL value removes one) set in place, new ones appended, quoted
 * like the tag's own.  @open makes <x/> into <x>. */
static char *
start_tag_with (Ctx *c, xmlNodePtr n, const char *const *kv, gboolean open)
{
  const Span *sp = span (c, n);
  const char *s = c->xml;
  gsize name_end;
  g_autoptr(GArray) attrs = raw_attrs (s, sp, &name_end);
  char quote = attrs->len > 0 ? g_array_index (attrs, RawAttr, 0).quote : '\'';
  gsize n_kv = 0;
  while (kv[n_kv] != NULL)
    n_kv += 2;
  g_autofree gboolean *done = g_new0 (gboolean, n_kv / 2 + 1);

  g_autoptr(GString) out = g_string_new_len (s + sp->start, (gssize) (name_end - sp->start));
  gsize pos = name_end;
  for (guint i = 0; i < attrs->len; i++)
    {
      const RawAttr *r = &g_array_index (attrs, RawAttr, i);
      g_autofree char *an = g_strndup (s + r->name, r->name_end - r->name);
      gsize k;
      for (k = 0; k < n_kv; k += 2)
        if (g_str_equal (kv[k], an))
          break;
      if (k == n_kv)
        continue;
      done[k / 2] = TRUE;
      if (kv[k + 1] == NULL)
        {
          g_string_append_len (out, s + pos, (gssize) (r->from - pos));
          pos = r->value_end + 1;
          continue;
        }
      /* A value that stays keeps its bytes: written again, escaped our
       * way, it would differ from the original, and so would a second
       * staging from the first. */
      g_autofree char *cur = prop (n, an);
      if (g_strcmp0 (cur, kv[k + 1]) == 0)
        continue;
      g_string_append_len (out, s + pos, (gssize) (r->value - pos));
      escape_attr (out, kv[k + 1], r->quote);
      pos = r->value_end;
    }
  gsize tail = attrs->len > 0 ? g_array_index (attrs, RawAttr, attrs->len - 1).value_end + 1 : name_end;
  if (tail < pos)
    tail = pos;
  g_string_append_len (out, s + pos, (gssize) (tail - pos));
  for (gsize k = 0; k < n_kv; k += 2)
    if (!done[k / 2] && kv[k + 1] != NULL)
      append_attr (out, kv[k], kv[k + 1], quote);
  if (open && sp->empty)
    g_string_append_c (out, '>');
  else
    g_string_append_len (out, s + tail, (gssize) (sp->stag_end - tail));
  return g_string_free (g_steal_pointer (&out), FALSE);
}

static void
set_attrs (Ctx *c, xmlNodePtr n, const char *const *kv)
{
  const Span *sp = span (c, n);
  splice (c, sp->start, sp->stag_end, start_tag_with (c, n, kv, FALSE));
}

/* Sets the text of @n (and the attributes of @kv, when given). */
static void
set_text (Ctx *c, xmlNodePtr n, const char *const *kv, const char *value)
{
  const Span *sp = span (c, n);
  const char *const none[] = { NULL };
  g_autoptr(GString) v = g_string_new (NULL);
  escape_attr (v, value, '\'');
  if (sp->empty)
    {
      g_autofree char *qn = qname (n);
      g_autofree char *st = start_tag_with (c, n, kv ? kv : none, TRUE);
      splice (c, sp->start, sp->end, g_strdup_printf ("%s%s</%s>", st, v->str, qn));
      return;
    }
  if (kv != NULL)
    set_attrs (c, n, kv);
  splice (c, sp->stag_end, sp->etag_start, g_string_free (g_steal_pointer (&v), FALSE));
}

/* Removes @n, with the line it stood on when it stood alone. */
static void
remove_element (Ctx *c, xmlNodePtr n)
{
  const Span *sp = span (c, n);
  gsize from = sp->start;
  while (from > 0 && (c->xml[from - 1] == ' ' || c->xml[from - 1] == '\t'))
    from--;
  if (from > 0 && c->xml[from - 1] == '\n')
    from--;
  else
    from = sp->start;
  splice (c, from, sp->end, g_strdup (""));
}

static void
replace_element (Ctx *c, xmlNodePtr n, const char *with)
{
  const Span *sp = span (c, n);
  splice (c, sp->start, sp->end, g_strdup (with));
}

/* The indentation for a new child of @parent; NULL for a document written
 * on one line. */
static char *
child_indent (Ctx *c, xmlNodePtr parent)
{
  xmlNodePtr last = last_element_child (parent);
  if (last != NULL)
    return line_indent (c->xml, span (c, last)->start);
  g_autofree char *pi = line_indent (c->xml, span (c, parent)->start);
  return pi ? g_strconcat (pi, c->unit, NULL) : NULL;
}

/* Places @text (built for indentation @ci) after @sib, on a line of its own
 * when @sib has one. */
static void
insert_after (Ctx *c, xmlNodePtr sib, const char *ci, const char *text)
{
  splice (c, span (c, sib)->end, span (c, sib)->end,
          ci ? g_strdup_printf ("\n%s%s", ci, text) : g_strdup (text));
}

/* Appends @text (built for indentation @ci) as the last child of @parent,
 * also setting the attributes of @kv on @parent when given. */
static void
append_child (Ctx *c, xmlNodePtr parent, const char *const *kv, const char *ci, const char *text)
{
  const Span *sp = span (c, parent);
  const char *const none[] = { NULL };
  g_autofree char *pi = line_indent (c->xml, sp->start);
  g_autofree char *close = ci && pi ? g_strdup_printf ("\n%s", pi) : g_strdup ("");
  g_autofree char *open = ci ? g_strdup_printf ("\n%s", ci) : g_strdup ("");

  if (sp->empty)
    {
      g_autofree char *qn = qname (parent);
      g_autofree char *st = start_tag_with (c, parent, kv ? kv : none, TRUE);
      splice (c, sp->start, sp->end,
              g_strdup_printf ("%s%s%s%s</%s>", st, open, text, close, qn));
      return;
    }
  if (kv != NULL)
    set_attrs (c, parent, kv);
  gsize q = sp->etag_start;
  while (q > sp->stag_end && g_ascii_isspace (c->xml[q - 1]))
    q--;
  if (q == sp->stag_end)
    /* Only whitespace inside: lay it out afresh. */
    splice (c, sp->stag_end, sp->etag_start, g_strconcat (open, text, close, NULL));
  else
    splice (c, q, q,
            g_strconcat (open, text, q == sp->etag_start ? close : "", NULL));
}

/* An element with one child, for indentation @ci. */
static char *
wrap (Ctx *c, const char *ci, const char *start_tag, const char *name, const char *inner)
{
  if (ci == NULL)
    return g_strdup_printf ("%s%s</%s>", start_tag, inner, name);
  return g_strdup_printf ("%s\n%s%s%s\n%s</%s>", start_tag, ci, c->unit, inner, ci, name);
}

static char *
nested_indent (Ctx *c, const char *ci)
{
  return ci ? g_strconcat (ci, c->unit, NULL) : NULL;
}

/* Places @text before @sib, on a line of its own when @sib has one, so
 * that remove_element() takes exactly it away again. */
static void
insert_before (Ctx *c, xmlNodePtr sib, const char *text)
{
  g_autofree char *ci = line_indent (c->xml, span (c, sib)->start);
  splice (c, span (c, sib)->start, span (c, sib)->start,
          ci ? g_strdup_printf ("%s\n%s", text, ci) : g_strdup (text));
  ((Splice *) g_ptr_array_index (c->splices, c->splices->len - 1))->before = TRUE;
}

typedef struct {
  guint       depth;
  const char *text;
} Line;

/* Nested elements, one a line, for indentation @ci (NULL: all on one). */
static char *
lines_text (Ctx *c, const char *ci, const Line *lines, gsize n)
{
  GString *out = g_string_new (NULL);
  for (gsize i = 0; i < n; i++)
    {
      if (i > 0 && ci != NULL)
        {
          g_string_append_c (out, '\n');
          g_string_append (out, ci);
          for (guint d = 0; d < lines[i].depth; d++)
            g_string_append (out, c->unit);
        }
      g_string_append (out, lines[i].text);
    }
  return g_string_free (out, FALSE);
}

/* ---- reading ------------------------------------------------------------ */

gboolean
vmem_xml_parse_memory_kib (const char *txt, const char *unit, guint64 *kib, GError **error)
{
  guint64 n, scale = 1024;

  if (txt == NULL || !g_ascii_string_to_unsigned (txt, 10, 0, G_MAXUINT64, &n, NULL))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "invalid memory size '%s': not a whole number", txt ? txt : "");
      return FALSE;
    }
  /* libvirt's scaled integers (virScaleInteger): a power letter, then
   * nothing or "iB" for 1024, "B" for 1000. */
  if (unit == NULL || *unit == '\0')
    scale = 1024;
  else if (g_ascii_strcasecmp (unit, "b") == 0 || g_ascii_strcasecmp (unit, "byte") == 0 ||
           g_ascii_strcasecmp (unit, "bytes") == 0)
    scale = 1;
  else
    {
      const char *powers = "kmgtpe";
      const char *p = strchr (powers, g_ascii_tolower (unit[0]));
      guint64 base = 0;
      if (p != NULL && unit[0] != '\0')
        {
          if (unit[1] == '\0' || g_ascii_strcasecmp (unit + 1, "iB") == 0)
            base = 1024;
          else if (g_ascii_strcasecmp (unit + 1, "B") == 0)
            base = 1000;
        }
      if (base == 0)
        {
          g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                       "unknown memory unit '%s'", unit);
          return FALSE;
        }
      scale = 1;
      for (const char *q = powers; q <= p; q++)
        scale *= base;
    }
  if (n > G_MAXUINT64 / scale)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "memory size %s %s is too large", txt, unit ? unit : "KiB");
      return FALSE;
    }
  guint64 bytes = n * scale;
  *kib = bytes / 1024 + (bytes % 1024 != 0);
  return TRUE;
}

static gboolean
memory_kib (xmlNodePtr n, guint64 *kib, GError **error)
{
  g_autofree char *t = text (n);
  g_autofree char *u = prop (n, "unit");
  if (!vmem_xml_parse_memory_kib (t, u, kib, error))
    {
      g_prefix_error (error, "invalid domain XML: <%s>: ", (const char *) n->name);
      return FALSE;
    }
  return TRUE;
}

static guint
parse_uint (const char *s)
{
  guint64 v = 0;
  if (s == NULL || !g_ascii_string_to_unsigned (s, 10, 0, G_MAXUINT, &v, NULL))
    return 0;
  return (guint) v;
}

static gboolean
is_virtio_balloon (const char *model)
{
  return g_strcmp0 (model, "virtio") == 0 || g_strcmp0 (model, "virtio-transitional") == 0 ||
         g_strcmp0 (model, "virtio-non-transitional") == 0;
}

static void
read_plan (VmemDomainInfo *i, xmlNodePtr plan)
{
  g_autofree char *d = prop (plan, "demand_mib");
  g_autofree char *t = prop (plan, "time");
  g_autofree char *pre = prop (plan, "prealloc");
  g_autofree char *peers = prop (plan, "peers");
  guint64 v = 0;

  i->has_plan = TRUE;
  if (d != NULL && g_ascii_string_to_unsigned (d, 10, 0, G_MAXUINT64, &v, NULL))
    i->plan_demand_mib = v;
  i->plan_source = prop (plan, "source");
  i->plan_workload = prop (plan, "workload");
  i->plan_mode = prop (plan, "mode");
  i->plan_prealloc = g_strcmp0 (pre, "yes") == 0;
  i->plan_peers = parse_uint (peers);
  g_autoptr(GDateTime) dt = t ? g_date_time_new_from_iso8601 (t, NULL) : NULL;
  i->plan_time = dt ? g_date_time_to_unix (dt) : 0;
}

static gboolean
read_memory (VmemDomainInfo *i, xmlNodePtr root, GError **error)
{
  guint64 kib = 0;
  xmlNodePtr mem = child (root, "memory");
  if (mem != NULL)
    {
      if (!memory_kib (mem, &kib, error))
        return FALSE;
      i->memory_kib = kib;
      i->memory_mib = kib / 1024;
    }
  xmlNodePtr cur = child (root, "currentMemory");
  if (cur != NULL)
    {
      if (!memory_kib (cur, &kib, error))
        return FALSE;
      i->current_kib = kib;
    }
  else
    i->current_kib = i->memory_kib;
  i->current_mib = i->current_kib / 1024;
  xmlNodePtr maxm = child (root, "maxMemory");
  if (maxm != NULL)
    {
      g_autofree char *slots = prop (maxm, "slots");
      if (!memory_kib (maxm, &kib, error))
        return FALSE;
      i->max_memory_mib = kib / 1024;
      i->max_memory_slots = parse_uint (slots);
    }

  xmlNodePtr backing = child (root, "memoryBacking");
  xmlNodePtr alloc = child (backing, "allocation");
  i->allocation_mode = prop (alloc, "mode");
  i->prealloc = g_strcmp0 (i->allocation_mode, "immediate") == 0;
  i->hugepages = child (backing, "hugepages") != NULL;
  i->memory_source = prop (child (backing, "source"), "type");
  i->memory_access = prop (child (backing, "access"), "mode");

  xmlNodePtr numa = child (child (root, "cpu"), "numa");
  for (xmlNodePtr n = numa ? numa->children : NULL; n; n = n->next)
    if (n->type == XML_ELEMENT_NODE && xmlStrcmp (n->name, BAD_CAST "cell") == 0)
      {
        g_autofree char *m = prop (n, "memory");
        g_autofree char *u = prop (n, "unit");
        i->numa_cells++;
        if (m != NULL && !vmem_xml_parse_memory_kib (m, u, &kib, error))
          {
            g_prefix_error (error, "invalid domain XML: <cell memory>: ");
            return FALSE;
          }
        i->numa_memory_mib += m ? kib / 1024 : 0;
      }
  return TRUE;
}

static gboolean
read_devices (VmemDomainInfo *i, xmlNodePtr root, GError **error)
{
  xmlNodePtr devices = child (root, "devices");
  for (xmlNodePtr n = devices ? devices->children : NULL; n; n = n->next)
    {
      if (n->type != XML_ELEMENT_NODE || n->ns != NULL)
        continue;
      if (xmlStrcmp (n->name, BAD_CAST "memballoon") == 0 && !i->has_balloon)
        {
          g_autofree char *ad = prop (n, "autodeflate");
          g_autofree char *fpr = prop (n, "freePageReporting");
          g_autofree char *period = prop (child (n, "stats"), "period");
          i->has_balloon = TRUE;
          i->balloon_model = prop (n, "model");
          i->balloon_autodeflate = g_strcmp0 (ad, "on") == 0;
          i->balloon_free_page_reporting = g_strcmp0 (fpr, "on") == 0;
          i->balloon_stats_period = parse_uint (period);
        }
      else if (xmlStrcmp (n->name, BAD_CAST "memory") == 0)
        {
          g_autofree char *model = prop (n, "model");
          i->memory_devices++;
          if (g_strcmp0 (model, "virtio-mem") != 0)
            continue;
          xmlNodePtr target = child (n, "target");
          xmlNodePtr size = child (target, "size");
          xmlNodePtr req = child (target, "requested");
          guint64 kib = 0;
          i->virtio_mem_devices++;
          if (size != NULL && !memory_kib (size, &kib, error))
            return FALSE;
          i->virtio_mem_size_mib += size ? kib / 1024 : 0;
          if (req != NULL && !memory_kib (req, &kib, error))
            return FALSE;
          i->virtio_mem_requested_mib += req ? kib / 1024 : 0;
        }
    }
  return TRUE;
}

/* vmemd's virtio-mem device among @devices' children. */
static xmlNodePtr
vmemd_device (xmlNodePtr devices)
{
  for (xmlNodePtr n = devices ? devices->children : NULL; n; n = n->next)
    {
      if (n->type != XML_ELEMENT_NODE || n->ns != NULL ||
          xmlStrcmp (n->name, BAD_CAST "memory") != 0)
        continue;
      g_autofree char *alias = prop (child (n, "alias"), "name");
      if (g_strcmp0 (alias, VMEM_XML_VIRTIO_MEM_ALIAS) == 0)
        return n;
    }
  return NULL;
}

/* @text, an element recorded in the plan, parsed on its own: it must be
 * one <@name>. */
static xmlDocPtr
parse_orig (const char *text, const char *name, const char *attr, GError **error)
{
  g_autoptr(GError) local = NULL;
  g_autoptr(xmlDoc) d = parse (text, strlen (text), &local);
  xmlNodePtr r = d ? xmlDocGetRootElement (d) : NULL;
  if (r == NULL || xmlStrcmp (r->name, BAD_CAST name) != 0 || r->ns != NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "the plan's %s is not a <%s> element%s%s", attr, name,
                   local ? ": " : "", local ? local->message : "");
      return NULL;
    }
  return g_steal_pointer (&d);
}

/* The top in virtio-mem mode: the original <memory>, which the plan
 * element holds once a staging in that mode replaced it. */
static gboolean
virtio_mem_top (xmlNodePtr root, xmlNodePtr plan_el, guint64 *kib, GError **error)
{
  g_autofree char *orig = prop (plan_el, "orig_memory");
  if (orig == NULL)
    {
      xmlNodePtr mem = child (root, "memory");
      *kib = 0;
      return mem == NULL || memory_kib (mem, kib, error);
    }
  g_autoptr(xmlDoc) d = parse_orig (orig, "memory", "orig_memory", error);
  return d != NULL && memory_kib (xmlDocGetRootElement (d), kib, error);
}

static char *
virtio_mem_unmanageable (const VmemDomainInfo *i, xmlNodePtr root, xmlNodePtr plan)
{
  xmlNodePtr devices = child (root, "devices");
  guint own_devices = i->memory_devices;
  if (i->virtio_mem_staged && vmemd_device (devices) != NULL)
    own_devices--;

  if (i->memory_kib == 0)
    return g_strdup ("the domain has no <memory>");
  if (i->hugepages)
    return g_strdup ("its memory is backed by hugepages, which may be larger than the 2 MiB "
                     "blocks vmemd's virtio-mem device plugs");
  if (!i->virtio_mem_staged && i->numa_cells > 0)
    return g_strdup ("it has guest NUMA cells of its own (<cpu><numa>), and virtio-mem mode "
                     "lays out the one cell itself");
  if (i->virtio_mem_staged && i->numa_cells != 1)
    return g_strdup ("it has guest NUMA cells besides the one vmemd staged");
  if (own_devices > 0)
    return g_strdup ("it has memory devices of its own (<devices><memory>), and virtio-mem "
                     "mode adds its own device");

  g_autoptr(GError) error = NULL;
  guint64 top = 0;
  VmemVirtioMemLayout l;
  if (!virtio_mem_top (root, plan, &top, &error) ||
      !vmem_xml_virtio_mem_layout (top, top, &l, &error))
    return g_strdup (error->message);
  return NULL;
}

static VmemDomainInfo *
info_from_doc (xmlDocPtr doc, GError **error)
{
  xmlNodePtr root = xmlDocGetRootElement (doc);
  g_autoptr(VmemDomainInfo) i = g_new0 (VmemDomainInfo, 1);

  i->type = prop (root, "type");
  i->name = text (child (root, "name"));
  i->uuid = text (child (root, "uuid"));
  if (i->name == NULL || *i->name == '\0')
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "invalid domain XML: no <name>");
      return NULL;
    }
  if (!read_memory (i, root, error) || !read_devices (i, root, error))
    return NULL;
  g_autofree char *vcpu = text (child (root, "vcpu"));
  i->vcpus = vcpu ? parse_uint (vcpu) : 1;

  xmlNodePtr meta = child (root, "metadata");
  i->workload = prop (child_ns (meta, "workload", VMEM_XML_NS_WORKLOAD), "name");
  if (i->workload != NULL && *i->workload == '\0')
    g_clear_pointer (&i->workload, g_free);
  xmlNodePtr plan = child_ns (meta, "plan", VMEM_XML_NS_PLAN);
  if (plan != NULL)
    read_plan (i, plan);

  i->virtio_mem_staged = plan != NULL && xmlHasNsProp (plan, BAD_CAST "orig_memory", NULL);

  i->manageable = TRUE;
  if (!vmem_xml_type_is_managed (i->type))
    i->unmanageable_reason =
      i->type != NULL
        ? g_strdup_printf ("it is a type='%s' domain, and vmemd manages QEMU and KVM domains only",
                           i->type)
        : g_strdup ("its <domain> names no type, and vmemd manages QEMU and KVM domains only");
  else if (i->memory_kib == 0)
    i->unmanageable_reason = g_strdup ("the domain has no <memory>");
  else if (i->has_balloon && i->balloon_model == NULL)
    i->unmanageable_reason = g_strdup ("its <memballoon> has no model");
  else if (i->has_balloon && !is_virtio_balloon (i->balloon_model))
    i->unmanageable_reason = g_strdup_printf ("its <memballoon model='%s'> is not a virtio "
                                              "balloon, which balloon mode needs to set the "
                                              "memory target (virtio-mem mode needs none)",
                                              i->balloon_model);
  i->manageable = i->unmanageable_reason == NULL;
  i->virtio_mem_unmanageable_reason = virtio_mem_unmanageable (i, root, plan);
  return g_steal_pointer (&i);
}

const char *
vmem_xml_unmanageable_reason (const VmemDomainInfo *info, VmemMode mode)
{
  g_return_val_if_fail (info != NULL, NULL);

  /* No mode makes another hypervisor's domain vmemd's. */
  if (!vmem_xml_type_is_managed (info->type))
    return info->unmanageable_reason;
  if (mode == VMEM_MODE_VIRTIO_MEM)
    return info->virtio_mem_unmanageable_reason;
  return info->manageable ? NULL : info->unmanageable_reason;
}

gboolean
vmem_xml_type_is_managed (const char *type)
{
  return g_strcmp0 (type, "kvm") == 0 || g_strcmp0 (type, "qemu") == 0 ||
         g_strcmp0 (type, "test") == 0;
}

VmemDomainInfo *
vmem_xml_parse_domain (const char *xml, GError **error)
{
  g_autoptr(Ctx) c = ctx_new (xml, error);
  if (c == NULL)
    return NULL;
  return info_from_doc (c->doc, error);
}

/* ---- staging -------------------------------------------------------------- */

static void
stage_current (Ctx *c, xmlNodePtr root, guint64 kib)
{
  g_autofree char *v = g_strdup_printf ("%" G_GUINT64_FORMAT, kib);
  const char *const unit[] = { "unit", "KiB", NULL };
  xmlNodePtr cur = child (root, "currentMemory");

  if (cur != NULL)
    {
      set_text (c, cur, unit, v);
      return;
    }
  xmlNodePtr mem = child (root, "memory");
  g_autofree char *ci = line_indent (c->xml, span (c, mem)->start);
  g_autofree char *el = g_strdup_printf ("<currentMemory unit='KiB'>%s</currentMemory>", v);
  insert_after (c, mem, ci, el);
}

static void
add_allocation (Ctx *c, xmlNodePtr root)
{
  const char *el = "<allocation mode='immediate'/>";
  xmlNodePtr backing = child (root, "memoryBacking");
  xmlNodePtr alloc = child (backing, "allocation");

  if (alloc != NULL)
    {
      /* Other attributes (threads) stay. */
      const char *const kv[] = { "mode", "immediate", NULL };
      set_attrs (c, alloc, kv);
    }
  else if (backing != NULL)
    {
      g_autofree char *ci = child_indent (c, backing);
      append_child (c, backing, NULL, ci, el);
    }
  else
    {
      xmlNodePtr anchor = child (root, "currentMemory") ? child (root, "currentMemory")
                                                        : child (root, "memory");
      g_autofree char *ci = line_indent (c->xml, span (c, anchor)->start);
      g_autofree char *w = wrap (c, ci, "<memoryBacking>", "memoryBacking", el);
      insert_after (c, anchor, ci, w);
    }
}

static gboolean
only_element_child (xmlNodePtr parent, xmlNodePtr n)
{
  return xmlFirstElementChild (parent) == n && xmlNextElementSibling (n) == NULL;
}

/* Takes preallocation back to what the plan element recorded: only what
 * vmemd did is undone, an administrator's own <allocation> stays. */
static void
undo_allocation (Ctx *c, xmlNodePtr root, xmlNodePtr plan_el)
{
  xmlNodePtr backing = child (root, "memoryBacking");
  xmlNodePtr alloc = child (backing, "allocation");
  g_autofree char *orig = prop (plan_el, "orig_allocation");
  g_autofree char *orig_backing = prop (plan_el, "orig_memorybacking");

  if (alloc == NULL || orig == NULL)
    return;
  if (g_str_equal (orig, "none"))
    {
      if (g_strcmp0 (orig_backing, "none") == 0 && only_element_child (backing, alloc))
        remove_element (c, backing);
      else
        remove_element (c, alloc);
      return;
    }
  const char *const kv[] = { "mode", g_str_equal (orig, "unset") ? NULL : orig, NULL };
  set_attrs (c, alloc, kv);
}

static void
stage_balloon (Ctx *c, xmlNodePtr root, guint stats_period)
{
  const char *const kv[] = { "autodeflate", "on", "freePageReporting", "on", NULL };
  xmlNodePtr devices = child (root, "devices");
  xmlNodePtr balloon = child (devices, "memballoon");
  xmlNodePtr stats = child (balloon, "stats");
  guint period = stats_period ? stats_period : VMEM_XML_STATS_PERIOD;
  g_autofree char *p = g_strdup_printf ("%u", period);
  g_autofree char *stats_el = g_strdup_printf ("<stats period='%u'/>", period);

  if (balloon == NULL)
    {
      xmlNodePtr parent = devices ? devices : root;
      g_autofree char *ci = child_indent (c, parent);
      g_autofree char *bi = devices ? g_strdup (ci) : nested_indent (c, ci);
      g_autofree char *b = wrap (c, bi, "<memballoon model='virtio' autodeflate='on' "
                                 "freePageReporting='on'>", "memballoon", stats_el);
      g_autofree char *d = devices ? NULL : wrap (c, ci, "<devices>", "devices", b);
      append_child (c, parent, NULL, ci, devices ? b : d);
      return;
    }
  if (stats != NULL)
    {
      set_attrs (c, balloon, kv);
      if (stats_period != 0)
        {
          const char *const pk[] = { "period", p, NULL };
          set_attrs (c, stats, pk);
        }
      return;
    }
  g_autofree char *ci = child_indent (c, balloon);
  append_child (c, balloon, kv, ci, stats_el);
}

/* ---- virtio-mem form ------------------------------------------------------ */

static guint64
round_up_to (guint64 v, guint64 m)
{
  return v % m == 0 ? v : v - v % m + m;
}

static guint64
round_down_to (guint64 v, guint64 m)
{
  return v - v % m;
}

gboolean
vmem_xml_virtio_mem_layout (guint64 top_kib, guint64 demand_kib, VmemVirtioMemLayout *l,
                            GError **error)
{
  const guint64 block = VMEM_XML_VIRTIO_MEM_BLOCK_KIB;
  const guint64 unit = VMEM_XML_VIRTIO_MEM_ALIGN_MIB * 1024;
  const guint64 min_base = VMEM_XML_VIRTIO_MEM_MIN_BASE_MIB * 1024;
  guint64 top = round_down_to (top_kib, block);

  g_return_val_if_fail (l != NULL, FALSE);

  *l = (VmemVirtioMemLayout){ .top_kib = top };
  if (top < min_base + unit)
    {
      g_autofree char *have = vmem_size_format (top_kib / 1024);
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE,
                   "its <memory> of %s is below the %d MiB virtio-mem mode needs: a base of "
                   "%d MiB and a device of %d MiB",
                   have, VMEM_XML_VIRTIO_MEM_MIN_BASE_MIB + VMEM_XML_VIRTIO_MEM_ALIGN_MIB,
                   VMEM_XML_VIRTIO_MEM_MIN_BASE_MIB, VMEM_XML_VIRTIO_MEM_ALIGN_MIB);
      return FALSE;
    }
  /* What the guest gets at boot: the demand, within the base's bounds. */
  guint64 least = MAX (min_base, round_up_to (top / 4 + (top % 4 != 0), block));
  guint64 want = demand_kib >= top ? top : round_up_to (demand_kib, block);
  want = MAX (want, least);
  l->size_kib = round_down_to (top - want, unit);
  if (l->size_kib == 0)
    {
      /* No room for a device above the demand: the device sits one unit
       * below the top and is partly plugged from the start. */
      l->size_kib = unit;
      l->base_kib = top - unit;
      l->requested_kib = want - l->base_kib;
    }
  else
    l->base_kib = want;
  l->memory_kib = l->base_kib + l->size_kib;
  return TRUE;
}

static char *
kib_text (guint64 kib)
{
  return g_strdup_printf ("%" G_GUINT64_FORMAT, kib);
}

/* Sets a memory size element to @kib, in KiB; one that says so already,
 * in whatever unit, is left as it is. */
static void
set_size (Ctx *c, xmlNodePtr n, guint64 kib)
{
  const char *const unit[] = { "unit", "KiB", NULL };
  guint64 now = 0;
  if (n == NULL || (memory_kib (n, &now, NULL) && now == kib))
    return;
  g_autofree char *v = kib_text (kib);
  set_text (c, n, unit, v);
}

/* What libvirt formats before <cpu>, which goes after the last of them. */
static xmlNodePtr
cpu_anchor (xmlNodePtr root)
{
  static const char *const before[] = {
    "name", "uuid", "genid", "title", "description", "metadata", "maxMemory", "memory",
    "currentMemory", "blkiotune", "memtune", "memoryBacking", "vcpu", "vcpus", "iothreads",
    "iothreadids", "defaultiothread", "cputune", "numatune", "resource", "sysinfo",
    "bootloader", "bootloader_args", "os", "idmap", "features",
  };
  xmlNodePtr anchor = NULL;
  for (xmlNodePtr n = root->children; n; n = n->next)
    for (gsize k = 0; k < G_N_ELEMENTS (before); k++)
      if (n->type == XML_ELEMENT_NODE && n->ns == NULL &&
          xmlStrcmp (n->name, BAD_CAST before[k]) == 0)
        anchor = n;
  return anchor;
}

static void
stage_max_memory (Ctx *c, xmlNodePtr root, guint64 total_kib, guint64 orig_kib, guint orig_slots)
{
  xmlNodePtr mem = child (root, "memory");
  xmlNodePtr maxm = child (root, "maxMemory");
  /* libvirt wants <maxMemory> with slots for any memory device, at least
   * the total memory; an administrator's larger one stays. */
  guint64 kib = MAX (orig_kib, total_kib);
  guint slots = MAX (orig_slots, 1);
  g_autofree char *v = kib_text (kib);
  g_autofree char *sl = g_strdup_printf ("%u", slots);

  if (maxm == NULL)
    {
      g_autofree char *el = g_strdup_printf ("<maxMemory slots='%u' unit='KiB'>%s</maxMemory>",
                                             slots, v);
      insert_before (c, mem, el);
      return;
    }
  g_autofree char *now_slots = prop (maxm, "slots");
  guint64 now = 0;
  if (memory_kib (maxm, &now, NULL) && now == kib && parse_uint (now_slots) == slots)
    return;
  const char *const kv[] = { "slots", sl, "unit", "KiB", NULL };
  set_text (c, maxm, kv, v);
}

static void
stage_numa (Ctx *c, xmlNodePtr root, guint64 base_kib, guint vcpus)
{
  g_autofree char *cpus = vcpus > 1 ? g_strdup_printf ("0-%u", vcpus - 1) : g_strdup ("0");
  g_autofree char *base = kib_text (base_kib);
  g_autofree char *cell_el = g_strdup_printf ("<cell id='0' cpus='%s' memory='%s' unit='KiB'/>",
                                              cpus, base);
  xmlNodePtr cpu = child (root, "cpu");
  xmlNodePtr numa = child (cpu, "numa");
  xmlNodePtr cell = child (numa, "cell");

  if (cell != NULL)
    {
      const char *const kv[] = { "cpus", cpus, "memory", base, "unit", "KiB", NULL };
      set_attrs (c, cell, kv);
    }
  else if (numa != NULL)
    {
      g_autofree char *ci = child_indent (c, numa);
      append_child (c, numa, NULL, ci, cell_el);
    }
  else if (cpu != NULL)
    {
      g_autofree char *ci = child_indent (c, cpu);
      g_autofree char *n = wrap (c, ci, "<numa>", "numa", cell_el);
      append_child (c, cpu, NULL, ci, n);
    }
  else
    {
      xmlNodePtr anchor = cpu_anchor (root);
      g_autofree char *ci = line_indent (c->xml, span (c, anchor)->start);
      g_autofree char *ni = nested_indent (c, ci);
      g_autofree char *n = wrap (c, ni, "<numa>", "numa", cell_el);
      g_autofree char *w = wrap (c, ci, "<cpu>", "cpu", n);
      insert_after (c, anchor, ci, w);
    }
}

static void
stage_device (Ctx *c, xmlNodePtr root, const VmemVirtioMemLayout *l)
{
  xmlNodePtr devices = child (root, "devices");
  xmlNodePtr dev = vmemd_device (devices);

  if (dev != NULL)
    {
      xmlNodePtr target = child (dev, "target");
      set_size (c, child (target, "size"), l->size_kib);
      set_size (c, child (target, "block"), VMEM_XML_VIRTIO_MEM_BLOCK_KIB);
      set_size (c, child (target, "requested"), l->requested_kib);
      return;
    }
  g_autofree char *size = g_strdup_printf ("<size unit='KiB'>%" G_GUINT64_FORMAT "</size>",
                                           l->size_kib);
  g_autofree char *block = g_strdup_printf ("<block unit='KiB'>%d</block>",
                                            VMEM_XML_VIRTIO_MEM_BLOCK_KIB);
  g_autofree char *req = g_strdup_printf ("<requested unit='KiB'>%" G_GUINT64_FORMAT
                                          "</requested>", l->requested_kib);
  const Line lines[] = {
    { 0, "<memory model='virtio-mem'>" },
    { 1, "<target>" },
    { 2, size },
    { 2, "<node>0</node>" },
    { 2, block },
    { 2, req },
    { 1, "</target>" },
    { 1, "<alias name='" VMEM_XML_VIRTIO_MEM_ALIAS "'/>" },
    { 0, "</memory>" },
  };
  xmlNodePtr parent = devices ? devices : root;
  g_autofree char *ci = child_indent (c, parent);
  g_autofree char *di = devices ? g_strdup (ci) : nested_indent (c, ci);
  g_autofree char *d = lines_text (c, di, lines, G_N_ELEMENTS (lines));
  g_autofree char *w = devices ? NULL : wrap (c, ci, "<devices>", "devices", d);
  append_child (c, parent, NULL, ci, devices ? d : w);
}

/* The original <maxMemory>: from the plan once staged, else the XML's. */
static gboolean
orig_max_memory (xmlNodePtr root, xmlNodePtr plan_el, guint64 *kib, guint *slots,
                 GError **error)
{
  g_autofree char *orig = prop (plan_el, "orig_maxmemory");
  g_autoptr(xmlDoc) d = NULL;
  xmlNodePtr maxm = NULL;

  *kib = 0;
  *slots = 0;
  if (orig == NULL || !xmlHasNsProp (plan_el, BAD_CAST "orig_memory", NULL))
    maxm = child (root, "maxMemory");
  else if (!g_str_equal (orig, "none"))
    {
      d = parse_orig (orig, "maxMemory", "orig_maxmemory", error);
      if (d == NULL)
        return FALSE;
      maxm = xmlDocGetRootElement (d);
    }
  if (maxm == NULL)
    return TRUE;
  g_autofree char *sl = prop (maxm, "slots");
  *slots = parse_uint (sl);
  return memory_kib (maxm, kib, error);
}

/* The originals of a virtio-mem staging, checked before anything changes. */
static gboolean
check_virtio_originals (xmlNodePtr plan_el, GError **error)
{
  g_autofree char *mem = prop (plan_el, "orig_memory");
  g_autofree char *maxm = prop (plan_el, "orig_maxmemory");
  g_autofree char *cpu = prop (plan_el, "orig_cpu");
  g_autoptr(xmlDoc) a = NULL, b = NULL, d = NULL;
  guint64 kib = 0;

  if (mem == NULL)
    return TRUE;
  a = parse_orig (mem, "memory", "orig_memory", error);
  if (a == NULL || !memory_kib (xmlDocGetRootElement (a), &kib, error))
    return FALSE;
  if (maxm != NULL && !g_str_equal (maxm, "none") &&
      (b = parse_orig (maxm, "maxMemory", "orig_maxmemory", error)) == NULL)
    return FALSE;
  if (cpu != NULL && !g_str_equal (cpu, "none") && !g_str_equal (cpu, "present") &&
      (d = parse_orig (cpu, "cpu", "orig_cpu", error)) == NULL)
    return FALSE;
  return TRUE;
}

/* Puts back what a virtio-mem staging changed, but <currentMemory> and
 * preallocation (the plan's other originals), and, when @device, takes
 * vmemd's device away. */
static void
undo_virtio_mem (Ctx *c, xmlNodePtr root, xmlNodePtr plan_el, gboolean device)
{
  g_autofree char *orig_mem = prop (plan_el, "orig_memory");
  g_autofree char *orig_max = prop (plan_el, "orig_maxmemory");
  g_autofree char *orig_cpu = prop (plan_el, "orig_cpu");
  xmlNodePtr mem = child (root, "memory");
  xmlNodePtr maxm = child (root, "maxMemory");
  xmlNodePtr cpu = child (root, "cpu");
  xmlNodePtr numa = child (cpu, "numa");

  if (orig_mem == NULL)
    return;
  if (mem != NULL)
    replace_element (c, mem, orig_mem);
  if (g_strcmp0 (orig_max, "none") == 0 && maxm != NULL)
    remove_element (c, maxm);
  else if (orig_max != NULL && !g_str_equal (orig_max, "none"))
    {
      if (maxm != NULL)
        replace_element (c, maxm, orig_max);
      else if (mem != NULL)
        insert_before (c, mem, orig_max);
    }
  if (numa != NULL)
    {
      /* An administrator's later additions to <cpu> stay. */
      gboolean alone = only_element_child (cpu, numa);
      if (alone && g_strcmp0 (orig_cpu, "none") == 0)
        remove_element (c, cpu);
      else if (alone && orig_cpu != NULL && !g_str_equal (orig_cpu, "present"))
        replace_element (c, cpu, orig_cpu);
      else
        remove_element (c, numa);
    }
  xmlNodePtr dev = device ? vmemd_device (child (root, "devices")) : NULL;
  if (dev != NULL)
    remove_element (c, dev);
}

/* What the first staging in virtio-mem mode replaces. */
static void
record_virtio_originals (Ctx *c, xmlNodePtr root, GPtrArray *kv)
{
  xmlNodePtr mem = child (root, "memory");
  xmlNodePtr maxm = child (root, "maxMemory");
  xmlNodePtr cpu = child (root, "cpu");
  const Span *sp;

  sp = span (c, mem);
  g_ptr_array_add (kv, g_strdup ("orig_memory"));
  g_ptr_array_add (kv, g_strndup (c->xml + sp->start, sp->end - sp->start));
  g_ptr_array_add (kv, g_strdup ("orig_maxmemory"));
  if (maxm != NULL)
    {
      sp = span (c, maxm);
      g_ptr_array_add (kv, g_strndup (c->xml + sp->start, sp->end - sp->start));
    }
  else
    g_ptr_array_add (kv, g_strdup ("none"));
  g_ptr_array_add (kv, g_strdup ("orig_cpu"));
  if (cpu == NULL)
    g_ptr_array_add (kv, g_strdup ("none"));
  else if (xmlFirstElementChild (cpu) != NULL)
    g_ptr_array_add (kv, g_strdup ("present"));
  else
    {
      sp = span (c, cpu);
      g_ptr_array_add (kv, g_strndup (c->xml + sp->start, sp->end - sp->start));
    }
}

static char *
format_time (gint64 t)
{
  g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc (t);
  return dt ? g_date_time_format (dt, "%Y-%m-%dT%H:%M:%SZ") : g_strdup ("");
}

/* What the first staging replaces, for vmem_xml_restore(). */
static void
record_originals (Ctx *c, xmlNodePtr root, GPtrArray *kv)
{
  xmlNodePtr cur = child (root, "currentMemory");
  xmlNodePtr backing = child (root, "memoryBacking");
  xmlNodePtr alloc = child (backing, "allocation");
  xmlNodePtr balloon = child (child (root, "devices"), "memballoon");
  guint64 kib = 0;

  g_ptr_array_add (kv, g_strdup ("orig_current_kib"));
  if (cur != NULL && memory_kib (cur, &kib, NULL))
    g_ptr_array_add (kv, g_strdup_printf ("%" G_GUINT64_FORMAT, kib));
  else
    g_ptr_array_add (kv, g_strdup ("none"));
  g_ptr_array_add (kv, g_strdup ("orig_allocation"));
  g_autofree char *mode = prop (alloc, "mode");
  g_ptr_array_add (kv, g_strdup (alloc == NULL ? "none" : mode ? mode : "unset"));
  g_ptr_array_add (kv, g_strdup ("orig_memorybacking"));
  g_ptr_array_add (kv, g_strdup (backing ? "present" : "none"));
  xmlNodePtr meta = child (root, "metadata");
  if (meta != NULL && xmlFirstElementChild (meta) == NULL)
    {
      g_ptr_array_add (kv, g_strdup ("orig_metadata"));
      g_ptr_array_add (kv, g_strdup ("empty"));
    }
  if (child (root, "devices") == NULL)
    {
      g_ptr_array_add (kv, g_strdup ("orig_devices"));
      g_ptr_array_add (kv, g_strdup ("none"));
    }
  g_ptr_array_add (kv, g_strdup ("orig_memballoon"));
  if (balloon != NULL)
    {
      const Span *sp = span (c, balloon);
      g_ptr_array_add (kv, g_strndup (c->xml + sp->start, sp->end - sp->start));
    }
  else
    g_ptr_array_add (kv, g_strdup ("none"));
}

static void
stage_plan_element (Ctx *c, xmlNodePtr root, const VmemPlan *plan, guint64 demand_kib)
{
  xmlNodePtr meta = child (root, "metadata");
  xmlNodePtr plan_el = child_ns (meta, "plan", VMEM_XML_NS_PLAN);
  g_autoptr(GPtrArray) kv = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *cur = prop (child (child (child (root, "devices"), "memballoon"), "stats"),
                               "period");
  guint own = parse_uint (cur);
  /* In virtio-mem mode the balloon is left as it is: its own period, 0 for
   * none. */
  guint period = plan->mode == VMEM_MODE_VIRTIO_MEM ? own
                 : plan->stats_period != 0          ? plan->stats_period
                 : own != 0                         ? own
                                                    : VMEM_XML_STATS_PERIOD;
  g_ptr_array_add (kv, g_strdup ("workload"));
  g_ptr_array_add (kv, g_strdup (plan->workload));
  g_ptr_array_add (kv, g_strdup ("mode"));
  g_ptr_array_add (kv, g_strdup (vmem_mode_to_string (plan->mode)));
  g_ptr_array_add (kv, g_strdup ("demand_mib"));
  g_ptr_array_add (kv, g_strdup_printf ("%" G_GUINT64_FORMAT, demand_kib / 1024));
  g_ptr_array_add (kv, g_strdup ("source"));
  g_ptr_array_add (kv, g_strdup (plan->source));
  g_ptr_array_add (kv, g_strdup ("peers"));
  g_ptr_array_add (kv, g_strdup_printf ("%u", plan->peers));
  g_ptr_array_add (kv, g_strdup ("prealloc"));
  g_ptr_array_add (kv, g_strdup (plan->prealloc ? "yes" : "no"));
  g_ptr_array_add (kv, g_strdup ("stats_period"));
  g_ptr_array_add (kv, g_strdup_printf ("%u", period));
  g_ptr_array_add (kv, g_strdup ("time"));
  g_ptr_array_add (kv, format_time (plan->time));

  gboolean virtio_mem = plan->mode == VMEM_MODE_VIRTIO_MEM;
  if (plan_el != NULL)
    {
      /* A re-stage: the originals stay as the first staging recorded them;
       * those of the virtio-mem form come with the first staging in that
       * mode, and go when a staging in another mode put them back. */
      static const char *const virtio_orig[] = { "orig_memory", "orig_maxmemory", "orig_cpu" };
      gboolean staged = xmlHasNsProp (plan_el, BAD_CAST "orig_memory", NULL) != NULL;
      if (virtio_mem && !staged)
        record_virtio_originals (c, root, kv);
      else if (!virtio_mem && staged)
        for (gsize k = 0; k < G_N_ELEMENTS (virtio_orig); k++)
          {
            g_ptr_array_add (kv, g_strdup (virtio_orig[k]));
            g_ptr_array_add (kv, NULL);
          }
      g_ptr_array_add (kv, NULL);
      set_attrs (c, plan_el, (const char *const *) kv->pdata);
      return;
    }
  record_originals (c, root, kv);
  if (virtio_mem)
    record_virtio_originals (c, root, kv);

  g_autoptr(GString) el = g_string_new ("<" VMEM_XML_PLAN_KEY ":plan xmlns:" VMEM_XML_PLAN_KEY
                                        "='" VMEM_XML_NS_PLAN "'");
  for (guint i = 0; i + 1 < kv->len; i += 2)
    if (kv->pdata[i + 1] != NULL)
      append_attr (el, kv->pdata[i], kv->pdata[i + 1], '\'');
  g_string_append (el, "/>");

  if (meta != NULL)
    {
      g_autofree char *ci = child_indent (c, meta);
      append_child (c, meta, NULL, ci, el->str);
      return;
    }
  /* Where libvirt puts <metadata>: after the name, uuid, title and
   * description. */
  static const char *const before[] = { "name", "uuid", "genid", "title", "description" };
  xmlNodePtr anchor = NULL;
  for (xmlNodePtr n = root->children; n; n = n->next)
    for (gsize k = 0; k < G_N_ELEMENTS (before); k++)
      if (n->type == XML_ELEMENT_NODE && n->ns == NULL &&
          xmlStrcmp (n->name, BAD_CAST before[k]) == 0)
        anchor = n;
  g_autofree char *ci = line_indent (c->xml, span (c, anchor)->start);
  g_autofree char *w = wrap (c, ci, "<metadata>", "metadata", el->str);
  insert_after (c, anchor, ci, w);
}

char *
vmem_xml_apply_plan (const char *xml, const VmemPlan *plan, gboolean *changed, GError **error)
{
  g_return_val_if_fail (plan != NULL, NULL);

  if (plan->demand_mib == 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "a plan needs a demand above 0 MiB");
      return NULL;
    }
  g_autoptr(Ctx) c = ctx_new (xml, error);
  if (c == NULL)
    return NULL;
  g_autoptr(VmemDomainInfo) info = info_from_doc (c->doc, error);
  if (info == NULL)
    return NULL;
  const char *why = vmem_xml_unmanageable_reason (info, plan->mode);
  if (why != NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE, "domain '%s' cannot be managed%s: %s",
                   info->name, plan->mode == VMEM_MODE_VIRTIO_MEM ? " in virtio-mem mode" : "",
                   why);
      return NULL;
    }
  xmlNodePtr root = xmlDocGetRootElement (c->doc);
  xmlNodePtr plan_el = child_ns (child (root, "metadata"), "plan", VMEM_XML_NS_PLAN);
  if (plan_el != NULL && !check_virtio_originals (plan_el, error))
    return NULL;

  guint64 demand_kib = 0;
  if (plan->mode == VMEM_MODE_VIRTIO_MEM)
    {
      guint64 top = 0, max_kib = 0;
      guint slots = 0;
      VmemVirtioMemLayout l;
      if (!virtio_mem_top (root, plan_el, &top, error) ||
          !orig_max_memory (root, plan_el, &max_kib, &slots, error))
        return NULL;
      demand_kib = plan->demand_mib > top / 1024 ? top : plan->demand_mib * 1024;
      if (!vmem_xml_virtio_mem_layout (top, demand_kib, &l, error))
        return NULL;
      demand_kib = MIN (demand_kib, l.memory_kib);
      stage_max_memory (c, root, l.memory_kib, max_kib, slots);
      set_size (c, child (root, "memory"), l.memory_kib);
      /* No balloon target below <memory>: the device holds the rest. */
      stage_current (c, root, l.memory_kib);
      stage_numa (c, root, l.base_kib, MAX (info->vcpus, 1));
      stage_device (c, root, &l);
    }
  else
    {
      /* The balloon target at boot; <memory> is the most the guest can
       * have, as it was before any virtio-mem staging. */
      guint64 memory = info->memory_kib;
      if (info->virtio_mem_staged)
        {
          if (!virtio_mem_top (root, plan_el, &memory, error))
            return NULL;
          undo_virtio_mem (c, root, plan_el, TRUE);
        }
      demand_kib = plan->demand_mib > memory / 1024 ? memory : plan->demand_mib * 1024;
      stage_current (c, root, demand_kib);
      stage_balloon (c, root, plan->stats_period);
    }
  if (plan->prealloc)
    add_allocation (c, root);
  else if (plan_el != NULL)
    undo_allocation (c, root, plan_el);
  stage_plan_element (c, root, plan, demand_kib);

  char *out = ctx_finish (c, error);
  if (out != NULL && changed != NULL)
    *changed = strcmp (out, xml) != 0;
  return out;
}

/* ---- restoring ---------------------------------------------------------- */

static gboolean
check_orig_balloon (const char *orig, GError **error)
{
  g_autoptr(xmlDoc) d = parse_orig (orig, "memballoon", "orig_memballoon", error);
  return d != NULL;
}

/* Whether every element child of @parent is @a or @b. */
static gboolean
only_these (xmlNodePtr parent, xmlNodePtr a, xmlNodePtr b)
{
  for (xmlNodePtr n = xmlFirstElementChild (parent); n; n = xmlNextElementSibling (n))
    if (n != a && n != b)
      return FALSE;
  return TRUE;
}

char *
vmem_xml_restore (const char *xml, GError **error)
{
  g_autoptr(Ctx) c = ctx_new (xml, error);
  if (c == NULL)
    return NULL;
  xmlNodePtr root = xmlDocGetRootElement (c->doc);
  xmlNodePtr meta = child (root, "metadata");
  xmlNodePtr plan_el = child_ns (meta, "plan", VMEM_XML_NS_PLAN);
  if (plan_el == NULL)
    return NULL;

  /* Everything is checked before anything is changed. */
  g_autofree char *orig_cur = prop (plan_el, "orig_current_kib");
  g_autofree char *orig_balloon = prop (plan_el, "orig_memballoon");
  guint64 kib = 0;
  if (orig_cur != NULL && !g_str_equal (orig_cur, "none") &&
      !g_ascii_string_to_unsigned (orig_cur, 10, 1, G_MAXUINT64, &kib, NULL))
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "the plan's orig_current_kib '%s' is not a size in KiB", orig_cur);
      return NULL;
    }
  if (orig_balloon != NULL && !g_str_equal (orig_balloon, "none") &&
      !check_orig_balloon (orig_balloon, error))
    return NULL;
  if (!check_virtio_originals (plan_el, error))
    return NULL;

  xmlNodePtr cur = child (root, "currentMemory");
  if (g_strcmp0 (orig_cur, "none") == 0 && cur != NULL)
    remove_element (c, cur);
  else if (kib != 0 && cur != NULL)
    {
      const char *const unit[] = { "unit", "KiB", NULL };
      set_text (c, cur, unit, orig_cur);
    }
  else if (kib != 0)
    {
      xmlNodePtr mem = child (root, "memory");
      g_autofree char *ci = mem ? line_indent (c->xml, span (c, mem)->start) : NULL;
      g_autofree char *el = g_strdup_printf ("<currentMemory unit='KiB'>%s</currentMemory>",
                                             orig_cur);
      if (mem != NULL)
        insert_after (c, mem, ci, el);
    }

  undo_allocation (c, root, plan_el);
  undo_virtio_mem (c, root, plan_el, FALSE);

  /* <devices> goes when it holds only what vmemd put there. */
  xmlNodePtr devices = child (root, "devices");
  xmlNodePtr balloon = child (devices, "memballoon");
  xmlNodePtr dev = xmlHasNsProp (plan_el, BAD_CAST "orig_memory", NULL) ? vmemd_device (devices)
                                                                         : NULL;
  g_autofree char *orig_devices = prop (plan_el, "orig_devices");
  gboolean drop_balloon = g_strcmp0 (orig_balloon, "none") == 0 && balloon != NULL;
  if (g_strcmp0 (orig_devices, "none") == 0 && (drop_balloon || dev != NULL) &&
      only_these (devices, drop_balloon ? balloon : NULL, dev))
    remove_element (c, devices);
  else
    {
      if (drop_balloon)
        remove_element (c, balloon);
      else if (orig_balloon != NULL && !g_str_equal (orig_balloon, "none"))
        {
          if (balloon != NULL)
            replace_element (c, balloon, orig_balloon);
          else if (devices != NULL)
            {
              g_autofree char *ci = child_indent (c, devices);
              append_child (c, devices, NULL, ci, orig_balloon);
            }
        }
      if (dev != NULL)
        remove_element (c, dev);
    }

  /* Restoring ends management: the workload tag goes too, and a
   * <metadata> that held only vmemd's elements. */
  xmlNodePtr tag = child_ns (meta, "workload", VMEM_XML_NS_WORKLOAD);
  gboolean others = FALSE;
  for (xmlNodePtr n = xmlFirstElementChild (meta); n; n = xmlNextElementSibling (n))
    others |= n != plan_el && n != tag;
  g_autofree char *orig_meta = prop (plan_el, "orig_metadata");
  if (!others && g_strcmp0 (orig_meta, "empty") == 0)
    replace_element (c, meta, "<metadata/>");
  else if (!others)
    remove_element (c, meta);
  else
    {
      remove_element (c, plan_el);
      if (tag != NULL)
        remove_element (c, tag);
    }
  return ctx_finish (c, error);
}

char *
vmem_xml_migrate_variant (const char *xml, const VmemPlan *plan, GError **error)
{
  g_return_val_if_fail (plan != NULL, NULL);

  g_autoptr(Ctx) c = ctx_new (xml, error);
  if (c == NULL || !plan->prealloc)
    return NULL;
  xmlNodePtr root = xmlDocGetRootElement (c->doc);
  xmlNodePtr alloc = child (child (root, "memoryBacking"), "allocation");
  g_autofree char *mode = prop (alloc, "mode");
  if (g_strcmp0 (mode, "immediate") == 0)
    return NULL;
  if (child (root, "memory") == NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_UNMANAGEABLE,
                   "the domain has no <memory> to preallocate");
      return NULL;
    }
  add_allocation (c, root);
  return ctx_finish (c, error);
}

/* ---- the live virtio-mem device ---------------------------------------- */

static gboolean
target_kib (xmlNodePtr target, const char *name, gboolean needed, guint64 *kib, GError **error)
{
  xmlNodePtr n = child (target, name);
  *kib = 0;
  if (n == NULL && !needed)
    return TRUE;
  if (n == NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "vmemd's virtio-mem device has no <%s>", name);
      return FALSE;
    }
  return memory_kib (n, kib, error);
}

char *
vmem_xml_virtio_mem_request (const char *live_xml, guint64 requested_mib,
                             VmemVirtioMemRequest *request, GError **error)
{
  g_autoptr(Ctx) c = ctx_new (live_xml, error);
  if (c == NULL)
    return NULL;
  xmlNodePtr dev = vmemd_device (child (xmlDocGetRootElement (c->doc), "devices"));
  if (dev == NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_NOT_FOUND,
                   "the domain has no virtio-mem device of vmemd's (alias '%s'): it did not "
                   "start in virtio-mem form", VMEM_XML_VIRTIO_MEM_ALIAS);
      return NULL;
    }
  xmlNodePtr target = child (dev, "target");
  xmlNodePtr req = child (target, "requested");
  VmemVirtioMemRequest r = { 0 };
  if (!target_kib (target, "size", TRUE, &r.size_kib, error) ||
      !target_kib (target, "block", TRUE, &r.block_kib, error) ||
      !target_kib (target, "requested", TRUE, &r.previous_kib, error) ||
      !target_kib (target, "current", FALSE, &r.current_kib, error))
    return NULL;
  if (r.block_kib == 0)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT,
                   "vmemd's virtio-mem device has a block of 0");
      return NULL;
    }

  /* Whole blocks, rounded up so that the guest gets at least what was
   * asked, and never more than the device. */
  guint64 most = round_down_to (r.size_kib, r.block_kib);
  guint64 kib = requested_mib >= most / 1024 ? most : round_up_to (requested_mib * 1024, r.block_kib);
  r.requested_kib = MIN (kib, most);
  r.changed = r.requested_kib != r.previous_kib;

  /* The live element as libvirt wrote it (alias and address included, by
   * which it finds the device), with only <requested> new. */
  const Span *ds = span (c, dev);
  const Span *rs = span (c, req);
  g_autoptr(GString) out = g_string_new_len (c->xml + ds->start, (gssize) (rs->start - ds->start));
  g_string_append_printf (out, "<requested unit='KiB'>%" G_GUINT64_FORMAT "</requested>",
                          r.requested_kib);
  g_string_append_len (out, c->xml + rs->end, (gssize) (ds->end - rs->end));

  g_autoptr(GError) local = NULL;
  g_autoptr(xmlDoc) check = parse (out->str, out->len, &local);
  if (check == NULL)
    {
      g_set_error (error, VMEM_ERROR, VMEM_ERROR_FAILED,
                   "internal error: the virtio-mem device XML does not parse: %s", local->message);
      return NULL;
    }
  if (request != NULL)
    *request = r;
  return g_string_free (g_steal_pointer (&out), FALSE);
}
