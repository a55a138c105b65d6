"""Tests of the GA 467 SAM ID-card protocol, driver and emulator."""
