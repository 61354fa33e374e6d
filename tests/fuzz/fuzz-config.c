/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmem_config_load() on a file of arbitrary bytes: GKeyFile, then every
 * key's own parser (sizes, durations, enums, numbers). */
#include "fuzz-common.h"
#include "vmem-config.h"

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
  return 0;
}
