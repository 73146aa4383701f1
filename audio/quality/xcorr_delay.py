"""Mouth-to-ear delay from a stereo recording: the left channel is what
went into the microphone, the right what came out of the far speaker.

For each noise burst on the left, the lag of the best normalised
cross-correlation on the right within one second. Prints each lag and the
median of those that correlate (above 0.15: the codec, the canceller and
the noise suppressor change the burst's shape).
Usage: xcorr_delay.py REC.wav
"""
import sys
import wave

import numpy as np

w = wave.open(sys.argv[1])
rate = w.getframerate()
x = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
x = x.reshape(-1, 2).astype(np.float64)
left, right = x[:, 0], x[:, 1]
onsets, i = [], 0
while i < len(left):
    if abs(left[i]) > 3000:
        onsets.append(i)
        i += rate // 2
    else:
        i += 1
lags = []
burst = int(0.03 * rate)
for o in onsets:
    seg = left[o:o + burst]
    if o + rate + burst > len(right):
        break
    win = right[o:o + rate + burst]
    c = np.correlate(win, seg, mode="valid")
    k = int(np.argmax(np.abs(c)))
    ncc = abs(c[k]) / (np.linalg.norm(seg) * np.linalg.norm(win[k:k + burst]) + 1e-9)
    lags.append((k / rate * 1000, ncc))
for lag, ncc in lags:
    print(f"{lag:.1f} ms  ncc {ncc:.2f}")
good = [lag for lag, ncc in lags if ncc > 0.15]
print(f"median {np.median(good):.0f} ms over {len(good)} bursts" if good else "no burst correlated")
