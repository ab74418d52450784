"""The REST API (``/api/v1/fleet/...``): thin routers over the services."""
