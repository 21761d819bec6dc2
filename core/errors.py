"""Problem and its subclasses: something a person can fix, with a message shown to them verbatim.

One type, three audiences: phones get it inside an OpenRosa envelope, API callers as JSON
(RFC 9457 problem details), operators as one line and exit code 1.
"""

from __future__ import annotations


class Problem(Exception):
    """Something a person can fix. ``message`` is Vietnamese first; ``message_en`` is the English text."""

    status = 400
    title = "Bad request"

    def __init__(self, message: str, message_en: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(message_en or message)
        self.message = message
        self.message_en = message_en or message
        self.headers = headers or {}

    def text(self, lang: str = "vi") -> str:
        """The bilingual line shown to a collaborator or an officer."""
        if lang == "en":
            return self.message_en
        if self.message_en and self.message_en != self.message:
            return f"{self.message} / {self.message_en}"
        return self.message


class BadRequest(Problem):
    status = 400
    title = "Bad request"


class Unauthorized(Problem):
    status = 401
    title = "Authentication required"


class Forbidden(Problem):
    status = 403
    title = "Forbidden"


class NotFound(Problem):
    status = 404
    title = "Not found"


class Conflict(Problem):
    status = 409
    title = "Conflict"


class TooLarge(Problem):
    status = 413
    title = "Payload too large"


class StoreUnavailable(Problem):
    """The CouchDB store cannot be reached; the client should keep its data and retry."""

    status = 503
    title = "Store unavailable"

    def __init__(self, message: str, message_en: str | None = None, *, retry_after: int = 60):
        super().__init__(message, message_en, headers={"Retry-After": str(retry_after)})


class ConfigError(Problem):
    """A setting or a local file is wrong; the operator must fix it."""

    status = 500
    title = "Configuration error"


class FormBuildError(Problem):
    """An XLSForm does not compile or does not validate."""

    status = 422
    title = "Form build failed"
