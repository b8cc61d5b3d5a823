"""The flow language, its validator and its pure engine."""
