"""Rate limits per client address, counted in the database so that every web process shares them."""
