"""Tests of `device`."""
