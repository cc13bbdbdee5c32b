"""Where the goals of `collect` and `rollout` run: `--backend local|ray`.

Both backends run the same work functions; only the dispatch differs.

- **local** (the default): spawned processes of this machine (`--workers N`), as
  `webgrove.search.collect` and `webgrove.search.rollout` run them. Collection workers
  write finished trees to `--out` themselves (a folder every process can see).
- **ray**: a Ray cluster (`--ray-address ADDR`, or a Ray instance started here with
  `--workers` CPUs when no address is given). For collection, each actor
  (`GoalWorker`) builds its env, policy and critic once and takes goals one at a time;
  a finished tree travels back to the driver as its file's text and the driver writes
  it atomically, so the cluster needs no shared disk. Rollout episodes go out in chunks
  of episode indices as Ray tasks and come back as results.

Failures are Ray's to retry: a dead actor (killed process, crashed browser that took the
worker down) is restarted up to `max_restarts` times and its goal retried
(`max_task_retries`); rollout chunks are retried as tasks (`max_retries`). A goal whose
actor cannot be brought back is reported as an infrastructure error, and every tree
finished before is on disk; a rerun of the same command collects the rest.

Same seeds give the same trees on both backends: a goal's seeds derive from the base
seed and the goal id only (`webgrove.search.collect.goal_seed`), never from the worker.
"""
from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from webgrove.envs.errors import UsageError
from webgrove.envs.make import next_post_init

BACKENDS = ("local", "ray")
INFRASTRUCTURE = "infrastructure"  # the kind of a goal lost to the machinery, not to the policy
MAX_RESTARTS = 3  # restarts of a dead actor (Ray's max_restarts)
MAX_TASK_RETRIES = 3  # retries of a goal whose actor died (Ray's max_task_retries / max_retries)


@dataclass(kw_only=True)
class BackendArgs:
    """Where goals run: this machine's processes, or a Ray cluster."""

    backend: str = field(default="local", metadata={
        "help": "local: spawned processes here (--workers); ray: Ray actors (--ray-address, or a local "
                "Ray instance with --workers CPUs)", "choices": list(BACKENDS)})
    ray_address: str | None = field(default=None, metadata={
        "help": "Ray cluster to join (e.g. ray://head:10001 or auto); default: start a local Ray instance "
                "(--backend ray)"})

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise UsageError(f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.ray_address and self.backend != "ray":
            raise UsageError("--ray-address needs --backend ray")
        if self.backend == "ray":
            require_ray()
        next_post_init(self, BackendArgs)


def require_ray() -> Any:
    """The `ray` module; a UsageError naming the extra when it is not installed."""
    try:
        import ray
    except ImportError:
        raise UsageError("--backend ray needs Ray: pip install 'webgrove[ray]'") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int) -> Iterator[Any]:
    """Ray, connected: to `address`, else to a Ray instance started here with `num_cpus`.

    An already initialised Ray is used as it is and left running; one started here is
    shut down on exit.
    """
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                 object_store_memory=256 * 1024 * 1024)
    try:
        yield ray
    finally:
        ray.shutdown()


@contextlib.contextmanager
def backend_session(cfg: Any) -> Iterator[None]:
    """For a config that mixes in BackendArgs: with --backend ray, one Ray connection held for
    the block (`ray_session` with `cfg.workers` CPUs), so that the several collections and
    rollouts inside it (the improve loop's) share it instead of each starting Ray anew;
    nothing with --backend local."""
    if not is_ray(cfg):
        yield
        return
    with ray_session(cfg.ray_address, num_cpus=cfg.workers):
        yield


def _one_torch_thread() -> None:
    """One torch thread per worker: workers share the cores, and oversubscribed OpenMP
    threads spin-wait (measured: collection 10x slower)."""
    with contextlib.suppress(ImportError):
        import torch

        torch.set_num_threads(1)


class GoalWorker:
    """A Ray actor's body: `build(cfg)` once, then `work(state, cfg, item)` per item."""

    def __init__(self, build: Callable[[Any], Any], work: Callable[[Any, Any, Any], dict], cfg: Any):
        _one_torch_thread()
        self.cfg, self.work = cfg, work
        self.state = build(cfg)

    def pid(self) -> int:
        return os.getpid()

    def run(self, item: Any) -> dict:
        return {**self.work(self.state, self.cfg, item), "worker_pid": os.getpid()}


