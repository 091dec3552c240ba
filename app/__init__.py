"""coo-llm's HTTP surface and request path. ``app.server.create_app`` assembles the service."""
