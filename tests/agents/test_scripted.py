"""Scripted shop agents as policies, and the rollout summary they produce."""
import json
import math

import gymnasium as gym
import numpy as np
import pytest

import webgrove.envs  # noqa: F401  (registers the ids)

from webgrove.agents.base import StepContext
from webgrove.agents.scripted import (OraclePolicy, RandomPolicy, RuleOptionsPolicy, RulePolicy, chosen_options,
                                      instruction_query, item_view)
from webgrove.agents.episode import run_episode, summarize
from webgrove.envs.make import make_env


@pytest.fixture(scope="module")
def env():
    e = make_env("webgrove/WebShop-v0", split="test")
    yield e
    e.close()


def test_instruction_query_drops_price_clause():
    assert instruction_query("i need a red chair, and price lower than 40.00 dollars") == "i need a red chair"
    assert instruction_query("find me shampoo") == "find me shampoo"


def test_oracle_succeeds_on_99_percent_of_test_split(env):
    oracle = OraclePolicy(env)
    n_goals = len(env.unwrapped.goals)
    assert n_goals == 500
    results = [run_episode(env, lambda ctx: oracle.act(ctx), goal_id=g, seed=g) for g in range(n_goals)]
    summary = summarize(results, seconds=1.0)
    assert summary["success_rate"] >= 0.99, [r for r in results if not r.success][:3]


def test_rule_and_random_are_much_worse_than_oracle(env):
    rng = np.random.default_rng(0)
    rule, rand = RulePolicy(), RandomPolicy()
    rule_res = [run_episode(env, lambda ctx: rule.act(ctx, rng), goal_id=g, seed=g) for g in range(100)]
    rand_res = [run_episode(env, lambda ctx: rand.act(ctx, rng), goal_id=g, seed=g) for g in range(100)]
    rule_sr = summarize(rule_res, 1.0)["success_rate"]
    rand_sr = summarize(rand_res, 1.0)["success_rate"]
    assert rule_sr < 0.7 and rand_sr < 0.3
    # the rule agent always buys within 3 steps
    assert all(r.steps == 3 for r in rule_res)


def test_rule_options_opens_the_first_result_and_selects_the_options_the_instruction_names(env):
    policy, checked = RuleOptionsPolicy(), 0
    for goal_id in range(40):
        actions, pages = [], []

        def act(ctx):
            actions.append(policy.act(ctx))
            pages.append(ctx)
            return actions[-1]

        result = run_episode(env, act, goal_id=goal_id, seed=goal_id)
        goal = pages[0].goal
        assert actions[0] == f"search[{instruction_query(goal)}]"
        products = [a for a in pages[1].available_actions if a.startswith("click[b0")]
        assert actions[1] == products[0]  # the first result, whatever the hidden target is
        named = chosen_options(item_view(pages[2].observation, pages[2].available_actions)["groups"], goal)
        assert actions[2:] == [f"click[{v}]" for v in named] + ["click[buy now]"]
        assert result.steps == 3 + len(named)
        checked += bool(named)
    assert checked >= 20  # most goals name options the first result offers


def test_rule_options_beats_the_rule_on_the_same_goals(env):
    rule, options = RulePolicy(), RuleOptionsPolicy()
    sr = {name: summarize([run_episode(env, lambda ctx: p.act(ctx), goal_id=g, seed=g) for g in range(100)],
                          1.0)["success_rate"] for name, p in (("rule", rule), ("options", options))}
    assert sr["options"] >= sr["rule"] + 0.3, sr  # the options are most of what the rule misses


