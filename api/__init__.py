"""The HTTP/WebSocket transport: Starlette app, settings, authentication, CLI."""
