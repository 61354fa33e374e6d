#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Runs libFuzzer fuzzers one after another, niced, each for SECONDS, from
# the checked-in corpus; new inputs go to BUILD/fuzz-work/NAME/corpus and
# crashes to BUILD/fuzz-work/NAME/ (see README.md to merge them back).
#   tests/fuzz/run.sh BUILD SECONDS [NAME...]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd)
seconds=$2
shift 2
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(varlink methods xml config trace profile hook)

max_len() {
  case $1 in
    xml|hook|methods) echo 16384 ;;
    *) echo 4096 ;;
  esac
}

for name in "${names[@]}"; do
  work="$build/fuzz-work/$name"
  mkdir -p "$work/corpus"
  echo "== $name: ${seconds}s, log $work/fuzz.log"
  rc=0
  TMPDIR=${TMPDIR:-/dev/shm} \
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    nice -n 10 "$build/tests/fuzz/fuzz-$name" \
      -max_total_time="$seconds" -max_len="$(max_len "$name")" -timeout=25 \
      -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$work/" \
      "$work/corpus" "$top/tests/fuzz/corpus/$name" >"$work/fuzz.log" 2>&1 || rc=$?
  grep -E '^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units|SUMMARY|Test unit written' "$work/fuzz.log" || true
  echo "   exit $rc"
done
