"""The officers' web console: server-rendered pages (Jinja2), one module per page, mounted in console.app."""
