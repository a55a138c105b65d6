import os
import time

import pytest

from hardware.voice.language import Language
from hardware.voice.prompts import fixed_prompts, prompt_for
from hardware.voice.speaker import JOIN_TIMEOUT, Speaker, has_sound_card

from .conftest import wait_until, write_script

CARD = " 0 [Headphones     ]: bcm2835_headpho - bcm2835 Headphones\n"
NO_CARD = "--- no soundcards ---\n"


def prompt(outcome, reasons=(), temperature=None, language=Language.MANDARIN):
    return prompt_for(outcome, list(reasons), temperature, language)


@pytest.fixture
def speaker_with(tmp_path, espeak):
    speakers = []

    def make(player, **options):
        options.setdefault("espeak", espeak)
        speakers.append(Speaker(tmp_path / "wav", player=player.command, **options))
        return speakers[-1]

    yield make
    for speaker in speakers:
        speaker.close()


def test_say_returns_while_the_prompt_plays(speaker_with, fake_player):
    player = fake_player(seconds=30)
    speaker = speaker_with(player)
    started = time.monotonic()
    speaker.say(prompt("pass"))
    assert time.monotonic() - started < 1.0  # the player takes 30 s
    wait_until(player.played, "the player to start")
    assert player.played() == [str(speaker.cache.path_for(prompt("pass")))]


def test_a_newer_prompt_replaces_the_one_waiting(speaker_with, fake_player):
    player = fake_player(seconds=1.0)
    speaker = speaker_with(player)
    first, second, third = prompt("pass"), prompt("deny"), prompt("refer")
    speaker.say(first)
    wait_until(lambda: len(player.played()) == 1, "the first prompt to play")
    speaker.say(second)  # waits for the first to end...
    speaker.say(third)  # ...and is replaced: the person now in front is the one to tell
    wait_until(lambda: len(player.played()) == 2, "the newest prompt to play")
    speaker.close()
    assert player.played() == [str(speaker.cache.path_for(p)) for p in (first, third)]


def test_an_utterance_plays_in_order(speaker_with, fake_player):
    player = fake_player()
    speaker = speaker_with(player)
    mandarin = prompt("deny", ["fever: x"], 37.8, Language.MANDARIN)
    english = prompt("deny", ["fever: x"], 37.8, Language.ENGLISH)
    speaker.say(None)  # an ignored scan: nothing is said
    speaker.say(mandarin, None, english)
    wait_until(lambda: len(player.played()) == 2, "both languages to play")
    assert player.played() == [str(speaker.cache.path_for(p)) for p in (mandarin, english)]
    wait_until(lambda: speaker.health().detail is None, "the worker to settle")
    assert speaker.health().state == "ok"


def test_a_player_that_fails_marks_failing_until_one_plays(speaker_with, fake_player):
    player = fake_player()
    player.broken.touch()
    speaker = speaker_with(player)
    began = speaker.health().since
    speaker.say(prompt("pass"))  # never raises into the scan loop
    wait_until(lambda: speaker.health().state == "failing", "the failure to show")
    health = speaker.health()
    assert (
        health.detail == f"pass: player {player.command[0]} exited 3: audio open error: no device"
    )
    assert health.since >= began
    player.broken.unlink()
    speaker.say(prompt("pass"))
    wait_until(lambda: speaker.health().state == "ok", "the voice to recover")
    assert speaker.health().since >= health.since
    assert speaker.health().detail is None


def test_a_render_that_fails_marks_failing(speaker_with, fake_player, tmp_path):
    broken = write_script(tmp_path / "espeak-broken", 'echo "voice not found" >&2\nexit 1\n')
    player = fake_player()
    speaker = speaker_with(player, espeak=str(broken))
    assert speaker.health().state == "ok"  # espeak-ng is there: nothing was tried yet
    speaker.say(prompt("refer"))
    wait_until(lambda: speaker.health().state == "failing", "the failure to show")
    assert speaker.health().detail.endswith("exited 1: voice not found")
    assert player.played() == []
    assert speaker.selftest() == (False, speaker.health().detail.removeprefix("refer: "))


