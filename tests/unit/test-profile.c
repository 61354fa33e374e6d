/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "vmem-cleanup.h"
#include "vmem-error.h"
#include "vmem-profile.h"
#include "vmem-units.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

/* The message must start with "FIELD:" so that a client can tell which
 * field to fix, and mention @needle when given. */
static void
assert_field_error (const GError *error, const char *field, const char *needle)
{
  assert_non_null (error);
  assert_true (g_error_matches (error, VMEM_ERROR, VMEM_ERROR_INVALID_ARGUMENT));
  g_autofree char *prefix = g_strdup_printf ("%s:", field);
  if (!g_str_has_prefix (error->message, prefix))
    fail_msg ("error \"%s\" does not name the field '%s'", error->message, field);
  if (needle != NULL && strstr (error->message, needle) == NULL)
    fail_msg ("error \"%s\" does not mention \"%s\"", error->message, needle);
}

static void
assert_invalid (const VmemProfile *p, const char *field, const char *needle)
{
  g_autoptr(GError) error = NULL;

  if (vmem_profile_validate (p, &error))
    fail_msg ("profile with a bad %s was accepted", field);
  assert_field_error (error, field, needle);
}

static void
assert_valid (const VmemProfile *p)
{
  g_autoptr(GError) error = NULL;

  if (!vmem_profile_validate (p, &error))
    fail_msg ("valid profile refused: %s", error->message);
}

static json_object *
parse_json (const char *text)
{
  json_object *obj = json_tokener_parse (text);
  if (obj == NULL)
    fail_msg ("test JSON does not parse: %s", text);
  return obj;
}

/* from_json on @text must fail, naming @field. */
static void
assert_json_refused (const char *text, const VmemProfile *base, const char *field,
                     const char *needle)
{
  g_autoptr(json_object) obj = parse_json (text);
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemProfile) p = vmem_profile_from_json (obj, base, &error);

  if (p != NULL)
    fail_msg ("%s was accepted", text);
  assert_field_error (error, field, needle);
}

static VmemProfile *
from_json_ok (const char *text, const VmemProfile *base)
{
  g_autoptr(json_object) obj = parse_json (text);
  g_autoptr(GError) error = NULL;
  VmemProfile *p = vmem_profile_from_json (obj, base, &error);

  if (p == NULL)
    fail_msg ("%s was refused: %s", text, error->message);
  assert_null (error);
  return p;
}

static void
assert_profiles_equal (const VmemProfile *a, const VmemProfile *b)
{
  assert_string_equal (a->name, b->name);
  assert_int_equal (a->demand_mib, b->demand_mib);
  assert_int_equal (a->floor_mib, b->floor_mib);
  assert_int_equal (a->ceiling_mib, b->ceiling_mib);
  assert_true (fabs (a->margin_pct - b->margin_pct) < 1e-9);
  assert_true (fabs (a->quantile - b->quantile) < 1e-9);
  assert_true (fabs (a->buffer_pct - b->buffer_pct) < 1e-9);
  assert_int_equal (a->mode, b->mode);
  assert_int_equal (!!a->prealloc, !!b->prealloc);
  assert_int_equal (a->scale, b->scale);
  assert_int_equal (a->priority, b->priority);
  if (a->match == NULL || b->match == NULL)
    assert_ptr_equal (a->match, b->match);
  else
    assert_string_equal (a->match, b->match);
}

static void
test_defaults (void **state)
{
  g_autoptr(VmemProfile) p = vmem_profile_new ("erp");

  assert_string_equal (p->name, "erp");
  assert_int_equal (p->demand_mib, 0);
  assert_int_equal (p->floor_mib, 0);
  assert_int_equal (p->ceiling_mib, 0);
  assert_true (p->margin_pct == 15.0);
  assert_true (p->quantile == 0.90);
  assert_true (p->risk_pct == 5.0);
  assert_true (p->buffer_pct == 20.0);
  assert_int_equal (p->mode, VMEM_MODE_BALLOON);
  assert_true (p->prealloc);
  assert_int_equal (p->scale, VMEM_SCALE_ABSOLUTE);
  assert_int_equal (p->priority, 50);
  assert_null (p->match);
  assert_int_equal (p->created, 0);
  assert_int_equal (p->updated, 0);
  assert_valid (p);
}

