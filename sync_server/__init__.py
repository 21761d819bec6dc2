"""The OpenRosa sync server: forms to phones, submissions into CouchDB, a small operator API."""
