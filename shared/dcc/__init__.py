"""EU Digital COVID Certificate verification: signer certificates, schemas and `HC1:` texts."""
