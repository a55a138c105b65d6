"""Formats both sides agree on: credential envelope, codes, wire messages, policy, crypto."""

# One log line, in every process: the `sentinel` command and each of the host's workers.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
