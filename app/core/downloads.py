"""Headers of downloads."""

from __future__ import annotations

from urllib.parse import quote


def attachment(name: str) -> dict[str, str]:
    """A download's Content-Disposition: an ASCII name for old clients, the file's own name
    (any script) as RFC 5987's filename* for the rest."""
    plain = name.encode("ascii", "replace").decode().replace("?", "_").replace('"', "_")
    return {
        "Content-Disposition": f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name)}"
    }
