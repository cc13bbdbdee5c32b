"""The Ray backend against the local one: same trees and episodes, nothing finished lost
when an actor is killed. One local Ray instance (2 CPUs) serves the whole module."""
from __future__ import annotations

import json
import os
import signal

import pytest

from webgrove.envs.errors import UsageError
from webgrove.search.backends import (BackendArgs, adopt_environment, batch_size, run_on_ray, worker_context,
                                      worker_parent_pid)
from webgrove.search.collect import CollectConfig, run_collect, tree_path
from webgrove.search.tree import read_tree

SHOP = dict(env="webgrove/WebShop-v0", policy="rule", critic="lexical", num_products=200, simulations=3, k=2,
            progress=False)
GOALS = "0:4"


@pytest.fixture(scope="module")
def ray_cluster():
    import ray  # the `ray` extra, installed by `make test` (`all`)

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=128 * 1024 * 1024,
             runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_trees(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    run_collect(CollectConfig(**SHOP, goal_range=GOALS, out=str(out)))
    return out


def _same_trees(a, b, goal_ids) -> None:
    """Tree for tree: the same header (but its creation time and timings) and the same nodes."""
    for goal_id in goal_ids:
        (ha, na), (hb, nb) = read_tree(tree_path(a, goal_id)), read_tree(tree_path(b, goal_id))
        assert na == nb, f"goal {goal_id}: nodes differ"
        timing = ("created", "stats")
        assert {k: v for k, v in vars(ha).items() if k not in timing} == \
               {k: v for k, v in vars(hb).items() if k not in timing}


def test_backend_args_validate():
    with pytest.raises(UsageError, match="--ray-address needs --backend ray"):
        BackendArgs(ray_address="auto")
    with pytest.raises(UsageError, match="backend"):
        BackendArgs(backend="dask")


@pytest.mark.slow
def test_ray_collects_the_same_trees_as_local(ray_cluster, local_trees, tmp_path):
    summary = run_collect(CollectConfig(**SHOP, goal_range=GOALS, out=str(tmp_path), backend="ray", workers=2))
    assert summary["collected"] == 4 and summary["failed"] == []
    _same_trees(local_trees, tmp_path, range(4))
    # the backend is not part of what a tree is: a local rerun of the same folder skips every goal
    again = run_collect(CollectConfig(**SHOP, goal_range=GOALS, out=str(tmp_path)))
    assert again["skipped"] == 4 and again["collected"] == 0


@pytest.mark.slow
def test_a_killed_actor_loses_no_finished_tree(ray_cluster, local_trees, tmp_path):
    from webgrove.search.backends import collect_on_ray
    from webgrove.search.collect import collection_identity
    from webgrove.agents.fingerprint import policy_fingerprint

    cfg = CollectConfig(**SHOP, goal_range=GOALS, out=str(tmp_path), backend="ray", workers=2)
    identity = collection_identity(cfg, policy_fingerprint(cfg.policy, cfg.base_url, cfg.model_name))
    results, killed = [], []

    def on_result(result: dict) -> None:
        results.append(result)
        assert tree_path(tmp_path, result["goal_id"]).exists()  # written before it is reported
        if not killed:  # the actor already has its next goal: kill it in the middle of that one
            killed.append(result["worker_pid"])
            os.kill(result["worker_pid"], signal.SIGKILL)

    collect_on_ray(cfg, identity, list(range(4)), on_result)
    assert sorted(r["goal_id"] for r in results) == [0, 1, 2, 3]
    assert all("error" not in r for r in results)
    assert len({r["worker_pid"] for r in results} - set(killed)) >= 1  # someone else, or a restarted actor
    _same_trees(local_trees, tmp_path, range(4))
    assert not list(tmp_path.glob(".*tmp*"))  # no temporary file left behind


@pytest.mark.slow
def test_run_on_ray_builds_once_per_actor(ray_cluster):
    got = []
    # lambdas travel by value (this test module is not importable on Ray's workers)
    build = lambda cfg: {"k": cfg["k"], "built_in": os.getpid()}  # noqa: E731
    work = lambda state, cfg, item: {"goal_id": item, "value": state["k"] * item,  # noqa: E731
                                     "built_in": state["built_in"]}
    run_on_ray(build, work, {"k": 3}, list(range(6)), got.append, workers=2)
    assert sorted((r["goal_id"], r["value"]) for r in got) == [(i, 3 * i) for i in range(6)]
    assert all(r["built_in"] == r["worker_pid"] for r in got)  # the state was built in the actor
    assert len({r["worker_pid"] for r in got}) <= 2
    json.dumps(got)  # results are plain data


PRELOADED = "'webgrove.envs.shop.env' in __import__('sys').modules"  # evaluated in a worker


@pytest.mark.parametrize("method", [None, "spawn"])
def test_local_workers_start_from_a_preloaded_fork_server_or_by_spawn(method, monkeypatch):
    if method:
        monkeypatch.setenv("WEBGROVE_START_METHOD", method)
    context = worker_context()
    assert context.get_start_method() == (method or "forkserver")
    with context.Pool(1) as pool:
        assert pool.apply(os.getppid) == worker_parent_pid(context)  # what die_with_parent watches
        assert pool.apply(eval, (PRELOADED,)) is (method is None)  # forked with the modules imported
        assert pool.apply(eval, ("'torch' in __import__('sys').modules",)) is False  # no torch threads or CUDA


def test_forked_workers_take_the_environment_the_parent_has_now(monkeypatch):
    """The fork server keeps the environment it started with; a worker adopts the parent's."""
    context = worker_context()
    with context.Pool(1) as pool:  # the fork server runs from here on
        pool.apply(os.getpid)
    monkeypatch.setenv("WEBGROVE_TEST_LATE", "set after the fork server started")
    with context.Pool(1) as pool:
        assert pool.apply(os.getenv, ("WEBGROVE_TEST_LATE",)) is None  # the server's environment
    with context.Pool(1, initializer=adopt_environment, initargs=(dict(os.environ),)) as pool:
        assert pool.apply(os.getenv, ("WEBGROVE_TEST_LATE",)) == "set after the fork server started"


def test_an_unknown_start_method_is_a_usage_error(monkeypatch):
    monkeypatch.setenv("WEBGROVE_START_METHOD", "fork")
    with pytest.raises(UsageError, match="WEBGROVE_START_METHOD must be one of forkserver, spawn"):
        worker_context()


def test_batch_size_aims_at_batch_seconds_and_shrinks_towards_the_end():
    assert batch_size(40, 2, None) == 1  # nothing timed yet: one item, which times the actors
    assert batch_size(400, 2, 0.004, batch_s=0.1) == 25  # 4 ms trees: 25 a call
    assert batch_size(400, 2, 2.0, batch_s=0.1) == 1  # model trees: one a call, as before batching
    assert batch_size(12, 2, 0.004, batch_s=0.1) == 3  # a quarter of what is left per actor pair
    assert batch_size(1, 2, 0.004) == 1 and batch_size(0, 2, 0.004) == 0


@pytest.mark.slow
def test_batched_results_stream_back_as_each_item_finishes(ray_cluster):
    """Each result reaches the driver when its item finishes, not when its batch ends."""
    import time

    arrived = []
    work = lambda state, cfg, item: (time.sleep(0.3), {"goal_id": item, "finished_at": time.time()})[1]  # noqa: E731
    stats = run_on_ray(lambda cfg: None, work, None, list(range(16)),
                       lambda r: arrived.append({**r, "arrived_at": time.time()}), workers=2, batch_s=10.0)
    assert sorted(r["goal_id"] for r in arrived) == list(range(16)) and stats["largest_batch"] > 1
    by_worker = {}
    for r in arrived:
        by_worker.setdefault(r["worker_pid"], []).append(r)
    # the driver has result i before the same actor finishes item i+1 (0.3 s later); had it
    # waited for the end of a batch, that would hold only across batches
    pairs = [(a, b) for rs in by_worker.values() for a, b in zip(rs, rs[1:])]
    prompt = sum(a["arrived_at"] < b["finished_at"] for a, b in pairs)
    assert prompt >= 0.75 * len(pairs), f"{prompt} of {len(pairs)} results came before the next finished"


@pytest.mark.slow
def test_an_actor_killed_mid_batch_loses_nothing_and_repeats_nothing(ray_cluster):
    got, killed = [], []
    work = lambda state, cfg, item: (__import__("time").sleep(0.05), {"goal_id": item})[1]  # noqa: E731

    def on_result(result: dict) -> None:
        got.append(result)
        if len(got) == 8:  # by now batches hold several items: kill the actor inside one
            killed.append(result["worker_pid"])
            os.kill(result["worker_pid"], signal.SIGKILL)

    stats = run_on_ray(lambda cfg: None, work, None, list(range(40)), on_result, workers=2, batch_s=1.0)
    assert killed and stats["largest_batch"] > 1
    assert sorted(r["goal_id"] for r in got) == list(range(40))  # each item exactly once
    assert all("error" not in r for r in got)


@pytest.mark.slow
def test_a_goal_that_kills_its_actor_past_its_restarts_is_reported_and_its_batch_goes_on(ray_cluster):
    got = []
    work = lambda state, cfg, item: (os._exit(1) if item == 9 else  # noqa: E731
                                     (__import__("time").sleep(0.05), {"goal_id": item})[1])
    run_on_ray(lambda cfg: None, work, None, list(range(24)), got.append, workers=2, max_restarts=0,
               max_task_retries=0, batch_s=1.0)
    assert sorted(r["goal_id"] for r in got) == list(range(24))  # the dead actor's other goals ran elsewhere
    failed = [r for r in got if "error" in r]
    assert [(r["goal_id"], r["kind"]) for r in failed] == [(9, "infrastructure")]
    assert len({r["worker_pid"] for r in got if "error" not in r}) == 2


@pytest.mark.slow
def test_ray_rollouts_equal_local_ones(ray_cluster):
    from webgrove.search.rollout import RolloutConfig, rollout

    kw = dict(env="webgrove/WebShop-v0", policy="random", num_products=200, episodes=4, progress=False)
    here, there = rollout(RolloutConfig(**kw)), rollout(RolloutConfig(**kw, workers=2, backend="ray"))
    for key in ("goal_ids", "rewards", "successes", "episode_seeds"):
        assert here[key] == there[key]


@pytest.mark.slow
def test_a_rollout_actor_killed_mid_run_loses_no_episode(ray_cluster, monkeypatch):
    """Episodes come back one by one from actors that built their env and policy once; an actor
    killed after its first episode is restarted by Ray and the rollout equals the local one."""
    import webgrove.search.backends as backends
    from webgrove.search.rollout import RolloutConfig, rollout

    real, seen, killed = backends.run_on_ray, [], []

    def killing(build, work, cfg, items, on_result, **kw):
        def take(result: dict) -> None:
            seen.append(result.get("worker_pid"))
            if not killed:  # the actor already works on its next episodes
                killed.append(result["worker_pid"])
                os.kill(result["worker_pid"], signal.SIGKILL)
            on_result(result)
        return real(build, work, cfg, items, take, **kw)

    monkeypatch.setattr(backends, "run_on_ray", killing)
    kw = dict(env="webgrove/WebShop-v0", policy="random", num_products=200, episodes=10, progress=False)
    here, there = rollout(RolloutConfig(**kw)), rollout(RolloutConfig(**kw, workers=2, backend="ray"))
    assert killed and len(seen) == 10
    for key in ("goal_ids", "rewards", "successes", "episode_seeds"):
        assert here[key] == there[key]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """`webgrove init-model`'s tiny model, its tokenizer trained on a little shop text."""
    from webgrove.training.tiny import init_model, shop_corpus

    return init_model(tmp_path_factory.mktemp("tiny"), corpus=shop_corpus(num_products=100, episodes=4),
                      vocab_size=400)


@pytest.mark.slow
def test_improve_on_ray_collects_and_evaluates_as_local(ray_cluster, tiny_model, tmp_path, monkeypatch):
    """A 1-iteration improve run: --backend ray sends collection and the evaluations through
    Ray (seen by wrapping the Ray dispatchers, which still run) and gives the local trees."""
    import torch

    import webgrove.search.backends
    from webgrove.training.loop import ImproveConfig, run_improve

    torch.set_num_threads(1)  # as Ray's workers: the same float sums
    dispatched = []
    for module, name in ((webgrove.search.backends, "run_on_ray"),):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _real=real, _name=name, **kw: (dispatched.append(_name),
                                                                                    _real(*a, **kw))[1])
    kw = dict(model=str(tiny_model), iterations=1, goals_per_iteration=2, simulations=2, k=2, max_depth=3,
              theta=0.0, epochs=1, batch_size=4, eval_episodes=2, eval_mcts_episodes=1, eval_simulations=1,
              eval_k=2, eval_start=False, fit_eval=False, progress=False, num_products=100)
    local = run_improve(ImproveConfig(**kw, out=str(tmp_path / "local")))
    assert dispatched == []
    ray = run_improve(ImproveConfig(**kw, out=str(tmp_path / "ray"), backend="ray", workers=2))
    assert dispatched == ["run_on_ray"] * 3  # collection, greedy and search evaluations
    _same_trees(tmp_path / "local" / "iter_1" / "trees", tmp_path / "ray" / "iter_1" / "trees", range(2))
    for method in ("agent_q", "agent_q+mcts"):
        assert local["iterations"][1][method] == ray["iterations"][1][method]
    assert ray["config"]["backend"] == "ray"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_consecutive_collections_reuse_warm_actors_and_a_new_key_replaces_them(ray_cluster, local_trees, tmp_path):
    """Two Ray collections of the same settings in one driver run on the same actors (not built
    again), and give the local backend's trees; other settings start new actors and the old
    ones are gone (they would hold the CPUs)."""
    import time

    from webgrove.search.backends import pool_actor_pids, release_actors

    release_actors()
    ray_cfg = dict(SHOP, backend="ray", workers=2)
    run_collect(CollectConfig(**ray_cfg, goal_range="0:2", out=str(tmp_path / "first")))
    first = pool_actor_pids()
    assert len(first) == 2
    run_collect(CollectConfig(**ray_cfg, goal_range=GOALS, out=str(tmp_path / "second")))
    assert pool_actor_pids() == first  # the same actor processes
    _same_trees(local_trees, tmp_path / "second", range(4))
    run_collect(CollectConfig(**ray_cfg, goal_range="4:5", out=str(tmp_path / "one")))  # fewer goals than actors
    assert pool_actor_pids() == first
    run_collect(CollectConfig(**{**ray_cfg, "simulations": 2}, goal_range="0:2", out=str(tmp_path / "other")))
    other = pool_actor_pids()
    assert len(other) == 2 and not set(other) & set(first)
    deadline = time.time() + 20
    while any(_alive(p) for p in first) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in first)  # killed, not left holding their CPUs
    release_actors()
    assert pool_actor_pids() == []


def test_collector_key_ignores_which_goals_and_where_but_not_what_an_actor_builds(tmp_path):
    from webgrove.search.backends import collector_key
    from webgrove.search.collect import collection_identity

    def key(**kw):
        cfg = CollectConfig(**{**SHOP, "goal_range": GOALS, "out": str(tmp_path / "a"), **kw})
        return collector_key(cfg, collection_identity(cfg, "rule-fingerprint"))

    assert key() == key(goal_range="7:9", out=str(tmp_path / "b"), progress=True)
    assert key() != key(simulations=4) and key() != key(policy="random") and key() != key(workers=2)
