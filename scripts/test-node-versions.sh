#!/usr/bin/env bash
# npm run test:all [-- VERSION...]: build, type-check and lint once, then the whole test suite on
# this machine's node and again on each further node line given (default: 22 24, the LTS lines
# beside this machine's 20), each first on PATH (scripts/node-runtime.sh fetches and caches it
# outside the clone). Every version runs even after one failed; exits 1 if any failed. Ends with
# each run's result and time.
set -uo pipefail
cd "$(dirname "$0")/.."
if (($# == 0)); then set -- 22 24; fi

npm run build && npm run typecheck && npm run lint || exit 1

summary=()
failed=0
run_suite() { # label, then the PATH to run with
  local label=$1 path=$2 start rc
  echo "== test suite on $label"
  start=$SECONDS
  PATH=$path npm run test:suite
  rc=$?
  if ((rc == 0)); then summary+=("$label: passed in $((SECONDS - start)) s"); else
    summary+=("$label: FAILED (exit $rc) after $((SECONDS - start)) s")
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

echo "== node versions"
printf '%s\n' "${summary[@]}"
exit "$failed"
