"""MCTS: the math on hand-worked numbers, the search on a toy env whose best path is known."""
from __future__ import annotations

import math

import gymnasium as gym
import pytest

import toy_env
from webgrove.agents.base import Proposal
from webgrove.search.mcts import (MCTS, SearchConfig, backup, dedupe, mix_q, node_q,
                                  search_episode, ucb_score, ucb_scores)
from webgrove.search.tree import best_child_key

# -- the math -----------------------------------------------------------------


def test_ucb_score_hand_worked():
    # 0.5 + 1.0 * sqrt(ln 4 / (1 + 1)) = 0.5 + sqrt(0.693147...) = 1.332555...
    assert ucb_score(0.5, 4, 1, 1.0) == pytest.approx(0.5 + math.sqrt(math.log(4) / 2))
    assert ucb_score(0.5, 4, 1, 1.0) == pytest.approx(1.3325546)
    # c scales only the bonus; an unvisited child gets the largest bonus
    assert ucb_score(0.2, 10, 0, 2.0) == pytest.approx(0.2 + 2 * math.sqrt(math.log(10)))
    assert ucb_score(0.2, 10, 0, 1.0) > ucb_score(0.2, 10, 3, 1.0)
    # no parent visits, or c = 0: no bonus
    assert ucb_score(0.7, 0, 0, 1.0) == 0.7
    assert ucb_score(0.7, 9, 2, 0.0) == 0.7
    # a parent visited once: ln 1 = 0
    assert ucb_score(0.3, 1, 0, 1.0) == 0.3


@pytest.mark.parametrize("args", [(0.5, -1, 0, 1.0), (0.5, 1, -1, 1.0), (0.5, 1, 1, -0.1)])
def test_ucb_score_rejects_bad_arguments(args):
    with pytest.raises(ValueError):
        ucb_score(*args)


def test_backup_is_a_running_mean_hand_worked():
    q, n = backup([0.5], [2], 1.0)  # (0.5 + 0.5 + 1) / 3
    assert q == pytest.approx([2 / 3]) and n == [3]
    q, n = backup([0.0, 0.5, 1.0], [0, 2, 1], 1.0)
    assert q == pytest.approx([1.0, 2 / 3, 1.0])
    assert n == [1, 3, 2]
    q, n = backup([0.25], [3], 0.0)  # (0.75 + 0) / 4
    assert q == pytest.approx([0.1875]) and n == [4]
    with pytest.raises(ValueError):
        backup([0.0], [1, 2], 1.0)


def test_mix_q_is_agent_q_eq_10():
    assert mix_q(1.0, 0.2, 0.5) == pytest.approx(0.6)
    assert mix_q(0.4, 0.8, 0.25) == pytest.approx(0.25 * 0.4 + 0.75 * 0.8)
    assert mix_q(0.3, 0.9, 1.0) == 0.3 and mix_q(0.3, 0.9, 0.0) == 0.9
    with pytest.raises(ValueError):
        mix_q(0.3, 0.9, 1.5)


def test_node_q_uses_the_critic_until_visited():
    assert node_q(0.0, 0.8, 0, 0.5) == 0.8
    assert node_q(1.0, 0.8, 1, 0.5) == pytest.approx(0.9)
    assert node_q(0.4, None, 3, 0.5) == 0.4  # the root has no critic value


def test_dedupe_and_best_child_key():
    props = [Proposal("a", -1.0), Proposal("b", -2.0), Proposal("a", -0.5), Proposal("c", -3.0)]
    assert [(p.action, p.logprob) for p in dedupe(props)] == [("a", -1.0), ("b", -2.0), ("c", -3.0)]
    keys = {i: best_child_key(v, q, i) for i, v, q in [(1, 3, 0.2), (2, 3, 0.5), (3, 2, 0.9), (4, 3, 0.5)]}
    assert max(keys, key=keys.get) == 2  # most visits, then Q, then the lower id


