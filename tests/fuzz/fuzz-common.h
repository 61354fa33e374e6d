/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by the fuzzers: the libFuzzer entry point, and a scratch
 * directory for parsers that read a file by path. */

#include <glib.h>
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

/* A private directory, made on first use and removed at exit. */
const char *fuzz_tmpdir (void);

/* Writes @data to @name inside fuzz_tmpdir(); returns the full path
 * (owned by the caller).  Aborts on I/O errors: they are the harness's,
 * not the parser's. */
char *fuzz_write_file (const char *name, const uint8_t *data, size_t size);

/* Drops GLib log messages below critical (FUZZ_VERBOSE=1 keeps them):
 * the parsers log what they reject, and a line per input only slows the
 * fuzzer down.  Makes criticals fatal. */
void fuzz_silence_logs (void);
