"""`repro verify`: a finished run checked against its records, its declaration and the
verification rules (docs/provenance.md)."""
