"""Multi-attempt episodes with feedback (RISE, Qu et al. 2024), for any webgrove env.

RISE frames one task as a multi-turn MDP: turn 1 is an attempt; every later turn sees the
earlier attempts and what was wrong with them, and tries again. `MultiAttemptWrapper`
turns any webgrove env into that MDP:

- an attempt is one episode of the wrapped env (its own `TimeLimit` budget);
- when an attempt ends without success and attempts remain, the same goal restarts from
  the same seed and options (`reset(seed=s, options=o)` again), and the step that ended
  the attempt returns the new attempt's first observation;
- every `info` carries `attempt` (1-based index of the current attempt), `attempts` (the
  records of the finished ones, oldest first) and `attempt_rewards` (their rewards); the
  step that starts a new attempt also carries `attempt_ended` (the finished record plus
  its `reward_info` and the last step's `error`, None when the action was valid). The
  observation itself is the page, unchanged: like the goal, the
  attempts travel in `info`, and `webgrove.agents.base.context_from` hands them to the
  policy, whose prompt shows them (`webgrove.agents.prompts.format_attempts`).

An attempt record is a flat dict::

    {"attempt": 1, "actions": ["search[...]", "click[...]", ...], "reward": 0.4,
     "success": false, "feedback": "failed, reward 0.40: wrong options (want color: pink)",
     "answer": "b0k1tlmcbp color=black"}

`answer` names what the attempt settled on (the shop: the product bought and its options;
other envs: the attempt's last action), for majority voting without an oracle.

Feedback modes (what the next attempt is told):

| mode         | feedback text                                                           |
|--------------|-------------------------------------------------------------------------|
| `retry`      | "failed"                                                                |
| `score`      | "failed, reward 0.40"                                                   |
| `components` | "failed, reward 0.40: wrong product type; missing attributes (want ...)"|
| `none`       | "" -- RISE's "without oracle": no success signal, every attempt runs    |

With `retry`, `score` and `components` the episode ends at the first success ("with
oracle"); with `none` all `attempts` run whatever happens. The episode's reward
(`reward_rule`) is paid on the step that ends the episode, every other step pays 0:
`last` -- the last attempt's reward (the default; what an agent without an oracle
delivers), or `best` -- the best attempt's (an oracle's selection). `info["episode_reward"]`
repeats it on that step.

Gymnasium ids: the shop ids have registered multi-attempt variants whose `gymnasium.make`
arguments are the wrapper's (`attempts=5`, `feedback="components"`, `reward_rule="last"`)
plus the base id's own::

    gymnasium.make("webgrove/WebShop-Attempts-v0", attempts=5, feedback="components", split="test")
    gymnasium.make("webgrove/WebShopBrowser-Attempts-v0", attempts=3, feedback="score", browser=...)

They have no step limit of their own (each attempt keeps the base id's, e.g. 15 steps);
`gymnasium.make` puts its checkers around the wrapper, so reach its methods with
`env.get_wrapper_attr("get_state")()` (or build it with `make_multi_attempt`). Any
other id (MiniWoB tasks, `webgrove/Browser-v0`) is wrapped the same way with
`make_multi_attempt("webgrove/miniwob.enter-text-v0", attempts=3)`.

Snapshots: the wrapper's own `get_state()` / `set_state()` cover the attempt records, the
seed, the wrapped env's snapshot (`env.unwrapped.get_state()`) and the `TimeLimit` count,
so a state inside attempt 3 restores exactly, records included. Call them on the wrapper,
not on `env.unwrapped` (which knows nothing about attempts), after one `reset()`.
"""
from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import TimeLimit

FEEDBACK_MODES = ("retry", "score", "components", "none")
REWARD_RULES = ("last", "best")
SUCCESS_REWARD = 1.0


# -- feedback in words -------------------------------------------------------------

def shop_details(unwrapped: Any) -> dict | None:
    """What a text-shop purchase missed, by name: {"attributes", "options", "price"}.

    None when `unwrapped` is not a shop env with a purchase (then feedback uses the reward
    components' counts only). Attributes and options are judged one by one with WebShop's
    own matching (`webgrove.envs.shop.reward`), so a named miss is exactly a lost point.
    """
    purchase = getattr(unwrapped, "purchase", None)
    goal = getattr(unwrapped, "goal", None)
    catalog = getattr(unwrapped, "catalog", None)
    if purchase is None or goal is None or catalog is None or not hasattr(goal, "goal_options"):
        return None
    from webgrove.envs.shop.reward import get_attribute_reward, get_option_reward

    product = catalog.product(purchase.asin).to_reward_dict()
    bought = list(purchase.options.values())
    attributes = [a for a in goal.attributes if get_attribute_reward(product, {"attributes": [a]})[1] == 0]
    options = [f"{name}: {value}" for name, value in goal.goal_options.items()
               if get_option_reward(bought, [value] if goal.options_as_list else [(name, value)])[1] == 0]
    return {"attributes": attributes, "options": options, "price": (purchase.price, goal.price_upper)}


