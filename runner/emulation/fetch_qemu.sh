#!/bin/sh
# Put a qemu-aarch64 whose SME is right at $1 when the system's is not (older than QEMU 9: its SMOPA
# 4-way outer product gets every other row wrong, QEMU issue 2083), from Debian 13's qemu-user, whose
# binaries are static. apt works in a private directory: no system file or package list is touched.
set -eu
dest=$1
if command -v qemu-aarch64 >/dev/null; then
    major=$(qemu-aarch64 --version | sed -n 's/^qemu-aarch64 version \([0-9]*\).*/\1/p')
    if [ "${major:-0}" -ge 9 ]; then
        ln -sf "$(command -v qemu-aarch64)" "$dest"
        exit 0
    fi
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
echo "deb http://deb.debian.org/debian trixie main" >"$tmp/sources.list"
apt="apt-get -qq -o Dir::Etc::sourcelist=$tmp/sources.list -o Dir::Etc::sourceparts=- \
     -o Dir::State::Lists=$tmp/lists -o Dir::Cache=$tmp/cache -o APT::Sandbox::User=root"
$apt update
(cd "$tmp" && $apt download qemu-user/trixie)
dpkg-deb -x "$tmp"/qemu-user_*.deb "$tmp/x"
install -m 755 "$tmp/x/usr/bin/qemu-aarch64" "$dest"
"$dest" --version | head -1
