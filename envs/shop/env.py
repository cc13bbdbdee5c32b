"""The WebShop-style shop as a Gymnasium environment, in text mode."""
from __future__ import annotations

import gymnasium as gym
import numpy as np

from webgrove.envs.shop.catalog import Goal
from webgrove.envs.shop.engine import DONE, InvalidAction, Purchase, ShopEngine, ShopState, get_engine
from webgrove.envs.shop.pages import build_page, to_html, to_text, to_text_rich
from webgrove.envs.spaces import AnyText

OBSERVATION_MODES = ("text", "text_rich", "html")
MAX_TEXT = 1_000_000


def pick_goal_id(options: dict, num_goals: int, split: str, np_random: np.random.Generator) -> int:
    """reset's goal: `options["goal_id"]` (an int in range), else a draw from the env's RNG.

    Raises ValueError for a goal id that is not an integer (1.7, "3", True) or out of range,
    as Gymnasium envs do for bad reset options.
    """
    if "goal_id" not in options:
        return int(np_random.integers(num_goals))
    goal_id = options["goal_id"]
    if isinstance(goal_id, (bool, np.bool_)) or not isinstance(goal_id, (int, np.integer)):
        raise ValueError(f"options['goal_id'] must be an integer, not {goal_id!r}")
    if not 0 <= goal_id < num_goals:
        raise ValueError(f"goal_id {goal_id} out of range for split {split!r} ({num_goals} goals)")
    return int(goal_id)


class ShopEnv(gym.Env):
    """WebShop (Yao et al. 2022) in text mode, on a synthetic catalog or the original data.

    ## Action Space
    A string: `search[query]` (only on the search page) or `click[label]` where label is
    one of the clickables listed in `info["available_actions"]` (case-insensitive).

    ## Observation Space
    A string: the page as WebShop's `text` (`[SEP]`-joined), `text_rich` (buttons marked)
    or `html` (the exact page the HTTP site serves), chosen by `observation_mode`.

    ## Rewards
    0 on every step but the purchase; `click[buy now]` earns WebShop's reward
    r_type × (attributes matched + options matched + [price ≤ limit]) / (|attributes| + |options| + 1),
    in [0, 1]; its components are in `info["reward_info"]`. Success means reward == 1.

    ## Episode End
    Terminates on `click[buy now]`. Truncation by the registered TimeLimit (15 steps).
    Invalid actions are no-ops that set `info["error"]`.

    ## Arguments
    split ("train" | "test"), observation_mode, num_products (default: 1,000 synthetic products,
    or every product in the files) and catalog_seed (synthetic catalog), data_dir and goals ("synthetic" | "human") for the original WebShop files;
    catalog_cache: where the catalog and index are stored once per machine and memory-mapped
    (a folder, "auto" or "off"; see `envs/shop/store.py`). Behaviour is the same either way.

    ## Version History
    * v0: first version.
    """

    metadata = {"render_modes": ["ansi"]}

    def __init__(self, split: str = "train", observation_mode: str = "text",
                 num_products: int | None = None, catalog_seed: int = 0,
                 data_dir: str | None = None, goals: str = "synthetic",
                 render_mode: str | None = None, catalog_cache: str | None = None):
        if observation_mode not in OBSERVATION_MODES:
            raise ValueError(f"observation_mode must be one of {OBSERVATION_MODES}, got {observation_mode!r}")
        if render_mode not in (None, "ansi"):
            raise ValueError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.engine: ShopEngine = get_engine(data_dir=data_dir, goals=goals,
                                             num_products=num_products, catalog_seed=catalog_seed,
                                             catalog_cache=catalog_cache)
        self.catalog = self.engine.catalog
        self.split = split
        self.goals: list[Goal] = self.catalog.split_goals(split)
        if not self.goals:
            raise ValueError(f"split {split!r} of catalog {self.catalog.name!r} has no goals")
        self.observation_mode = observation_mode
        self.render_mode = render_mode
        self.observation_space = AnyText(MAX_TEXT)
        self.action_space = AnyText(MAX_TEXT)
        self.goal_id = 0
        self.state = ShopState()
        self.purchase: Purchase | None = None
        self._page_cache: dict[tuple, str] = {}  # (goal_id, state) -> observation, before purchase

    @property
    def goal(self) -> Goal:
        return self.goals[self.goal_id]

    # -- Gymnasium API -------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.goal_id = pick_goal_id(options or {}, len(self.goals), self.split, self.np_random)
        self.state = ShopState()
        self.purchase = None
        return self.observe()

    def step(self, action: str):
        error = None
        reward = 0.0
        try:
            self.state = self.engine.step(self.state, action)
        except InvalidAction as exc:
            error = str(exc)
        terminated = self.state.page == DONE
        if terminated and error is None:
            self.purchase = self.engine.purchase(self.state, self.goal)
            reward = self.purchase.reward
        obs, info = self.observe()
        info["error"] = error
        return obs, reward, terminated, False, info

    def observe(self) -> tuple[str, dict]:
        """The current observation and info, without stepping (used after `set_state`)."""
        key = (self.goal_id, self.state)
        obs = self._page_cache.get(key) if self.purchase is None else None
        if obs is None:
            obs = self._render()
            if self.purchase is None:
                if len(self._page_cache) >= 16384:
                    self._page_cache.clear()
                self._page_cache[key] = obs
        info = {
            "goal": self.goal.instruction,
            "goal_id": self.goal_id,
            "available_actions": self.engine.available_actions(self.state),
            "error": None,
        }
        if self.purchase is not None:
            info["reward_info"] = dict(self.purchase.reward_info)
        return obs, info

    def _render(self) -> str:
        page = build_page(self.engine, self.state, self.goal, self.purchase)
        if self.observation_mode == "text":
            return to_text(page)
        if self.observation_mode == "text_rich":
            return to_text_rich(page)
        return to_html(page, self.engine, self.state, purchase=self.purchase)

    def render(self):
        if self.render_mode == "ansi":
            return to_text(build_page(self.engine, self.state, self.goal, self.purchase))
        return None

    # -- snapshots for tree search -------------------------------------------
    def get_state(self) -> tuple:
        """A small picklable snapshot of the episode (goal, page state, purchase)."""
        return (self.goal_id, self.state, self.purchase)

    def set_state(self, snapshot: tuple) -> None:
        """Restore a snapshot from `get_state` exactly."""
        goal_id, state, purchase = snapshot
        if not 0 <= goal_id < len(self.goals):
            raise ValueError(f"snapshot goal_id {goal_id} is not in split {self.split!r}")
        self.goal_id, self.state, self.purchase = goal_id, ShopState(*state), purchase
