#!/usr/bin/env bash
# Echo cancellation figures: ERLE in far-end single talk after 2 s, CPU per
# 10 ms frame, and wide-band PESQ of the near-end speech during double talk
# with no canceller, with sonora (our default) and, when Debian's
# libwebrtc-audio-processing-dev is installed, with PulseAudio's library,
# all on the same recording in one run (audio/examples/aec_figures.rs).
#
# Needs: espeak-ng, sox, python3-venv (scripts/packages/audio.txt); makes a
# venv with numpy and pesq from PyPI under target/. Not run in CI.
# Usage: audio/quality/aec.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
. audio/quality/common.sh
espeak-ng -v en-us -s 150 -w "$work/far.wav" "The birch canoe slid on the smooth planks. \
Glue the sheet to the dark blue background. It is easy to tell the depth of a well. \
These days a chicken leg is a rare dish."
espeak-ng -v en-gb+f3 -s 140 -w "$work/near.wav" "Rice is often served in round bowls. \
The juice of lemons makes fine punch. The box was thrown beside the parked truck."
for x in far near; do
  sox "$work/$x.wav" -r 48000 -c 1 -b 16 "$work/${x}48.wav" gain -n -6
done
features=()
if pkg-config --exists webrtc-audio-processing 2>/dev/null; then
  features=(--features webrtc-apm)
fi
cargo run --release --quiet -p cryptic-audio "${features[@]}" --example aec_figures -- \
  "$work/far48.wav" "$work/near48.wav" "$work"
sox -V1 "$work/near-dt.wav" -r 16000 "$work/ref16k.wav"
for x in mic sonora webrtc; do
  [ -f "$work/$x-dt.wav" ] || continue
  sox -V1 "$work/$x-dt.wav" -r 16000 "$work/${x}16k.wav"
  label="$x"; [ "$x" = mic ] && label="no canceller"
  printf 'double talk, near-end PESQ-WB, %-12s %s\n' "$label" \
    "$("$venv/bin/python" audio/quality/pesq_score.py "$work/ref16k.wav" "$work/${x}16k.wav")"
done
