"""One helper registers every browser task as a Gymnasium id.

A browser id is a task factory plus its default arguments; `gym.make` calls
`make_browser_env`, which builds the task and hands it to the one `BrowserEnv`.
Importing this module is light (no Playwright, no env module), so registering ids
costs nothing until an env is made.

Example, a new site registered the way `webgrove/Booking-v0` is::

    # my_site/task.py
    from webgrove.envs.browser.task import Task

    class MySiteTask(Task):
        def __init__(self, split: str = "train"):
            self.server = start_my_server()                 # serve on 127.0.0.1
            self.allowed_origins = (self.server.url,)      # explicit: nothing else loads
            self.viewport = (1280, 720)

        def setup(self, page, *, seed, options):            # -> the goal
            page.goto(self.server.url)
            return "book a table for two"

        def validate(self, page, answer):                   # -> (reward, done, info)
            done = "Booked" in page.content()
            return float(done), done, {}

        def close(self):
            self.server.close()

    # my_site/__init__.py (or webgrove/envs/__init__.py)
    from webgrove.envs.browser.registry import register_browser_task

    register_browser_task("webgrove/MySite-v0", "my_site.task:MySiteTask",
                          max_episode_steps=20)

    # then: gym.make("webgrove/MySite-v0", split="test", screenshot=True)
    # `split` goes to MySiteTask, `screenshot` to BrowserOptions.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from gymnasium.envs.registration import load_env_creator, register, registry

from webgrove.envs.browser.options import OPTION_NAMES, BrowserOptions

if TYPE_CHECKING:
    from webgrove.envs.browser.chromium import Chromium
    from webgrove.envs.browser.env import BrowserEnv

ENTRY_POINT = "webgrove.envs.browser.registry:make_browser_env"


def register_browser_task(env_id: str, task_entry_point: str, *,
                          task_kwargs: Mapping[str, Any] | None = None,
                          max_episode_steps: int | None = None) -> None:
    """Register `env_id` as `BrowserEnv(task_entry_point(**task_kwargs))`.

    Args:
        env_id: the Gymnasium id, e.g. "webgrove/Booking-v0".
        task_entry_point: "module:callable" returning a `BrowserTask` (a task class or
            factory); imported only when the env is made.
        task_kwargs: default task arguments; `gym.make(env_id, **kw)` overrides them.
        max_episode_steps: Gymnasium's `TimeLimit`.

    Registering an id that exists already does nothing (modules may be imported twice).
    """
    if env_id in registry:
        return
    clash = OPTION_NAMES & set(task_kwargs or ())
    if clash:
        raise ValueError(f"task_kwargs {sorted(clash)} are BrowserOptions fields, not task arguments")
    register(id=env_id, entry_point=ENTRY_POINT, max_episode_steps=max_episode_steps,
             kwargs={"task_entry_point": task_entry_point, **(task_kwargs or {})})


def make_browser_env(task_entry_point: str, *, options: BrowserOptions | None = None,
                     browser: Chromium | None = None, render_mode: str | None = None,
                     **kwargs: Any) -> BrowserEnv:
    """What `gym.make` calls for a registered browser id.

    Arguments named like `BrowserOptions` fields (`screenshot=True`, `viewport=...`)
    build the options (or pass `options=BrowserOptions(...)`, not both); every other
    argument goes to the task factory.
    """
    flat = {k: kwargs.pop(k) for k in list(kwargs) if k in OPTION_NAMES}
    if options is not None and flat:
        raise TypeError(f"pass either options=BrowserOptions(...) or {sorted(flat)}, not both")
    options = options if options is not None else BrowserOptions(**flat)
    task = load_env_creator(task_entry_point)(**kwargs)
    from webgrove.envs.browser.env import BrowserEnv

    try:
        return BrowserEnv(task, options, browser=browser, render_mode=render_mode)
    except BaseException:
        task.close()
        raise
