"""Spotzee's error catalogue and the ``application/problem+json`` body."""

from __future__ import annotations

import json

from airflow_provider_spotzee.api_facts import TRANSIENT_ITEM_CODES

__all__ = ["CATALOGUE", "PROBLEM_CONTENT_TYPE", "TRANSIENT_ITEM_CODES", "ApiError", "problem_body"]

# code -> (HTTP status, title)
CATALOGUE: dict[str, tuple[int, str]] = {
    "parameter_invalid_format": (400, "Invalid parameter format"),
    "parameter_missing": (400, "Missing parameter"),
    "version_unsupported": (400, "Unsupported API version"),
    "idempotency_key_invalid": (400, "Invalid idempotency key"),
    "unauthorized": (401, "Unauthorized"),
    "forbidden": (403, "Forbidden"),
    "resource_missing": (404, "Resource not found"),
    "method_not_allowed": (405, "Method not allowed"),
    "idempotency_key_mismatch": (409, "Idempotency key reused with a different body"),
    "idempotency_in_progress": (409, "Idempotent request still in progress"),
    "rate_limited": (429, "Too many requests"),
    "internal_error": (500, "Internal server error"),
    "service_unavailable": (503, "Service unavailable"),
}

PROBLEM_CONTENT_TYPE = b"application/problem+json"
DOCS_ERRORS = "https://docs.spotzee.com/errors/"


class ApiError(Exception):
    """Raised inside request handling; turned into a problem+json response."""

    def __init__(self, code: str, message: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = CATALOGUE[code][0]
        self.message = message
        self.headers = headers or []


def problem_body(code: str, message: str, request_id: str | None) -> bytes:
    title = CATALOGUE[code][1]
    return json.dumps(
        {
            "status": "error",
            "code": code,
            "title": title,
            "message": message,
            "type": DOCS_ERRORS + code,
            "request_id": request_id,
        },
        separators=(",", ":"),
    ).encode()
