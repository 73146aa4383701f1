#!/usr/bin/env bash
# Mouth to ear through real sound devices: `cryptic-call demo --devices`
# (alice's microphone and bob's speaker are PulseAudio's defaults) in a
# private PulseAudio daemon, against the stack alone in the same run (the
# demo's own figure: tone onsets from encoder to decoder, no devices).
#
# Noise bursts go into alice's microphone (`micfeed`, remapped as `mic`);
# two loopbacks of equal latency put the microphone's feed on the left and
# bob's speaker (`spk`) on the right of one stereo recording, and the
# delay is read by cross-correlation (audio/quality/xcorr_delay.py).
#
# Needs: pulseaudio, pulseaudio-utils, python3-venv (scripts/packages);
# makes a venv with numpy under target/. Not run in CI.
# With PASSTHROUGH=1 the call is replaced by the device floor: the
# microphone straight to the speaker (audio/examples/device_passthrough.rs),
# paced as a call paces them (10 ms frames, woken by the devices).
# PROFILE=release times the release build (CPU figures).
# The microphone sends 10 ms frames (the default with devices);
# SAVE_BANDWIDTH=1 runs the demo with --save-bandwidth (20 ms frames).
# Usage: [PASSTHROUGH=1] [PROFILE=release] [SAVE_BANDWIDTH=1] audio/quality/device-latency.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
runs="${1:-4}"
work="$(mktemp -d)"
. audio/quality/common.sh
profile="${PROFILE:-debug}"
if [ "$profile" = release ]; then
  cargo build --quiet --release -p cryptic-call
else
  cargo build --quiet -p cryptic-call
fi
bin="${CARGO_TARGET_DIR:-target}/$profile/cryptic-call"
passthrough="${PASSTHROUGH:-}"
if [ -n "$passthrough" ]; then
  cargo build --quiet -p cryptic-audio --example device_passthrough
fi
mkdir -p "$work/home" "$work/run"
cat > "$work/default.pa" <<PA
load-module module-native-protocol-unix auth-anonymous=1 socket=$work/native
load-module module-null-sink sink_name=spk format=s16le rate=48000 channels=1
load-module module-null-sink sink_name=micfeed format=s16le rate=48000 channels=1
load-module module-remap-source master=micfeed.monitor source_name=mic
load-module module-null-sink sink_name=rec format=s16le rate=48000 channels=2 channel_map=front-left,front-right
load-module module-loopback source=micfeed.monitor sink=rec latency_msec=20 channels=1 channel_map=front-left source_dont_move=true sink_dont_move=true
load-module module-loopback source=spk.monitor sink=rec latency_msec=20 channels=1 channel_map=front-right source_dont_move=true sink_dont_move=true
set-default-sink spk
set-default-source mic
PA
export HOME="$work/home" XDG_RUNTIME_DIR="$work/run" PULSE_SERVER="unix:$work/native"
pulseaudio -n -F "$work/default.pa" --daemonize=no --system=no --exit-idle-time=-1 \
  --disallow-exit --use-pid-file=no --realtime=no --high-priority=no --disable-shm=yes \
  --log-target=file:"$work/pa.log" &
pa=$!
trap 'kill $pa 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
# 30 ms noise bursts once a second, from 2 s on
"$venv/bin/python" - "$work/bursts.wav" <<'PY'
import sys, wave
import numpy as np
rate, n = 48000, 48000 * 12
x = np.zeros(n)
rng = np.random.default_rng(1)
for s in range(2 * rate, n, rate):
    x[s:s + int(0.03 * rate)] = rng.uniform(-1, 1, int(0.03 * rate)) * 12000
w = wave.open(sys.argv[1], "wb")
w.setnchannels(1); w.setsampwidth(2); w.setframerate(rate)
w.writeframes(x.astype(np.int16).tobytes()); w.close()
PY
for run in $(seq 1 "$runs"); do
  if [ -n "$passthrough" ]; then
    "${CARGO_TARGET_DIR:-target}/debug/examples/device_passthrough" 14 > "$work/demo.txt" 2>&1 &
  else
    /usr/bin/time -f "cpu: %U s user, %S s sys over %e s (the demo process: both users)" \
      "$bin" demo --devices ${SAVE_BANDWIDTH:+--save-bandwidth} --seconds 14 --output "$work/out.wav" > "$work/demo.txt" 2>&1 &
  fi
  demo=$!
  sleep 2
  parecord --device=rec.monitor --rate=48000 --channels=2 --format=s16le \
    --file-format=wav "$work/rec.wav" &
  rec=$!
  sleep 0.5
  paplay --device=micfeed --latency-msec=10 "$work/bursts.wav"
  sleep 2
  kill "$rec"; wait "$rec" 2>/dev/null || true
  wait "$demo" || true
  stack="$(grep -o 'tone onsets median [0-9]* ms' "$work/demo.txt" | awk '{print $4}' || true)"
  echo "run $run: devices $("$venv/bin/python" audio/quality/xcorr_delay.py "$work/rec.wav" | tail -1); stack alone ${stack:-?} ms"
  grep -hi "underrun\|jitter buffer\|^cpu:\|^mean over" "$work/demo.txt" || true
done
