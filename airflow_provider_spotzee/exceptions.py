"""Exceptions raised by the provider. Messages name what to fix and never contain the API key."""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException


class SpotzeeError(AirflowException):
    """Base class for every error the provider raises."""


class SpotzeeConfigError(SpotzeeError, AirflowFailException):
    """The connection or an argument is wrong (bad key format, plain HTTP to a remote host, ...).

    A retry cannot fix it, so the task fails at once without using its retries (AirflowFailException)."""


class SpotzeeAPIError(SpotzeeError):
    """Spotzee answered with an error that retrying cannot fix."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 request_id: str | None = None) -> None:
        detail = ", ".join(
            part for part in (
                f"HTTP {status}" if status else "",
                f"code={code}" if code else "",
                f"request_id={request_id}" if request_id else "",
            ) if part
        )
        super().__init__(f"{message} ({detail})" if detail else message)
        self.status = status
        self.code = code
        self.request_id = request_id


class SpotzeeAuthError(SpotzeeAPIError):
    """401/403: the key is missing, revoked, or lacks the permission. Fails fast, never retried."""


class SpotzeeSyncFailed(SpotzeeError):
    """A sync finished but crossed a failure threshold (dead-lettered batches, max_failure_ratio)."""


class SpotzeeSyncRejected(SpotzeeSyncFailed, AirflowFailException):
    """A sync finished and failed for a reason a retry cannot change: too many records invalid or rejected
    (``max_failure_ratio`` with nothing dead-lettered), or nearly every record failing for one cause. The
    task fails at once without using its retries, so downstream ``all_done`` tasks (write-back) run."""


class SpotzeeRetriesExhausted(SpotzeeAPIError):
    """A request kept failing with retryable outcomes (5xx, 408, 429, 409 in progress, transport errors
    or timeouts) until its retries ran out. ``status`` is the last HTTP status (``None`` for a transport
    error or timeout), ``code`` the last error code (``transport_error``/``timeout`` when nothing
    answered), ``last_error`` the last attempt in words (method, path, status or exception type)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 request_id: str | None = None, last_error: str = "") -> None:
        super().__init__(message, status=status, code=code, request_id=request_id)
        self.last_error = last_error or message


class SpotzeeConnectError(SpotzeeAPIError):
    """Nothing could be reached at the base URL (connection refused, DNS failure, TLS failure, connect
    timeout) and the service never answered on this transport: fatal for the whole call, raised within
    seconds. A service that answered before and then blips is retried in full instead."""
