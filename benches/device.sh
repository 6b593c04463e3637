#!/usr/bin/env bash
# The GPU benchmark matrix on a lent NVIDIA machine, one command (prepare with
# benches/device-prepare.sh; run with carry [".gl", ".devbin"]). Installs the Vulkan loader
# from .gl/, checks that wgpu sees a hardware adapter, then writes to $OUT (or ./device-out):
#   info.json         the adapters wgpu sees and the one chosen
#   bench_moe.json    MoE DEBUG B=1/64, EXPERIMENT B=1/8 on the GPU (cell-updates/s, % of FP32),
#                     with the per-kernel profile (--profile: ms, FLOP, bytes, % of peak and
#                     bandwidth, modeled roofline bounds)
#   bench_flows.json  flows debug B=1 and 64, experiment B=16 on the GPU (flow-steps/s), profiled too
#   *.log             each command's stderr (the table and the logs)
# Each case is time-limited so that one slow case cannot use up the device time.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-device-out}"
mkdir -p "$out"
steps="${STEPS:-10}"

for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
bin=.devbin/lattice
[ -x "$bin" ] || { echo "no $bin: run benches/device-prepare.sh first" >&2; exit 2; }

"$bin" info --json > "$out/info.json" 2> "$out/info.log"
if ! grep -q '"type": "DiscreteGpu"' "$out/info.json"; then
    echo "no hardware GPU adapter; see $out/info.json" >&2
    exit 2
fi
status=0
for what in moe flows; do
    timeout "${CASE_TIMEOUT_S:-240}" "$bin" bench "$what" --backend gpu --profile --steps "$steps" \
        > "$out/bench_$what.json" 2> "$out/bench_$what.log" || status=$?
    tail -n 8 "$out/bench_$what.log"
done
exit $status
