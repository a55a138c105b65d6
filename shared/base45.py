"""Base45 (RFC 9285): the QR-alphanumeric-friendly encoding of the HCERT envelope."""

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUE = {char: index for index, char in enumerate(ALPHABET)}


class Base45Error(ValueError):
    """The text is not valid Base45."""


def b45encode(data: bytes) -> str:
    """Encode bytes as Base45 text."""
    out: list[str] = []
    for start in range(0, len(data) - 1, 2):
        value = data[start] * 256 + data[start + 1]
        value, c = divmod(value, 45)
        e, d = divmod(value, 45)
        out += (ALPHABET[c], ALPHABET[d], ALPHABET[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out += (ALPHABET[c], ALPHABET[d])
    return "".join(out)


def b45decode(text: str) -> bytes:
    """Decode Base45 text, refusing foreign characters, a dangling character and overflow."""
    try:
        values = [_VALUE[char] for char in text]
    except KeyError as missing:
        raise Base45Error(f"character {missing.args[0]!r} is not in the Base45 alphabet") from None
    if len(values) % 3 == 1:
        raise Base45Error(f"length {len(values)} leaves a single dangling character")
    out = bytearray()
    for start in range(0, len(values), 3):
        chunk = values[start : start + 3]
        if len(chunk) == 3:
            number = chunk[0] + chunk[1] * 45 + chunk[2] * 45 * 45
            if number > 0xFFFF:
                raise Base45Error(f"triplet at {start} encodes {number}, more than two bytes")
            out += number.to_bytes(2, "big")
        else:
            number = chunk[0] + chunk[1] * 45
            if number > 0xFF:
                raise Base45Error(f"final pair encodes {number}, more than one byte")
            out.append(number)
    return bytes(out)
