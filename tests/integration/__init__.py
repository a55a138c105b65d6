"""Tests of `integration`."""
