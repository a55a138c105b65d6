"""Tests of EU DCC verification: certificates, schemas, HC1 texts."""