def _count_words(what: str, share: float, weight: float, price_weight: float) -> str:
    n = round(weight / price_weight) if price_weight > 0 else 0
    return f"{what} ({round(share * n)} of {n} matched)" if n else what


def shop_problems(reward_info: dict, details: dict | None = None) -> list[str]:
    """WebShop reward components in words: wrong product type, missing attributes, wrong
    options, over the price limit (named when `details` from `shop_details` are given)."""
    problems = []
    if reward_info.get("r_type", 1.0) < 1.0:
        problems.append("wrong product type")
    w_price = float(reward_info.get("w_price", 0.0))
    if reward_info.get("r_att", 1.0) < 1.0:
        problems.append(f"missing attributes (want {', '.join(details['attributes'])})" if details
                        and details["attributes"] else
                        _count_words("missing attributes", reward_info["r_att"], reward_info.get("w_att", 0.0),
                                     w_price))
    if reward_info.get("r_option", 1.0) < 1.0:
        problems.append(f"wrong options (want {', '.join(details['options'])})" if details and details["options"]
                        else _count_words("wrong options", reward_info["r_option"],
                                          reward_info.get("w_option", 0.0), w_price))
    if "r_price" in reward_info and not reward_info["r_price"]:
        problems.append("over the price limit (paid {:.2f}, limit {:.2f})".format(*details["price"])
                        if details else "over the price limit")
    return problems


def describe_components(reward_info: dict | None, truncated: bool = False,
                        details: dict | None = None) -> str:
    """What went wrong, in words, from an attempt's `reward_info` (any webgrove env).

    The shop's components give `shop_problems`; browser tasks give their `reason` or
    `error`; an attempt that ran out of steps says so.
    """
    if not reward_info:
        return "ran out of steps before finishing" if truncated else "no result"
    if "r_type" in reward_info:
        problems = shop_problems(reward_info, details)
        return "; ".join(problems) if problems else "partial match"
    words = [str(reward_info[k]) for k in ("reason", "error") if isinstance(reward_info.get(k), str) and reward_info[k]]
    return "wrong result" + (f" ({'; '.join(words)})" if words else "")


def feedback_text(mode: str, reward: float, success: bool, reward_info: dict | None = None,
                  truncated: bool = False, details: dict | None = None) -> str:
    """The feedback an attempt earns under `mode` (see the module table)."""
    if mode == "none":
        return ""
    if success:
        return "succeeded"
    if mode == "retry":
        return "failed"
    if mode == "score":
        return f"failed, reward {reward:.2f}"
    return f"failed, reward {reward:.2f}: {describe_components(reward_info, truncated, details)}"


def attempt_answer(unwrapped: Any, actions: list[str]) -> str:
    """What an attempt settled on: the shop's product and options, else its last action."""
    purchase = getattr(unwrapped, "purchase", None)
    if purchase is not None and hasattr(purchase, "asin"):
        return " ".join([purchase.asin] + [f"{k}={v}" for k, v in sorted(purchase.options.items())])
    return actions[-1] if actions else ""


def _time_limit(env: gym.Env) -> TimeLimit | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, TimeLimit):
            return env
        env = env.env
    return None


# -- the wrapper -------------------------------------------------------------------

