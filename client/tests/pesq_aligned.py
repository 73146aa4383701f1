"""Wide-band PESQ of what a call delivered against what was said.

The degraded recording holds the whole call (silence before and after the
speech): the speech is found in it by cross-correlation, cut out with
half a second around it, and scored against the reference (P.862.2).
Both files 16 kHz mono 16-bit. Prints the score.

usage: pesq_aligned.py REF.wav DEG.wav
"""
import sys
import wave

import numpy as np
from pesq import pesq


def read(path):
    with wave.open(path, "rb") as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1, path
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32)


ref, deg = read(sys.argv[1]), read(sys.argv[2])
n = 1 << int(np.ceil(np.log2(len(ref) + len(deg))))
xc = np.fft.irfft(np.fft.rfft(deg, n) * np.conj(np.fft.rfft(ref, n)), n)
lag = int(np.argmax(xc[: len(deg)]))
pad = 8000
start = max(0, lag - pad)
cut = deg[start : lag + len(ref) + pad]
ref_padded = np.concatenate([np.zeros(lag - start, np.float32), ref, np.zeros(pad, np.float32)])
m = min(len(ref_padded), len(cut))
print(f"{pesq(16000, ref_padded[:m], cut[:m], 'wb'):.2f}")
