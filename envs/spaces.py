"""Gymnasium spaces shared by the shop and browser envs."""
from __future__ import annotations

import string
from typing import Any

import multiprocessing as mp
from types import ModuleType

from gymnasium.spaces import Text
from gymnasium.vector.utils.shared_memory import create_shared_memory

# Pages hold any Unicode; sampling stays within printable ASCII.
_SAMPLE_CHARSET = string.ascii_letters + string.digits + string.punctuation + " "


class AnyText(Text):
    """A `Text` space that contains any `str` of allowed length, whatever its characters.

    Gymnasium's `Text` only contains strings over its charset; web pages, URLs and
    model output are arbitrary Unicode. `sample()` draws printable ASCII.
    Vector envs must use `shared_memory=False` with this space (Gymnasium's shared
    memory stores characters as charset indices); asking for shared memory is an error.
    """

    def __init__(self, max_length: int, *, min_length: int = 0, seed: Any = None) -> None:
        super().__init__(max_length, min_length=min_length, charset=_SAMPLE_CHARSET, seed=seed)

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"AnyText({self.min_length}, {self.max_length})"


@create_shared_memory.register(AnyText)
def _refuse_shared_memory(space: AnyText, n: int = 1, ctx: ModuleType = mp) -> None:
    # Gymnasium would store each character as an index into the sampling charset and read
    # any other character back as garbage; say so instead of returning wrong observations.
    raise TypeError(f"{space!r} observations (any Unicode text) do not fit Gymnasium's shared memory: "
                    "create the vector env with shared_memory=False")
