"""Tests of the kiosk screen: its texts, its server and event stream, its page in Chromium."""
