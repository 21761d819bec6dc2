"""Problem and its subclasses: something a person can fix, with a message shown to them verbatim.

One type, three audiences: phones get it inside an OpenRosa envelope, API callers as JSON
(RFC 9457 problem details, with ``code``), operators as one line and exit code 1.

Every Problem carries a stable machine ``code`` from the one catalogue below (``CODES``, documented in
``docs/problems.md``; a test keeps the two equal). Texts may be reworded; codes never change meaning.
"""

from __future__ import annotations

# The catalogue: code → what it means. Class defaults first, then specific codes raisers may pass.
CODES: dict[str, str] = {
    "bad_request": "The request is malformed or a parameter is invalid.",
    "unauthorized": "Credentials are missing or wrong.",
    "forbidden": "The account may not do this, or may not see this area.",
    "not_found": "No such thing (or it is outside the caller's area).",
    "conflict": "The request conflicts with what is stored.",
    "too_large": "The body exceeds the announced size limit.",
    "store_unavailable": "The CouchDB store cannot be reached; keep the data and retry later.",
    "config_error": "A setting or local file is wrong; the operator must fix it.",
    "form_build_failed": "An XLSForm does not compile or does not validate.",
    "doc_exists": "A document with this id already exists in the store.",
    "form_unknown": "The form or form version is not on this server; update forms on the phone.",
    "submission_conflict": "Another record with this instanceID and different content is already stored.",
    "edit_target_unknown": "The deprecatedID of an edit names a record this server does not hold.",
    "version_not_a_head": "The chosen instanceID is not a current version of that record.",
    "edge_revoked": "This edge node's credential was revoked at the province; enrol it again.",
    "internal_error": "The server failed unexpectedly (the traceback is in the server log only).",
    "forged_owner": "A pushed record names another author or area than the account pushing it.",
    "foreign_edit": "An edit (deprecatedID) names a record its author may not edit (only its own).",
    "not_submitter": "The account's role does not submit records (officers read; collaborators submit).",
    "instance_id_invalid": "The meta/instanceID is not letters, digits and ':._-' (at most 200 characters).",
    "encoding_mismatch": "The XML declares an encoding its bytes are not in.",
    "too_many_attempts": "Too many failed logins (account or address); wait Retry-After seconds.",
    "client_gone": "The client disconnected before its request body arrived (nobody reads this answer).",
}


class Problem(Exception):
    """Something a person can fix. ``message`` is Vietnamese first; ``message_en`` is the English text."""

    status = 400
    title = "Bad request"
    code = "bad_request"

    def __init__(
        self,
        message: str,
        message_en: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ):
        super().__init__(message_en or message)
        self.message = message
        self.message_en = message_en or message
        self.headers = headers or {}
        if code is not None:
            if code not in CODES:
                raise ValueError(f"problem code {code!r} is not in core.errors.CODES (add it, and to docs)")
            self.code = code

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
    code = "unauthorized"
    status = 401
    title = "Authentication required"


class Forbidden(Problem):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class NotFound(Problem):
    code = "not_found"
    status = 404
    title = "Not found"


class Conflict(Problem):
    code = "conflict"
    status = 409
    title = "Conflict"


class TooLarge(Problem):
    code = "too_large"
    status = 413
    title = "Payload too large"


class StoreUnavailable(Problem):
    """The CouchDB store cannot be reached; the client should keep its data and retry."""

    status = 503
    title = "Store unavailable"
    code = "store_unavailable"

    def __init__(self, message: str, message_en: str | None = None, *, retry_after: int = 60):
        super().__init__(message, message_en, headers={"Retry-After": str(retry_after)})


class ConfigError(Problem):
    """A setting or a local file is wrong; the operator must fix it."""

    status = 500
    title = "Configuration error"
    code = "config_error"


class FormBuildError(Problem):
    """An XLSForm does not compile or does not validate."""

    status = 422
    title = "Form build failed"
    code = "form_build_failed"
