"""Hand-built trees and shop contexts shared by the training tests."""
from __future__ import annotations

P0, P1, P2, P3, P4 = "prompt@root\n", "prompt@results-a\n", "prompt@results-b\n", "prompt@item-1\n", "prompt@item-2\n"


def node(id, parent, depth, action=None, prompt=None, logprob=None, visits=0, q=0.0,
         q_critic=None, reward=0.0, terminal=False):
    return {"type": "node", "id": id, "parent": parent, "depth": depth, "action": action,
            "prompt": prompt, "logprob": logprob, "visits": visits, "q_mcts": q,
            "q_critic": None if parent is None else (q if q_critic is None else q_critic), "q": q,
            "reward": reward, "terminal": terminal}


def hand_tree():
    """
    0 root
    ├── 1 search[red shoes]  q .60 (4 visits)
    │   ├── 3 click[b01]  q .90 ── 5 click[buy now]  reward 1.0 (success)
    │   └── 4 click[b02]  q .20 ── 6 click[buy now]  reward 0.25
    ├── 2 search[shoes]      q .55 (2 visits)
    │   ├── 7 click[b03]  q 0 (terminal)  reward 0.0
    │   └── 9 click[b04]  q 1 (a leaf whose one rollout succeeded: return 1.0)
    └── 8 search[x]          q .90 (never visited)
    """
    return [
        {"type": "tree", "env_id": "webgrove/WebShop-v0", "goal_id": 17, "goal": "red shoes",
         "seed": 0, "policy": "test", "config": {}, "created": "now"},
        node(0, None, 0, visits=9, q=0.5),
        node(1, 0, 1, "search[red shoes]", P0, -1.0, visits=4, q=0.60, q_critic=0.2),
        node(2, 0, 1, "search[shoes]", P0, -2.0, visits=2, q=0.55, q_critic=0.9),
        node(3, 1, 2, "click[b01]", P1, -0.5, visits=2, q=0.90),
        node(4, 1, 2, "click[b02]", P1, -0.7, visits=2, q=0.20),
        node(5, 3, 3, "click[buy now]", P3, -0.1, visits=1, q=1.0, reward=1.0, terminal=True),
        node(6, 4, 3, "click[buy now]", P4, -0.2, visits=1, q=0.25, reward=0.25, terminal=True),
        node(7, 2, 2, "click[b03]", P2, -0.3, visits=1, q=0.0, reward=0.0, terminal=True),
        node(8, 0, 1, "search[x]", P0, -3.0, visits=0, q=0.90),
        node(9, 2, 2, "click[b04]", P2, -0.4, visits=1, q=1.0),
    ]


GOALS = ["red shoes", "blue shirt", "green hat", "tall boots", "black bag", "white socks"]
ACTIONS = ["click[b01]", "click[b02]", "click[buy now]", "click[back to search]"]


def shop_contexts():
    from webgrove.agents.base import StepContext

    return [StepContext(goal=f"i need {g}, and price lower than 40.00 dollars",
                        observation=f"Back to Search [SEP] < Prev [SEP] {g} [SEP] Price: $12.00 [SEP] Buy Now",
                        available_actions=list(ACTIONS), history=["search[" + g + "]"]) for g in GOALS]


