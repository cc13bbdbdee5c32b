"""Search at inference: MCTSAgent picks actions in a real episode and leaves the env as it was."""
from __future__ import annotations

import gymnasium as gym

import toy_env
from webgrove.agents.base import context_from
from webgrove.search.inference import MCTSAgent
from webgrove.search.mcts import SearchConfig


def _episode(agent, env, goal_id):
    obs, info = env.reset(seed=0, options={"goal_id": goal_id})
    history, reward = [], 0.0
    while True:
        ctx = context_from(obs, info, history)
        state = env.unwrapped.get_state()
        action = agent.act(ctx)
        assert env.unwrapped.get_state() == state  # the search put the env back
        assert action in info["available_actions"]
        obs, reward, terminated, truncated, info = env.step(action)
        history.append(action)
        if terminated or truncated:
            return history, reward, truncated


def test_mcts_agent_solves_toy_goals_and_steps_only_through_the_real_env():
    env = gym.make("toy_env:ToyTree-v0")
    agent = MCTSAgent(env, toy_env.ToyPolicy(), toy_env.ConstantCritic(), SearchConfig(simulations=50, k=4))
    for goal_id in range(3):
        history, reward, truncated = _episode(agent, env, goal_id)
        # thousands of search steps happened, yet the TimeLimit (5 steps) saw only the real ones
        assert not truncated
        assert history == toy_env.best_actions(goal_id) and reward == 1.0
    t = agent.timings
    assert t.simulations == 3 * 3 * 50 and t.env_steps > 100 and t.total_s > 0


def test_mcts_agent_reuses_the_subtree_of_the_chosen_action():
    env = gym.make("toy_env:ToyTree-v0")
    agent = MCTSAgent(env, toy_env.ToyPolicy(), toy_env.ConstantCritic(), SearchConfig(simulations=10, k=4))
    obs, info = env.reset(seed=0, options={"goal_id": 1})
    action = agent.act(context_from(obs, info, []))
    tree, n_nodes = agent.mcts, len(agent.mcts.nodes)
    obs, *_, info = env.step(action)
    agent.act(context_from(obs, info, [action]))
    assert agent.mcts is tree and len(tree.nodes) >= n_nodes
    assert tree.nodes[0].visits == 20  # both searches backed up through the root
    # a new episode starts a new tree
    obs, info = env.reset(seed=0, options={"goal_id": 1})
    agent.act(context_from(obs, info, []))
    assert agent.mcts is not tree
    # without reuse, every step starts afresh
    fresh = MCTSAgent(env, toy_env.ToyPolicy(), None, SearchConfig(simulations=4, k=2), reuse_tree=False)
    obs, info = env.reset(seed=0, options={"goal_id": 1})
    a = fresh.act(context_from(obs, info, []))
    first = fresh.mcts
    obs, *_, info = env.step(a)
    fresh.act(context_from(obs, info, [a]))
    assert fresh.mcts is not first and fresh.mcts.nodes[0].visits == 4


def test_mcts_agent_falls_back_to_the_policy_at_the_step_limit():
    env = gym.make("toy_env:ToyTree-v0", length=9)
    obs, info = env.reset(seed=0, options={"goal_id": 0})
    agent = MCTSAgent(env, toy_env.FixedOrderPolicy(), None, SearchConfig(simulations=3, k=2))
    ctx = context_from(obs, info, ["click[red]"] * 5)  # 5 of ToyTree-v0's 5 steps already taken
    assert agent.act(ctx) == "click[red]"  # FixedOrderPolicy's own choice, no search
    assert agent.timings.simulations == 0


def test_mcts_agent_is_deterministic_for_a_fixed_seed_and_varies_with_it():
    def actions(seed):
        env = gym.make("toy_env:ToyTree-v0")
        agent = MCTSAgent(env, toy_env.ToyPolicy(), toy_env.ConstantCritic(),
                          SearchConfig(simulations=3, k=3, seed=seed))
        return [_episode(agent, env, g)[0] for g in range(4)]

    assert actions(5) == actions(5)
    assert len({str(actions(seed)) for seed in (5, 6, 7)}) == 3  # the seed drives the search


def test_a_kept_subtree_must_still_look_max_depth_ahead():
    # max_depth 1 < the 5-step limit: the chosen child sits at the first tree's depth limit, so
    # reusing it would leave nothing to search and the step would fall back to the plain policy
    env = gym.make("toy_env:ToyTree-v0")
    agent = MCTSAgent(env, toy_env.ToyPolicy(), toy_env.ConstantCritic(),
                      SearchConfig(simulations=30, k=4, max_depth=1))
    history, reward, _ = _episode(agent, env, goal_id=2)
    assert len(history) == 3 and agent.timings.simulations == 3 * 30  # every real step was searched
    assert agent.mcts.depth_limit - agent.mcts.nodes[0].depth == 1
