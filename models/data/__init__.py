"""Event logs: loaders of the shared datasets' formats and a seeded synthetic generator."""
