#!/usr/bin/env bash
# npm run test:all [-- VERSION...]: build, type-check and lint once, then the whole test suite on
# this machine's node and again on each further node line given (default: 22 24, the LTS lines
# beside this machine's 20), each first on PATH (scripts/node-runtime.sh fetches and caches it
# outside the clone). Every version runs even after one failed; exits 1 if any failed. Ends with
# each run's result and time, and the names of the tests that failed (the whole output is long:
# a log shows only its tail).
set -uo pipefail
cd "$(dirname "$0")/.."
if (($# == 0)); then set -- 22 24; fi

npm run build && npm run typecheck && npm run lint || exit 1

summary=()
failures=()
failed=0
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
run_suite() { # label, then the PATH to run with
  local label=$1 path=$2 start rc log
  log=$logs/${#summary[@]}.log
  echo "== test suite on $label"
  start=$SECONDS
  PATH=$path npm run test:suite 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  if ((rc == 0)); then summary+=("$label: passed in $((SECONDS - start)) s"); else
    summary+=("$label: FAILED (exit $rc) after $((SECONDS - start)) s")
    failures+=("$label:" "$(grep -E '^ *(✖|not ok )' "$log" | sort -u | head -40)")
    failed=1
  fi
}

run_suite "node $(node --version) (this machine's)" "$PATH"
for version in "$@"; do
  if ! bin=$(scripts/node-runtime.sh "$version"); then
    summary+=("node $version: FAILED (no runtime)")
    failed=1
    continue
  fi
  run_suite "node $("$bin/node" --version)" "$bin:$PATH"
done

if ((${#failures[@]})); then
  echo "== failed tests"
  printf '%s\n' "${failures[@]}"
fi
echo "== node versions"
printf '%s\n' "${summary[@]}"
exit "$failed"
