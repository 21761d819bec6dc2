"""The field web app: Enketo forms + PouchDB in the browser, served at /app (src/ built into static/)."""
