"""Peripheral drivers (camera, QR decoders, card readers, thermometer, GPIO, audio), emulators."""
