"""The kiosk agent: pipeline, local store, sync client, enrollment."""
