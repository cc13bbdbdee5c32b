"""Tasks: what to do on a page and how well it was done. The env owns the browser.

A task sets up a fresh page at the start of an episode and returns the goal, then
judges the page after every step. Tasks hold no browser; they get the page.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    from playwright.sync_api import Page


@runtime_checkable
class BrowserTask(Protocol):
    """The contract between `BrowserEnv` and a task.

    Attributes:
        allowed_origins: origins (`scheme://host[:port]`, or `file://`) the page may
            load from and `goto` may visit; None allows every origin.
        viewport: (width, height) in CSS pixels of the task's page.
    """

    allowed_origins: tuple[str, ...] | None
    viewport: tuple[int, int]

    def episode_options(self, options: dict[str, Any], np_random: np.random.Generator) -> dict[str, Any]:
        """Complete reset's options from the env's seeded RNG (e.g. draw a goal id).

        Called once per reset, before the page seed is drawn; the result is what
        `setup` receives and what `get_state` records.
        """
        ...

    def setup(self, page: Page, *, seed: int, options: dict[str, Any]) -> str:
        """Prepare the freshly opened page for an episode and return the goal.

        `seed` is drawn from the env's seeded RNG, `options` are reset's options
        (e.g. {"goal_id": 3}); the same pair must give the same page.
        """
        ...

    def validate(self, page: Page, answer: str | None) -> tuple[float, bool, dict[str, Any]]:
        """(reward, done, info) for the page after a step; `answer` is set after `stop`.

        `info` is reported as `info["reward_info"]` when the episode ends.
        """
        ...

    def teardown(self) -> None:
        """End the episode (called before the next setup and on close)."""
        ...

    def close(self) -> None:
        """Release what the task holds across episodes (servers, files)."""
        ...


class Task:
    """A base class with the optional parts of `BrowserTask` filled in."""

    allowed_origins: tuple[str, ...] | None = None
    viewport: tuple[int, int] = (1280, 720)

    def episode_options(self, options: dict[str, Any], np_random: np.random.Generator) -> dict[str, Any]:
        return dict(options)

    def setup(self, page: Page, *, seed: int, options: dict[str, Any]) -> str:
        raise NotImplementedError

    def validate(self, page: Page, answer: str | None) -> tuple[float, bool, dict[str, Any]]:
        raise NotImplementedError

    def teardown(self) -> None:
        return None

    def close(self) -> None:
        return None
