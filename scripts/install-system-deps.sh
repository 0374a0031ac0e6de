#!/usr/bin/env bash
# Debian packages of the programs the test suite starts: nats-server (the gateway's NATS queue),
# haproxy (proxy interop and benchmarks), redis-server and redis-tools (proxy benchmarks),
# prometheus (its promtool checks what /metrics serves), systemd (systemd-notify,
# systemd-socket-activate), python3 (the test receiver of sd_notify datagrams), iproute2 and
# nftables (the multi-host tests' namespaces, partitions and loss) and libssl-dev, OpenSSL's
# headers, which bench/connect-gen.c and bench/pipeline-gen.c (built by the tests and the benchmarks) need for --tls;
# gcc, which builds those and the LF workers' native addon (native/sockets.c, by npm run build).
# Installs only what is missing; uses sudo when not root.
set -euo pipefail
missing=()
for pkg_cmd in nats-server:nats-server haproxy:haproxy redis-server:redis-server redis-tools:redis-benchmark \
  prometheus:promtool systemd:systemd-notify systemd:systemd-socket-activate python3:python3 \
  iproute2:ip nftables:nft gcc:cc; do
  command -v "${pkg_cmd#*:}" >/dev/null 2>&1 || missing+=("${pkg_cmd%%:*}")
done
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "installing ${missing[*]} (Debian packages the tests need)" >&2
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
