/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmem_config_load() on a file of arbitrary bytes: GKeyFile, then every
 * key's own parser (sizes, durations, enums, numbers); and the hook's own
 * reader of its three keys (vmem_hook_read_config), which must take every
 * file vmemd takes and find the same values in it. */
#include "fuzz-common.h"
#include "vmem-config.h"
#include "vmem-hook-lib.h"

#include <stdlib.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_silence_logs ();
  g_autofree char *path = fuzz_write_file ("vmemd.conf", data, size);
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemConfig) config = vmem_config_load (path, TRUE, &error);

  /* Exactly one of a config and an error. */
  g_assert ((config == NULL) != (error == NULL));
  if (config != NULL)
    {
      g_assert (config->socket_path != NULL && config->database != NULL);
      (void) vmem_admission_to_string (config->admission);
      (void) vmem_not_ready_to_string (config->not_ready);
    }
  else
    g_assert (error->message != NULL && g_utf8_validate (error->message, -1, NULL));

  char *socket = NULL, *hook_error = NULL;
  unsigned timeout_ms = 0;
  bool fail_closed = false;
  bool hook_ok = vmem_hook_read_config (path, &socket, &timeout_ms, &fail_closed, &hook_error);
  g_assert (hook_ok == (hook_error == NULL) && socket != NULL);
  if (config != NULL)
    {
      if (!hook_ok)
        g_error ("vmemd takes the file, the hook does not: %s", hook_error);
      g_assert_cmpstr (socket, ==, config->socket_path);
      g_assert_cmpuint (timeout_ms, ==, config->hook_timeout_ms);
      g_assert (fail_closed == (config->fail_closed != FALSE));
    }
  if (!hook_ok)
    {
      g_assert_cmpstr (socket, ==, VMEM_DEFAULT_SOCKET);
      g_assert_cmpuint (timeout_ms, ==, VMEM_HOOK_DEFAULT_TIMEOUT_MS);
      g_assert (!fail_closed);
    }
  free (socket);
  free (hook_error);
  return 0;
}