def test_committed_child_is_the_max_of_the_visited_by_best_child_key():
    import itertools
    from types import SimpleNamespace

    from webgrove.search.tree import committed_child

    assert committed_child([]) is None
    assert committed_child([SimpleNamespace(id=1, visits=0, q=0.9)]) is None
    stats = [(0, 0.9), (3, 0.2), (3, 0.5), (2, 0.9), (3, 0.5), (1, float("nan")), (3, -0.0), (3, 0.0)]
    for kids in itertools.permutations(range(len(stats)), 5):
        children = [SimpleNamespace(id=i, visits=stats[i][0], q=stats[i][1]) for i in kids]
        visited = [c for c in children if c.visits > 0]
        want = max(visited, key=lambda c: best_child_key(c.visits, c.q, c.id))
        assert committed_child(children) is want


@pytest.mark.parametrize("field,value", [("simulations", 0), ("k", 0), ("c", -1.0), ("alpha", 1.1),
                                         ("max_depth", 0), ("rollout_temperature", -0.5)])
def test_search_config_validates(field, value):
    with pytest.raises(ValueError, match=field):
        SearchConfig(**{field: value})


def test_search_config_fields_have_help():
    import dataclasses

    assert all(f.metadata.get("help") for f in dataclasses.fields(SearchConfig))


# -- the search ---------------------------------------------------------------


def _env(goal_id: int = 0, length: int = 3):
    env = gym.make("toy_env:ToyTree-v0", length=length)
    env.reset(seed=0, options={"goal_id": goal_id})
    return env


def test_five_simulations_hand_worked():
    """One-step episodes, target blue, critic red .2 / green .9 / blue .5, alpha .5, c 1.

    sim 1: root unvisited, so UCB = Q = critic value: green (.9) -> reward 0;
           green: Q_mcts 0, N 1, Q = .5*0 + .5*.9 = .45.
    sim 2: root N=1, ln 1 = 0, so UCB = Q: red .2, green .45, blue .5 -> blue -> 1; blue Q = .75.
    sim 3: root N=2: red .2+sqrt(ln2)=1.033, green .45+sqrt(ln2/2)=1.039, blue .75+.589=1.339 -> blue.
    sim 4: root N=3: red .2+1.048=1.248, green .45+.741=1.191, blue .75+sqrt(ln3/3)=1.355 -> blue.
    sim 5: root N=4: red .2+1.177=1.377, green .45+.833=1.283, blue .75+.589=1.339 -> red -> 0.
    """
    env = _env(goal_id=0, length=1)
    assert toy_env.target_for(0, 1) == ["blue"]
    critic = toy_env.TableCritic({"click[red]": 0.2, "click[green]": 0.9, "click[blue]": 0.5})
    mcts = MCTS(env, toy_env.FixedOrderPolicy(), critic, SearchConfig(simulations=5, k=3, c=1.0, alpha=0.5))
    values = [mcts.simulate() for _ in range(5)]
    assert values == [0.0, 1.0, 1.0, 1.0, 0.0]
    root = mcts.nodes[0]
    assert root.visits == 5 and root.q_mcts == pytest.approx(0.6) and root.q == pytest.approx(0.6)
    by_action = {mcts.nodes[i].action: mcts.nodes[i] for i in root.children}
    assert list(by_action) == ["click[red]", "click[green]", "click[blue]"]
    expected = {"click[red]": (1, 0.0, 0.1), "click[green]": (1, 0.0, 0.45), "click[blue]": (3, 1.0, 0.75)}
    for action, (visits, q_mcts, q) in expected.items():
        node = by_action[action]
        assert (node.visits, node.q_mcts) == (visits, pytest.approx(q_mcts)), action
        assert node.q == pytest.approx(q), action
        assert node.terminal and node.depth == 1
    assert mcts.best_child(0).action == "click[blue]"


