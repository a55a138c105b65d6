"""Provisioning a kiosk: scripts/provision's steps, the serial probe, its units and udev rules."""