def test_item_view_reads_option_groups_title_and_price(env):
    env.reset(seed=0, options={"goal_id": 0})
    env.step("search[dress]")
    obs, info = env.unwrapped.observe()
    product = next(a for a in info["available_actions"] if a.startswith("click[b0"))
    env.step(product)
    obs, info = env.unwrapped.observe()
    view = item_view(obs, info["available_actions"])
    item = env.unwrapped.catalog.product(product[len("click["):-1].upper())
    assert view["title"] == item.title
    assert view["groups"] == {k.lower(): [v.lower() for v in vs] for k, vs in item.options.items() if vs}
    assert chosen_options({"size": ["small", "x-large", "large"]}, "a large red shirt") == ["large"]
    assert chosen_options({"color": ["navy blue", "blue"]}, "a navy blue coat") == ["navy blue"]  # the longest


def test_propose_puts_own_choice_first_then_distinct_alternatives(env):
    obs, info = env.reset(seed=0, options={"goal_id": 0})
    env.step("search[shampoo]")
    obs, info = env.unwrapped.observe()
    ctx = StepContext(goal=info["goal"], observation=obs, available_actions=info["available_actions"], history=["search[shampoo]"])
    for policy in (RulePolicy(), OraclePolicy(env), RandomPolicy()):
        props = policy.propose(ctx, 5, np.random.default_rng(1))
        actions = [p.action for p in props]
        assert len(actions) == 5 == len(set(actions))
        assert all(a in ctx.available_actions for a in actions)
        assert all(math.isfinite(p.logprob) and p.logprob <= 0 for p in props)
        if not isinstance(policy, RandomPolicy):
            assert actions[0] == policy.act(ctx)
            assert props[0].logprob > props[1].logprob
    # a different rng gives a different order of alternatives
    a = [p.action for p in RulePolicy().propose(ctx, 8, np.random.default_rng(1))]
    b = [p.action for p in RulePolicy().propose(ctx, 8, np.random.default_rng(2))]
    assert a[0] == b[0] and a != b


def test_scripted_logprobs_form_a_distribution(env):
    env.reset(seed=0, options={"goal_id": 0})
    env.step("search[chair]")
    obs, info = env.unwrapped.observe()
    ctx = StepContext(info["goal"], obs, info["available_actions"], ["search[chair]"])
    for policy in (RulePolicy(), RandomPolicy()):
        total = sum(math.exp(lp) for lp in policy.logprobs(ctx, ctx.available_actions))
        assert total == pytest.approx(1.0)


def test_rollout_command_writes_summary(tmp_path, capsys):
    from webgrove.cli import main

    out = tmp_path / "rule.json"
    assert main(["rollout", "--env", "webgrove/WebShop-v0", "--policy", "rule", "--split", "test",
                 "--episodes", "20", "--json", str(out), "--no-progress"]) == 0
    summary = json.loads(out.read_text())
    for key in ("episodes", "success_rate", "score", "steps_per_second"):
        assert key in summary
    assert summary["episodes"] == 20 and 0 <= summary["success_rate"] <= 1 and 0 <= summary["score"] <= 100
    assert "success rate" in capsys.readouterr().out


class _PromptedRule(RulePolicy):
    """A scripted policy with its own model input and sampled rollouts."""

    rollout_by_act = False

    def prompt(self, ctx):
        return f"custom input for {len(ctx.history)} earlier actions"


def test_search_reads_the_policy_input_and_rollout_flag_from_the_policy():
    from webgrove.agents.base import policy_input, rolls_out_by_act
    from webgrove.search.mcts import SearchConfig, search_episode

    env = gym.make("webgrove/WebShop-v0", split="test")
    env.reset(options={"goal_id": 0})
    tree = search_episode(env, _PromptedRule(), None, SearchConfig(simulations=2, k=2, max_depth=4))
    prompts = {n.prompt for n in tree.nodes[1:]}
    assert prompts and all(p.startswith("custom input for ") for p in prompts)
    assert rolls_out_by_act(RulePolicy()) and not rolls_out_by_act(_PromptedRule())
    ctx = StepContext("goal", "page", ["search[...]"], [])
    assert policy_input(RulePolicy(), ctx).startswith("Goal: goal")  # the shared prompt format
