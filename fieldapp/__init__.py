"""The field web app: Enketo forms + PouchDB in the browser, served at /app (JS in src/, built into static/)."""
