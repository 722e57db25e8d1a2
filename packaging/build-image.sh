#!/usr/bin/env bash
# Builds a vigil container image from a locally built static binary, without pulling any
# base image: the image is `FROM scratch` with
#
#   /usr/bin/vigil                 the static vigil (glibc, +crt-static)
#   /bin/busybox + applet links    a static shell and tools for the demo tree
#                                  (Debian's busybox-static; set BUSYBOX= for another)
#   /etc/vigil/vigil.toml          the tree to run (default: config/demo.toml)
#   /etc/passwd, /etc/group        root and nobody, so `user = "nobody"` resolves
#   /tmp                           mode 1777
#
# ENTRYPOINT ["/usr/bin/vigil"], CMD ["run", "/etc/vigil/vigil.toml"]: the demo tree with
# vigil as PID 1. `--entrypoint` and arguments change that, e.g.
#   podman run --rm IMAGE check /etc/vigil/vigil.toml
#   podman run --rm --entrypoint '["/usr/bin/vigil","exec","--"]' IMAGE sh -c 'exit 3'
#
# Usage: packaging/build-image.sh [--tag TAG] [--config FILE] [--with-test-child]
#   --tag TAG          image name (default: localhost/vigil:dev)
#   --config FILE      tree installed as /etc/vigil/vigil.toml (default: config/demo.toml)
#   --with-test-child  also install /usr/bin/vigil-test-child (for tests/container.rs)
# Environment: CARGO (default cargo), CARGO_TARGET_DIR (default target), PODMAN (default
# podman; docker works too), BUSYBOX (default /bin/busybox).
#
# The Containerfile at the top of the repository does the same from public base images,
# for machines that can pull them.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
tag=localhost/vigil:dev
config=$repo/config/demo.toml
test_child=false
while [ $# -gt 0 ]; do
  case $1 in
    --tag) tag=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --with-test-child) test_child=true; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "build-image.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

cargo=${CARGO:-cargo}
podman=${PODMAN:-podman}
busybox=${BUSYBOX:-/bin/busybox}
target_dir=${CARGO_TARGET_DIR:-$repo/target}

is_static() { # no program interpreter and no shared libraries
  ! LC_ALL=C readelf -l "$1" 2>/dev/null | grep -q 'program interpreter' &&
    ! LC_ALL=C readelf -d "$1" 2>/dev/null | grep -q '(NEEDED)'
}

[ -x "$busybox" ] || {
  echo "build-image.sh: $busybox not found: install a static busybox (Debian: apt-get install busybox-static) or set BUSYBOX=" >&2
  exit 1
}
is_static "$busybox" || {
  echo "build-image.sh: $busybox is dynamically linked and would not run FROM scratch: install busybox-static" >&2
  exit 1
}
command -v "$podman" >/dev/null || {
  echo "build-image.sh: $podman not found (Debian: apt-get install podman runc), or set PODMAN=docker" >&2
  exit 1
}

# A static binary: glibc linked statically. The target is given explicitly so RUSTFLAGS
# apply to vigil only, not to build scripts and proc macros (which must stay dynamic).
triple=$(rustc -vV | sed -n 's/^host: //p')
bins=(--bin vigil)
$test_child && bins+=(--bin vigil-test-child)
echo "==> static build for $triple" >&2
(cd "$repo" && RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" CARGO_TARGET_DIR=$target_dir \
  "$cargo" build --release --target "$triple" "${bins[@]}")
out=$target_dir/$triple/release
for b in vigil $($test_child && echo vigil-test-child); do
  is_static "$out/$b" || { echo "build-image.sh: $out/$b is not static" >&2; exit 1; }
done

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root=$ctx/rootfs
mkdir -p "$root/usr/bin" "$root/bin" "$root/etc/vigil" "$root/tmp" "$root/root"
chmod 1777 "$root/tmp"
install -m 0755 "$out/vigil" "$root/usr/bin/vigil"
$test_child && install -m 0755 "$out/vigil-test-child" "$root/usr/bin/vigil-test-child"
install -m 0755 "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
install -m 0644 "$config" "$root/etc/vigil/vigil.toml"
cp -R "$repo/packaging/rootfs/." "$root/"  # /etc/passwd, /etc/group (shared with the Containerfile)

cat >"$ctx/Containerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/bin:/bin
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/bin/vigil"]
CMD ["run", "/etc/vigil/vigil.toml"]
EOF
echo "==> $podman build -t $tag" >&2
"$podman" build --quiet -t "$tag" "$ctx" >/dev/null
size=$("$podman" image inspect --format '{{.Size}}' "$tag")
echo "built $tag: vigil $(stat -c %s "$out/vigil") bytes, image $size bytes" >&2
