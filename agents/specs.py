"""Policy and critic specs, as written on the command line (see DESIGN.md, "The command line").

Policy specs: "oracle" (needs the env), "rule", "random", a local model directory
(`HFPolicy`), or "openai" (`OpenAIPolicy`, needs `base_url` and `model_name`).
Critic specs: "none" (no critic: `None`), "lexical" (`LexicalCritic`) or "self"
(`LLMCritic` asking the policy's own model; model policies only).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from webgrove.agents.base import Critic, Policy

SCRIPTED = ("oracle", "rule", "random")
POLICY_SPECS = (*SCRIPTED, "openai", "<model directory>")
CRITIC_SPECS = ("none", "lexical", "self")


def make_policy(spec: str, env: Any = None, base_url: str | None = None, model_name: str | None = None,
                **opts: Any) -> Policy:
    """The policy a spec names.

    Args:
        spec: "oracle" | "rule" | "random" | "openai" | a model directory.
        env: the env the oracle reads its target from (oracle only).
        base_url, model_name: the server and model ("openai" only).
        **opts: passed to a model policy's constructor (e.g. temperature=0.0); scripted
            policies take none.

    Raises:
        ValueError: unknown spec, or a missing argument the spec needs.
    """
    if spec in SCRIPTED:
        from webgrove.agents import scripted

        if opts:
            raise ValueError(f"policy {spec!r} is scripted and takes no options (got {', '.join(sorted(opts))})")

        if spec == "oracle":
            if env is None:
                raise ValueError("policy 'oracle' needs the env (it reads the target product from it)")
            return scripted.OraclePolicy(env)
        return scripted.RulePolicy() if spec == "rule" else scripted.RandomPolicy()
    if spec == "openai":
        if not base_url or not model_name:
            raise ValueError("policy 'openai' needs --base-url URL and --model-name NAME")
        from webgrove.agents.openai_api import OpenAIPolicy

        return OpenAIPolicy(base_url, model_name, **opts)
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"policy {spec!r}: the directory has no config.json, so it is not a model")
        from webgrove.agents.hf import HFPolicy

        return HFPolicy(path, **opts)
    raise ValueError(f"unknown policy {spec!r}; use one of {', '.join(POLICY_SPECS)}"
                     + (" (no such directory)" if ("/" in spec or spec.startswith(".")) else ""))


def make_critic(spec: str, policy: Policy | None = None) -> Critic | None:
    """The critic a spec names; None for "none".

    Raises:
        ValueError: unknown spec, or "self" with no policy or a scripted one.
    """
    if spec == "none":
        return None
    from webgrove.agents.critics import LexicalCritic, LLMCritic

    if spec == "lexical":
        return LexicalCritic()
    if spec == "self":
        if policy is None or not hasattr(policy, "score_completions"):
            kind = "no policy" if policy is None else f"a scripted policy ({type(policy).__name__})"
            raise ValueError(f"critic 'self' asks the policy's own model, but there is {kind}; "
                             "use a model directory or 'openai', or critic 'lexical'")
        return LLMCritic(policy)
    raise ValueError(f"unknown critic {spec!r}; use one of {', '.join(CRITIC_SPECS)}")