class MultiAttemptWrapper(gym.Wrapper):
    """Up to `attempts` tries at the same goal, each told how the earlier ones went.

    See the module docstring for the contract (info keys, feedback modes, reward rule).

    Args:
        env: any webgrove env (made with `gymnasium.make`, so it has its `TimeLimit`).
        attempts: the most attempts per episode (T), >= 1.
        feedback: "retry" | "score" | "components" | "none".
        reward_rule: "last" | "best" (the episode's reward).
        success_reward: an attempt with at least this reward succeeded.
    """

    def __init__(self, env: gym.Env, attempts: int = 5, feedback: str = "components",
                 reward_rule: str = "last", success_reward: float = SUCCESS_REWARD):
        super().__init__(env)
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        if feedback not in FEEDBACK_MODES:
            raise ValueError(f"feedback must be one of {FEEDBACK_MODES}, got {feedback!r}")
        if reward_rule not in REWARD_RULES:
            raise ValueError(f"reward_rule must be one of {REWARD_RULES}, got {reward_rule!r}")
        self.attempts, self.feedback, self.reward_rule = attempts, feedback, reward_rule
        self.success_reward = success_reward
        self._seed: int | None = None
        self._options: dict = {}
        self._records: list[dict] = []
        self._actions: list[str] = []
        self._attempt_return = 0.0
        self._done = False

    @property
    def oracle(self) -> bool:
        """True when a success ends the episode (every mode but "none")."""
        return self.feedback != "none"

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        # a fresh seed when none is given, kept so that every attempt restarts identically
        self._seed = int(np.random.SeedSequence().generate_state(1)[0]) if seed is None else int(seed)
        self._options = dict(options or {})
        self._records, self._actions, self._attempt_return, self._done = [], [], 0.0, False
        obs, info = self.env.reset(seed=self._seed, options=dict(self._options))
        return obs, self._decorate(info)

    def step(self, action):
        if self._done:
            raise RuntimeError("the multi-attempt episode is over; call reset() to start another")
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._actions.append(action)
        self._attempt_return += float(reward)
        if not (terminated or truncated):
            return obs, 0.0, False, False, self._decorate(info)
        record = self._finish_attempt(info, truncated and not terminated)
        if (record["success"] and self.oracle) or len(self._records) >= self.attempts:
            self._done = True
            total = self.episode_reward()
            info = self._decorate(info)
            info["attempt"], info["episode_reward"] = len(self._records), total
            return obs, total, bool(terminated or record["success"]), bool(truncated and not terminated), info
        obs, next_info = self.env.reset(seed=self._seed, options=dict(self._options))
        next_info = self._decorate(next_info)
        next_info["attempt_ended"] = {**record, "reward_info": info.get("reward_info"), "error": info.get("error")}
        return obs, 0.0, False, False, next_info

    def _finish_attempt(self, info: dict, truncated: bool) -> dict:
        reward = self._attempt_return
        success = is_success(reward, self.success_reward)
        details = shop_details(self.env.unwrapped) if self.feedback == "components" and not success else None
        record = {"attempt": len(self._records) + 1, "actions": list(self._actions), "reward": reward,
                  "success": success,
                  "feedback": feedback_text(self.feedback, reward, success, info.get("reward_info"),
                                            truncated, details),
                  "answer": attempt_answer(self.env.unwrapped, self._actions)}
        self._records.append(record)
        self._actions, self._attempt_return = [], 0.0
        return record

    def episode_reward(self) -> float:
        """The episode's reward so far under `reward_rule` (0 before any attempt ended)."""
        rewards = [r["reward"] for r in self._records]
        if not rewards:
            return 0.0
        return rewards[-1] if self.reward_rule == "last" else max(rewards)

    def _decorate(self, info: dict) -> dict:
        info = dict(info)
        info["attempt"] = min(len(self._records) + 1, self.attempts)
        info["attempts"] = [dict(r, actions=list(r["actions"])) for r in self._records]
        info["attempt_rewards"] = [r["reward"] for r in self._records]
        return info

    # -- snapshots ---------------------------------------------------------------
    def get_state(self) -> tuple:
        """A picklable snapshot: seed, options, attempt records, current attempt, wrapped env."""
        if self._seed is None:
            raise RuntimeError("call reset() before get_state()")
        limit = _time_limit(self.env)
        return (self._seed, dict(self._options), tuple(dict(r, actions=list(r["actions"])) for r in self._records),
                tuple(self._actions), self._attempt_return, self.env.unwrapped.get_state(),
                None if limit is None else limit._elapsed_steps, self._done)

    def set_state(self, state: tuple) -> None:
        """Restore a `get_state` snapshot exactly (records, attempt, page, step count)."""
        seed, options, records, actions, attempt_return, inner, elapsed, done = state
        self.env.unwrapped.set_state(inner)
        limit = _time_limit(self.env)
        if limit is not None and elapsed is not None:
            limit._elapsed_steps = elapsed
        self._seed, self._options = seed, dict(options)
        self._records = [dict(r, actions=list(r["actions"])) for r in records]
        self._actions, self._attempt_return, self._done = list(actions), float(attempt_return), bool(done)

    def observe(self) -> tuple[Any, dict]:
        """The current observation and info (with the attempt keys), without stepping."""
        obs, info = self.env.unwrapped.observe()
        return obs, self._decorate(info)


def make_multi_attempt(env: gym.Env | str, attempts: int = 5, feedback: str = "components",
                       reward_rule: str = "last", **make_kwargs: Any) -> MultiAttemptWrapper:
    """`MultiAttemptWrapper` around an env, or around `gymnasium.make(env, **make_kwargs)` for an id.

    The multi-attempt variant of any registered id, e.g.
    `make_multi_attempt("webgrove/WebShop-v0", attempts=5, feedback="components", split="test")`.
    """
    if isinstance(env, str):
        import webgrove.envs  # noqa: F401  (registers the ids)

        env = gym.make(env, **make_kwargs)
    elif make_kwargs:
        raise ValueError("make_kwargs are for an env id; pass an env alone or an id with its arguments")
    return MultiAttemptWrapper(env, attempts=attempts, feedback=feedback, reward_rule=reward_rule)


def attempts_env(env_id: str, attempts: int = 5, feedback: str = "components", reward_rule: str = "last",
                 **env_kwargs: Any) -> MultiAttemptWrapper:
    """The entry point of the registered multi-attempt ids (see the module docstring): `env_id`
    made with `env_kwargs`, wrapped in `MultiAttemptWrapper(attempts, feedback, reward_rule)`."""
    return make_multi_attempt(env_id, attempts=attempts, feedback=feedback, reward_rule=reward_rule, **env_kwargs)


def is_success(reward: float, success_reward: float = SUCCESS_REWARD) -> bool:
    """The success test every multi-attempt metric uses."""
    return not math.isnan(reward) and reward >= success_reward - 1e-9
