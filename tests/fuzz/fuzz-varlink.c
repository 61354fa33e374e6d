/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The varlink framer and message parser, as the server and every client
 * run them: the input arrives in pieces whose sizes come from its first
 * byte, and every complete message is popped and parsed. */
#include "fuzz-common.h"
#include "vmem-cleanup.h"
#include "vmem-error.h"
#include "vmem-varlink.h"

#include <string.h>

/* Small, so that the limit is reached often. */
#define MAX_MESSAGE 4096

static void
pop_all (VmemVarlinkFramer *framer)
{
  while (vmem_varlink_framer_get_n_complete (framer) > 0)
    {
      gsize before = vmem_varlink_framer_get_n_complete (framer);
      g_autoptr(GError) error = NULL;
      g_autoptr(json_object) msg = vmem_varlink_framer_pop (framer, &error);
      g_assert_cmpuint (vmem_varlink_framer_get_n_complete (framer), ==, before - 1);
      if (msg == NULL)
        {
          g_assert (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL));
          continue;
        }
      g_assert (error == NULL);
      g_assert (json_object_is_type (msg, json_type_object));
      /* What a parsed message encodes to must frame and parse again. */
      g_autoptr(GBytes) bytes = vmem_varlink_encode (msg);
      gsize len = 0;
      const char *text = g_bytes_get_data (bytes, &len);
      g_assert (len > 0 && text[len - 1] == '\0' && memchr (text, '\0', len - 1) == NULL);
      g_autoptr(VmemVarlinkFramer) again = vmem_varlink_framer_new (G_MAXSIZE / 2);
      g_assert (vmem_varlink_framer_feed (again, text, len, NULL));
      g_autoptr(json_object) copy = vmem_varlink_framer_pop (again, NULL);
      g_assert (copy != NULL);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_silence_logs ();
  if (size == 0)
    return 0;
  /* 0 feeds everything at once; n feeds n bytes at a time. */
  gsize step = data[0] == 0 ? size : data[0];
  const char *p = (const char *) data + 1;
  gsize left = size - 1;

  g_autoptr(VmemVarlinkFramer) framer = vmem_varlink_framer_new (MAX_MESSAGE);
  while (left > 0)
    {
      gsize n = MIN (step, left);
      g_autoptr(GError) error = NULL;
      if (!vmem_varlink_framer_feed (framer, p, n, &error))
        {
          g_assert (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_PROTOCOL));
          g_assert_cmpuint (vmem_varlink_framer_get_n_complete (framer), ==, 0);
          g_assert (vmem_varlink_framer_pop (framer, NULL) == NULL);
          return 0;
        }
      g_assert_cmpuint (vmem_varlink_framer_get_partial (framer), <=, MAX_MESSAGE);
      p += n;
      left -= n;
      pop_all (framer);
    }
  return 0;
}
