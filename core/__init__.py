"""Shared by forms, sync_server and aggregator: settings, errors, CouchDB access, local services."""
