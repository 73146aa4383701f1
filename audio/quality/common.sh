# Sourced by the quality scripts here (from the repository's root).

# The Python venv with numpy and pesq from PyPI under target/, made on
# first use: sets $venv.
venv="${CARGO_TARGET_DIR:-target}/pesq-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet numpy pesq
fi

# speech_wavs DIR: the test speech (espeak-ng, six Harvard sentences) as
# DIR/speech48k.wav (48 kHz mono, -6 dBFS peak, no dither, so that every
# run scores the same input) and DIR/ref16k.wav (PESQ's reference).
speech_wavs() {
  local text="The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. \
It is easy to tell the depth of a well. These days a chicken leg is a rare dish. \
Rice is often served in round bowls. The juice of lemons makes fine punch."
  espeak-ng -v en-us -s 150 -w "$1/speech.wav" "$text"
  sox -D "$1/speech.wav" -r 48000 -c 1 -b 16 "$1/speech48k.wav" gain -n -6
  sox -V1 "$1/speech48k.wav" -r 16000 "$1/ref16k.wav"
}
