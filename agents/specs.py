"""Policy and critic specs, as written on the command line (docs/DESIGN.md, "The command line").

Policy specs: "oracle" (needs the env), "rule", "rule-options" (the rule that also selects the
instruction's options), "random", a local model directory
(`HFPolicy`), "openai" (`OpenAIPolicy`, needs `base_url` and `model_name`), or
"package.module:factory" (your own policy: `factory(env=env)`).
Critic specs: "none" (no critic: `None`), "lexical" (`LexicalCritic`), "self"
(`LLMCritic` asking the policy's own model, position-debiased; model policies only),
"self-learned" (`LearnedCritic` at <policy dir>/critic) or a learned critic's directory
(`webgrove train critic`), or "package.module:factory" (`factory(policy=policy)`).

`PolicyArgs` is the argument group of every command that acts with a policy (see
`webgrove.envs.make` for how groups compose). Bad specs raise `UsageError`.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webgrove.agents.base import Critic, Policy
from webgrove.agents.chat import PROMPT_FORMATS
from webgrove.envs.errors import UsageError
from webgrove.envs.make import next_post_init

SCRIPTED = ("oracle", "rule", "rule-options", "random")
POLICY_SPECS = (*SCRIPTED, "openai", "<model directory>", "package.module:factory")
CRITIC_SPECS = ("none", "lexical", "self", "self-learned", "<learned critic directory>", "package.module:factory")
_OBJECT_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")  # "package.module:factory"


@dataclass(kw_only=True)
class PolicyArgs:
    """Which policy acts, and how: shared by every command that runs a policy."""

    policy: str = field(default="rule", metadata={
        "help": "oracle | rule | rule-options | random | a local model directory | openai | package.module:factory"})
    base_url: str | None = field(default=None, metadata={"help": "OpenAI-compatible server URL (policy openai)"})
    model_name: str | None = field(default=None, metadata={"help": "model name on the server (policy openai)"})
    temperature: float = field(default=0.0, metadata={
        "help": "sampling temperature of a model policy (0 = greedy); scripted policies ignore it"})
    request_timeout: float = field(default=30.0, metadata={
        "help": "seconds to wait for each answer of the server (policy openai)"})
    max_retries: int = field(default=3, metadata={
        "help": "retries after a failed or timed-out request to the server (policy openai)"})
    prompt_format: str = field(default="auto", metadata={
        "help": "how a local model reads prompts: chat (its chat template), raw (plain text) or auto "
                "(chat when the tokenizer has a chat template); training must use the same",
        "choices": list(PROMPT_FORMATS)})

    def __post_init__(self) -> None:
        check_policy_spec(self.policy, self.base_url, self.model_name)
        if self.temperature < 0:
            raise UsageError(f"--temperature must be >= 0, got {self.temperature}")
        if self.request_timeout <= 0 or self.max_retries < 0:
            raise UsageError("--request-timeout must be > 0 and --max-retries >= 0, got "
                             f"{self.request_timeout} and {self.max_retries}")
        if self.prompt_format not in PROMPT_FORMATS:
            raise UsageError(f"--prompt-format must be one of {', '.join(PROMPT_FORMATS)}, got {self.prompt_format!r}")
        next_post_init(self, PolicyArgs)

    def make_policy(self, env: Any = None) -> Policy:
        """The policy these settings name (see `make_policy`)."""
        opts: dict[str, Any] = {}
        if self.policy == "openai":
            opts = {"temperature": self.temperature, "timeout": self.request_timeout,
                    "max_retries": self.max_retries}
        elif self.policy not in SCRIPTED and not _OBJECT_SPEC.match(self.policy):
            opts = {"temperature": self.temperature, "prompt_format": self.prompt_format}
        return make_policy(self.policy, env=env, base_url=self.base_url, model_name=self.model_name, **opts)


def check_policy_spec(spec: str, base_url: str | None = None, model_name: str | None = None) -> None:
    """Raise `UsageError` now for a spec `make_policy` would refuse, without loading anything."""
    if spec in SCRIPTED or _OBJECT_SPEC.match(spec):
        return
    if spec == "openai":
        if not base_url or not model_name:
            raise UsageError("--policy openai needs --base-url URL and --model-name NAME")
        if not base_url.startswith(("http://", "https://")):
            raise UsageError(f"--base-url must be an http(s) URL, got {base_url!r}")
        return
    path = Path(spec).expanduser()
    if path.is_dir() and not (path / "config.json").is_file():
        raise UsageError(f"--policy {spec}: the directory has no config.json, so it is not a model; "
                         "give a model directory (e.g. one written by `webgrove init-model`)")
    if not path.is_dir():
        raise UsageError(f"unknown policy {spec!r}; use one of {', '.join(POLICY_SPECS)}"
                         + (" (no such directory)" if ("/" in spec or spec.startswith(".")) else ""))


def _load_object(spec: str) -> Any:
    module_name, name = spec.split(":")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as e:
        raise UsageError(f"cannot load {spec!r}: {e}") from e


def make_policy(spec: str, env: Any = None, base_url: str | None = None, model_name: str | None = None,
                **opts: Any) -> Policy:
    """The policy a spec names.

    Args:
        spec: "oracle" | "rule" | "rule-options" | "random" | "openai" | a model directory |
            "package.module:factory" (called as `factory(env=env)`).
        env: the env the oracle reads its target from (oracle and factories).
        base_url, model_name: the server and model ("openai" only).
        **opts: passed to a model policy's constructor (e.g. temperature=0.0); scripted
            policies take none.

    Raises:
        UsageError: unknown spec, or a missing argument the spec needs.
    """
    if _OBJECT_SPEC.match(spec):
        return _load_object(spec)(env=env)
    check_policy_spec(spec, base_url, model_name)
    if spec in SCRIPTED:
        from webgrove.agents import scripted

        if opts:
            raise UsageError(f"policy {spec!r} is scripted and takes no options (got {', '.join(sorted(opts))})")
        from webgrove.agents.booking_scripted import booking_policy

        if (booking := booking_policy(spec, env)) is not None:  # webgrove/Booking-v0 pages
            return booking
        if spec == "oracle":
            if env is None:
                raise UsageError("policy 'oracle' needs the env (it reads the target product from it)")
            return scripted.OraclePolicy(env)
        return {"rule": scripted.RulePolicy, "rule-options": scripted.RuleOptionsPolicy,
                "random": scripted.RandomPolicy}[spec]()
    if spec == "openai":
        from webgrove.agents.openai_api import OpenAIPolicy

        return OpenAIPolicy(base_url, model_name, **opts)
    from webgrove.agents.hf import HFPolicy

    try:
        return HFPolicy(Path(spec).expanduser(), **opts)
    except ValueError as e:  # e.g. --prompt-format chat for a model without a chat template
        raise UsageError(f"--policy {spec}: {e}") from e


def make_critic(spec: str, policy: Policy | None = None, env: Any = None) -> Critic | None:
    """The critic a spec names; None for "none"; "package.module:factory" calls `factory(policy=policy)`.
    `env`, when given, lets the lexical critic read a page the env shows shortened.

    Raises:
        UsageError: unknown spec, or "self" with no policy or a scripted one.
    """
    if _OBJECT_SPEC.match(spec):
        return _load_object(spec)(policy=policy)
    if spec == "none":
        return None
    from webgrove.agents.critics import LexicalCritic, LLMCritic

    if spec == "lexical":
        return LexicalCritic(env)
    if spec == "self":
        if policy is None or not hasattr(policy, "score_completions"):
            kind = "no policy" if policy is None else f"a scripted policy ({type(policy).__name__})"
            raise UsageError(f"critic 'self' asks the policy's own model, but there is {kind}; "
                             "use a model directory or 'openai', or critic 'lexical'")
        return LLMCritic(policy)
    if spec == "self-learned" or Path(spec).expanduser().is_dir():  # `webgrove train critic` wrote it
        from webgrove.agents.critics import learned_critic

        return learned_critic(spec, policy)
    raise UsageError(f"unknown critic {spec!r}; use one of {', '.join(CRITIC_SPECS)}")


def learned_critic_dir(spec: str, policy_spec: str) -> Path | None:
    """The model directory of the learned critic a critic spec names (None for other critics):
    the directory itself, or <policy model dir>/critic for "self-learned"."""
    if spec == "self-learned":
        from webgrove.agents.critics import SELF_LEARNED_DIR

        return Path(policy_spec).expanduser() / SELF_LEARNED_DIR
    if spec in ("none", "lexical", "self") or _OBJECT_SPEC.match(spec):
        return None
    path = Path(spec).expanduser()
    return path if path.is_dir() else None
