"""PLACEHOLDER speech: the emulator has no speech recognition or synthesis model.

Input audio is measured, not understood: its duration and a plain energy voice-activity detector (RMS of
16-bit LPCM frames above a threshold) decide when the user spoke and when they stopped, and the user turn the
model answers is a placeholder text naming the duration (`placeholder_transcript`), which scripted rules can match.
Output audio is a quiet sine tone of the requested sample rate whose length matches the text at a speaking pace,
so players, buffers and barge-in logic downstream see realistic sizes and timing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SPEECH_RMS = 500.0  # int16 RMS above which a frame counts as speech (quiet room noise stays well below)
FRAME_S = 0.032  # the ~32 ms frames Nova Sonic's samples send
WORDS_PER_SECOND = 2.5  # ~150 words a minute, a common speaking pace
TONE_HZ = 220.0
TONE_AMPLITUDE = 1200  # quiet: obviously a placeholder, never clipping
CHUNK_S = 0.1  # each audioOutput event carries 100 ms


def placeholder_transcript(seconds: float) -> str:
    """The user turn that stands in for speech the emulator cannot recognise."""
    return f"[audio input: {seconds:.2f} s of speech]"


def speech_seconds(text: str) -> float:
    """How long `text` takes to say at the placeholder's speaking pace (at least a short syllable)."""
    words = len(text.split())
    return max(0.2, words / WORDS_PER_SECOND)


@lru_cache(maxsize=8)
def _second_of_tone(rate: int) -> np.ndarray:
    # 220 Hz fits a whole number of cycles in one second, so seconds tile without a click.
    return (TONE_AMPLITUDE * np.sin(2 * np.pi * TONE_HZ * np.arange(rate) / rate)).astype("<i2")


def tone(seconds: float, rate: int) -> bytes:
    """`seconds` of the placeholder tone as 16-bit little-endian mono LPCM at `rate` Hz."""
    count = int(round(seconds * rate))
    second = _second_of_tone(rate)
    return np.tile(second, count // rate + 1)[:count].tobytes()


def chunks(pcm: bytes, rate: int) -> list[bytes]:
    size = max(2, int(rate * CHUNK_S) * 2)
    return [pcm[i : i + size] for i in range(0, len(pcm), size)] or [b""]


@dataclass
class Endpointing:
    """Silence after speech that ends a user's turn, by Nova Sonic's endpointingSensitivity (HIGH ends soonest)."""

    silence_s: float = 0.8

    @classmethod
    def of(cls, sensitivity: str | None) -> "Endpointing":
        return cls({"HIGH": 0.5, "MEDIUM": 0.8, "LOW": 1.2}.get(sensitivity or "MEDIUM", 0.8))


class VoiceActivity:
    """Follows one audio content's LPCM: total duration, speech heard, and whether a pause ended the turn."""

    def __init__(self, rate: int, endpointing: Endpointing) -> None:
        self.rate = rate
        self.endpointing = endpointing
        self._frame_bytes = max(2, int(rate * FRAME_S) * 2)
        self._pending = b""
        self.seconds = 0.0  # all audio received in this content
        self.speech_s = 0.0  # speech in the current (not yet answered) user turn
        self.silence_s = 0.0  # silence since the last speech frame

    @property
    def speaking(self) -> bool:
        return self.speech_s > 0

    def feed(self, pcm: bytes) -> tuple[bool, bool]:
        """Take LPCM bytes; return (speech started in them, the turn ended by a pause in them)."""
        data = self._pending + pcm
        whole = len(data) - len(data) % self._frame_bytes
        self._pending = data[whole:]
        if not whole:
            return False, False
        frames = np.frombuffer(data[:whole], dtype="<i2").astype(np.float64).reshape(-1, self._frame_bytes // 2)
        loud = np.sqrt((frames * frames).mean(axis=1)) >= SPEECH_RMS  # numpy: linear, and off Python's loop cost
        seconds = frames.shape[1] / self.rate
        started = ended = False
        for speech in loud.tolist():
            self.seconds += seconds
            if speech:
                started |= not self.speaking
                self.speech_s += seconds + self.silence_s
                self.silence_s = 0.0
            elif self.speaking:
                self.silence_s += seconds
                if self.silence_s >= self.endpointing.silence_s:
                    ended = True
        return started, ended

    def take_turn(self) -> float:
        """The speech of the turn that just ended (its duration), and a fresh start for the next one."""
        spoken, self.speech_s, self.silence_s = self.speech_s, 0.0, 0.0
        return spoken
