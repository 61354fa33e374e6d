/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The libvirt qemu hook.  libvirtd runs it for every event of every domain
 * start and waits for each run, so it links only the C library: no GLib,
 * no json-c.  Of vmemd's configuration it reads the three keys it uses, it
 * writes its one call as JSON by hand, and it reads vmemd's reply with the
 * small strict JSON reader below.  The daemon side of the same protocol is
 * src/common/vmem-varlink.c. */
#include "vmem-hook-lib.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define HOOK_METHOD VMEM_VARLINK_INTERFACE ".HookEvent"
/* The most of a configuration file read: far beyond any real one. */
#define CONFIG_MAX_BYTES (1024 * 1024)
/* The deepest JSON nesting read in a reply (json-c's default too). */
#define JSON_MAX_DEPTH 32

#define autofree __attribute__ ((cleanup (free_ptr)))

static void
free_ptr (void *p)
{
  free (*(void **) p);
}

/* --- the backstop ---------------------------------------------------------- */

/* Whatever blocks (a config file on a stuck mount, a full syslog socket, a
 * daemon that accepted and went silent), libvirt must get an answer in time:
 * the timer's handler ends the process with the answer decided up front. */
static volatile sig_atomic_t backstop_status;
static char backstop_line[256];
static volatile sig_atomic_t backstop_line_len;

static void
backstop_fire (int sig)
{
  (void) sig;
  if (backstop_line_len > 0)
    {
      ssize_t r = write (STDERR_FILENO, backstop_line, (size_t) backstop_line_len);
      (void) r;
    }
  _exit (backstop_status);
}

static void
backstop_arm (int ms, int status, const char *line)
{
  struct itimerval it = { 0 };
  struct sigaction sa = { 0 };

  backstop_line_len = 0;
  snprintf (backstop_line, sizeof backstop_line, "%s", line);
  backstop_line_len = (sig_atomic_t) strlen (backstop_line);
  backstop_status = status;
  sa.sa_handler = backstop_fire;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGALRM, &sa, NULL);
  it.it_value.tv_sec = ms / 1000;
  it.it_value.tv_usec = (ms % 1000) * 1000;
  setitimer (ITIMER_REAL, &it, NULL);
}

static void
backstop_disarm (void)
{
  struct itimerval it = { 0 };
  setitimer (ITIMER_REAL, &it, NULL);
  signal (SIGALRM, SIG_DFL);
}

/* Out of memory: the answer decided up front, at once. */
static void __attribute__ ((noreturn)) no_memory (void)
{
  backstop_fire (0);
  _exit (backstop_status); /* not reached */
}

/* --- small helpers ------------------------------------------------------------ */

static int64_t
now_us (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *
xrealloc (void *p, size_t n)
{
  void *q = realloc (p, n ? n : 1);
  if (q == NULL)
    no_memory ();
  return q;
}

static char *
xstrndup (const char *s, size_t n)
{
  char *d = xrealloc (NULL, n + 1);
  memcpy (d, s, n);
  d[n] = '\0';
  return d;
}

static char *
xstrdup (const char *s)
{
  return xstrndup (s, strlen (s));
}

static char *xasprintf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));

static char *
xasprintf (const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  int n = vsnprintf (NULL, 0, fmt, ap);
  va_end (ap);
  if (n < 0)
    no_memory ();
  char *s = xrealloc (NULL, (size_t) n + 1);
  va_start (ap, fmt);
  vsnprintf (s, (size_t) n + 1, fmt, ap);
  va_end (ap);
  return s;
}

/* A growing byte string, always NUL-terminated once anything is in it. */
typedef struct {
  char *p;
  size_t len;
  size_t cap;
} Buf;

static void
buf_reserve (Buf *b, size_t more)
{
  if (more > SIZE_MAX / 2 - b->len)
    no_memory ();
  size_t need = b->len + more + 1;
  if (need <= b->cap)
    return;
  size_t cap = b->cap ? b->cap : 256;
  while (cap < need)
    cap *= 2;
  b->p = xrealloc (b->p, cap);
  b->cap = cap;
  b->p[b->len] = '\0';
}

