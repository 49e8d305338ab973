"""AppError: every expected failure, with a stable id, in Mattermost's shape."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """An expected failure with a stable id, a user-facing message and an HTTP status.

    Serialized as Mattermost's `{id, message, detailed_error, request_id, status_code}`.
    """

    def __init__(
        self,
        id: str,
        message: str,
        detailed_error: str = "",
        status_code: int = 400,
        params: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{id}: {message}" + (f" ({detailed_error})" if detailed_error else ""))
        self.id = id
        self.message = message
        self.detailed_error = detailed_error
        self.status_code = status_code
        self.params = dict(params or {})

    def to_dict(self, request_id: str = "") -> dict[str, Any]:
        """The wire form of the error."""
        return {
            "id": self.id,
            "message": self.message,
            "detailed_error": self.detailed_error,
            "request_id": request_id,
            "status_code": self.status_code,
        }

    def __repr__(self) -> str:
        return f"AppError(id={self.id!r}, status_code={self.status_code})"
