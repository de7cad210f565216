"""The synchronous baseline of bench/decoupling.py: served only by bench.settings, never by the project's."""
