"""A parser with a planted bug, for the test that shows the fuzz harness reports a crash."""


def breaks_on_a_bell(data: bytes) -> int:
    """Counts bytes, but an IndexError on any input holding the byte 0x07."""
    if b"\x07" in data:
        return data[len(data)]
    return len(data)
