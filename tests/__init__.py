"""Tests, mirroring the packages; integration tests start real processes."""
