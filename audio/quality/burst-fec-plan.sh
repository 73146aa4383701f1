#!/usr/bin/env bash
# How much loss the encoder should plan FEC for when the receiver reports
# once a second (issue 16): wide-band PESQ of speech (espeak-ng) at
# 40 kbit/s CBR under Gilbert-Elliott burst loss (good to bad 2 %, bad to
# good 40 %, about 5 %) and under 5 % random loss, the planned loss taken
# from each report alone ("report") against RateControl's ("control"),
# paired on the same loss pattern per seed. See audio/examples/burst_fec_plan.rs.
#
# Needs: espeak-ng, sox, python3-venv; makes a venv with numpy and pesq
# under target/. Not run in CI (about two minutes).
# Usage: audio/quality/burst-fec-plan.sh [SEEDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
seeds="${1:-40}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
. audio/quality/common.sh

speech_wavs "$work"

cargo build --release --quiet -p cryptic-audio --example burst_fec_plan
bin="${CARGO_TARGET_DIR:-target}/release/examples/burst_fec_plan"

score() { # plan p r seed
  "$bin" "$work/speech48k.wav" "$work/out.wav" "$@" 2>/dev/null
  sox -V1 "$work/out.wav" -r 16000 "$work/out16k.wav"
  "$venv/bin/python" audio/quality/pesq_score.py "$work/ref16k.wav" "$work/out16k.wav"
}
compare() { # name p r
  for seed in $(seq 1 "$seeds"); do
    echo "$(score report "$2" "$3" "$seed") $(score control "$2" "$3" "$seed")"
  done | awk -v name="$1" '{ r += $1; c += $2; d = $2 - $1; s += d; q += d * d; if (d > 0) b++ }
    END { m = s / NR; sd = sqrt((q - NR * m * m) / (NR - 1));
          printf "| %s | %.2f | %.2f | %+.3f +- %.3f | %d of %d |\n", name, r / NR, c / NR, m, sd / sqrt(NR), b, NR }'
}

echo "| loss | report | control | difference (+- s.e.) | control better |"
echo "|---|---|---|---|---|"
compare "Gilbert-Elliott, about 5 %" 0.02 0.4
compare "5 % random" 0.05 0.95
