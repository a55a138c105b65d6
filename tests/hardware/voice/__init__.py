"""Tests of the voice: number words, prompts, espeak-ng rendering and the speaker."""