def test_ancestors_of_the_search_root_get_every_value_as_backup_gives_them():
    """Above the search root, backup waits until `search` or `simulate` returns (selection
    never reads there); the ancestors then hold exactly the running means of `backup` over
    the values of those simulations, in order."""
    env = _env(goal_id=2, length=3)
    critic = toy_env.TableCritic({"click[green]": 0.6, "click[blue]": 0.3})
    mcts = MCTS(env, toy_env.FixedOrderPolicy(), critic, SearchConfig(simulations=4, k=3, alpha=0.5))
    first = mcts.search(0)
    second = mcts.search(first.id)
    values: list[float] = []
    simulate = mcts._simulate
    mcts._simulate = lambda root_id: values.append(simulate(root_id)) or values[-1]  # what search runs
    for run in (lambda: mcts.search(second.id, simulations=5), lambda: mcts.simulate(second.id)):
        ancestors = mcts.path(second.id)[:-1]  # the root and `first`
        before = [(n.visits, n.q_mcts) for n in ancestors]
        values.clear()
        run()
        assert values and mcts._ancestor_values == []
        for (visits, q_mcts), node in zip(before, ancestors):
            qs, ns = [q_mcts], [visits]
            for value in values:
                qs, ns = backup(qs, ns, value)
            assert (node.visits, node.q_mcts) == (ns[0], qs[0])  # the same floats, not only close
            assert node.q == node_q(node.q_mcts, node.q_critic, node.visits, 0.5)


def test_nodes_store_prompt_logprob_and_critic_value():
    from webgrove.agents.base import context_from
    from webgrove.agents.prompts import policy_prompt

    env = _env(goal_id=1)
    obs, info = env.unwrapped.observe()
    critic = toy_env.TableCritic({"click[green]": 0.7})
    mcts = MCTS(env, toy_env.FixedOrderPolicy(), critic, SearchConfig(simulations=1, k=4))
    mcts.simulate()
    children = [mcts.nodes[i] for i in mcts.nodes[0].children]
    assert [c.action for c in children] == ["click[red]", "click[green]", "click[blue]", "click[stop]"]
    assert all(c.prompt == policy_prompt(context_from(obs, info, [])) for c in children)
    assert all(c.logprob == pytest.approx(math.log(0.25)) for c in children)
    assert [c.q_critic for c in children] == [0.0, 0.7, 0.0, 0.0]
    # the critic's favourite was tried first; the others are still unvisited with Q = Q_critic
    assert [c.visits for c in children] == [0, 1, 0, 0]
    assert children[0].q == 0.0 and children[1].stepped and not children[0].stepped
    record = children[1].record().to_dict()
    assert set(record) == {"type", "id", "parent", "depth", "action", "prompt", "logprob", "visits",
                           "q_mcts", "q_critic", "q", "reward", "terminal"}


@pytest.mark.parametrize("goal_id", range(5))
def test_search_episode_finds_the_known_best_path(goal_id):
    env = _env(goal_id)
    tree = search_episode(env, toy_env.ToyPolicy(), toy_env.ConstantCritic(),
                          SearchConfig(simulations=50, k=4, c=1.0, seed=1))
    assert tree.best_actions == toy_env.best_actions(goal_id)
    assert tree.success and tree.best_return == 1.0
    assert [tree.nodes[i].depth for i in tree.best_path] == [0, 1, 2, 3]
    # every committed node has the most visits among its siblings
    for parent, child in zip(tree.best_path, tree.best_path[1:]):
        siblings = tree.nodes[parent].children
        assert tree.nodes[child].visits == max(tree.nodes[i].visits for i in siblings)


def test_search_is_deterministic_for_a_fixed_seed():
    def run(seed):
        env = _env(goal_id=2)
        cfg = SearchConfig(simulations=8, k=3, seed=seed, rollout_temperature=1.0)
        return search_episode(env, toy_env.ToyPolicy(), toy_env.ConstantCritic(), cfg).records()

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_model_policies_roll_out_by_sampling_proposals():
    """A policy that is not scripted (no act) is rolled out from its proposals."""

    class ProposalsOnly:
        def propose(self, ctx, k, rng):
            return [Proposal(a, math.log(1 / len(ctx.available_actions))) for a in ctx.available_actions[:k]]

        def logprobs(self, ctx, actions):
            return [math.log(1 / len(ctx.available_actions))] * len(actions)

    env = _env(goal_id=3)
    tree = search_episode(env, ProposalsOnly(), None, SearchConfig(simulations=40, k=4, seed=0))
    assert tree.best_actions == toy_env.best_actions(3)
    assert all(n.q_critic == 0.0 for n in tree.nodes[1:])  # no critic: every proposal valued 0


