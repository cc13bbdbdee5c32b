"""How a `BrowserEnv` runs its browser: one options dataclass for every browser task.

Light to import (no Playwright, no env): registration and `gym.make` read its field
names to tell browser options from a task's own arguments.
"""
from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class BrowserOptions:
    """Browser settings, the same for every task (BrowserGym's env arguments).

    What a page may load is not here: allowed origins belong to the task
    (`BrowserTask.allowed_origins`), so no option can widen them.

    Attributes:
        headless: run Chromium without a window (only when the env launches its own).
        viewport: (width, height) in CSS pixels; None uses the task's.
        action_timeout_s: limit for one browser action (click, fill, ...).
        navigation_timeout_s: limit for page loads (goto, back, reset).
        screenshot: add `screenshot` (uint8, height x width x 3) to observations.
        html: add `html` (the page HTML with live form values) to observations.
        dom_text: add `dom_text` (visible text and controls, see `dom_text.py`).
    """

    headless: bool = True
    viewport: tuple[int, int] | None = None
    action_timeout_s: float = 5.0
    navigation_timeout_s: float = 15.0
    screenshot: bool = False
    html: bool = False
    dom_text: bool = False

    def __post_init__(self) -> None:
        if self.action_timeout_s <= 0 or self.navigation_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
        if self.viewport is not None:
            width, height = self.viewport
            if int(width) <= 0 or int(height) <= 0:
                raise ValueError(f"viewport must be two positive sizes, not {self.viewport!r}")
            object.__setattr__(self, "viewport", (int(width), int(height)))

    @property
    def step_deadline_s(self) -> float:
        """A step does at most one action, one navigation and one observation; past this
        the page is hung and the watchdog kills the browser."""
        return 2 * self.action_timeout_s + self.navigation_timeout_s + 5.0


OPTION_NAMES = frozenset(f.name for f in fields(BrowserOptions))
