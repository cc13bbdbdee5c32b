"""Allowed origins: which URLs a page may load or visit.

An allow-list holds web origins (`scheme://host[:port]`; WebSockets `ws://`/`wss://`
count as their `http://`/`https://` origin) and local files or folders
(`file:///abs/page.html`, `file:///abs/folder/`, a trailing slash allowing everything
below). `file://` as a whole would expose the whole filesystem and is refused.
"""
from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit, urlunsplit

# Schemes that never leave the browser; always allowed.
LOCAL_SCHEMES = ("about", "data", "blob", "javascript")
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_WEB_SCHEME_OF = {"ws": "http", "wss": "https"}
WHOLE_FILESYSTEM_ERROR = (
    "allowed_origins may not hold file:// as a whole: it lets the page read every file on "
    "this machine. Allow one file or folder (file:///path/page.html, file:///path/folder/) "
    "or serve the pages over http from 127.0.0.1 (envs/browser/static_server.py).")


def file_url(path: str) -> str:
    """The `file://` URL of one real absolute path: a file or a folder, never the bare scheme or
    the root (either would name the whole filesystem).

    Raises ValueError for the root, an empty or a relative path.
    """
    if not path.startswith("/") or not path.strip("/"):
        raise ValueError(WHOLE_FILESYSTEM_ERROR if path.strip("/") == "" else f"not an absolute path: {path!r}")
    return urlunsplit(("file", "", path, "", ""))


def _entry_path(entry: str) -> str | None:
    """The real path a file entry names (what `file_url` was given); None for a web origin."""
    scheme, sep, rest = entry.partition(":")
    return rest[2:] if sep and scheme.lower() == "file" and rest.startswith("//") else None


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL, lower-cased, default port dropped. A local file has no
    shared origin (browsers give each an opaque one): its origin is its own `file_url`.

    Raises ValueError for a URL without scheme or host, and for the filesystem's root.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme == "file":
        return file_url(_file_path(url))
    if not scheme or not parts.hostname:
        raise ValueError(f"not an absolute URL: {url!r}")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"  # IPv6 literal
    port = parts.port
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _file_path(url: str) -> str:
    """The real absolute path a file:// URL names (`..`, `%2e` and symlinks resolved)."""
    parts = urlsplit(url.strip())
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"file URLs on other hosts are not allowed: {url!r}")
    path = unquote(parts.path)
    if not path.startswith("/"):
        raise ValueError(f"not an absolute file URL: {url!r}")
    return os.path.realpath(path)


def allowed_entry(entry: str) -> str:
    """One allow-list entry in canonical form: an origin, or `file://` + a real path.

    Raises ValueError for `file://` as a whole and for relative URLs.
    """
    if urlsplit(entry.strip()).scheme.lower() != "file":
        return _web_origin(entry)
    path = _file_path(entry) if urlsplit(entry.strip()).path else "/"
    folder = entry.rstrip().endswith("/") or os.path.isdir(path)
    return file_url(path + ("/" if folder else ""))


def normalize_origins(origins: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The allow-list in canonical form (each origin may be given as any URL of it)."""
    if origins is None:
        raise ValueError("allowed_origins must be listed explicitly (there is no allow-all)")
    if isinstance(origins, str):
        raise TypeError("allowed_origins is a list of origins, not a string")
    if not origins:
        raise ValueError("allowed_origins is empty: list at least the start page's origin")
    return tuple(dict.fromkeys(allowed_entry(o) for o in origins))


def is_allowed(url: str, allowed: tuple[str, ...]) -> bool:
    """Whether a page may load or visit `url` when only the `allowed` entries are."""
    scheme = urlsplit(url).scheme.lower()
    if scheme in LOCAL_SCHEMES:
        return True
    try:
        if scheme == "file":
            path = _file_path(url)
            return any(_file_allows(entry_path, path)
                       for entry_path in map(_entry_path, allowed) if entry_path is not None)
        return _web_origin(url) in allowed
    except ValueError:
        return False


def _web_origin(url: str) -> str:
    """The origin, with a WebSocket's `ws`/`wss` as the `http`/`https` of its server."""
    origin = origin_of(url)
    scheme = origin.split(":", 1)[0]
    if scheme in _WEB_SCHEME_OF:
        return _WEB_SCHEME_OF[scheme] + origin[len(scheme):]
    return origin


def allowed_folders(allowed: tuple[str, ...]) -> list[str]:
    """The real paths (ending in `/`) of the folders an allow-list opens; never `/` itself.

    Raises ValueError if an entry would open the whole filesystem, even one that bypassed
    `normalize_origins`.
    """
    folders = []
    for entry in allowed:
        if urlsplit(entry).scheme.lower() == "file" and entry.endswith("/"):
            folders.append(_entry_path(allowed_entry(entry)))
    return folders


def _file_allows(entry_path: str, path: str) -> bool:
    if entry_path in ("", "/"):  # never the whole filesystem, whatever reached this list
        return False
    if entry_path.endswith("/"):
        return path.startswith(entry_path) or path + "/" == entry_path
    return path == entry_path