static void
test_copy_is_deep (void **state)
{
  g_autoptr(VmemProfile) p = vmem_profile_new ("erp");
  p->match = g_strdup ("erp-*");
  p->demand_mib = 2048;
  p->created = 17;

  g_autoptr(VmemProfile) c = vmem_profile_copy (p);
  assert_profiles_equal (p, c);
  assert_int_equal (c->created, 17);
  assert_ptr_not_equal (c->name, p->name);
  assert_ptr_not_equal (c->match, p->match);

  /* Changing the original must not change the copy. */
  p->name[0] = 'X';
  p->match[0] = 'X';
  assert_string_equal (c->name, "erp");
  assert_string_equal (c->match, "erp-*");
}

static void
test_name_valid (void **state)
{
  static const char *const good[] = { "erp", "pg-primary", "a", "web_1.2", "A9", "x-" };
  for (gsize i = 0; i < G_N_ELEMENTS (good); i++)
    {
      g_autoptr(GError) error = NULL;
      if (!vmem_profile_name_valid (good[i], &error))
        fail_msg ("'%s' refused: %s", good[i], error->message);
    }

  g_autofree char *max = g_strnfill (64, 'n');
  g_autoptr(GError) error = NULL;
  assert_true (vmem_profile_name_valid (max, &error));
  assert_null (error);
}

