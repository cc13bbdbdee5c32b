"""Building an env from command-line settings, and goal ranges checked against the split.

`EnvArgs` and `OutputArgs` are argument groups: kw-only dataclasses that a command's
config mixes in (`class RolloutConfig(EnvArgs, PolicyArgs, SearchArgs, OutputArgs)`),
so every command spells a setting, its flag, its help and its default once. The
`webgrove` command turns each field into a flag (`goal_set` -> `--goal-set`). Each
group validates its own fields in `__post_init__` and then calls the next group's
(`next_post_init`), so a config validates every group it mixes in.

This module sits below `agents`, `search` and `training`: they build envs through
it instead of through each other.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from webgrove.envs.errors import UsageError

SHOP_IDS = ("webgrove/WebShop-v0", "webgrove/WebShopBrowser-v0")
# their multi-attempt variants (webgrove.envs.multi_attempt, RISE): the same shop arguments, plus attempts
SHOP_ATTEMPT_IDS = ("webgrove/WebShop-Attempts-v0", "webgrove/WebShopBrowser-Attempts-v0")
SPLITS = ("train", "test")
GOAL_SETS = ("synthetic", "human")


def next_post_init(obj: Any, group: type) -> None:
    """Run the `__post_init__` that follows `group`'s in `obj`'s class order, if any.

    Argument groups end their `__post_init__` with `next_post_init(self, Group)`, so a
    config that mixes in several groups validates all of them, in class order.
    """
    after = super(group, obj)
    if hasattr(after, "__post_init__"):
        after.__post_init__()


def group_values(obj: Any, group: type) -> dict[str, Any]:
    """The values of `group`'s fields on `obj` (a config that mixes `group` in), by name."""
    return {f.name: getattr(obj, f.name) for f in fields(group)}


@dataclass(kw_only=True)
class EnvArgs:
    """Which env, which goal split and which catalog: shared by every command that builds an env."""

    env: str = field(default="webgrove/WebShop-v0", metadata={"help": "Gymnasium id"})
    split: str = field(default="test", metadata={"help": "goal split", "choices": list(SPLITS)})
    data_dir: str | None = field(default=None, metadata={
        "help": "directory with the original WebShop files (shop envs); default: the synthetic catalog"})
    goal_set: str = field(default="synthetic", metadata={
        "help": "shop goals: synthetic, or human (WebShop's human instructions; needs --data-dir)",
        "choices": list(GOAL_SETS)})
    num_products: int | None = field(default=None, metadata={
        "help": "catalog size (default: 1000 synthetic products, or every product with --data-dir)"})
    catalog_cache: str | None = field(default=None, metadata={
        "help": "shop catalog store, built once per machine and memory-mapped by every worker: a folder, "
                "auto (~/.cache/webgrove/catalogs for catalogs of 10k+ products) or off "
                "(default: $WEBGROVE_CATALOG_CACHE, else auto)"})

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise UsageError(f"--split must be one of {', '.join(SPLITS)}, got {self.split!r}")
        if self.goal_set not in GOAL_SETS:
            raise UsageError(f"--goal-set must be one of {', '.join(GOAL_SETS)}, got {self.goal_set!r}")
        if self.num_products is not None and self.num_products < 1:
            raise UsageError(f"--num-products must be at least 1, got {self.num_products}")
        if self.data_dir is not None and not Path(self.data_dir).expanduser().is_dir():
            raise UsageError(f"--data-dir {self.data_dir}: no such directory; give the folder that holds "
                             "the original WebShop files, or leave it out for the synthetic catalog")
        if self.goal_set != "synthetic" and self.data_dir is None:
            raise UsageError(f"--goal-set {self.goal_set} needs the original WebShop files: add --data-dir DIR")
        next_post_init(self, EnvArgs)

    def make(self, **kwargs: Any):
        """The env these settings name (see `make_env`)."""
        return make_env(self.env, split=self.split, data_dir=self.data_dir, goal_set=self.goal_set,
                        num_products=self.num_products, catalog_cache=self.catalog_cache, **kwargs)

    def goal_count(self) -> int | None:
        """Goals in the split for shop envs (without building the env); None for others."""
        if self.env not in SHOP_IDS + SHOP_ATTEMPT_IDS:
            return None
        from webgrove.envs.shop.engine import get_engine

        engine = get_engine(data_dir=self.data_dir, goals=self.goal_set, num_products=self.num_products,
                            catalog_cache=self.catalog_cache)
        return len(engine.catalog.split_goals(self.split))

    def check_goals(self, goal_ids: range, flag: str = "--goal-range") -> range:
        """`goal_ids`, after checking they lie in the split (when its size is known).

        Raises:
            UsageError: some ids are beyond the split's goals.
        """
        count = self.goal_count()
        if count is not None and goal_ids.stop > count:
            raise UsageError(f"{flag} asks for goals up to {goal_ids.stop - 1}, but the {self.split} split "
                             f"of {self.env} has {count} goals (ids 0 to {count - 1}); choose ids below {count}")
        return goal_ids


@dataclass(kw_only=True)
class OutputArgs:
    """Seed, summary file and progress display: shared by every command that runs episodes."""

    seed: int = field(default=0, metadata={"help": "base seed; episode or goal i derives its seed from it"})
    json: str | None = field(default=None, metadata={"help": "also write the summary as JSON to this file"})
    progress: bool = field(default=True, metadata={
        "help": "show a progress bar (only when stderr is a terminal)"})

    def __post_init__(self) -> None:
        next_post_init(self, OutputArgs)

    @property
    def bar_disable(self) -> bool | None:
        """tqdm's `disable`: True when off, None (off unless stderr is a terminal) when on."""
        return None if self.progress else True


def parse_goal_range(text: str, flag: str = "--goal-range") -> range:
    """Goal ids from "A:B" (A included, B excluded), e.g. "0:100" -> 0..99.

    Raises:
        UsageError: not of the form A:B, or empty (B <= A).
    """
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", str(text))
    if m is None:
        raise UsageError(f"{flag} must look like A:B (goal ids A to B-1, e.g. 0:100), got {text!r}")
    start, stop = int(m.group(1)), int(m.group(2))
    if stop <= start:
        raise UsageError(f"{flag} {text} is empty: B must be greater than A (e.g. {start}:{start + 10})")
    return range(start, stop)


def make_env(env_id: str, split: str = "test", data_dir: str | None = None, goal_set: str = "synthetic",
             num_products: int | None = None, catalog_cache: str | None = None, **kwargs: Any):
    """`gymnasium.make(env_id)`, with the shop arguments passed to shop envs only.

    `catalog_cache` (when given) becomes this process's default shop catalog store
    (`webgrove.envs.shop.store.set_catalog_cache`), for the text and browser shops alike.

    Raises:
        UsageError: the id is not registered.
    """
    import gymnasium as gym

    import webgrove.envs  # noqa: F401  (registers the ids)

    if ":" not in env_id and env_id not in gym.registry:  # "module:Id" ids register on import
        known = sorted(k for k in gym.registry if k.startswith("webgrove/") and "/miniwob." not in k)
        raise UsageError(f"--env {env_id!r} is not a registered Gymnasium id; use one of {', '.join(known)} "
                         "or webgrove/miniwob.<task>-v0")
    if env_id in SHOP_IDS + SHOP_ATTEMPT_IDS:
        if catalog_cache is not None:
            from webgrove.envs.shop.store import set_catalog_cache

            set_catalog_cache(catalog_cache)
        kwargs.update(split=split, data_dir=data_dir, goals=goal_set, num_products=num_products)
    return gym.make(env_id, **kwargs)
