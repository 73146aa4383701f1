#!/usr/bin/env bash
# Why our Opus encoder scored under GStreamer's at the same bitrate: the
# same speech (espeak-ng) encoded clean at 24 and 32 kbit/s CBR with each
# setting that differs between the two, one at a time, scored with
# wide-band PESQ. Ours: VOIP application, complexity 9, in-band FEC on with
# an expected loss (the rate controller now starts with FEC off until loss
# is seen), hard CBR. GStreamer's `opusenc` defaults: AUDIO application,
# complexity 10, no FEC, constrained VBR (`bitrate-type=constrained-vbr`).
#
# Needs: espeak-ng, sox, python3-venv; makes a venv with numpy and pesq
# under target/. Not run in CI. Usage: audio/quality/encoder-gap.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
. audio/quality/common.sh
speech_wavs "$work"
cargo build --release --quiet -p cryptic-audio --example opus_quality
bin="${CARGO_TARGET_DIR:-target}/release/examples/opus_quality"

score() { # bitrate; the encoder's settings in the environment; no loss
  env "${@:2}" "$bin" "$work/speech48k.wav" "$work/out.wav" "$1" 0 1 2>/dev/null
  sox -V1 "$work/out.wav" -r 16000 "$work/out16k.wav"
  "$venv/bin/python" audio/quality/pesq_score.py "$work/ref16k.wav" "$work/out16k.wav"
}
row() { # name, then the settings
  echo "| $1 | $(score 24000 "${@:2}") | $(score 32000 "${@:2}") |"
}

echo "| setting | 24 kbit/s | 32 kbit/s |"
echo "|---|---|---|"
row "ours now: voice, complexity 9, no FEC while no loss is seen" OPUS_FEC=0
row "ours before: voice, complexity 9, FEC planned for 5 %" OPUS_PLAN_LOSS=5
row "complexity 10" OPUS_FEC=0 OPUS_COMPLEXITY=10
row "fidelity tuning (the AUDIO application)" OPUS_FEC=0 OPUS_TUNING=fidelity
row "fidelity tuning, complexity 10" OPUS_FEC=0 OPUS_TUNING=fidelity OPUS_COMPLEXITY=10
row "fidelity tuning, 10 ms frames (a microphone's in a call)" OPUS_FEC=0 OPUS_TUNING=fidelity OPUS_FRAME_MS=10
row "low-delay application (CELT only, 4 ms less delay)" OPUS_FEC=0 OPUS_TUNING=lowdelay
row "low-delay application, 10 ms frames" OPUS_FEC=0 OPUS_TUNING=lowdelay OPUS_FRAME_MS=10
row "constrained VBR (sizes follow speech)" OPUS_FEC=0 OPUS_CBR=0
row "constrained VBR, fidelity tuning, complexity 10 (GStreamer opusenc's defaults)" OPUS_FEC=0 OPUS_CBR=0 OPUS_TUNING=fidelity OPUS_COMPLEXITY=10
