"""Event registrations: MICE events, registrations, the web form, the REST API."""
