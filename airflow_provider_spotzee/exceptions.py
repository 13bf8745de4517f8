"""Exceptions raised by the provider. Messages name what to fix and never contain the API key."""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowException


class SpotzeeError(AirflowException):
    """Base class for every error the provider raises."""


class SpotzeeConfigError(SpotzeeError):
    """The connection or an argument is wrong (bad key format, plain HTTP to a remote host, ...)."""


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
