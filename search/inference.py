"""Search at inference: an agent that runs MCTS before every real step."""
from __future__ import annotations

from typing import Any

import numpy as np

from webgrove.agents.base import Critic, Policy, StepContext, rolls_out_by_act
from webgrove.search.mcts import MCTS, SearchConfig, SearchTimings, env_step_limit


class MCTSAgent:
    """Acts by Agent Q's search: `act(ctx)` runs `config.simulations` simulations
    from the env's current real state and returns the root action with the most
    visits (ties by Q).

    The env is left exactly where it was (snapshot before, `set_state` after), so
    the caller steps it with the returned action as usual. When the next call
    continues the same episode with that action, the search goes on in the subtree
    already grown under it (as `search_episode` does) instead of starting afresh.

    Args:
        env: the env the episode runs in (its unwrapped env has get_state,
            set_state and observe).
        policy: proposes children and rolls out.
        critic: values proposals; None gives every proposal 0.
        config: search settings.
        reuse_tree: keep the subtree of the chosen action for the next step.
    """

    def __init__(self, env: Any, policy: Policy, critic: Critic | None, config: SearchConfig,
                 reuse_tree: bool = True) -> None:
        self.env = env
        self.policy = policy
        self.critic = critic
        self.config = config
        self.reuse_tree = reuse_tree
        self.mcts: MCTS | None = None  # the current episode's tree
        self._next: tuple[str, list[str], int] | None = None  # (goal, expected history, node id)
        self._timings: list[SearchTimings] = []
        self._fallback_rng = np.random.default_rng(config.seed)

    @property
    def timings(self) -> SearchTimings:
        """Time spent in every search so far."""
        total = SearchTimings()
        for t in self._timings:
            total.add(t)
        return total

    def _tree_for(self, ctx: StepContext) -> tuple[MCTS, int]:
        if (self.reuse_tree and self.mcts is not None and self._next is not None
                and self._next[0] == ctx.goal and self._next[1] == list(ctx.history)
                and self._full_lookahead(self._next[2], len(ctx.history))):
            return self.mcts, self._next[2]
        self.mcts = MCTS(self.env, self.policy, self.critic, self.config, history=ctx.history)
        self._timings.append(self.mcts.timings)
        return self.mcts, 0

    def _full_lookahead(self, node: int, steps_taken: int) -> bool:
        """Whether the kept subtree still looks as far ahead as a fresh tree would: its depth
        limit counts from the first root, so after a few real steps a reused subtree sees less
        (and at the limit nothing, when the step would fall back to the plain policy)."""
        limit = env_step_limit(self.env)
        fresh = self.config.max_depth if limit is None else limit - steps_taken
        fresh = max(0, min(self.config.max_depth, fresh))
        return self.mcts.depth_limit - self.mcts.nodes[node].depth >= fresh

    def act(self, ctx: StepContext, rng: np.random.Generator | None = None) -> str:
        """The best root action after searching from the env's current state.

        `rng` is accepted for signature compatibility with scripted agents; the
        search draws from its own generator seeded by `config.seed`.
        """
        state = self.env.unwrapped.get_state()
        mcts, root = self._tree_for(ctx)
        try:
            child = mcts.search(root)
        finally:
            mcts.restore(state)
        if child is None:  # nothing left to search (step limit) or nothing proposed
            self._next = None
            return self._policy_action(ctx)
        self._next = (ctx.goal, list(ctx.history) + [child.action], child.id)
        return child.action

    def _policy_action(self, ctx: StepContext) -> str:
        if rolls_out_by_act(self.policy):
            return self.policy.act(ctx, self._fallback_rng)
        proposals = self.policy.propose(ctx, 1, self._fallback_rng)
        if not proposals:
            raise ValueError(f"policy {type(self.policy).__name__} proposed no action")
        return proposals[0].action
