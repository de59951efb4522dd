"""Domain errors. The API layer maps each to one status and error code, in one place."""

from __future__ import annotations


class QueryAllError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(QueryAllError):
    status_code = 400
    code = "invalid_request"


class InvalidSql(QueryAllError):
    status_code = 400
    code = "invalid_sql"


class Unauthorized(QueryAllError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str = "Authentication required") -> None:
        super().__init__(message)


class Forbidden(QueryAllError):
    status_code = 403
    code = "forbidden"


class NotFound(QueryAllError):
    status_code = 404
    code = "not_found"


class Conflict(QueryAllError):
    status_code = 409
    code = "conflict"


class RateLimited(QueryAllError):
    """Over a quota; `retry_after` seconds is when trying again makes sense (the Retry-After header)."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class ServiceUnavailable(QueryAllError):
    status_code = 503
    code = "service_unavailable"


class GenerationFailed(QueryAllError):
    """No usable SQL came from a question (no generator, timeout, refusal, no SQL, SQL the guard refuses)."""

    status_code = 422
    code = "generation_failed"
    PREFIX = "Could not generate SQL: "

    def __init__(self, reason: str) -> None:
        super().__init__(self.PREFIX + reason)
        self.reason = reason


class ResponseTooLarge(QueryAllError):
    """A single row is larger than a response can carry (the full result is still downloadable)."""

    status_code = 413
    code = "response_too_large"
