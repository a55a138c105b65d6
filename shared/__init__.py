"""Formats both sides agree on: credential envelope, codes, wire messages, policy, crypto."""
