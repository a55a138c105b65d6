"""espeak-ng rendering into a directory of WAV files: each prompt rendered once, then reused."""

import contextlib
import hashlib
import os
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hardware.voice.prompts import Prompt

ESPEAK = "espeak-ng"  # the Debian package espeak-ng; its data holds the cmn-latn-pinyin voice
DEFAULT_SPEED = 150  # words a minute; espeak-ng's own 175 is brisk for elderly listeners
RENDER_TIMEOUT = 10.0  # seconds; a prompt takes espeak-ng about 15 ms on x86
SILENCE_RMS = 0.01  # of full scale: below it a render is silence (speech is around 0.1)
_STDERR_TAIL = 200  # characters of a tool's complaint kept for health reports


class VoiceError(Exception):
    """A prompt could not be rendered or played; the message says why."""


@dataclass(frozen=True)
class WavStats:
    """How long a WAV plays, and how loud it is (RMS as a fraction of full scale)."""

    duration_s: float
    rms: float


def wav_stats(path: Path) -> WavStats:
    """Duration and loudness of a 16-bit PCM WAV (what espeak-ng writes)."""
    with wave.open(str(path), "rb") as wav:
        if wav.getsampwidth() != 2:
            raise VoiceError(f"{path.name}: {8 * wav.getsampwidth()}-bit samples, not 16-bit")
        frames = wav.getnframes()
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(frames), dtype="<i2").astype(np.float64)
    rms = float(np.sqrt(np.mean(samples**2))) / 32768 if samples.size else 0.0
    return WavStats(frames / rate, rms)


def stderr_tail(stderr: bytes) -> str:
    """The end of what a tool wrote to stderr, on one line, for a health report."""
    text = " ".join(stderr.decode(errors="replace").split())
    return text[-_STDERR_TAIL:] or "no message"


class WavCache:
    """WAV files of rendered prompts in a directory, named by what was rendered.

    The name is the SHA-256 of voice, speed and text, so a prompt renders once and a changed
    prompt, voice or speed renders anew. Files are written to a temporary name and renamed,
    so a reader (or a crash) never sees half a file. Safe to use from several threads.
    """

    def __init__(
        self,
        directory: Path,
        *,
        espeak: str = ESPEAK,
        speed: int = DEFAULT_SPEED,
        timeout: float = RENDER_TIMEOUT,
    ) -> None:
        self.directory = directory
        self.espeak = espeak
        self.speed = speed
        self.timeout = timeout

    def path_for(self, prompt: Prompt) -> Path:
        key = f"{prompt.voice}\0{self.speed}\0{prompt.text}".encode()
        return self.directory / f"{hashlib.sha256(key).hexdigest()}.wav"

    def get(self, prompt: Prompt) -> Path:
        """The prompt's WAV, rendered now if it is not in the cache; VoiceError if it fails."""
        path = self.path_for(prompt)
        if not path.exists():
            self.render(prompt, path)
        return path

    def render(self, prompt: Prompt, path: Path) -> None:
        """Run espeak-ng for the prompt into path (atomically); VoiceError if it fails."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=".wav.tmp")
            os.close(descriptor)
        except OSError as error:
            raise VoiceError(f"cannot write to {path.parent}: {error}") from None
        try:
            self._run_espeak(prompt, Path(temporary))
            os.replace(temporary, path)
        except OSError as error:
            raise VoiceError(f"cannot write to {path.parent}: {error}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)

    def _run_espeak(self, prompt: Prompt, path: Path) -> None:
        command = [self.espeak, "-v", prompt.voice, "-s", str(self.speed), "-w", str(path)]
        try:
            done = subprocess.run(
                [*command, prompt.text],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError:
            raise VoiceError(f"{self.espeak} not found (Debian package espeak-ng)") from None
        except subprocess.TimeoutExpired:
            raise VoiceError(f"{self.espeak} took more than {self.timeout:g} s") from None
        except OSError as error:
            raise VoiceError(f"{self.espeak} could not run: {error}") from None
        if done.returncode != 0:
            raise VoiceError(
                f"{self.espeak} -v {prompt.voice} exited {done.returncode}: "
                + stderr_tail(done.stderr)
            )
        try:
            stats = wav_stats(path)
        except (wave.Error, EOFError) as error:
            raise VoiceError(f"{self.espeak} wrote no valid WAV: {error}") from None
        if stats.rms < SILENCE_RMS:
            raise VoiceError(f"{self.espeak} -v {prompt.voice} wrote silence")
