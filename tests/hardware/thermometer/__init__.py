"""Tests of the serial thermometers: protocols, driver, emulator and command."""
