"""The one error the review app's modules raise for a request they refuse; the routes make it a 4xx."""

from __future__ import annotations


class RequestError(Exception):
    """A request the page should not have sent, or cannot be served now; a 4xx with this message."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


__all__ = ["RequestError"]
