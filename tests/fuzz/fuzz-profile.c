/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Profile import: the file `vmemctl profile import` reads (an array of
 * profiles or {"profiles": [...]}), then vmem_profile_from_json() on each
 * entry as the daemon's ProfileImport does, alone and merged into a base
 * as ProfileSet does.  A profile that parses must come back unchanged
 * from its own JSON form. */
#include "fuzz-common.h"
#include "vmem-cleanup.h"
#include "vmem-profile.h"
#include "vmemctl-args.h"

static void
check_round_trip (const VmemProfile *p)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) j = vmem_profile_to_json (p);
  g_autoptr(VmemProfile) again = vmem_profile_from_json (j, NULL, &error);
  if (again == NULL)
    g_error ("profile '%s' does not read back from %s: %s", p->name,
             json_object_to_json_string (j), error->message);
  g_autoptr(json_object) j2 = vmem_profile_to_json (again);
  g_assert_cmpstr (json_object_to_json_string (j), ==, json_object_to_json_string (j2));
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_silence_logs ();
  g_autofree char *path = fuzz_write_file ("profiles.json", data, size);
  g_autoptr(GError) error = NULL;
  g_autoptr(json_object) arr = vmemctl_load_profiles (path, &error);
  if (arr == NULL)
    {
      g_assert (error != NULL);
      /* The daemon gets JSON from clients other than vmemctl: parse what
       * json-c makes of the file as one profile too. */
      g_autoptr(json_tokener) tok = json_tokener_new ();
      g_autoptr(json_object) doc = json_tokener_parse_ex (tok, (const char *) data, (int) MIN (size, G_MAXINT));
      g_autoptr(GError) local = NULL;
      g_autoptr(VmemProfile) p = vmem_profile_from_json (doc, NULL, &local);
      g_assert ((p == NULL) != (local == NULL));
      if (p != NULL)
        check_round_trip (p);
      return 0;
    }

  g_autoptr(VmemProfile) base = vmem_profile_new ("base");
  for (size_t i = 0; i < json_object_array_length (arr); i++)
    {
      json_object *entry = json_object_array_get_idx (arr, i);
      g_autoptr(GError) local = NULL;
      g_autoptr(VmemProfile) p = vmem_profile_from_json (entry, NULL, &local);
      /* vmemctl checked the file: the daemon must agree. */
      if (p == NULL)
        g_error ("profiles[%zu] passed vmemctl's check but not the daemon's: %s", i,
                 local->message);
      check_round_trip (p);
      (void) vmem_profile_matches (p, "erp-1");

      g_clear_error (&local);
      g_autoptr(VmemProfile) merged = vmem_profile_from_json (entry, p, &local);
      g_assert (merged != NULL);
      g_clear_error (&local);
      g_autoptr(VmemProfile) other = vmem_profile_from_json (entry, base, &local);
      g_assert ((other == NULL) != (local == NULL));
    }
  return 0;
}