def run_on_ray(build: Callable[[Any], Any], work: Callable[[Any, Any, Any], dict], cfg: Any, items: list,
               on_result: Callable[[dict], None], workers: int, address: str | None = None,
               max_restarts: int = MAX_RESTARTS, max_task_retries: int = MAX_TASK_RETRIES) -> None:
    """Run `work` on every item in `min(workers, len(items))` Ray actors; `on_result` gets
    each result on the driver, in finishing order.

    An item whose actor died beyond its restarts gets `{"goal_id": item, "kind":
    "infrastructure", "error": ...}` and its actor is dropped; the others go on.
    """
    n = min(workers, len(items))
    with ray_session(address, num_cpus=n) as ray:
        actor_cls = ray.remote(num_cpus=1, max_restarts=max_restarts,
                               max_task_retries=max_task_retries)(GoalWorker)
        actors = [actor_cls.remote(build, work, cfg) for _ in range(n)]
        todo = list(reversed(items))
        running: dict[Any, tuple[Any, Any]] = {}  # object ref -> (actor, item)

        def submit(actor: Any) -> None:
            if todo:
                item = todo.pop()
                running[actor.run.remote(item)] = (actor, item)

        for actor in actors:
            submit(actor)
        try:
            while running:
                [ref], _ = ray.wait(list(running), num_returns=1)
                actor, item = running.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayActorError as exc:  # restarts used up: drop the actor
                    on_result({"goal_id": item, "kind": INFRASTRUCTURE,
                               "error": f"Ray actor died in goal {item} after {max_restarts} restarts: {exc}"})
                    continue
                submit(actor)  # the next goal first, so the actor never waits on the driver
                on_result(result)
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)


def ray_map(fn: Callable[[Any], Any], args: list, workers: int, address: str | None = None,
            max_retries: int = MAX_TASK_RETRIES) -> list:
    """`[fn(a) for a in args]` as Ray tasks (one CPU each), in order; a task whose worker
    died is retried up to `max_retries` times."""
    with ray_session(address, num_cpus=min(workers, len(args)) or 1) as ray:
        task = ray.remote(num_cpus=1, max_retries=max_retries)(_with_one_torch_thread)
        return ray.get([task.remote(fn, a) for a in args])


def _with_one_torch_thread(fn: Callable[[Any], Any], arg: Any) -> Any:
    _one_torch_thread()
    return fn(arg)


# ---------------------------------------------------------------------------
# Collection on Ray: the driver writes the trees.


def _build_collector(job: tuple[Any, dict]) -> Any:
    from webgrove.search.collect import build_parties

    cfg, _ = job
    return build_parties(cfg)


def _tree_for_driver(parties: Any, cfg: Any, identity: dict, goal_id: int) -> dict:
    from webgrove.search.collect import goal_tree

    text, result = goal_tree(parties, cfg, identity, goal_id)
    return {**result, "tree_text": text}


def _collect_on_actor(parties: Any, job: tuple[Any, dict], goal_id: int) -> dict:
    """`collect_goal_safely` without a file: the tree file's text comes back to the driver."""
    from webgrove.search.collect import collect_goal_safely

    cfg, identity = job
    return collect_goal_safely(parties, cfg, identity, goal_id, collect=_tree_for_driver)


def collect_on_ray(cfg: Any, identity: dict, todo: list[int], on_result: Callable[[dict], None]) -> None:
    """The Ray dispatch of `webgrove collect` (same contract as its local runners): every
    finished goal's tree is written to `cfg.out` here, atomically, before `on_result`."""
    from webgrove.io import write_text_atomic
    from webgrove.search.collect import tree_path

    def write_then_report(result: dict) -> None:
        text = result.pop("tree_text", None)
        if text is not None:
            start = time.perf_counter()
            write_text_atomic(tree_path(cfg.out, result["goal_id"]), text)
            result["write_s"] = time.perf_counter() - start  # the goal's time, though spent here
            result["seconds"] += result["write_s"]
        on_result(result)

    run_on_ray(_build_collector, _collect_on_actor, (cfg, identity), todo, write_then_report,
               workers=cfg.workers, address=cfg.ray_address)


def is_ray(cfg: Any) -> bool:
    """True when a config (mixing in BackendArgs) asks for the Ray backend."""
    return getattr(cfg, "backend", "local") == "ray"
