"""`SearchArgs`: Agent Q's search settings as a command-line argument group.

The fields, their help and their defaults come from `webgrove.search.mcts.SearchConfig`
(the one place a search default is written), minus the per-goal `seed`, plus the critic
spec. A command's config mixes it in (see `webgrove.envs.make`) and builds the search's
config with `search_config(seed)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from webgrove.envs.errors import UsageError
from webgrove.envs.make import group_values, next_post_init
from webgrove.search.mcts import SearchConfig

_FIELDS = {f.name: f for f in fields(SearchConfig)}


def _same_as_search_config(name: str):
    """A field with SearchConfig's default and help for `name`."""
    return field(default=_FIELDS[name].default, metadata=dict(_FIELDS[name].metadata))


@dataclass(kw_only=True)
class SearchArgs:
    """MCTS settings (Agent Q): shared by collection, search at inference and the improve loop."""

    critic: str = field(default="lexical", metadata={
        "help": "critic that values proposals: none | lexical | self | package.module:factory"})
    simulations: int = _same_as_search_config("simulations")
    k: int = _same_as_search_config("k")
    c: float = _same_as_search_config("c")
    alpha: float = _same_as_search_config("alpha")
    max_depth: int = _same_as_search_config("max_depth")
    rollout_temperature: float = _same_as_search_config("rollout_temperature")
    stop_on_success: bool = _same_as_search_config("stop_on_success")

    def __post_init__(self) -> None:
        try:
            self.search_config(seed=0)
        except ValueError as e:  # SearchConfig's messages start with the field, which is the flag's word
            name, _, rest = str(e).partition(" ")
            raise UsageError(f"--{name.replace('_', '-')} {rest}") from None
        next_post_init(self, SearchArgs)

    def search_config(self, seed: int) -> SearchConfig:
        """The search's config with these settings and `seed`."""
        values = group_values(self, SearchArgs)
        values.pop("critic")
        return SearchConfig(**values, seed=seed)
