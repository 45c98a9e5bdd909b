"""The incoming-call alarm sound, synthesised once at start-up (no binary in the repo).

Two alternating tones, loud and unlike any other sound on an operator's desk; the page
loops it until the call is answered or declined.
"""

from __future__ import annotations

import io
import math
import struct
import wave
from functools import cache

RATE = 16_000
TONES = ((880.0, 0.25), (0.0, 0.05), (660.0, 0.25), (0.0, 0.45))
VOLUME = 0.6


@cache
def alarm_wav() -> bytes:
    """One second of the alarm pattern as a 16-bit mono WAV."""
    frames = bytearray()
    for freq, seconds in TONES:
        count = int(RATE * seconds)
        for i in range(count):
            fade = min(1.0, i / 160, (count - i) / 160)  # no clicks at the edges
            sample = VOLUME * fade * math.sin(2 * math.pi * freq * i / RATE) if freq else 0.0
            frames += struct.pack("<h", int(sample * 32767))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(frames))
    return out.getvalue()
