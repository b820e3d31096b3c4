"""Errors that services raise and the web layer turns into clear HTTP answers."""

from __future__ import annotations


class NotFound(LookupError):
    """A requested row does not exist (HTTP 404)."""


class BadInput(ValueError):
    """The user's input cannot be used; the message says what to change (HTTP 422)."""


class TooLarge(ValueError):
    """An upload over the size limit (HTTP 413)."""


class Conflict(ValueError):
    """The request does not fit the current state of the row (HTTP 409)."""


class InsufficientStorage(RuntimeError):
    """The storage volume is full; nothing partial was kept (HTTP 507)."""


class StoredFileCorrupt(RuntimeError):
    """A stored original does not hold what its content address says; nothing was written
    over it (HTTP 500, with words an admin can act on)."""
