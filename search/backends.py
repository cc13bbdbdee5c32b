"""Where the goals of `collect` and `rollout` run: `--backend local|ray`.

Both backends run the same work functions; only the dispatch differs.

- **local** (the default): spawned processes of this machine (`--workers N`), as
  `webgrove.search.collect` and `webgrove.search.rollout` run them. Collection workers
  write finished trees to `--out` themselves (a folder every process can see).
- **ray**: a Ray cluster (`--ray-address ADDR`, or a Ray instance started here with
  `--workers` CPUs when no address is given). For collection, each actor
  (`GoalWorker`) builds its env, policy and critic once and takes goals in batches of
  about `BATCH_S` seconds of work (one goal a call for model policies, dozens for
  millisecond scripted trees), two calls in flight; each batch is a Ray streaming
  generator, so a finished tree travels back to the driver as soon as it finishes, as
  its file's text, and the driver writes it atomically: the cluster needs no shared
  disk. Rollout runs the same way: each actor builds its env and policy once
  (`webgrove.search.rollout.GoalRunner`) and each episode's result streams back.

Warm actors: the driver keeps the Ray actors of its last collection (`_ActorPool`), keyed
by everything an actor builds from (the collection's settings but which goals and where
their trees and reports go; the policy's fingerprint; the Ray session), and the next
collection with an equal key in the same process reuses them: no env, policy or critic is
built again (a script or notebook collecting goal ranges in turn, a benchmark's repeats).
A changed key (a rollout's actors too: they need the CPUs), the end of a Ray session started
here, and interpreter exit kill them (`release_actors`; the improve loop calls it after
each collection, as the next one has a new model). A warm actor that died between runs is
replaced before the run starts. The driver writes the returned trees in `WRITERS` threads.

Failures are Ray's to retry: a dead actor (killed process, crashed browser that took the
worker down) is restarted up to `max_restarts` times and its batches retried
(`max_task_retries`; a retried batch runs again from its start, and Ray drops the results
the driver already has). A goal whose actor cannot be brought back is reported as an
infrastructure error, and every tree finished before is on disk; a rerun of the same
command collects the rest (a rollout stops with that error: an evaluation missing a goal
is not one).

Same seeds give the same trees on both backends: a goal's seeds derive from the base
seed and the goal id only (`webgrove.search.collect.goal_seed`), never from the worker.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterator

from webgrove.envs.errors import UsageError
from webgrove.envs.make import next_post_init

BACKENDS = ("local", "ray")
INFRASTRUCTURE = "infrastructure"  # the kind of a goal lost to the machinery, not to the policy
MAX_RESTARTS = 3  # restarts of a dead actor (Ray's max_restarts)
MAX_TASK_RETRIES = 3  # retries of a goal whose actor died (Ray's max_task_retries / max_retries)
BATCH_S = 0.1  # seconds of work an actor call aims at: Ray's ~1-2 ms a call stays ~1-2% of it
PIPELINE = 2  # batch calls in flight per actor, so an actor never waits on the driver
WRITERS = 4  # threads of the driver writing the trees that come back from Ray (fsync waits in parallel)


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
        release_actors()
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


START_METHODS = ("forkserver", "spawn")
START_METHOD_ENV = "WEBGROVE_START_METHOD"  # forkserver (the default) or spawn
# What the fork server imports once, so every local worker forked from it shares these modules'
# pages (copy-on-write) instead of importing its own copy (measured: ~48 MB a spawned worker).
# No torch: the server must not start torch's threads or CUDA before it forks; a worker that
# needs torch imports it itself (and takes one thread).
FORKSERVER_PRELOAD = ("numpy", "bm25s", "webgrove.envs.shop.env", "webgrove.agents.scripted",
                      "webgrove.search.collect", "webgrove.search.rollout")


def worker_context(method: str | None = None) -> Any:
    """The multiprocessing context local workers start from (`collect` and `rollout` alike).

    `forkserver` by default: a server process that has imported `FORKSERVER_PRELOAD` forks
    each worker, so the workers share those modules' memory; `spawn` (a fresh interpreter a
    worker) with `method="spawn"` or the environment variable WEBGROVE_START_METHOD=spawn.
    """
    import multiprocessing

    method = method or os.environ.get(START_METHOD_ENV) or "forkserver"
    if method not in START_METHODS:
        raise UsageError(f"{START_METHOD_ENV} must be one of {', '.join(START_METHODS)}, got {method!r}")
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(list(FORKSERVER_PRELOAD))
    return context


def adopt_environment(environ: dict[str, str]) -> None:
    """In a local worker, first thing: take the parent's environment as it was when the work
    was handed out (`dict(os.environ)` there). A worker forked from the fork server would
    otherwise have the server's, from whenever the server started (multiprocessing hands a
    forked worker the parent's cwd and sys.path, not its environment)."""
    if environ != dict(os.environ):
        os.environ.clear()
        os.environ.update(environ)


