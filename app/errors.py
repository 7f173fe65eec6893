"""One exception tree for the domain.

Services and the storage boundary raise these with data; app/problems.py (beside
main.py, the only part that knows HTTP frameworks) renders them as RFC 9457 documents.
This module imports no web framework, so services and storage depend on it alone.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    status = 500
    detail = "internal error"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.detail)
        self.detail = detail or self.detail
        self.extra = extra

    @property
    def headers(self) -> dict[str, str]:
        return {}


class BadRequest(DomainError):
    status = 400
    detail = "bad request"


class Unauthorized(DomainError):
    status = 401
    detail = "missing or unknown API key"


class Forbidden(DomainError):
    status = 403
    detail = "forbidden"


class NotFound(DomainError):
    status = 404
    detail = "not found"


class RequestTimeout(DomainError):
    """The request body did not arrive in time; the connection is closed after the answer."""

    status = 408
    detail = "the request body did not arrive in time"

    @property
    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}


class Conflict(DomainError):
    status = 409
    detail = "conflict"


class IdempotencyInFlight(Conflict):
    detail = "a request with this Idempotency-Key is still in flight; retry later"


class Gone(DomainError):
    """It existed and will not come back: an expired download link or export file."""

    status = 410
    detail = "gone"


class PayloadTooLarge(DomainError):
    status = 413

    def __init__(self, limit: int) -> None:
        super().__init__(f"body exceeds {limit} bytes", limit=limit)


class UnsupportedMediaType(DomainError):
    status = 415
    detail = "unsupported media type"


class Unprocessable(DomainError):
    status = 422
    detail = "invalid submission"


class InvalidBody(Unprocessable):
    """The JSON is well formed but breaks the contract; errors name each bad field."""

    def __init__(self, errors: list[dict[str, str]], invalid_indexes: list[int] | None = None):
        extra: dict[str, Any] = {"errors": errors}
        if invalid_indexes is not None:
            extra["invalid_indexes"] = invalid_indexes
            detail = f"{len(invalid_indexes)} invalid item(s): {invalid_indexes[:20]}"
        else:
            detail = "; ".join(f"{e['pointer'] or '/'}: {e['detail']}" for e in errors[:5])
        super().__init__(detail, **extra)


class IdempotencyKeyReused(Unprocessable):
    detail = "this Idempotency-Key was used with a different request body"


class RateLimited(DomainError):
    status = 429

    def __init__(self, *, limit: int, burst: int, retry_after: int) -> None:
        super().__init__(
            f"rate limit of {limit} requests/s (burst {burst}) exceeded for this tenant",
            limit=limit,
        )
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class TooManyAttempts(RateLimited):
    """Too many failed keys (or logins) from one client address in a window."""

    def __init__(self, *, limit: int, window: int, retry_after: int) -> None:
        DomainError.__init__(
            self, f"more than {limit} attempts from this address in {window} s; "
            f"retry after {retry_after} s", limit=limit)
        self.retry_after = retry_after


class TooManyExports(DomainError):
    """The tenant's cap on queued or running exports; one finishing frees a place."""

    status = 429

    def __init__(self, *, limit: int, retry_after: int) -> None:
        super().__init__(f"at most {limit} exports per tenant may be queued or running; "
                         "retry when one has finished", limit=limit)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class ServiceUnavailable(DomainError):
    """A dependency (PostgreSQL) cannot serve now; the same request later may succeed."""

    status = 503
    detail = "service unavailable"

    def __init__(self, detail: str | None = None, *, retry_after: int = 2) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}
