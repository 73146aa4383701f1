#!/usr/bin/env bash
# The listener's cost of catching up 300 ms of play-out delay (a delay
# spike's backlog): dropping whole frames against time-stretch, on speech
# (espeak-ng), wide-band PESQ against the untouched speech. See
# audio/examples/stretch_cost.rs. The delay side (p95 on the bursty and
# spike traces, stretching against dropping) is the table of
# `cargo test -p cryptic-jitter --release --test beats-fixed-buffer-on-every-trace -- --nocapture`.
#
# Needs: espeak-ng, sox, python3-venv; makes a venv with numpy and pesq
# under target/. Not run in CI. Usage: audio/quality/stretch-cost.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
. audio/quality/common.sh
speech_wavs "$work"
cargo build --release --quiet -p cryptic-audio --example stretch_cost
"${CARGO_TARGET_DIR:-target}/release/examples/stretch_cost" "$work/speech48k.wav" "$work"
sox -V1 "$work/reference.wav" -r 16000 "$work/ref16k.wav"
for how in dropping stretching; do
  sox -V1 "$work/$how.wav" -r 16000 "$work/${how}16k.wav"
  echo "$how: PESQ-WB $("$venv/bin/python" audio/quality/pesq_score.py "$work/ref16k.wav" "$work/${how}16k.wav")"
done
# Clicks: the largest step between neighbouring samples (the untouched
# speech's own largest step is the bar).
"$venv/bin/python" - "$work" <<'PY'
import sys, wave
import numpy as np
for name in ["reference", "dropping", "stretching"]:
    w = wave.open(f"{sys.argv[1]}/{name}.wav")
    x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(float)
    print(f"{name}: largest sample step {np.abs(np.diff(x)).max():.0f}")
PY
