#!/usr/bin/env bash
# Installs the peers vigil's benchmark compares against (see BENCHMARKS.md):
#   tini, dumb-init, supervisor (supervisord), runit (runsvdir/runsv), s6 (s6-svscan/s6-supervise)
#   from Debian with apt-get, and horust from crates.io with `cargo install`.
# Usage (as root): benches/install-peers.sh [--no-horust]
#   PEERS_ROOT=DIR  where `cargo install` puts horust (default /work/tools). The benchmark
#                   looks for every peer on PATH, in ~/.cargo/bin and in /work/tools/bin;
#                   for another DIR set VIGIL_BENCH_HORUST=DIR/bin/horust.
# The benchmark reports a peer it cannot find as "not installed" and goes on.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
for pkg in tini dumb-init supervisor runit s6; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# Debian's packages may start their own daemons where an init system runs; the benchmark
# starts its own instances from temporary directories and does not need them.
if [ "${1:-}" != "--no-horust" ]; then
  root="${PEERS_ROOT:-/work/tools}"
  if [ ! -x "$root/bin/horust" ]; then
    # horust 0.1.14, the version the published figures use; takes a few minutes to build.
    cargo install horust --version 0.1.14 --locked --root "$root"
  fi
fi
echo "peers installed: $(command -v tini dumb-init supervisord runsvdir s6-svscan | tr "\n" " ")${root:+$root/bin/horust}"
