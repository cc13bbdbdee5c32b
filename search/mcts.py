"""Agent Q's guided Monte Carlo tree search over a webgrove env.

One simulation: **select** children by UCB1 from the search root, restoring env
snapshots with `set_state`; **expand** a leaf with K distinct proposals from the
policy, each child's Q initialized from the critic; **step** into the selected
child; **roll out** the policy from there to the end of the episode (or the depth
limit); **back up** the episode's return as a running mean along the path. The
value reported for an action is Q = α·Q_mcts + (1−α)·Q_critic (Agent Q, Eq. 10).

`search_episode` is Agent Q's collection loop: at each step it runs
`config.simulations` simulations from the current node, then commits to the
child with the most visits (ties by Q), until the episode ends. The committed
actions are the tree's best path; every sibling along it carries the Q values
that the preference-pair builders compare.

The search drives `env.unwrapped`, because snapshots cover the unwrapped env
only: wrappers such as `TimeLimit` keep counters that `set_state` cannot rewind.
The episode's step limit (`env.spec.max_episode_steps`) becomes a depth limit
instead. Nodes live in memory as a flat list; `Node.record()` is its typed JSONL
line (`webgrove.search.tree.NodeRecord`), and the tree walking helpers (`path_to`,
`committed_child`) are the ones the viewer and the pair builders use.
"""
from __future__ import annotations

import math
import operator
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from webgrove.agents.base import Critic, Policy, Proposal, StepContext, context_from, policy_input, rolls_out_by_act
from webgrove.envs import is_success
from webgrove.envs.protocols import SnapshotEnv
from webgrove.search.tree import NodeRecord, committed_child, path_to

_reward = operator.attrgetter("reward")


# ---------------------------------------------------------------------------
# The math: small pure functions.


def ucb_scores(q_values: Sequence[float], child_visits: Sequence[int], n_parent: int, c: float) -> list[float]:
    """UCB1 as Agent Q selects with it, for each child a of a state s:
    Q(s,a) + c·sqrt(log N(s) / (1 + N(s,a))).

    Args:
        q_values: the children's current values Q(s, a).
        child_visits: their visits N(s, a) (each ≥ 0), in the same order.
        n_parent: visits of the parent state N(s); 0 gives no exploration bonus.
        c: exploration constant (≥ 0).
    """
    scale = ucb_scale(n_parent, c)
    return [q + scale / math.sqrt(1 + n) for q, n in zip(q_values, child_visits, strict=True)]


def ucb_scale(n_parent: int, c: float) -> float:
    """The part of UCB1's bonus that all children of a state share: c·sqrt(log N(s))
    (0 when N(s) = 0); a child's bonus is this over sqrt(1 + N(s,a))."""
    if n_parent < 0 or c < 0:
        raise ValueError(f"need n_parent >= 0 and c >= 0, got n_parent={n_parent}, c={c}")
    return c * math.sqrt(math.log(n_parent)) if n_parent > 0 else 0.0


def ucb_score(q: float, n_parent: int, n_child: int, c: float) -> float:
    """UCB1 of one child: Q(s,a) + c·sqrt(log N(s) / (1 + N(s,a))) (see `ucb_scores`)."""
    if n_child < 0:
        raise ValueError(f"visit counts must be >= 0, got n_child={n_child}")
    return ucb_scores([q], [n_child], n_parent, c)[0]


def backup(q_values: Sequence[float], visits: Sequence[int], value: float) -> tuple[list[float], list[int]]:
    """Back up one simulation's return along a path.

    Each node's Q_mcts becomes the running mean of the returns of the
    simulations that passed through it, Q + (value − Q) / (N + 1), and its visit
    count N grows by one.

    Returns:
        (new Q_mcts values, new visit counts), in path order.
    """
    if len(q_values) != len(visits):
        raise ValueError(f"{len(q_values)} Q values but {len(visits)} visit counts")
    return ([running_mean(q, n, value) for q, n in zip(q_values, visits)],
            [n + 1 for n in visits])


def running_mean(q: float, n: int, value: float) -> float:
    """The mean of n returns `q`, with `value` added: Q + (value − Q) / (N + 1)."""
    return q + (value - q) / (n + 1)


