"""`webgrove/Booking-v0`: the booking site on 127.0.0.1 as a browser task.

The reward comes from the server's booking records for the episode's session
(`envs/booking/reward.py`), never from the page. The episode ends when a booking is
confirmed (or on `stop`). The task can fork an episode: `snapshot(page)` copies the
server session, the page URL and the form values the page holds, and
`restore(page, snapshot)` rebuilds them with one navigation (see `BrowserEnv.set_state`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import numpy as np

from webgrove.envs.booking.goals import BookingGoal
from webgrove.envs.booking.reward import booking_reward
from webgrove.envs.booking.server import _POST, SESSION_COOKIE, BookingServer, BookingSite
from webgrove.envs.browser.task import Task

if TYPE_CHECKING:
    from playwright.sync_api import Page

MAX_EPISODE_STEPS = 40
# Form controls whose value differs from the page's own default, by position among
# the page's visible controls: [index, value] for text and selects, [index, checked].
_READ_FIELDS_JS = """() => {
  const out = [];
  document.querySelectorAll('input:not([type=hidden]), select, textarea').forEach((el, i) => {
    if (el.type === 'checkbox' || el.type === 'radio') {
      if (el.checked !== el.defaultChecked) out.push([i, el.checked]);
    } else if (el.tagName === 'SELECT') {
      const d = Array.from(el.options).findIndex(o => o.defaultSelected);
      if (el.selectedIndex !== (d < 0 ? 0 : d)) out.push([i, el.value]);
    } else if (el.value !== el.defaultValue) {
      out.push([i, el.value]);
    }
  });
  return out;
}"""
_WRITE_FIELDS_JS = """(fields) => {
  const els = document.querySelectorAll('input:not([type=hidden]), select, textarea');
  for (const [i, v] of fields) {
    const el = els[i];
    if (!el) return false;
    if (typeof v === 'boolean') el.checked = v; else el.value = v;
  }
  return true;
}"""


class BookingTask(Task):
    """A booking goal in a fresh session of a booking server.

    Args:
        split: "train" or "test" goals.
        seed: seed of the restaurants and goals.
        num_restaurants: restaurants on the site.
        server: a running `BookingServer` of the same site and split to share; default:
            the task starts its own on 127.0.0.1 (closed with the task).
    """

    viewport = (1280, 720)

    def __init__(self, split: str = "train", seed: int = 0, num_restaurants: int = 300,
                 server: BookingServer | None = None) -> None:
        if server is None:
            server = BookingServer(BookingSite(seed, num_restaurants), split=split)
            self._own_server = True
        else:
            if server.split != split:
                raise ValueError(f"the shared server serves split {server.split!r}, not {split!r}")
            self._own_server = False
        self.server = server
        self.split = split
        self.goals = server.goals
        self.allowed_origins = (server.url.rstrip("/"),)
        self.goal_id = 0
        self._session: str | None = None

    @property
    def goal(self) -> BookingGoal:
        """The current goal (what the scripted oracle reads)."""
        return self.goals[self.goal_id]

    @property
    def site(self) -> BookingSite:
        return self.server.site

    @property
    def session_id(self) -> str | None:
        return self._session

    def episode_options(self, options: dict[str, Any], np_random: np.random.Generator) -> dict[str, Any]:
        """options["goal_id"] (an int in range), else a goal drawn from the env's RNG."""
        if "goal_id" in options:
            goal_id = options["goal_id"]
            if isinstance(goal_id, bool) or not isinstance(goal_id, (int, np.integer)):
                raise ValueError(f"goal_id must be an int, not {goal_id!r}")
            if not 0 <= goal_id < len(self.goals):
                raise ValueError(f"goal_id {goal_id} out of range for split {self.split!r} ({len(self.goals)} goals)")
        else:
            goal_id = int(np_random.integers(len(self.goals)))
        return {**options, "goal_id": int(goal_id)}

    def setup(self, page: Page, *, seed: int, options: dict[str, Any]) -> str:
        self.goal_id = int(options["goal_id"])
        self._open(page, self.server.new_session(self.goal_id), "/")
        return self.goal.instruction

    def _open(self, page: Page, sid: str, path: str) -> None:
        self._session = sid
        page.context.add_cookies([{"name": SESSION_COOKIE, "value": sid, "url": self.server.url}])
        page.goto(self.server.url.rstrip("/") + path, wait_until="domcontentloaded")

    def validate(self, page: Page, answer: str | None) -> tuple[float, bool, dict[str, Any]]:
        bookings = self.server.bookings(self._session)
        if not bookings and answer is None:
            return 0.0, False, {}
        reward, info = booking_reward(self.goal, bookings)
        return reward, True, info

    # -- forking (used by BrowserEnv.get_state / set_state) ----------------------------

    def snapshot(self, page: Page) -> dict[str, Any] | None:
        """{"session": the server session's snapshot, "path": the page's path and query,
        "fields": form values that differ from the page's defaults}; None when the page
        cannot be rebuilt by one GET (a POST's error page, another origin)."""
        if self._session is None:
            return None
        url = urlsplit(page.url)
        if f"{url.scheme}://{url.netloc}" not in self.allowed_origins or url.path in _POST:
            return None
        path = url.path + (f"?{url.query}" if url.query else "")
        return {"session": self.server.snapshot(self._session), "path": path,
                "fields": page.evaluate(_READ_FIELDS_JS)}

    def restore(self, page: Page, snapshot: dict[str, Any], *, seed: int, options: dict[str, Any]) -> str:
        """Rebuild a snapshot in a new session: one navigation, then the form values."""
        self.goal_id = int(options["goal_id"])
        self._open(page, self.server.restore(snapshot["session"]), snapshot["path"])
        if snapshot["fields"] and not page.evaluate(_WRITE_FIELDS_JS, snapshot["fields"]):
            raise RuntimeError("the restored page has fewer form fields than the snapshot")
        return self.goal.instruction

    def teardown(self) -> None:
        if self._session is not None:
            self.server.end_session(self._session)
            self._session = None

    def close(self) -> None:
        if self._own_server:
            self.server.close()
