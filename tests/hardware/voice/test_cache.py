import pytest

from hardware.voice.cache import SILENCE_RMS, VoiceError, WavCache, wav_stats
from hardware.voice.language import Language
from hardware.voice.prompts import fixed_prompts, prompt_for

from .conftest import write_script

LOUD_ENOUGH = 0.03  # of full scale: espeak-ng's speech measures about 0.1


def every_prompt(language):
    return [*fixed_prompts(language), prompt_for("deny", ["fever: x"], 37.8, language)]


@pytest.fixture
def cache(tmp_path, espeak):
    return WavCache(tmp_path / "wav", espeak=espeak)


@pytest.fixture
def counting_espeak(tmp_path, espeak):
    """The real espeak-ng behind a script that counts how often it is run."""
    runs = tmp_path / "runs.txt"
    script = write_script(
        tmp_path / "espeak-counting", f'echo run >> "{runs}"\nexec {espeak} "$@"\n'
    )
    return str(script), lambda: len(runs.read_text().splitlines()) if runs.exists() else 0


@pytest.mark.parametrize("language", list(Language))
def test_every_prompt_renders_to_speech(cache, language):
    for prompt in every_prompt(language):
        stats = wav_stats(cache.get(prompt))
        assert 0.3 <= stats.duration_s <= 6.0, (prompt.key, stats)
        assert stats.rms > LOUD_ENOUGH > SILENCE_RMS, (prompt.key, stats)


@pytest.mark.parametrize("language", list(Language))
def test_a_longer_prompt_plays_longer(cache, language):
    short = prompt_for("ignored", ["paper-code-show-id: x"], None, language)  # show your ID
    longer = prompt_for("refer", ["paper-code-needs-id: x"], None, language)  # ... to staff
    assert len(longer.text.split()) > len(short.text.split())
    assert wav_stats(cache.get(longer)).duration_s > wav_stats(cache.get(short)).duration_s + 0.3


def test_a_slower_speed_plays_longer(tmp_path, espeak):
    prompt = prompt_for("pass", [], None, Language.MANDARIN)
    slow = WavCache(tmp_path, espeak=espeak, speed=120).get(prompt)
    fast = WavCache(tmp_path, espeak=espeak, speed=200).get(prompt)
    assert slow != fast
    assert wav_stats(slow).duration_s > wav_stats(fast).duration_s


def test_a_prompt_renders_once(tmp_path, counting_espeak):
    espeak, runs = counting_espeak
    prompt = prompt_for("deny", ["fever: x"], 38.5, Language.MANDARIN)
    cache = WavCache(tmp_path / "wav", espeak=espeak)
    path = cache.get(prompt)
    written = path.stat().st_mtime_ns
    assert cache.get(prompt) == path
    # A new cache on the same folder (the agent restarted) finds it too.
    assert WavCache(tmp_path / "wav", espeak=espeak).get(prompt) == path
    assert (runs(), path.stat().st_mtime_ns) == (1, written)
    # Another temperature, language or speed is another file.
    cache.get(prompt_for("deny", ["fever: x"], 38.6, Language.MANDARIN))
    cache.get(prompt_for("deny", ["fever: x"], 38.5, Language.ENGLISH))
    WavCache(tmp_path / "wav", espeak=espeak, speed=170).get(prompt)
    assert runs() == 4
    assert len(list((tmp_path / "wav").iterdir())) == 4  # no temporary file left behind


def test_a_failed_render_leaves_nothing(tmp_path):
    failing = write_script(tmp_path / "espeak-failing", 'echo "voice data missing" >&2\nexit 1\n')
    cache = WavCache(tmp_path / "wav", espeak=str(failing))
    with pytest.raises(VoiceError, match="exited 1: voice data missing"):
        cache.get(prompt_for("pass", [], None, Language.MANDARIN))
    assert list((tmp_path / "wav").iterdir()) == []


def test_silence_is_not_a_render(tmp_path, espeak):
    # The real espeak-ng, given no text: it writes a valid WAV with nothing to hear.
    mute = write_script(
        tmp_path / "espeak-mute", f'exec {espeak} "$1" "$2" "$3" "$4" "$5" "$6" ""\n'
    )
    cache = WavCache(tmp_path / "wav", espeak=str(mute))
    with pytest.raises(VoiceError, match="silence"):
        cache.get(prompt_for("pass", [], None, Language.ENGLISH))
    assert list((tmp_path / "wav").iterdir()) == []


def test_a_hung_espeak_times_out(tmp_path):
    hung = write_script(tmp_path / "espeak-hung", "exec sleep 30\n")
    cache = WavCache(tmp_path / "wav", espeak=str(hung), timeout=0.5)
    with pytest.raises(VoiceError, match=r"more than 0\.5 s"):
        cache.get(prompt_for("pass", [], None, Language.ENGLISH))


def test_no_espeak(tmp_path):
    cache = WavCache(tmp_path / "wav", espeak=str(tmp_path / "espeak-ng"))
    with pytest.raises(VoiceError, match=r"not found \(Debian package espeak-ng\)"):
        cache.get(prompt_for("pass", [], None, Language.ENGLISH))
