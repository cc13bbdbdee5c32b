"""Contracts that layers above `envs` type against (search, training)."""
from __future__ import annotations

from typing import Any, Protocol


class SnapshotEnv(Protocol):
    """An env whose state can be saved and restored exactly: what tree search needs.

    Every webgrove env's `unwrapped` satisfies it: `ShopEnv` snapshots its session,
    `BrowserEnv` its seed and action history (restored by replay).
    """

    def get_state(self) -> Any:
        """A small picklable snapshot of the running episode."""
        ...

    def set_state(self, state: Any) -> None:
        """Restore a snapshot from `get_state` exactly (raises if it cannot)."""
        ...

    def observe(self) -> tuple[Any, dict[str, Any]]:
        """The current observation and info, without stepping (e.g. after `set_state`)."""
        ...