static void
test_name_invalid (void **state)
{
  static const struct {
    const char *name;
    const char *needle;
  } bad[] = {
    { NULL, "empty" },          { "", "empty" },       { "a/b", "may only contain" },
    { "/", "may only contain" }, { "a b", "may only contain" }, { " erp", "may only contain" },
    { "erp\n", "may only contain" }, { "-erp", "must not start" }, { ".erp", "must not start" },
    { "erp*", "may only contain" }, { "é", "may only contain" },  { "a:b", "may only contain" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr(GError) error = NULL;
      if (vmem_profile_name_valid (bad[i].name, &error))
        fail_msg ("name '%s' was accepted", bad[i].name);
      assert_field_error (error, "name", bad[i].needle);
    }

  g_autofree char *long_name = g_strnfill (65, 'n');
  g_autoptr(GError) error = NULL;
  assert_false (vmem_profile_name_valid (long_name, &error));
  assert_field_error (error, "name", "longer than 64");
}

static void
test_validate_name (void **state)
{
  g_autoptr(VmemProfile) p = vmem_profile_new ("has space");
  assert_invalid (p, "name", NULL);

  g_free (p->name);
  p->name = g_strdup ("a/b");
  assert_invalid (p, "name", NULL);

  g_free (p->name);
  p->name = g_strdup ("-opt");
  assert_invalid (p, "name", NULL);

  g_free (p->name);
  p->name = g_strnfill (65, 'x');
  assert_invalid (p, "name", "64");

  g_free (p->name);
  p->name = NULL;
  assert_invalid (p, "name", "empty");
}

static void
test_validate_floor_ceiling (void **state)
{
  g_autoptr(VmemProfile) p = vmem_profile_new ("erp");

  p->floor_mib = 4096;
  p->ceiling_mib = 2048;
  assert_invalid (p, "floor", "4G is above the ceiling 2G");

  p->ceiling_mib = 4096;
  assert_valid (p);

  /* 0 means unset, so a floor alone or a ceiling alone is fine. */
  p->ceiling_mib = 0;
  assert_valid (p);
  p->floor_mib = 0;
  p->ceiling_mib = 1;
  assert_valid (p);
}

static void
test_validate_demand_bounds (void **state)
{
  g_autoptr(VmemProfile) p = vmem_profile_new ("erp");

  p->floor_mib = 1024;
  p->ceiling_mib = 8192;
  p->demand_mib = 9000;
  assert_invalid (p, "demand", "above the ceiling 8G");
  p->demand_mib = 512;
  assert_invalid (p, "demand", "512M is below the floor 1G");
  p->demand_mib = 1024;
  assert_valid (p);
  p->demand_mib = 8192;
  assert_valid (p);
  p->demand_mib = 0;
  assert_valid (p);
}

static void
test_validate_sizes_too_large (void **state)
{
  g_autoptr(VmemProfile) p = vmem_profile_new ("erp");

  p->demand_mib = VMEM_SIZE_MAX_MIB + 1;
  assert_invalid (p, "demand", "1 PiB");
  p->demand_mib = 0;
  p->floor_mib = VMEM_SIZE_MAX_MIB + 1;
  assert_invalid (p, "floor", "1 PiB");
  p->floor_mib = 0;
  p->ceiling_mib = G_MAXUINT64;
  assert_invalid (p, "ceiling", "1 PiB");
  p->ceiling_mib = VMEM_SIZE_MAX_MIB;
  assert_valid (p);
}

static void
test_validate_ranges (void **state)
{
  g_autoptr(VmemProfile) p = vmem_profile_new ("erp");

  p->margin_pct = -0.1;
  assert_invalid (p, "margin", "out of range");
  p->margin_pct = 400.5;
  assert_invalid (p, "margin", "out of range");
  p->margin_pct = NAN;
  assert_invalid (p, "margin", NULL);
  p->margin_pct = 400;
  assert_valid (p);
  p->margin_pct = 0;
  assert_valid (p);

  p->quantile = 0.49;
  assert_invalid (p, "quantile", "out of range");
  p->quantile = 1.01;
  assert_invalid (p, "quantile", "out of range");
  p->quantile = INFINITY;
  assert_invalid (p, "quantile", NULL);
  p->quantile = 0.5;
  assert_valid (p);
  p->quantile = 1.0;
  assert_valid (p);

  p->risk_pct = 0.05;
  assert_invalid (p, "risk", "out of range");
  p->risk_pct = 51;
  assert_invalid (p, "risk", "out of range");
  p->risk_pct = NAN;
  assert_invalid (p, "risk", NULL);
  p->risk_pct = 0.1;
  assert_valid (p);
  p->risk_pct = 50;
  assert_valid (p);

  p->buffer_pct = -1;
  assert_invalid (p, "buffer", "out of range");
  p->buffer_pct = 401;
  assert_invalid (p, "buffer", "out of range");
  p->buffer_pct = 0;
  assert_valid (p);

  p->priority = -1;
  assert_invalid (p, "priority", "-1 is out of range");
  p->priority = 101;
  assert_invalid (p, "priority", "101 is out of range");
  p->priority = 0;
  assert_valid (p);
  p->priority = 100;
  assert_valid (p);

  p->mode = (VmemMode) 7;
  assert_invalid (p, "mode", NULL);
  p->mode = VMEM_MODE_OBSERVE;
  p->scale = (VmemScale) 9;
  assert_invalid (p, "scale", NULL);
  p->scale = VMEM_SCALE_PER_VCPU;
  assert_valid (p);
}

static void
test_validate_match (void **state)
{
  g_autoptr(VmemProfile) p = vmem_profile_new ("erp");

  p->match = g_strdup ("");
  assert_invalid (p, "match", NULL);

  g_free (p->match);
  p->match = g_strdup ("erp/*");
  assert_invalid (p, "match", "'/'");

  g_free (p->match);
  p->match = g_strdup ("erp-\t*");
  assert_invalid (p, "match", "control");

  g_free (p->match);
  p->match = g_strnfill (257, '*');
  assert_invalid (p, "match", "256");

  g_free (p->match);
  p->match = g_strnfill (256, '*');
  assert_valid (p);

  g_free (p->match);
  p->match = g_strdup ("erp-[0-9]*");
  assert_valid (p);
}

static void
test_mode_scale_strings (void **state)
{
  VmemMode mode = VMEM_MODE_BALLOON;
  VmemScale scale = VMEM_SCALE_ABSOLUTE;

  for (int m = VMEM_MODE_BALLOON; m <= VMEM_MODE_OBSERVE; m++)
    {
      g_autoptr(GError) error = NULL;
      assert_true (vmem_mode_from_string (vmem_mode_to_string ((VmemMode) m), &mode, &error));
      assert_int_equal (mode, m);
    }
  assert_string_equal (vmem_mode_to_string (VMEM_MODE_VIRTIO_MEM), "virtio-mem");
  assert_string_equal (vmem_scale_to_string (VMEM_SCALE_PER_VCPU), "per-vcpu");
  assert_string_equal (vmem_mode_to_string ((VmemMode) 42), "unknown");
  assert_string_equal (vmem_scale_to_string ((VmemScale) 42), "unknown");

  for (int s = VMEM_SCALE_ABSOLUTE; s <= VMEM_SCALE_PER_VCPU; s++)
    {
      g_autoptr(GError) error = NULL;
      assert_true (vmem_scale_from_string (vmem_scale_to_string ((VmemScale) s), &scale, &error));
      assert_int_equal (scale, s);
    }

  g_autoptr(GError) error = NULL;
  mode = VMEM_MODE_OBSERVE;
  assert_false (vmem_mode_from_string ("Balloon", &mode, &error));
  assert_field_error (error, "mode", "'Balloon'");
  assert_int_equal (mode, VMEM_MODE_OBSERVE);
  g_clear_error (&error);
  assert_false (vmem_mode_from_string (NULL, &mode, &error));
  assert_field_error (error, "mode", NULL);
  g_clear_error (&error);
  assert_false (vmem_scale_from_string ("vcpu", &scale, &error));
  assert_field_error (error, "scale", "'vcpu'");
}

static void
test_json_round_trip (void **state)
{
  g_autoptr(VmemProfile) p = vmem_profile_new ("pg-primary");
  p->demand_mib = 6144;
  p->floor_mib = 2048;
  p->ceiling_mib = 16384;
  p->margin_pct = 12.5;
  p->quantile = 0.99;
  p->buffer_pct = 30;
  p->mode = VMEM_MODE_VIRTIO_MEM;
  p->prealloc = FALSE;
  p->scale = VMEM_SCALE_PER_VCPU;
  p->priority = 80;
  p->match = g_strdup ("pg-*");
  p->created = 1700000000;
  p->updated = 1700000100;

  g_autoptr(json_object) obj = vmem_profile_to_json (p);
  /* Through text, as on the wire. */
  const char *text = json_object_to_json_string_ext (obj, JSON_C_TO_STRING_PLAIN);
  g_autoptr(json_object) back = parse_json (text);
  g_autoptr(GError) error = NULL;
  g_autoptr(VmemProfile) q = vmem_profile_from_json (back, NULL, &error);
  if (q == NULL)
    fail_msg ("%s: %s", text, error->message);
  assert_profiles_equal (p, q);
  /* The store owns the timestamps; they are not read back. */
  assert_int_equal (q->created, 0);
  assert_int_equal (q->updated, 0);
}

static void
test_json_form (void **state)
{
  g_autoptr(VmemProfile) p = vmem_profile_new ("erp");
  g_autoptr(json_object) obj = vmem_profile_to_json (p);
  json_object *v = NULL;

  assert_true (json_object_object_get_ex (obj, "name", &v));
  assert_string_equal (json_object_get_string (v), "erp");
  assert_true (json_object_object_get_ex (obj, "demand_mib", &v));
  assert_true (json_object_is_type (v, json_type_int));
  assert_true (json_object_object_get_ex (obj, "mode", &v));
  assert_string_equal (json_object_get_string (v), "balloon");
  assert_true (json_object_object_get_ex (obj, "scale", &v));
  assert_string_equal (json_object_get_string (v), "absolute");
  assert_true (json_object_object_get_ex (obj, "prealloc", &v));
  assert_true (json_object_is_type (v, json_type_boolean));
  assert_true (json_object_object_get_ex (obj, "quantile", &v));
  assert_string_equal (json_object_to_json_string (v), "0.9");
  assert_true (json_object_object_get_ex (obj, "risk_pct", &v));
  assert_string_equal (json_object_to_json_string (v), "5.0");
  assert_true (json_object_object_get_ex (obj, "margin_pct", &v));
  assert_string_equal (json_object_to_json_string (v), "15.0");
  assert_false (json_object_object_get_ex (obj, "match", NULL));
  assert_false (json_object_object_get_ex (obj, "created", NULL));
  assert_false (json_object_object_get_ex (obj, "updated", NULL));

  p->created = 5;
  g_autoptr(json_object) obj2 = vmem_profile_to_json (p);
  assert_true (json_object_object_get_ex (obj2, "created", &v));
  assert_int_equal (json_object_get_int64 (v), 5);
}

static void
test_from_json_minimal_takes_defaults (void **state)
{
  g_autoptr(VmemProfile) p = from_json_ok ("{\"name\":\"erp\"}", NULL);
  g_autoptr(VmemProfile) d = vmem_profile_new ("erp");
  assert_profiles_equal (p, d);
}

static void
test_from_json_size_strings (void **state)
{
  g_autoptr(VmemProfile) p = from_json_ok (
    "{\"name\":\"erp\",\"demand_mib\":\"2G\",\"floor_mib\":\"512M\",\"ceiling_mib\":\"1.5T\"}",
    NULL);
  assert_int_equal (p->demand_mib, 2048);
  assert_int_equal (p->floor_mib, 512);
  assert_int_equal (p->ceiling_mib, 1536 * 1024);

  g_autoptr(VmemProfile) q = from_json_ok ("{\"name\":\"erp\",\"demand_mib\":null}", NULL);
  assert_int_equal (q->demand_mib, 0);

  assert_json_refused ("{\"name\":\"erp\",\"demand_mib\":\"2X\"}", NULL, "demand_mib",
                       "unknown unit");
  assert_json_refused ("{\"name\":\"erp\",\"floor_mib\":\"1K\"}", NULL, "floor_mib",
                       "whole number of MiB");
  assert_json_refused ("{\"name\":\"erp\",\"ceiling_mib\":\"-1G\"}", NULL, "ceiling_mib", NULL);
}

static void
test_from_json_unknown_key (void **state)
{
  assert_json_refused ("{\"name\":\"erp\",\"demand\":2048}", NULL, "demand", "unknown field");
  assert_json_refused ("{\"name\":\"erp\",\"Mode\":\"balloon\"}", NULL, "Mode", "unknown field");
}

static void
test_from_json_wrong_types (void **state)
{
  static const struct {
    const char *json;
    const char *field;
  } cases[] = {
    { "{\"name\":42}", "name" },
    { "{\"name\":\"erp\",\"demand_mib\":true}", "demand_mib" },
    { "{\"name\":\"erp\",\"demand_mib\":1.5}", "demand_mib" },
    { "{\"name\":\"erp\",\"floor_mib\":[]}", "floor_mib" },
    { "{\"name\":\"erp\",\"ceiling_mib\":{}}", "ceiling_mib" },
    { "{\"name\":\"erp\",\"margin_pct\":\"15\"}", "margin_pct" },
    { "{\"name\":\"erp\",\"quantile\":null}", "quantile" },
    { "{\"name\":\"erp\",\"buffer_pct\":false}", "buffer_pct" },
    { "{\"name\":\"erp\",\"priority\":50.5}", "priority" },
    { "{\"name\":\"erp\",\"priority\":\"50\"}", "priority" },
    { "{\"name\":\"erp\",\"mode\":1}", "mode" },
    { "{\"name\":\"erp\",\"scale\":true}", "scale" },
    { "{\"name\":\"erp\",\"prealloc\":1}", "prealloc" },
    { "{\"name\":\"erp\",\"prealloc\":\"yes\"}", "prealloc" },
    { "{\"name\":\"erp\",\"match\":7}", "match" },
  };
  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    assert_json_refused (cases[i].json, NULL, cases[i].field, NULL);
}

static void
test_from_json_bad_values (void **state)
{
  assert_json_refused ("{\"name\":\"erp\",\"demand_mib\":-1}", NULL, "demand_mib", "negative");
  assert_json_refused ("{\"name\":\"erp\",\"floor_mib\":-4096}", NULL, "floor_mib", "negative");
  assert_json_refused ("{\"name\":\"erp\",\"mode\":\"fast\"}", NULL, "mode", "'fast'");
  assert_json_refused ("{\"name\":\"erp\",\"scale\":\"vcpu\"}", NULL, "scale", "'vcpu'");
  assert_json_refused ("{\"name\":\"erp\",\"quantile\":2}", NULL, "quantile", "out of range");
  assert_json_refused ("{\"name\":\"erp\",\"margin_pct\":-5}", NULL, "margin", "out of range");
  assert_json_refused ("{\"name\":\"erp\",\"buffer_pct\":1000}", NULL, "buffer", "out of range");
  assert_json_refused ("{\"name\":\"erp\",\"priority\":101}", NULL, "priority", "out of range");
  assert_json_refused ("{\"name\":\"erp\",\"priority\":-1}", NULL, "priority", "out of range");
  assert_json_refused ("{\"name\":\"erp\",\"priority\":100000}", NULL, "priority",
                       "out of range");
  assert_json_refused ("{\"name\":\"erp\",\"match\":\"a/b\"}", NULL, "match", NULL);
  assert_json_refused ("{\"name\":\"erp\",\"floor_mib\":4096,\"ceiling_mib\":1024}", NULL,
                       "floor", "above the ceiling");
  assert_json_refused ("{\"name\":\"erp\",\"demand_mib\":\"2G\",\"ceiling_mib\":\"1G\"}", NULL,
                       "demand", "above the ceiling");
  assert_json_refused ("{\"name\":\"erp\",\"demand_mib\":1073741825}", NULL, "demand", "1 PiB");
  assert_json_refused ("{\"name\":\"a b\"}", NULL, "name", NULL);
  assert_json_refused ("{\"demand_mib\":1}", NULL, "name", "missing");
}

static void
test_from_json_not_object (void **state)
{
  static const char *const texts[] = { "[]", "\"erp\"", "42", "null" };
  for (gsize i = 0; i < G_N_ELEMENTS (texts); i++)
    {
      g_autoptr(json_object) obj = json_tokener_parse (texts[i]);
      g_autoptr(GError) error = NULL;
      g_autoptr(VmemProfile) p = vmem_profile_from_json (obj, NULL, &error);
      assert_null (p);
      assert_field_error (error, "profile", "JSON object");
    }
}

static void
test_from_json_ignores_timestamps (void **state)
{
  g_autoptr(VmemProfile) p =
    from_json_ok ("{\"name\":\"erp\",\"created\":123,\"updated\":456}", NULL);
  assert_int_equal (p->created, 0);
  assert_int_equal (p->updated, 0);
}

static void
test_from_json_merge (void **state)
{
  g_autoptr(VmemProfile) base = vmem_profile_new ("erp");
  base->demand_mib = 2048;
  base->floor_mib = 1024;
  base->ceiling_mib = 8192;
  base->priority = 70;
  base->match = g_strdup ("erp-*");
  base->mode = VMEM_MODE_OBSERVE;
  base->created = 99;

  /* Only the given keys change; no name is needed with a base. */
  g_autoptr(VmemProfile) p = from_json_ok ("{\"demand_mib\":\"3G\",\"prealloc\":false}", base);
  assert_string_equal (p->name, "erp");
  assert_int_equal (p->demand_mib, 3072);
  assert_false (p->prealloc);
  assert_int_equal (p->floor_mib, 1024);
  assert_int_equal (p->ceiling_mib, 8192);
  assert_int_equal (p->priority, 70);
  assert_int_equal (p->mode, VMEM_MODE_OBSERVE);
  assert_string_equal (p->match, "erp-*");
  assert_int_equal (p->created, 99);

  /* The base itself is left alone. */
  assert_int_equal (base->demand_mib, 2048);
  assert_true (base->prealloc);

  /* The same name is not a rename. */
  g_autoptr(VmemProfile) q = from_json_ok ("{\"name\":\"erp\",\"priority\":10}", base);
  assert_int_equal (q->priority, 10);

  /* null and "" clear the match. */
  g_autoptr(VmemProfile) r = from_json_ok ("{\"match\":null}", base);
  assert_null (r->match);
  g_autoptr(VmemProfile) s = from_json_ok ("{\"match\":\"\"}", base);
  assert_null (s->match);

  /* The merged result is validated as a whole. */
  assert_json_refused ("{\"demand_mib\":512}", base, "demand", "below the floor");
  assert_json_refused ("{\"ceiling_mib\":1500}", base, "demand", "above the ceiling 1500M");
  assert_json_refused ("{\"ceiling_mib\":1000}", base, "floor", "above the ceiling 1000M");
  assert_int_equal (base->demand_mib, 2048);
}

static void
test_from_json_rename_refused (void **state)
{
  g_autoptr(VmemProfile) base = vmem_profile_new ("erp");

  assert_json_refused ("{\"name\":\"crm\"}", base, "name", "cannot rename profile 'erp' to 'crm'");
  assert_json_refused ("{\"name\":\"\"}", base, "name", "cannot rename");
  assert_json_refused ("{\"name\":null}", NULL, "name", "must not be empty");
  assert_string_equal (base->name, "erp");
}

static void
test_matches (void **state)
{
  g_autoptr(VmemProfile) p = vmem_profile_new ("erp");

  assert_false (vmem_profile_matches (p, "erp-1"));

  p->match = g_strdup ("erp-*");
  assert_true (vmem_profile_matches (p, "erp-1"));
  assert_true (vmem_profile_matches (p, "erp-"));
  assert_true (vmem_profile_matches (p, "erp-db.prod"));
  assert_false (vmem_profile_matches (p, "erp"));
  assert_false (vmem_profile_matches (p, "xerp-1"));
  assert_false (vmem_profile_matches (p, "ERP-1"));
  assert_false (vmem_profile_matches (p, NULL));

  g_free (p->match);
  p->match = g_strdup ("web-[0-9]?");
  assert_true (vmem_profile_matches (p, "web-1a"));
  assert_false (vmem_profile_matches (p, "web-a1"));
  assert_false (vmem_profile_matches (p, "web-1"));

  g_free (p->match);
  p->match = g_strdup ("exact");
  assert_true (vmem_profile_matches (p, "exact"));
  assert_false (vmem_profile_matches (p, "exact2"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_defaults),
    cmocka_unit_test (test_copy_is_deep),
    cmocka_unit_test (test_name_valid),
    cmocka_unit_test (test_name_invalid),
    cmocka_unit_test (test_validate_name),
    cmocka_unit_test (test_validate_floor_ceiling),
    cmocka_unit_test (test_validate_demand_bounds),
    cmocka_unit_test (test_validate_sizes_too_large),
    cmocka_unit_test (test_validate_ranges),
    cmocka_unit_test (test_validate_match),
    cmocka_unit_test (test_mode_scale_strings),
    cmocka_unit_test (test_json_round_trip),
    cmocka_unit_test (test_json_form),
    cmocka_unit_test (test_from_json_minimal_takes_defaults),
    cmocka_unit_test (test_from_json_size_strings),
    cmocka_unit_test (test_from_json_unknown_key),
    cmocka_unit_test (test_from_json_wrong_types),
    cmocka_unit_test (test_from_json_bad_values),
    cmocka_unit_test (test_from_json_not_object),
    cmocka_unit_test (test_from_json_ignores_timestamps),
    cmocka_unit_test (test_from_json_merge),
    cmocka_unit_test (test_from_json_rename_refused),
    cmocka_unit_test (test_matches),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
