"""Device-facing HTTP routes (OpenRosa, /sync, health); listed in ``sync_server.http.DEVICE_ROUTERS``."""
