"""The speaker: prompts rendered through the WAV cache and played by one background worker.

say() only hands the prompts over and returns: the scan loop never waits for audio. The worker
holds at most one utterance in waiting: a newer one replaces it, since the person in front of
the kiosk now matters, not the one before. The one playing is let finish (at most a few
seconds). Failures never reach the caller: they show in health().

Playing is `aplay -q FILE` (Debian package alsa-utils) when no player command is given; then
a machine with no sound card (none in /proc/asound/cards) or no aplay has its voice "absent",
as does one without espeak-ng. A render or play that fails makes it "failing" until one works.
"""

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from hardware.closing import Closing
from hardware.voice.cache import (
    DEFAULT_SPEED,
    ESPEAK,
    RENDER_TIMEOUT,
    SILENCE_RMS,
    VoiceError,
    WavCache,
    stderr_tail,
    wav_stats,
)
from hardware.voice.language import Language
from hardware.voice.prompts import PASS, Prompt, prompt_for

logger = logging.getLogger(__name__)

ALSA_CARDS = Path("/proc/asound/cards")
PLAY_TIMEOUT = 15.0  # seconds: the longest prompt plays in under 6
JOIN_TIMEOUT = 2.0  # seconds close() waits for the worker
SELFTEST_SHORTEST = 0.3  # seconds of audio a rendered prompt has at least

State = Literal["ok", "absent", "failing"]


@dataclass(frozen=True)
class VoiceHealth:
    """How the voice is doing: ok; absent (no espeak-ng, player or sound card); failing.

    since: when this state began; detail: why it is not ok, if it is not.
    """

    state: State
    since: datetime
    detail: str | None


def has_sound_card(cards: Path = ALSA_CARDS) -> bool:
    """Whether ALSA lists a sound card (a line like " 0 [Headphones ]: ...")."""
    try:
        listing = cards.read_text(errors="replace")
    except OSError:
        return False
    return re.search(r"^\s*\d+\s+\[", listing, re.MULTILINE) is not None


def _find_player(player: Sequence[str] | None, cards: Path) -> tuple[list[str], str | None]:
    """The player command (the WAV's path goes last) and, if it cannot play, why."""
    if player is not None:
        if not player or shutil.which(player[0]) is None:
            return list(player), f"player command {list(player)} not found"
        return list(player), None
    aplay = shutil.which("aplay")
    if aplay is None:
        return [], "no audio player: aplay not found (Debian package alsa-utils)"
    if not has_sound_card(cards):
        return [], f"no sound card: {cards} lists none"
    return [aplay, "-q"], None


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    """Signal a player and whatever it started (a wrapper script's own player, say)."""
    if process.returncode is None:  # not yet reaped, so its id is still its own
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)


