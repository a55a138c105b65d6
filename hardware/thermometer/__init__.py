"""Serial thermometers: Modbus RTU, a streaming forehead module, text lines; driver and emulator.

Each protocol is defined once, in its own module (modbus, stream, line), as pure functions
that build and parse its frames; the driver (driver.Thermometer) and the emulator
(emulator.Emulator) both use them, so they speak the same bytes.
"""

from hardware.thermometer.driver import (
    DEFAULT_PLAUSIBLE,
    DEFAULT_THRESHOLD,
    Health,
    Measurement,
    Reading,
    Thermometer,
    ThermometerStatus,
    make_decoder,
)
from hardware.thermometer.protocol import (
    PROTOCOL_NAMES,
    ChecksumError,
    ProtocolError,
    ReadingDecoder,
)

__all__ = [
    "DEFAULT_PLAUSIBLE",
    "DEFAULT_THRESHOLD",
    "PROTOCOL_NAMES",
    "ChecksumError",
    "Health",
    "Measurement",
    "ProtocolError",
    "Reading",
    "ReadingDecoder",
    "Thermometer",
    "ThermometerStatus",
    "make_decoder",
]
