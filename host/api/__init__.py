"""The HTTP API: dependencies, error handling and routes."""
