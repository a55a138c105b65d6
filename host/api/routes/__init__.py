"""Route modules: admin, device and public endpoints."""