def worker_parent_pid(context: Any) -> int:
    """The pid a worker started from `context` has as its parent: the fork server's (started
    here if need be; it exits when this process does) or this process's."""
    if context.get_start_method() != "forkserver":
        return os.getpid()
    from multiprocessing import forkserver

    forkserver.ensure_running()
    return forkserver._forkserver._forkserver_pid  # no public accessor (CPython 3.8-3.13)


def _one_torch_thread() -> None:
    """One torch thread per worker: workers share the cores, and oversubscribed OpenMP
    threads spin-wait (measured: collection 10x slower)."""
    with contextlib.suppress(ImportError):
        import torch

        torch.set_num_threads(1)


class GoalWorker:
    """A Ray actor's body: `build(cfg)` once, then `work(state, cfg, item)` per item, where
    each call brings its run's `work` and `cfg` (a warm actor serves several runs)."""

    def __init__(self, build: Callable[[Any], Any], cfg: Any):
        _one_torch_thread()
        self.state = build(cfg)

    def pid(self) -> int:
        return os.getpid()

    def run(self, work: Callable[[Any, Any, Any], dict], cfg: Any, items: list) -> Iterator[dict]:
        """Work through a batch, yielding each item's result as it finishes (called as a Ray
        streaming generator, so the driver has it before the batch ends)."""
        for item in items:
            yield {**work(self.state, cfg, item), "worker_pid": os.getpid()}