def mix_q(q_mcts: float, q_critic: float, alpha: float) -> float:
    """Q(s, a) = α·Q_mcts + (1−α)·Q_critic (Agent Q, Eq. 10)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    return alpha * q_mcts + (1.0 - alpha) * q_critic


def node_q(q_mcts: float, q_critic: float | None, visits: int, alpha: float) -> float:
    """The Q a node is selected and ranked by: the critic's value until the node
    is visited, then `mix_q`. Nodes without a critic value (the root) use Q_mcts."""
    if q_critic is None:
        return q_mcts
    if visits == 0:
        return q_critic
    return mix_q(q_mcts, q_critic, alpha)


def dedupe(proposals: Sequence[Proposal]) -> list[Proposal]:
    """Proposals with repeated actions dropped, first occurrence kept, order kept."""
    seen: set[str] = set()
    out = []
    for p in proposals:
        if p.action not in seen:
            seen.add(p.action)
            out.append(p)
    return out


# ---------------------------------------------------------------------------
# Records.


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class SearchConfig:
    """Settings of Agent Q's MCTS."""

    simulations: int = field(default=10, metadata=_help(
        "simulations per decision: at every step of the episode, from the current node"))
    k: int = field(default=5, metadata=_help("proposals (children) the policy gives when a node is expanded"))
    c: float = field(default=1.0, metadata=_help("UCB1 exploration constant"))
    alpha: float = field(default=0.5, metadata=_help(
        "weight of Q_mcts in Q = alpha*Q_mcts + (1-alpha)*Q_critic (Agent Q, Eq. 10)"))
    max_depth: int = field(default=15, metadata=_help(
        "most actions from the root (also capped by the env's max_episode_steps)"))
    rollout_temperature: float = field(default=1.0, metadata=_help(
        "softmax temperature over proposal log-probs in rollouts (0 = greedy); scripted policies use act()"))
    seed: int = field(default=0, metadata=_help("seed of the search's random generator"))
    stop_on_success: bool = field(default=False, metadata=_help(
        "end a step's simulations at the first one that reaches reward 1 and commit to its action"))

    def __post_init__(self) -> None:
        checks = [
            (self.simulations >= 1, f"simulations must be >= 1, got {self.simulations}"),
            (self.k >= 1, f"k must be >= 1, got {self.k}"),
            (self.c >= 0, f"c must be >= 0, got {self.c}"),
            (0.0 <= self.alpha <= 1.0, f"alpha must be in [0, 1], got {self.alpha}"),
            (self.max_depth >= 1, f"max_depth must be >= 1, got {self.max_depth}"),
            (self.rollout_temperature >= 0, f"rollout_temperature must be >= 0, got {self.rollout_temperature}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass(slots=True, init=False, eq=False)
class Node:
    """One node: the state reached by taking `action` at the parent.

    The root has no parent, action, prompt, logprob or critic value. A new node is
    unvisited, its Q the critic's value, not stepped into and not expanded.
    """

    id: int
    parent: int | None
    depth: int
    action: str | None
    prompt: str | None  # the exact policy input at the parent state
    logprob: float | None  # the collecting policy's log-prob of `action` there
    q_critic: float | None
    visits: int
    q_mcts: float
    q: float
    reward: float  # env reward received on taking `action`
    terminal: bool
    kids: list["Node"] | None  # the children in proposal order; None until expanded
    stepped: bool  # `state` holds the env snapshot after `action`
    state: Any
    history: tuple[str, ...]  # the episode's actions up to here, those before the root included

    # Written out rather than generated: expansion creates every node, and a dataclass's
    # __init__ matches keywords and defaults one by one (it took 3x as long).
    def __init__(self, id: int, parent: int | None, depth: int, action: str | None, prompt: str | None,
                 logprob: float | None, q_critic: float | None, history: tuple[str, ...] = ()) -> None:
        self.id, self.parent, self.depth, self.action, self.prompt = id, parent, depth, action, prompt
        self.logprob, self.q_critic, self.history = logprob, q_critic, history
        self.q = 0.0 if q_critic is None else q_critic  # `node_q` of an unvisited node
        self.visits, self.q_mcts, self.reward, self.terminal = 0, 0.0, 0.0, False
        self.kids, self.stepped, self.state = None, False, None

    @property
    def expanded(self) -> bool:
        return self.kids is not None

    @property
    def children(self) -> list[int]:
        """The children's ids, in proposal order."""
        return [] if self.kids is None else [k.id for k in self.kids]

    def record(self) -> NodeRecord:
        """The node's flat record (docs/DESIGN.md, "Search trees on disk")."""
        return NodeRecord(id=self.id, parent=self.parent, depth=self.depth, action=self.action,
                          prompt=self.prompt, logprob=self.logprob, visits=self.visits, q_mcts=self.q_mcts,
                          q_critic=self.q_critic, q=self.q, reward=self.reward, terminal=self.terminal)


@dataclass
class SearchTimings:
    """Seconds spent in each party of the search; MCTS's own share is the rest.

    `total_s` is the wall time of building the search (its random generator and the
    root's snapshot), of every `search` call (its simulations and the choice of the
    child) and of `restore`; `search_episode` sets it to its own whole wall time.
    `env_s` covers the env's step, get_state, set_state and observe; `policy_s` the
    policy's calls (propose, act or sample, prompt) and building their input
    (`context_from`); `critic_s` the critic's `rank`; `mcts_s` is what is left: selection,
    expansion bookkeeping (dropping repeated proposals, the children), stepping and
    rollout bookkeeping, backup, and the clock reads themselves.
    """

    total_s: float = 0.0
    env_s: float = 0.0
    policy_s: float = 0.0
    critic_s: float = 0.0
    simulations: int = 0
    env_steps: int = 0

    @property
    def mcts_s(self) -> float:
        return max(0.0, self.total_s - self.env_s - self.policy_s - self.critic_s)

    @property
    def mcts_share(self) -> float:
        return self.mcts_s / self.total_s if self.total_s > 0 else 0.0

    def add(self, other: "SearchTimings") -> None:
        for name in ("total_s", "env_s", "policy_s", "critic_s", "simulations", "env_steps"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict:
        return {"total_s": self.total_s, "env_s": self.env_s, "policy_s": self.policy_s, "critic_s": self.critic_s,
                "simulations": self.simulations, "env_steps": self.env_steps, "mcts_s": self.mcts_s,
                "mcts_share": self.mcts_share}


@dataclass
class SearchTree:
    """A finished search: nodes (ids are list positions) and the committed best path."""

    nodes: list[Node]
    best_path: list[int]
    timings: SearchTimings

    def records(self) -> list[NodeRecord]:
        return [n.record() for n in self.nodes]

    @property
    def best_actions(self) -> list[str]:
        return [self.nodes[i].action for i in self.best_path[1:]]

    @property
    def best_return(self) -> float:
        """Sum of the rewards along the best path."""
        return float(sum(self.nodes[i].reward for i in self.best_path))

    @property
    def success(self) -> bool:
        """The best path ends the episode with reward 1."""
        last = self.nodes[self.best_path[-1]]
        return last.terminal and is_success(self.best_return)


# ---------------------------------------------------------------------------
# The search.


def env_step_limit(env: Any) -> int | None:
    """The env's `max_episode_steps`, if it was registered with one."""
    spec = getattr(env, "spec", None)
    return getattr(spec, "max_episode_steps", None) if spec is not None else None


class MCTS:
    """A search tree over one episode of `env`, grown from the env's current state.

    Args:
        env: a webgrove env (wrapped or not) whose unwrapped env has
            `get_state`, `set_state` and `observe`; it must be at the state the
            root stands for (after `reset`, or mid-episode at inference).
        policy: proposes children and rolls out.
        critic: values proposals in [0, 1]; None gives every proposal 0.
        config: search settings.
        history: actions already taken in this episode before the root.
    """

    def __init__(self, env: Any, policy: Policy, critic: Critic | None, config: SearchConfig,
                 history: Sequence[str] = ()) -> None:
        self.env: SnapshotEnv = env.unwrapped
        for method in ("get_state", "set_state", "observe"):
            if not callable(getattr(self.env, method, None)):
                raise TypeError(f"{type(self.env).__name__} has no {method}(); MCTS needs snapshots "
                                "(get_state/set_state) and observe()")
        t0 = time.perf_counter()
        self.policy = policy
        self.critic = critic
        self.config = config
        self._c = config.c
        self.rng = np.random.default_rng(config.seed)
        self.root_history = list(history)
        limit = env_step_limit(env)
        steps_left = config.max_depth if limit is None else limit - len(self.root_history)
        self.depth_limit = max(0, min(config.max_depth, steps_left))
        self.timings = SearchTimings()
        self._scripted = rolls_out_by_act(policy)  # scripted agents roll out with their own act
        self._env_at: int | None = None  # the node whose state the env is in, if known
        self._root_path: list[Node] = []  # `path` of the node the last simulation started from
        self._ancestor_values: list[float] = []  # values not yet backed up above that node
        state = self._get_state()
        root = Node(0, None, 0, None, None, None, None, tuple(self.root_history))
        root.stepped, root.state, root.terminal = True, state, self.depth_limit == 0
        self.nodes: list[Node] = [root]
        self._env_at = 0
        self.success_child: int | None = None  # set by `search` when stop_on_success fired
        self._last_success_child: int | None = None  # root child of the last simulation, if it succeeded
        self.timings.total_s += time.perf_counter() - t0

    # -- calls into the env, the policy and the critic, each span timed once --
    # A span that makes several calls to one party is timed as a whole, so the
    # clock is read about twice per party and step, not per call.

    def _get_state(self) -> Any:
        t0 = time.perf_counter()
        state = self.env.get_state()
        self.timings.env_s += time.perf_counter() - t0
        return state

    def _restore(self, node: Node) -> None:
        """Put the env in `node`'s state unless it is there already (untimed: callers time it)."""
        if self._env_at != node.id:
            self.env.set_state(node.state)
            self._env_at = node.id

    def _critic_values(self, ctx: StepContext, actions: list[str]) -> list[float]:
        if self.critic is None:
            return [0.0] * len(actions)
        t0 = time.perf_counter()
        values = self.critic.rank(ctx, actions)
        self.timings.critic_s += time.perf_counter() - t0
        if len(values) != len(actions):
            raise ValueError(f"critic {type(self.critic).__name__} returned {len(values)} values "
                             f"for {len(actions)} actions")
        return list(map(float, values))

    def _rollout_action(self, ctx: StepContext) -> str:
        """The policy's move in a rollout (untimed: the rollout loop times it)."""
        if self._scripted:
            return self.policy.act(ctx, self.rng)
        # One draw from the policy's own distribution over every valid action, at the
        # rollout temperature (`HFPolicy.sample`); never a second draw among k Gumbel
        # proposals, which over-weights unlikely actions. Other policies: their own top-1
        # draw, at their temperature.
        sample = getattr(self.policy, "sample", None)
        drawn = sample(ctx, self.config.rollout_temperature, self.rng) if sample else \
            next(iter(self.policy.propose(ctx, 1, self.rng)), None)
        if drawn is None:
            raise ValueError(f"policy {type(self.policy).__name__} proposed no action in a rollout")
        return drawn.action

    # -- tree bookkeeping ----------------------------------------------------

    def history(self, node: Node) -> list[str]:
        """Every action of the episode up to `node`, the ones before the root first."""
        return list(node.history)

    def path(self, node_id: int) -> list[Node]:
        """Nodes from the tree's root down to `node_id`."""
        return path_to(self.nodes, node_id)

    def _expand(self, node: Node) -> list[Node]:
        """Add up to k distinct proposals as children, their Q from the critic; returns them."""
        clock, timings, k = time.perf_counter, self.timings, self.config.k
        t0 = clock()
        self._restore(node)
        obs, info = self.env.observe()
        t1 = clock()
        ctx = context_from(obs, info, node.history)  # it copies the history
        proposed = self.policy.propose(ctx, k, self.rng)
        prompt = policy_input(self.policy, ctx) if proposed else None  # (the children's prompt)
        t2 = clock()
        timings.env_s += t1 - t0
        timings.policy_s += t2 - t1
        node.kids = kids = []
        proposals = dedupe(proposed)[:k]
        if not proposals:
            return kids
        actions = [p.action for p in proposals]
        values = self._critic_values(ctx, actions)
        nodes, parent, depth, history = self.nodes, node.id, node.depth + 1, node.history
        child_id = len(nodes)
        for action, proposal, value in zip(actions, proposals, values):
            kids.append(Node(child_id, parent, depth, action, prompt, float(proposal.logprob), value,
                             history + (action,)))
            child_id += 1
        nodes.extend(kids)
        return kids

    def _select(self, visits: int, kids: list[Node]) -> Node:
        """The child (of a node visited `visits` times) with the highest UCB1 score
        (`ucb_scores`, the same floats); ties go to the earlier proposal.

        One pass, no lists: selection runs twice or more per simulation (a C-level pass costs
        more than this loop for a handful of children)."""
        best = None
        if visits <= 1:  # no bonus (log 1 = 0): the scores are the Qs (q + 0.0 compares as q)
            for child in kids:
                if best is None or child.q > best_score:
                    best, best_score = child, child.q
            return best
        sqrt = math.sqrt
        scale = self._c * sqrt(math.log(visits))  # `ucb_scale`, without its checks
        for child in kids:
            score = child.q + scale / sqrt(1 + child.visits)
            if best is None or score > best_score:  # as max() compares: the first on ties
                best, best_score = child, score
        return best

    def _step_into(self, parent: Node, child: Node) -> tuple[Any, dict]:
        """Take the child's action from the parent's state and snapshot the result."""
        env, timings = self.env, self.timings
        t0 = time.perf_counter()
        if self._env_at != parent.id:  # `_restore`, inline
            env.set_state(parent.state)
        obs, reward, terminated, truncated, info = env.step(child.action)
        child.state = env.get_state()
        timings.env_s += time.perf_counter() - t0
        timings.env_steps += 1
        child.reward = float(reward)
        child.terminal = bool(terminated or truncated) or child.depth >= self.depth_limit
        child.stepped = True
        self._env_at = child.id
        return obs, info

    def _rollout(self, node: Node, obs: Any, info: dict) -> float:
        """Return of playing the policy from `node` (the env is at its state) to the end."""
        total, history, depth, limit = 0.0, list(node.history), node.depth, self.depth_limit
        step, draw, clock, policy_s, env_s = self.env.step, self._rollout_action, time.perf_counter, 0.0, 0.0
        self._env_at = None
        while depth < limit:
            t = clock()
            action = draw(context_from(obs, info, history))
            t_policy = clock()
            obs, reward, terminated, truncated, info = step(action)
            t_env = clock()
            policy_s += t_policy - t
            env_s += t_env - t_policy
            total += float(reward)
            history.append(action)  # context_from copies it
            depth += 1
            if terminated or truncated:
                break
        timings = self.timings
        timings.policy_s += policy_s
        timings.env_s += env_s
        timings.env_steps += depth - node.depth
        return total

    def simulate(self, root_id: int = 0) -> float:
        """One simulation from node `root_id`; returns the episode return it backed up."""
        t0 = time.perf_counter()
        try:
            return self._simulate(root_id)
        finally:
            self._back_up_ancestors()
            self.timings.total_s += time.perf_counter() - t0

    def _simulate(self, root_id: int) -> float:
        """`simulate`, leaving the backup into the search root's ancestors to
        `_back_up_ancestors` (untimed: `simulate` and `search` time it)."""
        if not self._root_path or self._root_path[-1].id != root_id:
            self._back_up_ancestors()
            self._root_path = self.path(root_id)
        path = self._root_path.copy()
        n_above = len(path)  # the search root and its ancestors
        node = path[-1]
        fresh: tuple[Any, dict] | None = None  # (obs, info) of a node stepped into just now
        select, append = self._select, path.append
        while not node.terminal:
            kids = node.kids
            if kids is None:
                kids = self._expand(node)
            if not kids:  # the policy had nothing to propose: a dead end
                break
            parent, node = node, select(node.visits, kids)
            append(node)
            if not node.stepped:
                fresh = self._step_into(parent, node)
                break
        value = math.fsum(map(_reward, path))
        if fresh is not None and not node.terminal:
            value += self._rollout(node, *fresh)
        self._backup(path[n_above - 1:], value)
        self._ancestor_values.append(value)
        self.timings.simulations += 1
        success = len(path) > n_above and is_success(value)
        self._last_success_child = path[n_above].id if success else None
        return value

    def _backup(self, path: list[Node], value: float) -> None:
        """`backup` and `node_q` (visits >= 1) along `path`, inline: the same floats, without
        the calls."""
        alpha = self.config.alpha
        beta = 1.0 - alpha
        for n in path:
            visits, q = n.visits + 1, n.q_mcts
            q = n.q_mcts = q + (value - q) / visits
            n.visits = visits
            q_critic = n.q_critic
            n.q = q if q_critic is None else alpha * q + beta * q_critic

    def _back_up_ancestors(self) -> None:
        """Back up the values of the simulations so far from the search root into its
        ancestors, in order: the same running means as one by one, in one tight loop per
        ancestor. Selection never reads above the search root, so they can wait; `simulate`
        and `search` call this before they return."""
        values, path = self._ancestor_values, self._root_path
        if not values:
            return
        alpha = self.config.alpha
        beta = 1.0 - alpha
        for n in path[:-1]:  # the search root itself was backed up at once
            visits, q = n.visits, n.q_mcts
            for value in values:
                visits += 1
                q = q + (value - q) / visits
            n.visits, n.q_mcts = visits, q
            n.q = q if n.q_critic is None else alpha * q + beta * n.q_critic
        values.clear()

    def best_child(self, node_id: int) -> Node | None:
        """The visited child with the most visits, ties by Q, then by proposal order."""
        return committed_child(self.nodes[node_id].kids or ())

    def search(self, root_id: int = 0, simulations: int | None = None) -> Node | None:
        """Run simulations from `root_id` and return the child to commit to (None
        when the node is terminal or has nothing to try)."""
        t0, total_before = time.perf_counter(), self.timings.total_s
        try:
            return self._search(root_id, simulations)
        finally:  # the whole call, choosing the child included (not only its simulations)
            self._back_up_ancestors()
            self.timings.total_s = total_before + (time.perf_counter() - t0)

    def _search(self, root_id: int, simulations: int | None) -> Node | None:
        if self.nodes[root_id].terminal:
            return None
        self.success_child = None
        simulate, stop = self._simulate, self.config.stop_on_success
        for _ in range(self.config.simulations if simulations is None else simulations):
            simulate(root_id)
            if stop and self._last_success_child is not None:
                self.success_child = self._last_success_child
                return self.nodes[self.success_child]
        return self.best_child(root_id)

    def restore(self, state: Any) -> None:
        """Put the env in `state` (e.g. the real episode's state after a search at
        inference); the search no longer assumes where the env is."""
        t0 = time.perf_counter()
        self.env.set_state(state)
        self._env_at = None
        elapsed = time.perf_counter() - t0
        self.timings.env_s += elapsed
        self.timings.total_s += elapsed

    def tree(self, best_path: list[int]) -> SearchTree:
        return SearchTree(nodes=self.nodes, best_path=list(best_path), timings=self.timings)


def search_episode(env: Any, policy: Policy, critic: Critic | None, config: SearchConfig) -> SearchTree:
    """Agent Q's collection search over one episode of an env that was just reset.

    At every step: `config.simulations` simulations from the current node, then
    commit to its best child; stop when the committed node ends the episode.

    Returns:
        the tree, its best path being the committed actions.
    """
    start = time.perf_counter()
    mcts = MCTS(env, policy, critic, config)
    best_path = [0]
    while True:
        child = mcts.search(best_path[-1])
        if child is None:
            break
        best_path.append(child.id)
    mcts.timings.total_s = time.perf_counter() - start  # the search's whole span, its loop included
    return mcts.tree(best_path)
