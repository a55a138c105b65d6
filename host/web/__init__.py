"""The host's pages for citizens' phones: templates and assets, all shipped in this package."""
