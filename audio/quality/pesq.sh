#!/usr/bin/env bash
# Quality figures of our Opus set-up: wide-band PESQ of speech (espeak-ng)
# encoded and decoded at 16, 24 and 32 kbit/s CBR, clean and with 5 % and
# 10 % random frame loss rebuilt with FEC + PLC (and 10 % with PLC only, to
# show what FEC adds). Loss is averaged over SEEDS seeds.
#
# Needs: espeak-ng, sox, python3-venv (scripts/packages/audio.txt); makes a
# venv with numpy and pesq from PyPI under target/. Not run in CI (about a
# minute). Usage: audio/quality/pesq.sh [SEEDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
seeds="${1:-3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
. audio/quality/common.sh

speech_wavs "$work"

cargo build --release --quiet -p cryptic-audio --example opus_quality
bin="${CARGO_TARGET_DIR:-target}/release/examples/opus_quality"

score() { # bitrate loss seed [plc-only]
  "$bin" "$work/speech48k.wav" "$work/out.wav" "$@" 2>/dev/null
  sox -V1 "$work/out.wav" -r 16000 "$work/out16k.wav"
  "$venv/bin/python" audio/quality/pesq_score.py "$work/ref16k.wav" "$work/out16k.wav"
}
mean() { # bitrate loss [plc-only]
  for seed in $(seq 1 "$seeds"); do
    score "$1" "$2" "$seed" ${3:-}
  done | awk '{ s += $1 } END { printf "%.2f", s / NR }'
}

echo "| bitrate | clean | 5 % loss, FEC+PLC | 10 % loss, FEC+PLC | 10 % loss, PLC only |"
echo "|---|---|---|---|---|"
for rate in 16000 24000 32000; do
  echo "| $((rate / 1000)) kbit/s | $(score $rate 0 1) | $(mean $rate 5) | $(mean $rate 10) | $(mean $rate 10 plc-only) |"
done
