"""The timed cache behind the venue page: entries expire by the clock, the oldest go first."""

from host.core.cache import TimedCache
from tests.host.conftest import Clock


def test_an_entry_lives_for_its_time_and_no_longer():
    clock = Clock()
    cache: TimedCache[str, int] = TimedCache(5.0, 10, clock)
    assert cache.get("a") == (False, None)
    cache.put("a", 1)
    clock.advance(4.9)
    assert cache.get("a") == (True, 1)
    clock.advance(0.1)
    assert cache.get("a") == (False, None)
    cache.put("a", 2)  # put again: a new lifetime
    clock.advance(4)
    assert cache.get("a") == (True, 2)


def test_the_least_recently_used_entry_goes_when_full():
    cache: TimedCache[str, int] = TimedCache(60.0, 2, Clock())
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == (True, 1)  # a is now the more recent
    cache.put("c", 3)
    assert cache.get("b") == (False, None)
    assert (cache.get("a"), cache.get("c")) == ((True, 1), (True, 3))


def test_a_venue_page_is_served_from_the_cache_and_checked_again_once_stale(admin, clock):
    venue = admin.venue()
    path = venue["code_url"].removeprefix("https://sentinel.example.org")
    assert "Riverside Mall" in admin.client.get(path).text
    context = admin.client.app.state.context
    url = venue["code_url"]
    fresh, (status, html) = context.venue_pages.get(url)
    assert (fresh, status) == (True, 200) and "Riverside Mall" in html
    context.venue_pages.put(url, (200, "a cached page"))
    assert admin.client.get(path).text == "a cached page"
    clock.advance(6)
    assert "Riverside Mall" in admin.client.get(path).text
