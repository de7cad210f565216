"""A test-only app whose handlers misbehave on demand, to prove the messaging core against the real broker."""
