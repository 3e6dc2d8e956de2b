"""Cross-cutting pieces: settings, configuration errors, secrets."""