def test_depth_limit_from_the_env_step_limit():
    # length 9 needs 9 clicks, but ToyTree-v0 is registered with max_episode_steps=5
    env = _env(goal_id=0, length=9)
    tree = search_episode(env, toy_env.ToyPolicy(), toy_env.ConstantCritic(),
                          SearchConfig(simulations=3, k=2, max_depth=15))
    assert max(n.depth for n in tree.nodes) <= 5
    last = tree.nodes[tree.best_path[-1]]
    assert last.terminal and not tree.success
    # max_depth below the env's limit wins
    env = _env(goal_id=0, length=9)
    tree = search_episode(env, toy_env.ToyPolicy(), None, SearchConfig(simulations=3, k=2, max_depth=2))
    assert max(n.depth for n in tree.nodes) == 2


def test_stop_on_success_commits_to_the_successful_action():
    env = _env(goal_id=4)
    cfg = SearchConfig(simulations=200, k=4, seed=3, stop_on_success=True)
    mcts = MCTS(env, toy_env.ToyPolicy(), toy_env.ConstantCritic(), cfg)
    child = mcts.search(0)
    assert mcts.success_child == child.id
    assert mcts.timings.simulations < 200
    assert child.action == toy_env.best_actions(4)[0]


def test_search_restores_snapshots_and_costs_no_more_env_steps_than_needed():
    env = _env(goal_id=1)
    before = env.unwrapped.get_state()
    mcts = MCTS(env, toy_env.ToyPolicy(), toy_env.ConstantCritic(), SearchConfig(simulations=10, k=4))
    mcts.search(0)
    assert env.unwrapped.get_state() != before  # the env moved during the search
    mcts.restore(before)
    assert env.unwrapped.get_state() == before
    # each simulation steps at most one new tree node plus a rollout of <= 3 steps
    assert mcts.timings.env_steps == env.unwrapped.steps <= 10 * 3
    t = mcts.timings
    assert t.total_s > 0 and t.env_s > 0 and t.policy_s > 0 and t.critic_s > 0
    assert t.env_s + t.policy_s + t.critic_s + t.mcts_s == pytest.approx(t.total_s)
    assert 0 <= t.mcts_share < 1


def test_mcts_needs_snapshots():
    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    with pytest.raises(TypeError, match="get_state"):
        MCTS(env, toy_env.ToyPolicy(), None, SearchConfig())


def test_ucb_scores_match_the_scalar_form():
    qs, visits = [0.1, 0.5, 0.9, 0.0], [0, 3, 7, 1]
    assert ucb_scores(qs, visits, 11, 1.3) == pytest.approx([ucb_score(q, 11, n, 1.3) for q, n in zip(qs, visits)])
    assert ucb_scores(qs, visits, 0, 1.3) == qs
    with pytest.raises(ValueError):
        ucb_scores([0.1], [1, 2], 3, 1.0)


# ---------------------------------------------------------------------------
# Pinned trees: speed work on the search must not change a single node.

# sha256 of every tree's node lines (as written) and its goal id, seed and best path; pinned
# before the search's bookkeeping was made faster (issue 12). Without a critic, so that a
# change to a critic's values does not move the pins; the toy env's is this folder's own.
# A change to the search that alters a tree fails here; a deliberate change to the shop env
# or the scripted policies re-pins (compute the digest with the search code before and after).
# Re-pinned for tree format 2 (prompts stored once): the lines changed, PINNED_RECORDS did not.
SHOP_PIN = dict(env="webgrove/WebShop-v0", critic="none", num_products=200, simulations=5, k=3, goal_range="0:3")
TOY_PIN = dict(env="toy_env:ToyTree-v0", policy="toy_env:make_policy", critic="toy_env:make_critic",
               simulations=20, k=3, goal_range="0:5")
