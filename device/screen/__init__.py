"""The kiosk's local screen: a page on 127.0.0.1 that Chromium shows full-screen, live by SSE."""
