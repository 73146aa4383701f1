"""Wide-band PESQ (ITU-T P.862.2) of a degraded WAV against a reference.

Both files: 16 kHz mono 16-bit. Prints the MOS-LQO score.
Usage: pesq_score.py REF.wav DEG.wav
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
n = min(len(ref), len(deg))
print(f"{pesq(16000, ref[:n], deg[:n], 'wb'):.2f}")
