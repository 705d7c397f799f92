"""Alarm sounds in the IEC 60601-1-8 style, synthesized in pure Python and played by the kiosk.

The appliance has no sounder of its own, so the kiosk gives the audible part of its alarms:

- HIGH: a burst of 10 pulses (3 + 2, pause, 3 + 2) repeated every 3 s;
- MEDIUM: 3 pulses repeated every 6 s;
- LOW: 2 pulses repeated every 20 s;
- information (session done): one soft two-tone chime.

Pulses are 150 ms (HIGH) or 200 ms with 20 ms fades, a fundamental of 660/520/440 Hz with four
harmonics (IEC 60601-1-8 asks for at least four within 300-4000 Hz, so the sound is easy to
locate). "Pause sound" silences it for 2 minutes (:class:`kiosk.logic.AudioPause`).

The WAV files are built once per volume into a cache directory; building them needs no Kivy.
Playback (:class:`AlarmSound`) uses Kivy's audio and does nothing when the machine has no audio
device or ``LUMBAREST_KIOSK_MUTE=1``.
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
import wave
from pathlib import Path

RATE = 22050
REPEAT_S = {"high": 3.0, "medium": 6.0, "low": 20.0}
FUNDAMENTAL = {"high": 660.0, "medium": 520.0, "low": 440.0, "info": 523.25}
HARMONICS = (1.0, 0.5, 0.35, 0.25, 0.18)  # fundamental + 4 harmonics


def pulse_times(priority: str) -> list[tuple[float, float]]:
    """(start s, length s) of each pulse in one burst."""
    if priority == "high":
        starts = [0.0, 0.25, 0.5, 0.85, 1.1, 1.55, 1.8, 2.05, 2.4, 2.65]
        return [(t, 0.15) for t in starts]
    if priority == "medium":
        return [(0.0, 0.2), (0.35, 0.2), (0.7, 0.2)]
    if priority == "low":
        return [(0.0, 0.2), (0.35, 0.2)]
    return [(0.0, 0.35), (0.4, 0.5)]  # info chime


def synthesize(priority: str, volume: int) -> bytes:
    """16-bit mono PCM of one burst at ``volume`` (0-100)."""
    pulses = pulse_times(priority)
    total = max(start + length for start, length in pulses) + 0.05
    samples = [0.0] * int(total * RATE)
    amp = 0.6 * max(0, min(100, volume)) / 100.0 / sum(HARMONICS)
    for i, (start, length) in enumerate(pulses):
        f0 = FUNDAMENTAL[priority] * (1.5 if priority == "info" and i == 1 else 1.0)
        n0, n = int(start * RATE), int(length * RATE)
        fade = int(0.02 * RATE)
        for k in range(n):
            t = k / RATE
            env = min(1.0, k / fade, (n - k) / fade)
            value = sum(h * math.sin(2 * math.pi * f0 * (j + 1) * t)
                        for j, h in enumerate(HARMONICS))
            samples[n0 + k] += amp * env * value
    return b"".join(struct.pack("<h", int(max(-1.0, min(1.0, s)) * 32767)) for s in samples)


def wav_file(priority: str, volume: int, cache: Path | None = None) -> Path:
    cache = cache or Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / \
        f"lumbarest-kiosk-sounds-{os.getuid()}"
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{priority}-{int(volume)}.wav"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        with wave.open(str(tmp), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(RATE)
            out.writeframes(synthesize(priority, volume))
        os.replace(tmp, path)
    return path


def muted() -> bool:
    return os.environ.get("LUMBAREST_KIOSK_MUTE", "") not in ("", "0")


class AlarmSound:
    """Plays the burst for the current priority at its repeat interval (call :meth:`update`
    from the UI clock)."""

    def __init__(self):
        self.volume = 70
        self.priority: str | None = None
        self.next_at = 0.0
        self._sounds: dict = {}
        self.enabled = not muted()

    def _sound(self, priority: str):
        key = (priority, self.volume)
        if key not in self._sounds:
            try:
                from kivy.core.audio import SoundLoader
                self._sounds[key] = SoundLoader.load(str(wav_file(priority, self.volume)))
            except Exception:  # no audio device, no provider: stay silent, the screen still shows
                self._sounds[key] = None
        return self._sounds[key]

    def play_once(self, priority: str) -> None:
        if not self.enabled or self.volume <= 0:
            return
        sound = self._sound(priority)
        if sound is not None:
            try:
                sound.play()
            except Exception:
                pass

    def update(self, now: float, priority: str | None) -> None:
        """``priority``: the alarm to sound now (None: silence, e.g. audio paused)."""
        if priority != self.priority:
            self.priority = priority
            self.next_at = now
        if priority is None or now < self.next_at:
            return
        self.play_once(priority)
        self.next_at = now + REPEAT_S.get(priority, 10.0)
