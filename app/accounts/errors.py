"""Errors of access control, turned into 401 and 403 answers by the web layer."""

from __future__ import annotations


class NotAuthenticated(PermissionError):
    """No valid login or token came with the request (HTTP 401; pages redirect to /login)."""


class Forbidden(PermissionError):
    """The user may see this but not do this (HTTP 403): e.g. a viewer trying to change data."""
