"""Atomic file writes: the one place that writes JSON and JSONL files whole or not at all.

A file is written to a temporary name in its own folder (so the rename cannot cross
file systems), flushed and fsync-ed, then renamed over the target with `os.replace`;
a reader sees the old file or the new one, never half of one, and a crash leaves at
most a temporary file named `.<name>.<pid>.<random>.tmp` (`stale_temp_files` finds
them). This module imports nothing of ours, so every layer may use it.
"""
from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".tmp"


def temp_path(path: str | os.PathLike) -> Path:
    """A fresh temporary name next to `path`: `.<name>.<pid>.<random>.tmp`."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}")


def stale_temp_files(folder: str | os.PathLike, name_glob: str = "*") -> list[Path]:
    """Temporary files `atomic_open` left in `folder` for targets matching `name_glob`
    (e.g. after a SIGKILL mid-write), sorted."""
    return sorted(Path(folder).glob(f".{name_glob}.*{TEMP_SUFFIX}"))


def _fsync_dir(folder: Path) -> None:
    """Persist a rename (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path: str | os.PathLike, encoding: str = "utf-8") -> Iterator[IO[str]]:
    """A text file that replaces `path` only when the `with` block ends without error.

    The parent folder is created. On any exception (KeyboardInterrupt included) the
    temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "x", encoding=encoding) as f:  # plain open keeps the umask's mode
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically."""
    with atomic_open(path) as f:
        f.write(text)


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int | None = 2, allow_nan: bool = False) -> None:
    """Write one JSON document atomically; NaN and infinities raise ValueError unless
    `allow_nan` (then they are written as Python's json writes them, which is not JSON)."""
    write_text_atomic(path, json.dumps(data, indent=indent, ensure_ascii=False, allow_nan=allow_nan) + "\n")


def write_jsonl_atomic(path: str | os.PathLike, rows: Iterable[Any], allow_nan: bool = False) -> int:
    """Write one JSON document per line atomically, streaming `rows`; returns how many."""
    n = 0
    with atomic_open(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, allow_nan=allow_nan) + "\n")
            n += 1
    return n