def batch_size(left: int, actors: int, item_s: float | None, batch_s: float = BATCH_S) -> int:
    """Items in the next call to an actor: about `batch_s` seconds of work at `item_s` seconds
    an item (1 while no item has been timed), at most 1/(2 x actors) of the `left` items so
    the calls shrink towards the end and the actors finish together (guided scheduling)."""
    if item_s is None or left <= 1:
        return min(1, left)
    return max(1, min(int(batch_s / max(item_s, 1e-6)), -(-left // (2 * actors))))


class _RayDispatch:
    """The driver's side of `run_on_ray`: `PIPELINE` batch calls in flight per actor, each a
    Ray streaming generator whose results are taken as they come."""

    def __init__(self, ray: Any, actors: list, job: tuple[Callable, Any], items: list,
                 on_result: Callable[[dict], None], batch_s: float, max_restarts: int, item_s: float | None):
        self.ray, self.actors, self.job, self.on_result = ray, actors, job, on_result
        self.batch_s, self.max_restarts = batch_s, max_restarts
        self.todo = list(reversed(items))
        self.running: dict[Any, tuple[int, list, list]] = {}  # generator -> (actor, batch, delivered)
        self.last: dict[int, float] = {}  # actor -> when its last result came
        self.item_s = item_s  # seconds between an actor's results (moving average; a warm pool's last)
        self.dead: set[int] = set()
        self.calls, self.largest = 0, 0

    def submit(self, actor: int) -> None:
        n = batch_size(len(self.todo), len(self.actors) - len(self.dead), self.item_s, self.batch_s)
        if n and actor not in self.dead:
            batch = [self.todo.pop() for _ in range(n)]
            gen = self.actors[actor].run.options(num_returns="streaming").remote(*self.job, batch)
            self.running[gen] = (actor, batch, [])
            self.calls, self.largest = self.calls + 1, max(self.largest, n)

    def take(self, gen: Any) -> None:
        """The next result of a ready generator; the actor's next batch once this one ends."""
        actor, batch, delivered = self.running[gen]
        try:
            ref = next(gen)
        except StopIteration:
            del self.running[gen]
            return self.submit(actor)
        try:
            result = self.ray.get(ref)
        except self.ray.exceptions.RayActorError as exc:  # restarts used up
            return self.drop(actor, exc)
        now = time.perf_counter()
        if actor in self.last:  # the first result of an actor also timed its build: not an item's time
            gap = now - self.last[actor]
            self.item_s = gap if self.item_s is None else 0.7 * self.item_s + 0.3 * gap
        self.last[actor] = now
        delivered.append(batch[len(delivered)])
        self.on_result(result)

    def drop(self, actor: int, exc: Exception) -> None:
        """A dead actor: the goal it died in (its first unfinished one: an actor runs its calls
        in order) is reported, its other unfinished goals go to the actors still alive."""
        self.dead.add(actor)
        undone = []
        for gen in [g for g, (a, _, _) in self.running.items() if a == actor]:  # in the order sent
            _, batch, delivered = self.running.pop(gen)
            undone += batch[len(delivered):]
        if undone:
            self.on_result({"goal_id": undone[0], "kind": INFRASTRUCTURE,
                            "error": f"Ray actor died in goal {undone[0]} after {self.max_restarts} restarts: {exc}"})
            self.todo.extend(reversed(undone[1:]))
        self.fill()

    def fill(self) -> None:
        """Up to `PIPELINE` calls in flight on every live actor, while goals are left."""
        for _ in range(PIPELINE):
            for actor in range(len(self.actors)):
                if sum(a == actor for a, _, _ in self.running.values()) < PIPELINE:
                    self.submit(actor)

    def run(self) -> dict:
        self.fill()
        while self.running:
            [gen], _ = self.ray.wait(list(self.running), num_returns=1)
            self.take(gen)
        for item in reversed(self.todo):  # every actor died before taking these
            self.on_result({"goal_id": item, "kind": INFRASTRUCTURE,
                            "error": "not run: every Ray actor had died beyond its restarts"})
        return {"calls": self.calls, "largest_batch": self.largest}


@dataclass
class _ActorPool:
    """The driver's warm actors: `key` says what they were built from (and in which Ray
    session); `item_s` is the last run's seconds an item, so the next run batches at once."""

    key: tuple
    actors: list
    item_s: float | None = None


_POOL: list[_ActorPool] = []  # at most one: a driver keeps the actors of its last key only


def _ray_session_id(ray: Any) -> tuple[str, str]:
    """This driver's Ray session: a new local instance has a new node, a new connection to a
    cluster a new job; actor handles of another session are stale."""
    context = ray.get_runtime_context()
    return context.get_node_id(), context.get_job_id()


def release_actors() -> None:
    """Kill this driver's warm actors, if any, so they free their CPUs (a no-op when Ray is
    down or was restarted since: the actors died with their session)."""
    if not _POOL:
        return
    pool = _POOL.pop()
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized() and pool.key[0] == _ray_session_id(ray):
        for actor in pool.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)


atexit.register(release_actors)


def _warm_pool(ray: Any, key: tuple, n: int, start: Callable[[], Any]) -> _ActorPool:
    """At least `n` live actors for `key`: the warm pool's when its key is `key` (one that
    died between runs replaced, more started if `n` is more), else new ones (the old pool
    killed first: it holds CPUs)."""
    if _POOL and _POOL[0].key != key:
        release_actors()
    if not _POOL:
        _POOL.append(_ActorPool(key, [start() for _ in range(n)]))
        return _POOL[0]
    pool = _POOL[0]
    alive = []
    for actor, ping in [(a, a.pid.remote()) for a in pool.actors]:
        try:
            ray.get(ping, timeout=60)
            alive.append(actor)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
    pool.actors = alive + [start() for _ in range(n - len(alive))]
    return pool


def pool_actor_pids() -> list[int]:
    """The pids of this driver's warm actors ([] when none are kept in this Ray session)."""
    ray = sys.modules.get("ray")
    if not _POOL or ray is None or not ray.is_initialized() or _POOL[0].key[0] != _ray_session_id(ray):
        return []
    return ray.get([a.pid.remote() for a in _POOL[0].actors])


def run_on_ray(build: Callable[[Any], Any], work: Callable[[Any, Any, Any], dict], cfg: Any, items: list,
               on_result: Callable[[dict], None], workers: int, address: str | None = None,
               max_restarts: int = MAX_RESTARTS, max_task_retries: int = MAX_TASK_RETRIES,
               batch_s: float = BATCH_S, key: Hashable | None = None) -> dict:
    """Run `work` on every item in `min(workers, len(items))` Ray actors; `on_result` gets
    each result on the driver as it finishes, in finishing order. Returns the number of actor
    calls made and the largest batch.

    Each actor runs `build(cfg)` once, then `work(state, cfg, item)`. With a `key` (everything
    of `cfg` that `build` reads), the actors stay up after the run, and the next call with an
    equal key and the same `build`, in the same Ray session, reuses them (`build` is not run
    again; `work` gets that call's `cfg`; a call with fewer items than actors uses some).
    Without a key they are killed at the end.

    Items go to actors in batches of about `batch_s` seconds of work (`batch_size`), so Ray's
    per-call cost is paid once a batch; each result streams back when its item finishes.
    An actor that dies is restarted and its batches retried by Ray (the retried batch runs
    again from its start; the results the driver already has are not delivered twice). An
    item whose actor died beyond its restarts gets `{"goal_id": item, "kind":
    "infrastructure", "error": ...}` and its actor is dropped; the rest of its batch goes to
    the other actors.
    """
    n = min(workers, len(items))
    with ray_session(address, num_cpus=n) as ray:
        actor_cls = ray.remote(num_cpus=1, max_restarts=max_restarts,
                               max_task_retries=max_task_retries)(GoalWorker)
        pool_key = (_ray_session_id(ray), object() if key is None else key,
                    f"{build.__module__}.{build.__qualname__}", max_restarts, max_task_retries)
        pool = _warm_pool(ray, pool_key, n, lambda: actor_cls.remote(build, cfg))
        dispatch = _RayDispatch(ray, pool.actors[:n], (work, cfg), items, on_result, batch_s, max_restarts,
                                pool.item_s)
        try:
            stats = dispatch.run()
        except BaseException:  # interrupted: batches may still run on the actors; start afresh next time
            release_actors()
            raise
        pool.item_s = dispatch.item_s
        for actor in sorted(dispatch.dead, reverse=True):  # dead past their restarts: replaced next time
            ray.kill(pool.actors.pop(actor), no_restart=True)
        if key is None:
            release_actors()
        return stats


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
    finished goal's tree is written to `cfg.out` here, atomically, before `on_result`.

    The driver writes in `WRITERS` threads, not in its dispatch loop: an atomic write's two
    fsyncs (~3-8 ms) cost as much as a millisecond tree, and local workers write theirs in
    parallel (measured: 40 rule trees, warm actors, 70% of the driver's time in fsync).
    `on_result` is called from those threads, one call at a time; every write has ended
    when this returns or raises.
    """
    from concurrent.futures import ThreadPoolExecutor

    from webgrove.io import write_text_atomic
    from webgrove.search.collect import tree_path

    reporting = threading.Lock()

    def write_then_report(result: dict) -> None:
        text = result.pop("tree_text", None)
        if text is not None:
            start = time.perf_counter()
            write_text_atomic(tree_path(cfg.out, result["goal_id"]), text)
            result["write_s"] = time.perf_counter() - start  # the goal's time, though spent here
            result["seconds"] += result["write_s"]
        with reporting:
            on_result(result)

    with ThreadPoolExecutor(WRITERS, thread_name_prefix="webgrove-tree-writer") as writers:
        writes = []
        run_on_ray(_build_collector, _collect_on_actor, (cfg, identity), todo,
                   lambda result: writes.append(writers.submit(write_then_report, result)),
                   workers=cfg.workers, address=cfg.ray_address, key=collector_key(cfg, identity))
        for write in writes:
            write.result()  # a failed write raises here


# A collection's settings that say which goals run and where their trees and reports go,
# never what an actor builds: two collections differing only in these share warm actors.
RUN_ONLY = ("goal_range", "out", "force_new", "progress", "json", "report_to", "run_dir", "track_step")


def collector_key(cfg: Any, identity: dict) -> str:
    """What a collection actor is built from: every setting but `RUN_ONLY` (the policy spec,
    its server and timeouts included) and the collection's identity, whose fingerprints say
    which policy and learned critic these are (a model rewritten in place is another one)."""
    import dataclasses
    import json

    values = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in RUN_ONLY}
    return json.dumps({"settings": values, "identity": identity}, sort_keys=True, default=str)


def is_ray(cfg: Any) -> bool:
    """True when a config (mixing in BackendArgs) asks for the Ray backend."""
    return getattr(cfg, "backend", "local") == "ray"