def test_a_cache_that_cannot_be_written_marks_failing(tmp_path, espeak, fake_player):
    (tmp_path / "file").write_text("not a folder")
    player = fake_player()
    with Speaker(tmp_path / "file" / "wav", player=player.command, espeak=espeak) as speaker:
        speaker.say(prompt("pass"))
        wait_until(lambda: speaker.health().state == "failing", "the failure to show")
        assert "cannot write to" in speaker.health().detail
        speaker.say(prompt("deny"))  # the worker is still there
        wait_until(lambda: "deny:" in speaker.health().detail, "the second failure")
    assert player.played() == []


def test_no_espeak_is_absent(tmp_path, fake_player):
    player = fake_player()
    with Speaker(tmp_path, player=player.command, espeak=str(tmp_path / "espeak-ng")) as speaker:
        health = speaker.health()
        assert (health.state, health.detail) == (
            "absent",
            f"{tmp_path / 'espeak-ng'} not found (Debian package espeak-ng)",
        )
        speaker.say(prompt("pass"))
        assert speaker.prerender(fixed_prompts(Language.ENGLISH)) == 0
        assert speaker.selftest() == (False, health.detail)
    assert player.played() == []


def test_the_default_player_is_aplay_on_a_sound_card(tmp_path, monkeypatch, espeak):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    cards = tmp_path / "cards"
    # No aplay at all.
    with Speaker(tmp_path / "wav", espeak=espeak, sound_cards=cards) as speaker:
        assert speaker.health().state == "absent"
        assert "aplay not found (Debian package alsa-utils)" in speaker.health().detail
    # aplay, but no sound card.
    log = tmp_path / "aplay.txt"
    write_script(bin_dir / "aplay", f'echo "$@" >> "{log}"\n')
    cards.write_text(NO_CARD)
    with Speaker(tmp_path / "wav", espeak=espeak, sound_cards=cards) as speaker:
        assert speaker.health().detail == f"no sound card: {cards} lists none"
        ok, detail = speaker.selftest()
        assert not ok
        assert "rendered" in detail
        assert detail.endswith(f"cannot play: no sound card: {cards} lists none")
    # aplay and a card: aplay -q FILE.
    cards.write_text(CARD)
    with Speaker(tmp_path / "wav", espeak=espeak, sound_cards=cards) as speaker:
        assert speaker.health().state == "ok"
        speaker.say(prompt("pass"))
        wait_until(log.exists, "aplay to be run")
        assert log.read_text() == f"-q {speaker.cache.path_for(prompt('pass'))}\n"


def test_a_missing_player_command_is_absent(tmp_path, espeak):
    with Speaker(tmp_path, player=[str(tmp_path / "mpv")], espeak=espeak) as speaker:
        assert speaker.health().state == "absent"
        assert "not found" in speaker.health().detail


@pytest.mark.parametrize(
    ("listing", "present"),
    [(CARD, True), (NO_CARD, False), (" 1 [vc4hdmi0       ]: vc4-hdmi - vc4-hdmi-0\n", True)],
)
def test_sound_cards_are_read_from_the_alsa_list(tmp_path, listing, present):
    cards = tmp_path / "cards"
    cards.write_text(listing)
    assert has_sound_card(cards) is present
    assert has_sound_card(tmp_path / "absent") is False


def test_prerender_renders_what_is_not_cached(speaker_with, fake_player):
    speaker = speaker_with(fake_player())
    prompts = fixed_prompts(Language.MANDARIN) + fixed_prompts(Language.ENGLISH)
    assert speaker.prerender(prompts) == len(prompts)
    assert all(speaker.cache.path_for(p).exists() for p in prompts)
    assert speaker.prerender(prompts) == 0


def test_selftest(speaker_with, fake_player):
    ok, detail = speaker_with(fake_player()).selftest()
    assert ok, detail
    assert detail.startswith("cmn-latn-pinyin rendered")
    assert "plays with" in detail


def test_close_stops_the_player_in_a_bounded_time(speaker_with, fake_player):
    player = fake_player(seconds=30)
    speaker = speaker_with(player)
    speaker.say(prompt("refer"))
    wait_until(player.played, "the player to start")
    speaker.say(prompt("pass"))  # waiting: dropped by close()
    started = time.monotonic()
    speaker.close()
    assert time.monotonic() - started < JOIN_TIMEOUT + 1.0
    pid = int(player.pids.read_text().split()[0])
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), "the player to be gone")
    speaker.say(prompt("deny"))  # after close: nothing, and no error
    time.sleep(0.2)
    assert len(player.played()) == 1
