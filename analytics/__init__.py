"""Per-event figures and the live dashboard."""
