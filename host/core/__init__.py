"""Host configuration and small helpers shared by the API and storage layers."""
