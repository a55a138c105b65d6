"""Rule engines for venue policies and health-credential business rules (CertLogic)."""
