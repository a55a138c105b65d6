"""Spoken prompts: what the kiosk says for each result, rendered by espeak-ng, played aside."""
