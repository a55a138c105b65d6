"""The verification service: API, storage, registries, issuance, device management."""
