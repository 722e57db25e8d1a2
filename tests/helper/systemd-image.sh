#!/usr/bin/env bash
# Test-only (tests/container.rs): an image whose PID 1 is the host's own systemd, with
# systemd/vigil.service installed and enabled as shipped, to run the unit under a real
# systemd. Made FROM scratch from the host's files (nothing can be pulled): systemd's
# binaries and the libraries they load, busybox for a shell, the static vigil.
#
# Usage: systemd-image.sh TAG VIGIL UNIT TREE
set -euo pipefail
tag=$1 vigil=$2 unit=$3 tree=$4
busybox=${BUSYBOX:-/bin/busybox}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
cd "$root"
mkdir -p usr/lib usr/bin usr/local/bin usr/lib64 etc/systemd/system/multi-user.target.wants \
  etc/vigil tmp run var/log root
chmod 1777 tmp
ln -s usr/lib lib; ln -s usr/bin bin; ln -s usr/bin sbin; ln -s usr/lib64 lib64
cp -a /usr/lib/systemd usr/lib/
cp /usr/bin/systemctl /usr/bin/journalctl usr/bin/
for exe in /usr/lib/systemd/systemd* /usr/bin/systemctl /usr/bin/journalctl; do
  [ -f "$exe" ] && [ -x "$exe" ] && ldd "$exe" 2>/dev/null || true
done | awk '{for (i = 1; i <= NF; i++) if ($i ~ /^\//) print $i}' | sort -u |
  while read -r lib; do
    mkdir -p ".$(dirname "$lib")"
    cp -L "$lib" ".$lib"
  done
install -m 0755 "$busybox" usr/bin/busybox
for applet in $("$busybox" --list); do
  [ -e "usr/bin/$applet" ] || ln -s busybox "usr/bin/$applet"
done
install -m 0755 "$vigil" usr/local/bin/vigil
install -m 0644 "$unit" etc/systemd/system/vigil.service
ln -s ../vigil.service etc/systemd/system/multi-user.target.wants/vigil.service
install -m 0644 "$tree" etc/vigil/vigil.toml
printf 'root:x:0:0:root:/root:/bin/sh\n' >etc/passwd
printf 'root:x:0:\n' >etc/group
: >etc/machine-id
cp /etc/os-release etc/os-release
tar -C "$root" -cf - . |
  podman import --change 'CMD ["/lib/systemd/systemd"]' --change 'STOPSIGNAL SIGRTMIN+3' - "$tag" >/dev/null
