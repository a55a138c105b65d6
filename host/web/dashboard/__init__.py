"""The dashboard: one server-rendered web application for the host's users, by role."""
