"""The contracts between agents, search and training (docs/DESIGN.md, "Agents")."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class StepContext:
    """What a policy or critic sees at one step."""

    goal: str
    observation: str  # rendered text of the page
    available_actions: list[str]
    history: list[str] = field(default_factory=list)  # earlier actions of this episode
    # earlier attempts at this task (multi-attempt envs, webgrove.envs.multi_attempt): their records
    attempts: list[dict] = field(default_factory=list)


@dataclass
class Proposal:
    """A candidate action and the proposing policy's log-probability of it.

    `logprob` is the sequence log-probability of the action's completion (what DPO's
    reference log-probs must equal). `choice_logprob`, when a policy gives it, is the
    log-probability of choosing this action among the candidates it scored (e.g.
    `HFPolicy`'s constrained-decoding probability); policies rank and sample by it.
    """

    action: str
    logprob: float
    choice_logprob: float | None = None

    @property
    def rank_score(self) -> float:
        """What a policy ranks and samples by: `choice_logprob`, else `logprob`."""
        return self.logprob if self.choice_logprob is None else self.choice_logprob


@runtime_checkable
class Policy(Protocol):
    """What search and training call on a policy.

    Two optional members refine how search treats a policy (read with
    `policy_input` and `rolls_out_by_act`, never by testing concrete classes):

    - `prompt(ctx) -> str`: the exact input the policy chooses its action from,
      recorded in tree nodes and used as the training prompt; default the shared
      format of `webgrove.agents.prompts.policy_prompt`.
    - `rollout_by_act: bool`: True when rollouts should take the policy's own
      deterministic `act(ctx, rng)` (scripted agents) instead of sampling.
    """

    def propose(self, ctx: StepContext, k: int, rng: np.random.Generator) -> list[Proposal]:
        """Up to k distinct candidate actions, the policy's preferred one first."""
        ...

    def logprobs(self, ctx: StepContext, actions: list[str]) -> list[float]:
        """Log-probability of each action under the policy at this step."""
        ...


@runtime_checkable
class Critic(Protocol):
    def rank(self, ctx: StepContext, actions: list[str]) -> list[float]:
        """A value in [0, 1] per action; higher is better."""
        ...


def context_from(obs, info: dict, history: list[str]) -> StepContext:
    """A StepContext from an env's observation and info.

    Text envs give the page as a string; browser envs give a dict, whose `dom_text`
    (or else `axtree`) is the page text a model reads.
    """
    if isinstance(obs, dict):
        text = obs.get("dom_text") or obs.get("axtree") or ""
    else:
        text = str(obs)
    return StepContext(goal=info.get("goal", ""), observation=text,
                       available_actions=list(info.get("available_actions", [])),
                       history=list(history), attempts=list(info.get("attempts", [])))


def policy_input(policy: Policy, ctx: StepContext) -> str:
    """The exact text `policy` chooses its action from at `ctx` (see `Policy`)."""
    prompt = getattr(policy, "prompt", None)
    if callable(prompt):
        return prompt(ctx)
    from webgrove.agents.prompts import policy_prompt  # the agents' one prompt format, shared with training

    return policy_prompt(ctx)


def rolls_out_by_act(policy: Policy) -> bool:
    """Whether rollouts take the policy's own `act` (its `rollout_by_act` flag, see `Policy`)."""
    return bool(getattr(policy, "rollout_by_act", False)) and callable(getattr(policy, "act", None))