static void
buf_add (Buf *b, const char *s, size_t n)
{
  buf_reserve (b, n);
  memcpy (b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static void
buf_adds (Buf *b, const char *s)
{
  buf_add (b, s, strlen (s));
}

static void
buf_addc (Buf *b, char c)
{
  buf_add (b, &c, 1);
}

static char *
buf_steal (Buf *b)
{
  buf_reserve (b, 0);
  b->p[b->len] = '\0';
  char *p = b->p;
  *b = (Buf){ 0 };
  return p;
}

static void
buf_clear (Buf *b)
{
  free (b->p);
  *b = (Buf){ 0 };
}

/* White space as GLib's g_ascii_isspace() has it, which vmemd's GKeyFile
 * and g_strstrip() use: not the vertical tab. */
static bool
is_space (char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static bool
is_digit (char c)
{
  return c >= '0' && c <= '9';
}

static int
hex_value (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Strips ASCII white space at both ends, in place. */
static char *
strip (char *s)
{
  while (is_space (*s))
    s++;
  size_t n = strlen (s);
  while (n > 0 && is_space (s[n - 1]))
    s[--n] = '\0';
  return s;
}

/* UTF-8 as RFC 3629 has it: no overlong forms, no surrogates, nothing past
 * U+10FFFF. */
static bool
utf8_valid (const char *text, size_t len)
{
  const unsigned char *s = (const unsigned char *) text;
  size_t i = 0;
  while (i < len)
    {
      unsigned c = s[i];
      if (c < 0x80)
        {
          i++;
          continue;
        }
      size_t n;
      uint32_t cp, min;
      if ((c & 0xE0) == 0xC0)
        n = 1, cp = c & 0x1F, min = 0x80;
      else if ((c & 0xF0) == 0xE0)
        n = 2, cp = c & 0x0F, min = 0x800;
      else if ((c & 0xF8) == 0xF0)
        n = 3, cp = c & 0x07, min = 0x10000;
      else
        return false;
      if (len - i <= n)
        return false;
      for (size_t k = 1; k <= n; k++)
        {
          if ((s[i + k] & 0xC0) != 0x80)
            return false;
          cp = (cp << 6) | (s[i + k] & 0x3F);
        }
      if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return false;
      i += n + 1;
    }
  return true;
}

static void
buf_add_utf8 (Buf *b, uint32_t cp)
{
  char u[4];
  size_t n;
  if (cp < 0x80)
    u[0] = (char) cp, n = 1;
  else if (cp < 0x800)
    u[0] = (char) (0xC0 | (cp >> 6)), u[1] = (char) (0x80 | (cp & 0x3F)), n = 2;
  else if (cp < 0x10000)
    u[0] = (char) (0xE0 | (cp >> 12)), u[1] = (char) (0x80 | ((cp >> 6) & 0x3F)),
    u[2] = (char) (0x80 | (cp & 0x3F)), n = 3;
  else
    u[0] = (char) (0xF0 | (cp >> 18)), u[1] = (char) (0x80 | ((cp >> 12) & 0x3F)),
    u[2] = (char) (0x80 | ((cp >> 6) & 0x3F)), u[3] = (char) (0x80 | (cp & 0x3F)), n = 4;
  buf_add (b, u, n);
}

/* --- which events ------------------------------------------------------------ */

static bool
str_equal (const char *a, const char *b)
{
  return strcmp (a, b) == 0;
}

bool
vmem_hook_may_refuse (const char *op, const char *subop)
{
  return (str_equal (op, "prepare") || str_equal (op, "migrate") || str_equal (op, "restore")) &&
         str_equal (subop, "begin");
}

bool
vmem_hook_passes_on (const char *op, const char *subop)
{
  return str_equal (op, "stopped") || str_equal (op, "release") || vmem_hook_may_refuse (op, subop);
}

unsigned
vmem_hook_short_ms (unsigned timeout_ms)
{
  unsigned ms = timeout_ms / 10;
  return ms < 20 ? 20 : ms > 200 ? 200 : ms;
}

bool
vmem_hook_prints_xml (const char *op, const char *subop)
{
  return (str_equal (op, "migrate") || str_equal (op, "restore")) && str_equal (subop, "begin");
}

/* --- what the hook reads of the domain XML ----------------------------------- */

/* 8-4-4-4-12 hexadecimal digits. */
static bool
uuid_valid (const char *s)
{
  if (strlen (s) != 36)
    return false;
  for (int i = 0; i < 36; i++)
    {
      bool dash = i == 8 || i == 13 || i == 18 || i == 23;
      if (dash ? s[i] != '-' : hex_value (s[i]) < 0)
        return false;
    }
  return true;
}

char *
vmem_hook_find_uuid (const char *xml)
{
  const char *s = xml ? strstr (xml, "<uuid>") : NULL;
  if (s == NULL)
    return NULL;
  s += strlen ("<uuid>");
  const char *e = strstr (s, "</uuid>");
  if (e == NULL || e - s > 64)
    return NULL;
  autofree char *raw = xstrndup (s, (size_t) (e - s));
  const char *uuid = strip (raw);
  return uuid_valid (uuid) ? xstrdup (uuid) : NULL;
}

/* The digits of a numeric character reference, all of them: 1 to U+10FFFF,
 * no sign, no prefix; -1 otherwise. */
static long
char_ref_value (const char *s, size_t n, int base)
{
  long v = 0;
  if (n == 0)
    return -1;
  for (size_t i = 0; i < n; i++)
    {
      int d = base == 16 ? hex_value (s[i]) : is_digit (s[i]) ? s[i] - '0' : -1;
      if (d < 0)
        return -1;
      v = v * base + d;
      if (v > 0x10FFFF)
        return -1;
    }
  return v >= 1 ? v : -1;
}

/* Decodes the five predefined entities and numeric character references
 * of XML text; NULL for anything else. */
static char *
xml_unescape (const char *s, size_t len)
{
  static const struct {
    const char *name;
    char c;
  } entities[] = {
    { "lt;", '<' }, { "gt;", '>' }, { "amp;", '&' }, { "quot;", '"' }, { "apos;", '\'' }
  };
  Buf out = { 0 };
  const char *end = s + len;

  buf_reserve (&out, len);
  while (s < end)
    {
      if (*s != '&')
        {
          buf_addc (&out, *s++);
          continue;
        }
      const char *semi = memchr (s, ';', (size_t) (end - s));
      if (semi == NULL)
        goto bad;
      size_t n = (size_t) (semi - s) + 1; /* "&...;" */
      bool done = false;
      for (size_t i = 0; i < sizeof entities / sizeof entities[0] && !done; i++)
        if (n - 1 == strlen (entities[i].name) && strncmp (s + 1, entities[i].name, n - 1) == 0)
          {
            buf_addc (&out, entities[i].c);
            done = true;
          }
      if (!done && n > 3 && s[1] == '#')
        {
          bool hex = s[2] == 'x';
          long cp = char_ref_value (s + (hex ? 3 : 2), n - (hex ? 4 : 3), hex ? 16 : 10);
          if (cp < 0 || (cp >= 0xD800 && cp <= 0xDFFF))
            goto bad;
          buf_add_utf8 (&out, (uint32_t) cp);
          done = true;
        }
      if (!done)
        goto bad;
      s += n;
    }
  return buf_steal (&out);

bad:
  buf_clear (&out);
  return NULL;
}

char *
vmem_hook_find_name (const char *xml)
{
  const char *s = xml ? strstr (xml, "<name>") : NULL;
  if (s == NULL)
    return NULL;
  s += strlen ("<name>");
  const char *e = strstr (s, "</name>");
  if (e == NULL)
    return NULL;
  return xml_unescape (s, (size_t) (e - s));
}

/* --- the three keys of vmemd.conf the hook uses ------------------------------- */

typedef struct {
  char *socket_path;
  unsigned timeout_ms;
  bool fail_closed;
} HookConfig;

static void
config_defaults (HookConfig *c)
{
  free (c->socket_path);
  c->socket_path = xstrdup (VMEM_DEFAULT_SOCKET);
  c->timeout_ms = VMEM_HOOK_DEFAULT_TIMEOUT_MS;
  c->fail_closed = false;
}

static const char *
config_path (void)
{
  const char *env = getenv ("VMEMD_CONFIG");
  return (env != NULL && *env != '\0') ? env : VMEM_CONFIG_DEFAULT_PATH;
}

/* A key-file string value with its escapes (\s \n \t \r \\) decoded, as
 * vmemd's GKeyFile reads it; NULL and *why set on a bad escape. */
static char *
key_value_unescape (const char *v, const char **why)
{
  Buf out = { 0 };
  buf_reserve (&out, strlen (v));
  for (; *v; v++)
    {
      if (*v != '\\')
        {
          buf_addc (&out, *v);
          continue;
        }
      v++;
      char c = *v == 's'    ? ' '
               : *v == 'n'  ? '\n'
               : *v == 't'  ? '\t'
               : *v == 'r'  ? '\r'
               : *v == '\\' ? '\\'
                            : 0;
      if (c == 0)
        {
          *why = *v == '\0' ? "escape character at end of line" : "invalid escape sequence";
          buf_clear (&out);
          return NULL;
        }
      buf_addc (&out, c);
    }
  return buf_steal (&out);
}

/* Checks one of the three keys and sets it; *error says why not, as vmemd
 * would: "FILE:LINE: [group] key: what". */
static bool
config_apply (HookConfig *c, const char *path, unsigned line, const char *group, const char *key,
              const char *raw, char **error)
{
  const char *why = NULL;
  autofree char *unescaped = key_value_unescape (raw, &why);
  autofree char *msg = NULL;
  char *value = unescaped ? strip (unescaped) : NULL;

  if (unescaped == NULL)
    msg = xasprintf ("Key file contains %s", why);
  else if (str_equal (key, "socket"))
    {
      if (*value == '\0')
        msg = xstrdup ("must not be empty");
      else if (*value != '/')
        msg = xasprintf ("'%s' is not an absolute path", value);
      else
        {
          free (c->socket_path);
          c->socket_path = xstrdup (value);
        }
    }
  else if (str_equal (key, "timeout_ms"))
    {
      unsigned long n = 0;
      bool ok = *value != '\0';
      for (const char *d = value; ok && *d; d++)
        {
          ok = is_digit (*d);
          if (ok)
            n = n * 10 + (unsigned long) (*d - '0');
          if (n > VMEM_HOOK_MAX_TIMEOUT_MS)
            ok = false;
        }
      if (!ok || n < VMEM_HOOK_MIN_TIMEOUT_MS)
        msg = xasprintf ("'%s' is not a whole number from %d to %d", value,
                         VMEM_HOOK_MIN_TIMEOUT_MS, VMEM_HOOK_MAX_TIMEOUT_MS);
      else
        c->timeout_ms = (unsigned) n;
    }
  else /* fail_closed */
    {
      if (strcasecmp (value, "true") == 0 || str_equal (value, "1") ||
          strcasecmp (value, "yes") == 0)
        c->fail_closed = true;
      else if (strcasecmp (value, "false") == 0 || str_equal (value, "0") ||
               strcasecmp (value, "no") == 0)
        c->fail_closed = false;
      else
        msg = xasprintf ("'%s' is not a boolean (true or false)", value);
    }
  if (msg == NULL)
    return true;
  *error = xasprintf ("%s:%u: [%s] %s: %s", path, line, group, key, msg);
  return false;
}

/* A group header as GKeyFile takes it: "[name]" with no brackets or control
 * characters in the name and nothing but white space after it.  Returns the
 * name's length, or 0. */
static size_t
group_header (const char *l)
{
  size_t n = 1;
  while (l[n] != '\0' && l[n] != ']')
    {
      if (l[n] == '[' || (unsigned char) l[n] < 0x20)
        return 0;
      n++;
    }
  if (l[n] != ']' || n == 1)
    return 0;
  for (const char *t = l + n + 1; *t; t++)
    if (*t != ' ' && *t != '\t')
      return 0;
  return n - 1;
}

/* A key name as GKeyFile takes it: no brackets but a trailing "[locale]",
 * no space at either end. */
static bool
key_name_valid (const char *k)
{
  size_t n = strcspn (k, "[]=");
  if (n == 0 || k[0] == ' ' || k[n - 1] == ' ')
    return false;
  if (k[n] == '\0')
    return true;
  if (k[n] != '[')
    return false;
  size_t m = strcspn (k + n + 1, "[]=");
  return m > 0 && k[n + 1 + m] == ']' && k[n + 2 + m] == '\0';
}

/* Parses the key file @text as GKeyFile would, and applies the hook's three
 * keys, the last of each winning. */
static bool
config_parse (HookConfig *c, const char *path, char *text, char **error)
{
  static const struct {
    const char *group, *key;
  } wanted[] = { { "daemon", "socket" }, { "hook", "timeout_ms" }, { "hook", "fail_closed" } };
  const char *value[3] = { NULL, NULL, NULL };
  unsigned value_line[3] = { 0, 0, 0 };
  autofree char *group = NULL;
  unsigned lineno = 0;

  for (char *line = text, *next; line != NULL; line = next)
    {
      lineno++;
      next = strchr (line, '\n');
      if (next != NULL)
        *next++ = '\0';
      size_t len = strlen (line);
      if (next != NULL && len > 0 && line[len - 1] == '\r')
        line[--len] = '\0';
      char *l = line;
      while (is_space (*l))
        l++;
      if (*l == '\0' || *l == '#')
        continue;
      if (*l == '[')
        {
          size_t n = group_header (l);
          if (n == 0)
            {
              *error = xasprintf ("%s:%u: invalid group name: %s", path, lineno, l);
              return false;
            }
          free (group);
          group = xstrndup (l + 1, n);
          continue;
        }
      char *eq = strchr (l, '=');
      if (eq == NULL || eq == l)
        {
          *error = xasprintf ("%s:%u: line is not a key=value pair, a [section] or a comment: %s",
                              path, lineno, l);
          return false;
        }
      if (group == NULL)
        {
          *error = xasprintf ("%s:%u: a key before the first [section]", path, lineno);
          return false;
        }
      char *key_end = eq;
      while (key_end > l && is_space (key_end[-1]))
        key_end--;
      *key_end = '\0';
      if (!key_name_valid (l))
        {
          *error = xasprintf ("%s:%u: invalid key name: %s", path, lineno, l);
          return false;
        }
      char *v = eq + 1;
      while (is_space (*v))
        v++;
      for (int k = 0; k < 3; k++)
        if (str_equal (group, wanted[k].group) && str_equal (l, wanted[k].key))
          {
            value[k] = v;
            value_line[k] = lineno;
          }
    }
  for (int k = 0; k < 3; k++)
    if (value[k] != NULL &&
        !config_apply (c, path, value_line[k], wanted[k].group, wanted[k].key, value[k], error))
      return false;
  return true;
}

/* Reads @path into @c.  A missing file is the defaults; anything wrong
 * leaves the defaults too and sets *error. */
static bool
config_load (HookConfig *c, const char *path, char **error)
{
  config_defaults (c);
  int fd = open (path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    {
      if (errno == ENOENT)
        return true;
      *error = xasprintf ("cannot open %s: %s", path, strerror (errno));
      return false;
    }
  Buf text = { 0 };
  for (;;)
    {
      buf_reserve (&text, 8192);
      ssize_t n = read (fd, text.p + text.len, 8192);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          *error = xasprintf ("cannot read %s: %s", path, strerror (errno));
          break;
        }
      if (n == 0)
        break;
      text.len += (size_t) n;
      text.p[text.len] = '\0';
      if (text.len > CONFIG_MAX_BYTES)
        {
          *error = xasprintf ("%s: larger than %d bytes", path, CONFIG_MAX_BYTES);
          break;
        }
    }
  close (fd);
  bool ok = *error == NULL;
  if (ok && (memchr (text.p, '\0', text.len) != NULL || !utf8_valid (text.p, text.len)))
    {
      *error = xasprintf ("%s: not a UTF-8 text file", path);
      ok = false;
    }
  if (ok)
    ok = config_parse (c, path, text.p, error);
  buf_clear (&text);
  if (!ok)
    config_defaults (c);
  return ok;
}

bool
vmem_hook_read_config (const char *path, char **socket_path, unsigned *timeout_ms,
                       bool *fail_closed, char **error)
{
  HookConfig c = { 0 };
  *error = NULL;
  bool ok = config_load (&c, path, error);
  *socket_path = c.socket_path;
  *timeout_ms = c.timeout_ms;
  *fail_closed = c.fail_closed;
  return ok;
}

/* --- JSON out ---------------------------------------------------------------- */

/* Bytes that JSON's string escaping makes of @s. */
static size_t
json_string_len (const char *s)
{
  size_t n = 2;
  for (const unsigned char *p = (const unsigned char *) s; *p; p++)
    n += (*p == '"' || *p == '\\' || *p == '\b' || *p == '\f' || *p == '\n' || *p == '\r' ||
          *p == '\t')
           ? 2
         : *p < 0x20 ? 6
                     : 1;
  return n;
}

static void
json_add_string (Buf *b, const char *s)
{
  buf_reserve (b, json_string_len (s));
  buf_addc (b, '"');
  const char *run = s;
  for (const char *p = s; *p; p++)
    {
      unsigned char c = (unsigned char) *p;
      if (c >= 0x20 && c != '"' && c != '\\')
        continue;
      buf_add (b, run, (size_t) (p - run));
      run = p + 1;
      char esc[8];
      switch (c)
        {
        case '"':
          buf_adds (b, "\\\"");
          break;
        case '\\':
          buf_adds (b, "\\\\");
          break;
        case '\b':
          buf_adds (b, "\\b");
          break;
        case '\f':
          buf_adds (b, "\\f");
          break;
        case '\n':
          buf_adds (b, "\\n");
          break;
        case '\r':
          buf_adds (b, "\\r");
          break;
        case '\t':
          buf_adds (b, "\\t");
          break;
        default:
          snprintf (esc, sizeof esc, "\\u%04x", c);
          buf_adds (b, esc);
        }
    }
  buf_adds (b, run);
  buf_addc (b, '"');
}

static void
json_add_member (Buf *b, const char *name, const char *value)
{
  if (b->p[b->len - 1] != '{')
    buf_addc (b, ',');
  json_add_string (b, name);
  buf_addc (b, ':');
  json_add_string (b, value);
}

/* --- JSON in: vmemd's reply -------------------------------------------------- */

typedef enum { J_NULL, J_BOOL, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT } JType;

typedef struct JValue JValue;
struct JValue {
  JType type;
  bool boolean;
  char *string; /* decoded string */
  size_t n;     /* members or elements */
  char **names; /* object member names */
  JValue **values;
};

static void
jvalue_free (JValue *v)
{
  if (v == NULL)
    return;
  for (size_t i = 0; i < v->n; i++)
    {
      if (v->names)
        free (v->names[i]);
      jvalue_free (v->values[i]);
    }
  free (v->names);
  free (v->values);
  free (v->string);
  free (v);
}

/* The member @name of an object (the last one of that name, as json-c
 * keeps it), or NULL. */
static JValue *
jvalue_get (const JValue *o, const char *name)
{
  if (o == NULL || o->type != J_OBJECT)
    return NULL;
  for (size_t i = o->n; i-- > 0;)
    if (str_equal (o->names[i], name))
      return o->values[i];
  return NULL;
}

static const char *
jvalue_string (const JValue *v)
{
  return v != NULL && v->type == J_STRING ? v->string : NULL;
}

static const char *
jtype_name (JType t)
{
  static const char *const names[] = { "null", "boolean", "number", "string", "array", "object" };
  return names[t];
}

typedef struct {
  const char *p;
  const char *end;
  const char *error;
} JParser;

static void
jskip (JParser *jp)
{
  while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r'))
    jp->p++;
}

static JValue *jparse_value (JParser *jp, int depth);

static bool
jparse_hex4 (JParser *jp, uint32_t *u)
{
  if (jp->end - jp->p < 4)
    return false;
  *u = 0;
  for (int i = 0; i < 4; i++)
    {
      int d = hex_value (jp->p[i]);
      if (d < 0)
        return false;
      *u = *u * 16 + (uint32_t) d;
    }
  jp->p += 4;
  return true;
}

/* A string after its opening quote; NULL and jp->error on a bad one. */
static char *
jparse_string (JParser *jp)
{
  Buf s = { 0 };
  buf_reserve (&s, 0);
  while (jp->p < jp->end && *jp->p != '"')
    {
      const char *run = jp->p;
      while (jp->p < jp->end && *jp->p != '"' && *jp->p != '\\' && (unsigned char) *jp->p >= 0x20)
        jp->p++;
      buf_add (&s, run, (size_t) (jp->p - run));
      if (jp->p == jp->end || *jp->p == '"')
        break;
      if ((unsigned char) *jp->p < 0x20)
        {
          jp->error = "control character in a string";
          goto bad;
        }
      jp->p++; /* the backslash */
      if (jp->p == jp->end)
        break;
      char c = *jp->p++;
      uint32_t u = 0, lo = 0;
      switch (c)
        {
        case '"':
        case '\\':
        case '/':
          buf_addc (&s, c);
          break;
        case 'b':
          buf_addc (&s, '\b');
          break;
        case 'f':
          buf_addc (&s, '\f');
          break;
        case 'n':
          buf_addc (&s, '\n');
          break;
        case 'r':
          buf_addc (&s, '\r');
          break;
        case 't':
          buf_addc (&s, '\t');
          break;
        case 'u':
          if (!jparse_hex4 (jp, &u))
            {
              jp->error = "invalid \\u escape";
              goto bad;
            }
          if (u >= 0xD800 && u <= 0xDBFF && jp->end - jp->p >= 6 && jp->p[0] == '\\' &&
              jp->p[1] == 'u')
            {
              JParser peek = *jp;
              peek.p += 2;
              if (jparse_hex4 (&peek, &lo) && lo >= 0xDC00 && lo <= 0xDFFF)
                {
                  *jp = peek;
                  u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                }
            }
          /* An unpaired surrogate is no character: U+FFFD, as json-c. */
          if (u >= 0xD800 && u <= 0xDFFF)
            u = 0xFFFD;
          buf_add_utf8 (&s, u);
          break;
        default:
          jp->error = "invalid escape in a string";
          goto bad;
        }
    }
  if (jp->p == jp->end)
    {
      jp->error = "truncated JSON";
      goto bad;
    }
  jp->p++; /* the closing quote */
  return buf_steal (&s);

bad:
  buf_clear (&s);
  return NULL;
}

/* A number as RFC 8259 writes it; its value is not needed. */
static bool
jparse_number (JParser *jp)
{
  const char *p = jp->p;
  if (p < jp->end && *p == '-')
    p++;
  if (p < jp->end && *p == '0')
    p++;
  else if (p < jp->end && *p >= '1' && *p <= '9')
    while (p < jp->end && is_digit (*p))
      p++;
  else
    return false;
  if (p < jp->end && *p == '.')
    {
      p++;
      if (p == jp->end || !is_digit (*p))
        return false;
      while (p < jp->end && is_digit (*p))
        p++;
    }
  if (p < jp->end && (*p == 'e' || *p == 'E'))
    {
      p++;
      if (p < jp->end && (*p == '+' || *p == '-'))
        p++;
      if (p == jp->end || !is_digit (*p))
        return false;
      while (p < jp->end && is_digit (*p))
        p++;
    }
  jp->p = p;
  return true;
}

static JValue *
jnew (JType type)
{
  JValue *v = xrealloc (NULL, sizeof *v);
  *v = (JValue){ .type = type };
  return v;
}

static void
jappend (JValue *parent, char *name, JValue *child)
{
  if ((parent->n & (parent->n - 1)) == 0) /* 0, 1, 2, 4, ...: grow */
    {
      size_t cap = parent->n ? parent->n * 2 : 1;
      parent->values = xrealloc (parent->values, cap * sizeof *parent->values);
      if (parent->type == J_OBJECT)
        parent->names = xrealloc (parent->names, cap * sizeof *parent->names);
    }
  if (parent->type == J_OBJECT)
    parent->names[parent->n] = name;
  parent->values[parent->n++] = child;
}

static JValue *
jparse_container (JParser *jp, int depth, bool object)
{
  JValue *v = jnew (object ? J_OBJECT : J_ARRAY);
  char close = object ? '}' : ']';
  jskip (jp);
  if (jp->p < jp->end && *jp->p == close)
    {
      jp->p++;
      return v;
    }
  for (;;)
    {
      char *name = NULL;
      jskip (jp);
      if (object)
        {
          if (jp->p == jp->end || *jp->p != '"')
            {
              jp->error = jp->p == jp->end ? "truncated JSON" : "expected a member name";
              goto bad;
            }
          jp->p++;
          name = jparse_string (jp);
          if (name == NULL)
            goto bad;
          jskip (jp);
          if (jp->p == jp->end || *jp->p != ':')
            {
              free (name);
              jp->error = jp->p == jp->end ? "truncated JSON" : "expected ':'";
              goto bad;
            }
          jp->p++;
        }
      JValue *child = jparse_value (jp, depth + 1);
      if (child == NULL)
        {
          free (name);
          goto bad;
        }
      jappend (v, name, child);
      jskip (jp);
      if (jp->p < jp->end && *jp->p == ',')
        {
          jp->p++;
          continue;
        }
      if (jp->p < jp->end && *jp->p == close)
        {
          jp->p++;
          return v;
        }
      jp->error = jp->p == jp->end ? "truncated JSON"
                  : object         ? "expected ',' or '}'"
                                   : "expected ',' or ']'";
      goto bad;
    }

bad:
  jvalue_free (v);
  return NULL;
}

static JValue *
jparse_value (JParser *jp, int depth)
{
  if (depth > JSON_MAX_DEPTH)
    {
      jp->error = "nested too deep";
      return NULL;
    }
  jskip (jp);
  if (jp->p == jp->end)
    {
      jp->error = "truncated JSON";
      return NULL;
    }
  static const struct {
    const char *word;
    JType type;
    bool value;
  } words[] = { { "true", J_BOOL, true }, { "false", J_BOOL, false }, { "null", J_NULL, false } };
  for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
    {
      size_t n = strlen (words[i].word);
      if ((size_t) (jp->end - jp->p) >= n && memcmp (jp->p, words[i].word, n) == 0)
        {
          jp->p += n;
          JValue *v = jnew (words[i].type);
          v->boolean = words[i].value;
          return v;
        }
    }
  switch (*jp->p)
    {
    case '{':
    case '[':
      {
        bool object = *jp->p++ == '{';
        return jparse_container (jp, depth, object);
      }
    case '"':
      {
        jp->p++;
        char *s = jparse_string (jp);
        if (s == NULL)
          return NULL;
        JValue *v = jnew (J_STRING);
        v->string = s;
        return v;
      }
    default:
      if (jparse_number (jp))
        return jnew (J_NUMBER);
      jp->error = "unexpected character";
      return NULL;
    }
}

/* --- talking to vmemd -------------------------------------------------------- */

typedef enum { CALL_OK, CALL_TIMEOUT, CALL_FAILED } CallStatus;

typedef struct {
  CallStatus status;
  char *message;
} CallError;

static void call_fail (CallError *e, CallStatus status, const char *fmt, ...)
  __attribute__ ((format (printf, 3, 4)));

static void
call_fail (CallError *e, CallStatus status, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  int n = vsnprintf (NULL, 0, fmt, ap);
  va_end (ap);
  free (e->message);
  e->message = xrealloc (NULL, (size_t) (n < 0 ? 0 : n) + 1);
  e->message[0] = '\0';
  va_start (ap, fmt);
  vsnprintf (e->message, (size_t) (n < 0 ? 0 : n) + 1, fmt, ap);
  va_end (ap);
  e->status = status;
}

static int
remaining_ms (int64_t deadline)
{
  /* Round up so that a sub-millisecond remainder still polls once. */
  int64_t left = (deadline - now_us () + 999) / 1000;
  return left < 0 ? 0 : left > INT_MAX ? INT_MAX : (int) left;
}

static bool
wait_fd (int fd, short events, int64_t deadline, int timeout_ms, const char *what, CallError *e)
{
  for (;;)
    {
      struct pollfd p = { .fd = fd, .events = events };
      int r = poll (&p, 1, remaining_ms (deadline));
      if (r > 0)
        return true;
      if (r == 0)
        {
          call_fail (e, CALL_TIMEOUT, "no answer from vmemd within %d ms (%s)", timeout_ms, what);
          return false;
        }
      if (errno != EINTR)
        {
          call_fail (e, CALL_FAILED, "poll: %s", strerror (errno));
          return false;
        }
    }
}

/* Connects to vmemd and sends @msg (its NUL included) within @deadline;
 * returns the socket or -1.  A send cut short by a hang-up is left in
 * *send_failed: vmemd may have said why before it hung up. */
static int
client_open (const char *path, const char *msg, size_t len, int64_t deadline, int timeout_ms,
             bool *send_failed, CallError *e)
{
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  *send_failed = false;
  if (*path == '\0' || strlen (path) >= sizeof addr.sun_path)
    {
      call_fail (e, CALL_FAILED, "socket path is empty or longer than %zu bytes: '%s'",
                 sizeof addr.sun_path - 1, path);
      return -1;
    }
  strcpy (addr.sun_path, path);
  int sock = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (sock < 0)
    {
      call_fail (e, CALL_FAILED, "socket: %s", strerror (errno));
      return -1;
    }
  for (;;)
    {
      if (connect (sock, (const struct sockaddr *) &addr, sizeof addr) == 0)
        break;
      /* A Unix socket answers EAGAIN when the listener's backlog is full:
       * vmemd is alive but busy, so retry until the deadline. */
      if (errno == EAGAIN)
        {
          int left = remaining_ms (deadline);
          if (left == 0)
            {
              call_fail (e, CALL_TIMEOUT, "no answer from vmemd within %d ms (%s)", timeout_ms,
                         "connection backlog full");
              goto bad;
            }
          struct timespec ts = { 0, (left < 10 ? left : 10) * 1000000L };
          nanosleep (&ts, NULL);
          continue;
        }
      if (errno == EINPROGRESS || errno == EINTR)
        {
          if (!wait_fd (sock, POLLOUT, deadline, timeout_ms, "connecting", e))
            goto bad;
          int soerr = 0;
          socklen_t sl = sizeof soerr;
          if (getsockopt (sock, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
            soerr = errno;
          if (soerr == 0)
            break;
          errno = soerr;
        }
      call_fail (e, CALL_FAILED, "cannot connect to %s: %s", path, strerror (errno));
      goto bad;
    }
  size_t off = 0;
  while (off < len)
    {
      ssize_t n = send (sock, msg + off, len - off, MSG_NOSIGNAL);
      if (n >= 0)
        {
          off += (size_t) n;
          continue;
        }
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK)
        {
          if (!wait_fd (sock, POLLOUT, deadline, timeout_ms, "sending the call", e))
            goto bad;
          continue;
        }
      call_fail (e, CALL_FAILED, "cannot send to vmemd: %s", strerror (errno));
      *send_failed = true;
      break;
    }
  return sock;

bad:
  close (sock);
  return -1;
}

/* Sends @msg and expects no reply. */
static bool
send_oneway (const char *path, const char *msg, size_t len, int timeout_ms, CallError *e)
{
  int64_t deadline = now_us () + (int64_t) timeout_ms * 1000;
  bool send_failed = false;
  int sock = client_open (path, msg, len, deadline, timeout_ms, &send_failed, e);
  if (sock < 0)
    return false;
  close (sock);
  return !send_failed;
}

/* One reply message into the call's result (its "parameters"), as
 * vmem_varlink_call_sized() makes it; NULL with @e set otherwise. */
static JValue *
reply_to_result (JValue *reply, CallError *e)
{
  JValue *params = jvalue_get (reply, "parameters");
  JValue *more = jvalue_get (reply, "continues");
  JValue *err = jvalue_get (reply, "error");

  if (params != NULL && params->type != J_OBJECT)
    {
      call_fail (e, CALL_FAILED, "bad reply from vmemd: \"parameters\" is not an object");
      return NULL;
    }
  if (more != NULL && more->type == J_BOOL && more->boolean)
    {
      call_fail (e, CALL_FAILED,
                 "bad reply from vmemd: \"continues\" on a call that did not ask for more");
      return NULL;
    }
  if (err == NULL)
    {
      /* No parameters: an empty object. */
      static JValue empty = { .type = J_OBJECT };
      return params ? params : &empty;
    }
  const char *name = jvalue_string (err);
  if (name == NULL || *name == '\0')
    {
      call_fail (e, CALL_FAILED, "bad reply from vmemd: \"error\" is not an error name");
      return NULL;
    }
  const char *text = jvalue_string (jvalue_get (params, "message"));
  const char *field;
  if (text != NULL)
    call_fail (e, CALL_FAILED, "%s", text);
  /* org.varlink.service errors carry the name of what was wrong instead. */
  else if ((field = jvalue_string (jvalue_get (params, "parameter"))) != NULL)
    call_fail (e, CALL_FAILED, "%s: invalid parameter '%s'", name, field);
  else if ((field = jvalue_string (jvalue_get (params, "method"))) != NULL ||
           (field = jvalue_string (jvalue_get (params, "interface"))) != NULL)
    call_fail (e, CALL_FAILED, "%s: %s", name, field);
  else
    call_fail (e, CALL_FAILED, "%s", name);
  return NULL;
}

/* Sends @msg and reads the one reply; returns the whole reply message
 * (*result points into it) or NULL with @e set. */
static JValue *
call (const char *path, const char *msg, size_t len, int timeout_ms, size_t max_message,
      JValue **result, CallError *e)
{
  int64_t deadline = now_us () + (int64_t) timeout_ms * 1000;
  bool send_failed = false;
  CallError send_error = { 0 };
  int sock = client_open (path, msg, len, deadline, timeout_ms, &send_failed, &send_error);
  if (sock < 0)
    {
      *e = send_error;
      return NULL;
    }

  Buf in = { 0 };
  JValue *reply = NULL;
  size_t scanned = 0;
  for (;;)
    {
      const char *nul = in.len > scanned ? memchr (in.p + scanned, '\0', in.len - scanned) : NULL;
      if (nul != NULL)
        break;
      scanned = in.len;
      if (in.len > max_message)
        {
          call_fail (e, CALL_FAILED, "bad reply from vmemd: message larger than %zu bytes",
                     max_message);
          goto out;
        }
      if (!wait_fd (sock, POLLIN, deadline, timeout_ms, "waiting for the reply", e))
        goto out;
      buf_reserve (&in, 16384);
      ssize_t n = recv (sock, in.p + in.len, 16384, 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        continue;
      if (n <= 0 && send_failed)
        {
          *e = send_error;
          send_error = (CallError){ 0 };
          goto out;
        }
      if (n < 0)
        {
          call_fail (e, CALL_FAILED, "cannot read from vmemd: %s", strerror (errno));
          goto out;
        }
      if (n == 0)
        {
          call_fail (e, CALL_FAILED,
                     in.len > 0 ? "vmemd closed the connection in the middle of its reply"
                                : "vmemd closed the connection without a reply");
          goto out;
        }
      in.len += (size_t) n;
      in.p[in.len] = '\0';
    }

  size_t mlen = strlen (in.p); /* a NUL is known to end the message */
  if (mlen > max_message)
    call_fail (e, CALL_FAILED, "bad reply from vmemd: message larger than %zu bytes", max_message);
  else if (mlen == 0)
    call_fail (e, CALL_FAILED, "bad reply from vmemd: malformed message: empty");
  else if (!utf8_valid (in.p, mlen))
    call_fail (e, CALL_FAILED, "bad reply from vmemd: malformed message: not valid UTF-8");
  else
    {
      JParser jp = { .p = in.p, .end = in.p + mlen };
      reply = jparse_value (&jp, 1);
      if (reply != NULL)
        jskip (&jp);
      if (reply == NULL)
        call_fail (e, CALL_FAILED, "bad reply from vmemd: malformed message: %s", jp.error);
      else if (jp.p != jp.end)
        call_fail (e, CALL_FAILED,
                   "bad reply from vmemd: malformed message: trailing data after the JSON value");
      else if (reply->type != J_OBJECT)
        call_fail (e, CALL_FAILED,
                   "bad reply from vmemd: malformed message: %s instead of a JSON object",
                   jtype_name (reply->type));
      else if ((*result = reply_to_result (reply, e)) != NULL)
        goto out;
      jvalue_free (reply);
      reply = NULL;
    }

out:
  free (send_error.message);
  buf_clear (&in);
  close (sock);
  return reply;
}

/* --- I/O -------------------------------------------------------------------- */

/* Reads @fd until EOF or the deadline; libvirt writes the XML and closes.
 * Sets *too_big past VMEM_HOOK_MAX_XML and returns what was read (its
 * start names the domain, but it must not be sent: a cut XML is worse
 * than none). */
static char *
read_input (int fd, int64_t deadline, bool *too_big, bool *timed_out)
{
  Buf s = { 0 };
  int flags = fcntl (fd, F_GETFL);

  *too_big = false;
  *timed_out = false;
  if (flags < 0)
    return NULL;
  if (!(flags & O_NONBLOCK))
    fcntl (fd, F_SETFL, flags | O_NONBLOCK);
  for (;;)
    {
      char chunk[65536];
      ssize_t n = read (fd, chunk, sizeof chunk);
      if (n > 0)
        {
          if (s.len + (size_t) n > VMEM_HOOK_MAX_XML)
            {
              *too_big = true;
              break;
            }
          buf_add (&s, chunk, (size_t) n);
          continue;
        }
      if (n == 0)
        break;
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK)
        break;
      int64_t left = (deadline - now_us ()) / 1000;
      struct pollfd p = { .fd = fd, .events = POLLIN };
      if (left <= 0 || poll (&p, 1, (int) left) == 0)
        {
          *timed_out = true;
          break;
        }
    }
  return buf_steal (&s);
}

static void
write_all (int fd, const char *data, size_t len)
{
  size_t off = 0;
  while (off < len)
    {
      ssize_t n = write (fd, data + off, len - off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return;
      off += (size_t) n;
    }
}

/* One line on @fd, whatever the message holds: libvirt shows it verbatim. */
static void
say (int fd, const char *text)
{
  autofree char *line = xasprintf ("%s\n", text);
  for (char *c = line; *c; c++)
    if (*c == '\n' && c[1] != '\0')
      *c = ' ';
  write_all (fd, line, strlen (line));
}

/* --- vmemd known to be silent ------------------------------------------------ */

/* A file beside vmemd's socket holds the monotonic time at which a call
 * last went unanswered for the whole timeout. */
static bool
silent_recently (const char *path)
{
  char text[64] = "";
  int fd = open (path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return false;
  ssize_t n = read (fd, text, sizeof text - 1);
  close (fd);
  if (n <= 0)
    return false;
  const char *s = strip (text);
  long long t = 0;
  for (const char *d = s; *d; d++)
    {
      if (!is_digit (*d) || t > (LLONG_MAX - 9) / 10)
        return false;
      t = t * 10 + (*d - '0');
    }
  if (*s == '\0')
    return false;
  int64_t age = now_us () - (int64_t) t;
  return age >= 0 && age < (int64_t) VMEM_HOOK_SILENT_WINDOW_S * 1000000;
}

static void
silent_mark (const char *path)
{
  char text[32];
  snprintf (text, sizeof text, "%lld\n", (long long) now_us ());
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
  if (fd < 0)
    return;
  write_all (fd, text, strlen (text));
  close (fd);
}

/* --- the hook --------------------------------------------------------------- */

/* vmemd could not be asked.  Only a start may be refused for that, and only
 * when the administrator asked for it. */
static int
without_daemon (const HookConfig *config, const char *domain, const char *op, const char *subop,
                const char *why, int err_fd)
{
  if (vmem_hook_may_refuse (op, subop) && config->fail_closed)
    {
      autofree char *line = xasprintf (
        "vmem-hook: refusing to start %s: vmemd did not answer (%s) and fail_closed is set", domain,
        why);
      syslog (LOG_ERR, "%s", line);
      say (err_fd, line);
      return 1;
    }
  autofree char *line =
    xasprintf ("vmem-hook: %s %s of %s goes ahead without vmemd: %s", op, subop, domain, why);
  syslog (LOG_WARNING, "%s", line);
  say (err_fd, line);
  return 0;
}

/* The HookEvent call, NUL included; *len its length without the NUL. */
static char *
build_call (const char *op, const char *subop, const char *extra, const char *domain,
            const char *uuid, const char *xml, bool oneway, char **xml_missing, size_t *len)
{
  Buf m = { 0 };
  buf_adds (&m, "{\"method\":\"" HOOK_METHOD "\",\"parameters\":{");
  json_add_member (&m, "op", op);
  json_add_member (&m, "subop", subop);
  if (extra != NULL)
    json_add_member (&m, "extra", extra);
  json_add_member (&m, "domain", domain);
  if (uuid != NULL)
    json_add_member (&m, "uuid", uuid);
  if (xml != NULL)
    {
      /* vmemd drops a message over its limit, and the event with it: send
       * the event without the XML rather than lose it.  Any XML the hook
       * reads fits, unless it is full of control characters. */
      if (m.len + json_string_len (xml) + 256 > VMEM_VARLINK_MAX_ROOT_MESSAGE)
        *xml_missing = xstrdup ("its domain XML does not fit into one message to vmemd");
      else
        json_add_member (&m, "xml", xml);
    }
  if (*xml_missing != NULL)
    json_add_member (&m, "xml_missing", *xml_missing);
  buf_adds (&m, oneway ? "},\"oneway\":true}" : "}}");
  *len = m.len;
  return buf_steal (&m);
}

static int
hook_run (int argc, char **argv, int in_fd, int out_fd, int err_fd, int64_t start,
          HookConfig *config)
{
  if (argc < 3)
    {
      say (err_fd, "usage: vmem-hook DOMAIN OP SUBOP [EXTRA] < domain.xml (run by libvirt)");
      return 2;
    }
  const char *domain = argv[1], *op = argv[2];
  const char *subop = argc > 3 ? argv[3] : "-";
  const char *extra = argc > 4 ? argv[4] : NULL;
  /* Only the events that need an answer wait for one. */
  bool waits = vmem_hook_may_refuse (op, subop);

  /* Until the config says otherwise: the default timeout, fail open. */
  backstop_arm ((int) (waits ? VMEM_HOOK_DEFAULT_TIMEOUT_MS
                             : vmem_hook_short_ms (VMEM_HOOK_DEFAULT_TIMEOUT_MS)) +
                  VMEM_HOOK_GRACE_MS,
                0, "vmem-hook: out of time; going ahead without vmemd\n");

  autofree char *config_error = NULL;
  if (!config_load (config, config_path (), &config_error))
    /* A broken config must not stop VMs: use the defaults, and say so. */
    syslog (LOG_WARNING, "%s; using the defaults", config_error);

  /* The whole timeout for an event that needs an answer, unless vmemd
   * left one unanswered a moment ago; a small part of it otherwise. */
  autofree char *silent = xasprintf ("%s.silent", config->socket_path);
  bool hurried = waits && silent_recently (silent);
  unsigned budget_ms =
    waits && !hurried ? config->timeout_ms : vmem_hook_short_ms (config->timeout_ms);
  int64_t deadline = start + (int64_t) budget_ms * 1000;
  bool refuse = waits && config->fail_closed;
  autofree char *last_word =
    refuse ? xasprintf ("vmem-hook: refusing to start %s: vmemd did not answer in %u ms and "
                        "fail_closed is set\n",
                        domain, budget_ms)
           : xasprintf ("vmem-hook: %s %s of %s goes ahead without vmemd: no answer in %u ms\n", op,
                        subop, domain, budget_ms);
  int64_t left_at_arm = (deadline - now_us ()) / 1000;
  backstop_arm ((int) (left_at_arm > 0 ? left_at_arm : 0) + VMEM_HOOK_GRACE_MS, refuse ? 1 : 0,
                last_word);

  bool too_big = false, timed_out = false;
  autofree char *xml = read_input (in_fd, deadline, &too_big, &timed_out);
  /* A notification goes with what was read: the uuid comes first. */
  if (timed_out && waits)
    return without_daemon (config, domain, op, subop,
                           "libvirt did not finish writing the domain XML in time", err_fd);
  /* Why vmemd cannot have the XML, when it cannot: it says so rather than
   * admit the start unchecked and silently. */
  autofree char *xml_missing = NULL;
  autofree char *named = vmem_hook_find_name (xml);
  if (xml != NULL && *xml != '\0' && (named == NULL || !str_equal (named, domain)))
    {
      /* Not this domain's XML (or not one): neither it nor its uuid go. */
      xml_missing = named != NULL
                      ? xasprintf ("the domain XML the hook was given is that of '%s'", named)
                      : xstrdup ("the domain XML the hook was given names no domain");
      free (xml);
      xml = NULL;
    }
  else if (too_big)
    xml_missing = xasprintf ("its domain XML is larger than the %d MiB the hook reads",
                             VMEM_HOOK_MAX_XML / (1024 * 1024));
  else if (xml == NULL || *xml == '\0')
    xml_missing = xstrdup ("libvirt gave the hook no domain XML");
  autofree char *uuid = vmem_hook_find_uuid (xml);

  /* vmemd needs the XML only to answer. */
  size_t len = 0;
  autofree char *msg =
    build_call (op, subop, extra, domain, uuid, waits && xml_missing == NULL ? xml : NULL, !waits,
                waits ? &xml_missing : &(char *){ NULL }, &len);
  if (waits && xml_missing != NULL)
    syslog (LOG_WARNING, "%s %s of %s: %s; not sent", op, subop, domain, xml_missing);

  int64_t left = (deadline - now_us ()) / 1000;
  int left_ms = left > 1 ? (int) left : 1;
  CallError error = { 0 };
  if (!waits)
    {
      /* A notification: handed to vmemd's socket, never waited on. */
      int status = 0;
      if (len > VMEM_VARLINK_MAX_MESSAGE)
        call_fail (&error, CALL_FAILED, "%s: call is %zu bytes, more than the %d byte limit",
                   HOOK_METHOD, len, VMEM_VARLINK_MAX_MESSAGE);
      if (error.message != NULL ||
          !send_oneway (config->socket_path, msg, len + 1, left_ms > 20 ? left_ms : 20, &error))
        status = without_daemon (config, domain, op, subop, error.message, err_fd);
      free (error.message);
      return status;
    }

  JValue *result = NULL;
  JValue *reply = len > VMEM_VARLINK_MAX_ROOT_MESSAGE
                    ? NULL
                    : call (config->socket_path, msg, len + 1, left_ms,
                            VMEM_VARLINK_MAX_ROOT_MESSAGE, &result, &error);
  if (reply == NULL)
    {
      if (error.message == NULL)
        call_fail (&error, CALL_FAILED, "%s: call is %zu bytes, more than the %d byte limit",
                   HOOK_METHOD, len, VMEM_VARLINK_MAX_ROOT_MESSAGE);
      /* Silent for the whole timeout: the calls that follow, those of
       * this very start among them, do not wait that long again. */
      if (!hurried && error.status == CALL_TIMEOUT)
        silent_mark (silent);
      int status = without_daemon (config, domain, op, subop, error.message, err_fd);
      free (error.message);
      return status;
    }
  if (hurried)
    unlink (silent);

  int status = 0;
  JValue *allow = jvalue_get (result, "allow");
  const char *m = jvalue_string (jvalue_get (result, "message"));
  const char *out = jvalue_string (jvalue_get (result, "xml"));
  if (allow == NULL || allow->type != J_BOOL)
    status = without_daemon (config, domain, op, subop, "its reply has no allow field", err_fd);
  else if (!allow->boolean)
    {
      const char *line = m && *m ? m : "vmemd refused to start the domain";
      syslog (LOG_NOTICE, "%s: %s", domain, line);
      say (err_fd, line);
      status = 1;
    }
  else
    {
      /* Allowed with a warning (not checked, over capacity in warn mode). */
      if (m != NULL && *m != '\0')
        {
          syslog (LOG_WARNING, "%s: %s", domain, m);
          say (err_fd, m);
        }
      if (vmem_hook_prints_xml (op, subop) && out != NULL)
        write_all (out_fd, out, strlen (out));
    }
  jvalue_free (reply);
  return status;
}

int
vmem_hook_run (int argc, char **argv, int in_fd, int out_fd, int err_fd)
{
  /* libvirt waits for every run of every hook: what vmemd would only log
   * costs no more than an exec. */
  if (argc >= 3 && !vmem_hook_passes_on (argv[2], argc > 3 ? argv[3] : "-"))
    return 0;

  int64_t start = now_us ();
  HookConfig config = { 0 };

  openlog ("vmem-hook", LOG_PID, LOG_DAEMON);
  int status = hook_run (argc, argv, in_fd, out_fd, err_fd, start, &config);
  backstop_disarm ();
  closelog ();
  free (config.socket_path);
  return status;
}
