"""`webgrove/Booking-v0`: the booking site on 127.0.0.1 as a browser task.

The reward comes from the server's booking records for the episode's session
(`envs/booking/reward.py`), never from the page. The episode ends when a booking is
confirmed (or on `stop`).

Reward shaping (`reward_shaping="progress"`, off by default): every step that does not
end the episode pays the change in `booking_progress`, the share of the goal's fields the
booking in progress already has right (read from the page's URL and form values and the
session's draft); the step that ends the episode pays the evaluator's reward unchanged, so
success and score are what they are without shaping. It is a dense signal computed from
the goal (privileged, like any reward), meant for search; sums of shaped rewards are not
episode returns.

The observation's `axtree` is the compact tree of `envs/booking/observation.py` (the
whole snapshot stays in `env.unwrapped.page_axtree`; actions are read against it).

The task can fork an episode: `save_site(page)` copies the
server session and `load_site` starts a new session from the copy; `BrowserEnv`
adds the page URL and form values and restores all with one navigation
(`envs/browser/fork.py`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from webgrove.envs.booking.actions import named_actions, to_browser_action
from webgrove.envs.booking.observation import compact_axtree
from webgrove.envs.booking.reward import booking_progress, booking_reward
from webgrove.envs.booking.server import _POST, SESSION_COOKIE, BookingServer, BookingSite
from webgrove.envs.browser.task import ServedSiteTask

if TYPE_CHECKING:
    from playwright.sync_api import Page

SHAPINGS = ("none", "progress")
# Every named form field's value on the page (later forms win), e.g. {"time": "17:30", "first_name": "Ben"};
# not the sign-in form's (its email is an account's, not the booking's).
_FORM_VALUES_JS = """() => {
  const out = {};
  for (const form of document.forms) {
    if (form.querySelector('input[type=password]')) continue;
    for (const [k, v] of new FormData(form)) if (typeof v === 'string') out[k] = v;
  }
  return out;
}"""


class BookingTask(ServedSiteTask):
    """A booking goal in a fresh session of a booking server.

    Args:
        split: "train" or "test" goals.
        seed: seed of the restaurants and goals.
        num_restaurants: restaurants on the site.
        server: a running `BookingServer` of the same site and split to share; default:
            the task starts its own on 127.0.0.1 (closed with the task).
        reward_shaping: "none", or "progress" (see the module docstring).
    """

    viewport = (1280, 720)
    session_cookie = SESSION_COOKIE

    def __init__(self, split: str = "train", seed: int = 0, num_restaurants: int = 300,
                 server: BookingServer | None = None, reward_shaping: str = "none") -> None:
        if reward_shaping not in SHAPINGS:
            raise ValueError(f"reward_shaping must be one of {', '.join(SHAPINGS)}, not {reward_shaping!r}")
        server = self._attach(server, split, lambda: BookingServer(BookingSite(seed, num_restaurants), split=split))
        self.split = split
        self.goals = server.goals
        self.allowed_origins = (server.url.rstrip("/"),)
        self.goal_id = 0
        self._session: str | None = None
        self.reward_shaping = reward_shaping
        self._progress = 0.0  # booking_progress after the last step (shaping only)

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
        self._progress = 0.0
        return super().setup(page, seed=seed, options=options)

    def validate(self, page: Page, answer: str | None) -> tuple[float, bool, dict[str, Any]]:
        bookings = self.server.bookings(self._session)
        if not bookings and answer is None:
            return self._shaped(page), False, {}
        reward, info = booking_reward(self.goal, bookings)
        return reward, True, info

    def _shaped(self, page: Page) -> float:
        """The change in booking progress since the last step (0.0 without shaping)."""
        if self.reward_shaping == "none":
            return 0.0
        url = urlsplit(page.url)
        form = page.evaluate(_FORM_VALUES_JS)
        draft = self.server.snapshot(self._session)["session"]["draft"] if self._session else {}
        names = {rid: self.site.by_id[rid].name for rid in self.goal.restaurant_ids}
        now = booking_progress(self.goal, url.path, dict(parse_qsl(url.query)), form, draft, names)
        delta, self._progress = now - self._progress, now
        return delta

    # -- actions: the browser grammar and named actions (envs/booking/actions.py) ------

    def observation_axtree(self, axtree: str) -> str:
        """What `obs["axtree"]` shows: the compact tree (`envs/booking/observation.py`)."""
        return compact_axtree(axtree)

    def translate_action(self, action: str, axtree: str) -> str:
        """Named actions (`click[7:30 pm]`, `type[Phone][…]`) become browser actions."""
        return to_browser_action(action, axtree)

    def available_actions(self, url: str, refs: list[str], axtree: str = "") -> list[str]:
        """The page's named clicks and list options (text boxes take `type[name][text]`)."""
        return named_actions(axtree)

    # -- forking (BrowserEnv.get_state / set_state, see envs/browser/fork.py) ----------

    def save_site(self, page: Page) -> dict[str, Any] | None:
        """The server session's snapshot; None when the page cannot be rebuilt by one GET
        (the error page of a POST, another origin)."""
        url = urlsplit(page.url)
        if self._session is None or f"{url.scheme}://{url.netloc}" not in self.allowed_origins or url.path in _POST:
            return None
        return {**self.server.snapshot(self._session), "progress": self._progress}

    def load_site(self, page: Page, site: dict[str, Any], *, seed: int, options: dict[str, Any]) -> str:
        """A new session holding a copy of `site` for this page (no navigation); returns the goal."""
        self.goal_id = int(options["goal_id"])
        self._progress = float(site.get("progress", 0.0))
        self._use_session(page, self.server.restore(site))
        return self.goal.instruction
