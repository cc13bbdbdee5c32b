"""Origins, and which URLs a page may load or visit."""
from __future__ import annotations

from urllib.parse import urlsplit

# Schemes that never leave the browser; always allowed.
LOCAL_SCHEMES = ("about", "data", "blob", "javascript")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, lower-cased, default port dropped; `file://` for files.

    Raises ValueError for a URL without scheme or host.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme == "file":
        return "file://"
    if not scheme or not parts.hostname:
        raise ValueError(f"not an absolute URL: {url!r}")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    port = parts.port
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def normalize_origins(origins: list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The allowed origins in canonical form (each entry may be any URL of the origin)."""
    if origins is None:
        return None
    if isinstance(origins, str):
        raise TypeError("allowed_origins is a list of origins, not a string")
    return tuple(dict.fromkeys(origin_of(o) for o in origins))


def is_allowed(url: str, allowed: tuple[str, ...] | None) -> bool:
    """Whether a page may load or visit `url` when only `allowed` origins are (None: any)."""
    if allowed is None:
        return True
    scheme = urlsplit(url).scheme.lower()
    if scheme in LOCAL_SCHEMES:
        return True
    try:
        return origin_of(url) in allowed
    except ValueError:
        return False