PINNED_TREES = {
    "rule": (dict(SHOP_PIN, policy="rule"), "5596912fb8892ca8fe25dac31cfbf06727d7faec37fb491921dc67c033812677"),
    "random": (dict(SHOP_PIN, policy="random"), "9ad2e20d8222773e884c7638fb59466a446c0cdefe0549325dc569170ea8340c"),
    "toy": (TOY_PIN, "b5a7434637ff03b08c640a59f979cd073cb93fe0c764b9968a81d35108676443"),
}

# sha256 of the same trees as `read_tree` returns them (`records_digest`), pinned with the format
# of before tree format 2: a change of the file's layout re-pins PINNED_TREES, never these.
PINNED_RECORDS = {
    "rule": "e1151e6cf69d41dae0ab32468904a09919b3d29e3682400a6c397b4a6956a78a",
    "random": "ecd81c895a1e53800cca84a0e09e79dd626bb1002dc9132a21e36b9e4c07fc80",
    "toy": "441a4d12cc337b9903ed3a7a01c3687ec1db03fea7863c16c0182d228411bcc6",
}


def records_digest(out) -> str:
    """A digest of a collection folder's trees as `read_tree` reads them back: the header's goal
    id, seed and best path, then every `NodeRecord`'s fields in order (floats by repr, as JSON
    writes them). Independent of the file's layout, so it stays when the format changes."""
    import dataclasses
    import hashlib
    import json
    from pathlib import Path

    from webgrove.search.tree import read_tree

    h = hashlib.sha256()
    for p in sorted(Path(out).glob("goal_*.jsonl")):
        header, nodes = read_tree(p)
        h.update(json.dumps([header.goal_id, header.seed, header.best_path]).encode() + b"\n")
        for n in nodes:
            h.update(json.dumps(dataclasses.astuple(n), ensure_ascii=False).encode() + b"\n")
    return h.hexdigest()


def trees_digest(out) -> str:
    """A digest of a collection folder's trees: node lines as written, plus the header's goal
    id, seed and best path (the rest of the header is settings and timings)."""
    import hashlib
    import json
    from pathlib import Path

    h = hashlib.sha256()
    for p in sorted(Path(out).glob("goal_*.jsonl")):
        lines = p.read_text(encoding="utf-8").splitlines()
        header = json.loads(lines[0])
        h.update(json.dumps({k: header[k] for k in ("goal_id", "seed", "best_path")}).encode())
        for line in lines[1:]:
            h.update(line.encode() + b"\n")
    return h.hexdigest()


@pytest.mark.parametrize("name", sorted(PINNED_TREES))
def test_trees_are_pinned(name, tmp_path):
    from webgrove.search.collect import CollectConfig, run_collect

    settings, digest = PINNED_TREES[name]
    run_collect(CollectConfig(**settings, out=str(tmp_path), progress=False))
    assert records_digest(tmp_path) == PINNED_RECORDS[name]
    assert trees_digest(tmp_path) == digest


# sha256 of [[actions, reward] per episode] of MCTSAgent (no critic) on shop test goals 0..3, pinned alike.
PINNED_SEARCH_EPISODES = {
    "rule": "701523ab88a7d8e1409518f31485a28b8638877b0aae281b8de5f316ceeabb6c",
    "random": "d0e517f284cc841b31907967f0029d6f995b95294f0ae62cac6e616a2d8710e2",
}


@pytest.mark.parametrize("policy", sorted(PINNED_SEARCH_EPISODES))
def test_search_at_inference_is_pinned(policy):
    import hashlib
    import json

    from webgrove.agents.episode import run_episode
    from webgrove.agents.specs import make_policy
    from webgrove.envs.make import make_env
    from webgrove.search.inference import MCTSAgent

    env = make_env("webgrove/WebShop-v0", split="test", num_products=200)
    try:
        agent = MCTSAgent(env, make_policy(policy, env=env), None, SearchConfig(simulations=5, k=3))
        episodes = [run_episode(env, agent.act, goal_id=i, seed=i) for i in range(4)]
    finally:
        env.close()
    played = json.dumps([[e.actions, e.reward] for e in episodes]).encode()
    assert hashlib.sha256(played).hexdigest() == PINNED_SEARCH_EPISODES[policy]
