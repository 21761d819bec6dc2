"""People-facing HTTP routes; listed in ``console.app.PEOPLE_ROUTERS``."""
