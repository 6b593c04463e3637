#!/usr/bin/env bash
# Prepares, on the development machine, what benches/device.sh needs on a lent NVIDIA machine
# (which has the driver but no Vulkan loader, no Rust and no network):
# the loader's .deb files in .gl/ and the release binary in .devbin/, both git-ignored locally.
# Then run, through the device tool, with carry [".gl", ".devbin"]:  bash benches/device.sh
set -euo pipefail
cd "$(dirname "$0")/.."

for d in .gl .devbin; do
    grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >> .git/info/exclude
done
mkdir -p .gl .devbin /tmp/amd64/partial
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
    o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
    # shellcheck disable=SC2086
    apt-get $o update
    # shellcheck disable=SC2086
    (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
cargo build --release --bin lattice
cp target/release/lattice .devbin/lattice
echo "ready: .gl/ ($(ls .gl | wc -l) packages) and .devbin/lattice"
