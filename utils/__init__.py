"""Project-agnostic helpers: errors, atomic files, CLI parsing, seeding, provenance."""