class Speaker(Closing):
    """Says prompts aside from the caller's thread, through a WAV cache in cache_dir.

    player: the command that plays a WAV, its path appended (default `aplay -q`); espeak:
    the espeak-ng executable; speed: words a minute; sound_cards: the ALSA card list consulted
    when the default player is used.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        player: Sequence[str] | None = None,
        espeak: str = ESPEAK,
        speed: int = DEFAULT_SPEED,
        render_timeout: float = RENDER_TIMEOUT,
        play_timeout: float = PLAY_TIMEOUT,
        sound_cards: Path = ALSA_CARDS,
    ) -> None:
        self.cache = WavCache(cache_dir, espeak=espeak, speed=speed, timeout=render_timeout)
        self.play_timeout = play_timeout
        self._player, no_player = _find_player(player, sound_cards)
        if shutil.which(espeak) is None:
            self._absent: str | None = f"{espeak} not found (Debian package espeak-ng)"
        else:
            self._absent = no_player
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: tuple[Prompt, ...] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._closing = False
        self._health = VoiceHealth(
            "ok" if self._absent is None else "absent", datetime.now(UTC), self._absent
        )
        if self._absent is not None:
            logger.warning("voice absent: %s", self._absent)
        self._worker = threading.Thread(target=self._work, name="voice", daemon=True)
        self._worker.start()

    # -- the caller's side ------------------------------------------------------------------

    def say(self, *prompts: Prompt | None) -> None:
        """Say these prompts, in order, as soon as the one playing ends; never blocks."""
        utterance = tuple(prompt for prompt in prompts if prompt is not None)
        if not utterance or self._absent is not None:
            return
        with self._wake:
            if self._closing:
                return
            if self._pending is not None:
                logger.debug("voice: %s replaces %s", utterance[0].key, self._pending[0].key)
            self._pending = utterance
            self._wake.notify()

    def prerender(self, prompts: Iterable[Prompt]) -> int:
        """Render the prompts not yet in the cache (at start); how many were rendered."""
        if self._absent is not None:
            return 0
        rendered = 0
        for prompt in prompts:
            if self.cache.path_for(prompt).exists():
                continue
            try:
                self.cache.render(prompt, self.cache.path_for(prompt))
            except VoiceError as error:
                self._set_health("failing", str(error))
                continue
            rendered += 1
        return rendered

    def health(self) -> VoiceHealth:
        with self._lock:
            return self._health

    def selftest(self) -> tuple[bool, str]:
        """Render one prompt afresh and check the audio; ok needs a player to play it, too."""
        prompt = prompt_for(PASS, (), None, Language.MANDARIN)
        assert prompt is not None  # a pass always has something to say
        started = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory() as scratch:
                path = Path(scratch) / "selftest.wav"
                self.cache.render(prompt, path)
                stats = wav_stats(path)
        except VoiceError as error:
            return False, str(error)
        elapsed_ms = (time.perf_counter() - started) * 1000
        if stats.duration_s < SELFTEST_SHORTEST:
            return False, f"{prompt.voice}: only {stats.duration_s:.2f} s of audio"
        rendered = (
            f"{prompt.voice} rendered {stats.duration_s:.1f} s in {elapsed_ms:.0f} ms"
            f" (RMS {stats.rms:.2f}, silence below {SILENCE_RMS})"
        )
        if self._absent is not None:
            return False, f"{rendered}; cannot play: {self._absent}"
        return True, f"{rendered}; plays with {' '.join(self._player)}"

    def close(self) -> None:
        """Stop the worker: drop what waits, stop what plays, wait a bounded time."""
        with self._wake:
            self._closing = True
            self._pending = None
            process = self._process
            self._wake.notify()
        if process is not None:
            _signal_group(process, signal.SIGTERM)
        self._worker.join(JOIN_TIMEOUT)

    # -- the worker -------------------------------------------------------------------------

    def _set_health(self, state: State, detail: str | None) -> None:
        with self._lock:
            if state == self._health.state:
                self._health = VoiceHealth(state, self._health.since, detail)
                return
            self._health = VoiceHealth(state, datetime.now(UTC), detail)
        if state == "ok":
            logger.info("voice ok again")
        else:
            logger.warning("voice %s: %s", state, detail)

    def _work(self) -> None:
        while True:
            with self._wake:
                # Woken by say() and by close(): an idle kiosk has nothing to wait for.
                self._wake.wait_for(lambda: self._pending is not None or self._closing)
                if self._closing:
                    return
                utterance, self._pending = self._pending or (), None
            for prompt in utterance:
                try:
                    self._play(self.cache.get(prompt))
                except VoiceError as error:
                    self._set_health("failing", f"{prompt.key}: {error}")
                    break
                if self._closing:
                    return
            else:
                self._set_health("ok", None)

    def _play(self, path: Path) -> None:
        command = [*self._player, str(path)]
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,  # its own process group: stopping it stops its children
            )
        except OSError as error:
            raise VoiceError(f"player {self._player[0]} could not run: {error}") from None
        with self._lock:
            self._process = process
            closing = self._closing
        if closing:  # close() came while the player started: it never saw this process
            _signal_group(process, signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=self.play_timeout)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.communicate()
            raise VoiceError(f"player took more than {self.play_timeout:g} s") from None
        finally:
            with self._lock:
                self._process = None
        if process.returncode != 0 and not closing and not self._closing:
            raise VoiceError(
                f"player {self._player[0]} exited {process.returncode}: {stderr_tail(stderr)}"
            )
