"""Speed and memory of the live-browser envs, against BrowserGym and MiniWoB's Selenium env.

In one run, on the same MiniWoB tasks, with the same scripted solutions
(`envs/browser/miniwob_solutions.py`, which name targets by role and name) and the
same Chromium (/usr/bin/chromium, or WEBGROVE_CHROMIUM):

* webgrove `webgrove/miniwob.<task>-v0`: axtree only (default), and with screenshot
  and HTML too (closer to BrowserGym's observation, which always holds an AXTree,
  a DOM snapshot and a screenshot);
* BrowserGym `browsergym/miniwob.<task>` (browsergym-miniwob, in its own venv at
  benchmarks/.venv-browsergym, created here when missing): as shipped (0.5 s
  `pre_observation_delay`) and with that delay set to 0;
* the `miniwob` package's Selenium env `miniwob/<task>-v1` (Debian chromium-driver).

Also `webgrove/WebShopBrowser-v0` versus `webgrove/WebShop-v0` steps/s with the oracle,
and memory per browser env (PSS of the Python process, Playwright's driver and
Chromium's processes). Every part runs in its own subprocess. Prints a table and
writes benchmarks/results/browser_env.json.

    python benchmarks/browser_env.py                       # everything
    python benchmarks/browser_env.py --parts ours browsergym --episodes 5
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "browser_env.json"
BG_VENV = ROOT / "benchmarks" / ".venv-browsergym"
BG_REQUIREMENTS = ["browsergym-miniwob==0.14.3", "browsergym-core==0.14.3", "psutil"]
TASKS = ["click-test", "click-button", "enter-text", "click-checkboxes"]
PARTS = ["ours", "browsergym", "selenium", "shop", "memory"]
TARGET_SPEEDUP = 5.0  # our steps/s over BrowserGym's (as shipped), from the issue


def chromium_path() -> str:
    return os.environ.get("WEBGROVE_CHROMIUM") or "/usr/bin/chromium"


# -- shared by every backend -------------------------------------------------------------

def _webgrove_from_source() -> None:
    """Make `webgrove.envs` importable where webgrove is not installed (the BrowserGym
    venv): pyproject's package-dir map (webgrove.envs -> envs/), by hand."""
    sys.path.insert(0, str(ROOT))
    import webgrove

    if str(ROOT) not in webgrove.__path__:
        webgrove.__path__.append(str(ROOT))


def run_episodes(backend, task: str, episodes: int) -> dict:
    """Reset, then play the scripted plan; time resets and steps separately."""
    _webgrove_from_source()
    from webgrove.envs.browser.miniwob_solutions import SOLUTIONS

    reset_s = step_s = 0.0
    steps = successes = obs_chars = 0
    for episode in range(episodes + 1):  # episode 0 warms up and is not counted
        t = time.perf_counter()
        goal, obs = backend.reset(seed=episode)
        dt_reset = time.perf_counter() - t
        first_obs_chars = backend.obs_chars(obs)  # the task page, before any action
        reward, dt_steps, n = 0.0, 0.0, 0
        for step in SOLUTIONS[task](goal):
            action = backend.action(step, obs)
            t = time.perf_counter()
            obs, reward, done = backend.step(action)
            dt_steps += time.perf_counter() - t
            n += 1
            if done:
                break
        if episode == 0:
            continue
        reset_s += dt_reset
        step_s += dt_steps
        steps += n
        successes += reward >= 1.0
        obs_chars += first_obs_chars
    return {
        "task": task, "episodes": episodes, "steps": steps,
        "steps_per_s": round(steps / step_s, 2), "resets_per_s": round(episodes / reset_s, 2),
        "success_rate": round(successes / episodes, 3),
        "obs_text_chars": round(obs_chars / episodes),
    }


# -- webgrove ------------------------------------------------------------------------------

class OursBackend:
    def __init__(self, task: str, extras: bool):
        import gymnasium as gym

        import webgrove.envs  # noqa: F401

        self.env = gym.make(f"webgrove/miniwob.{task}-v0", screenshot=extras, html=extras)

    def reset(self, seed):
        obs, _ = self.env.reset(seed=seed)
        return obs["goal"], obs

    def action(self, step, obs):
        from webgrove.envs.browser.miniwob_solutions import plan_step_to_action

        return plan_step_to_action(step, obs["axtree"])

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if info["error"]:
            raise RuntimeError(info["error"])
        return obs, reward, terminated or truncated

    def obs_chars(self, obs):
        return len(obs["axtree"])

    def close(self):
        self.env.close()


def part_ours(episodes: int, extras: bool) -> list[dict]:
    rows = []
    for task in TASKS:
        backend = OursBackend(task, extras)
        try:
            rows.append(run_episodes(backend, task, episodes))
        finally:
            backend.close()
    return rows


# -- BrowserGym ----------------------------------------------------------------------------

_BG_LINE = re.compile(r"^\s*\[(?P<bid>[^\]]+)\] (?P<role>\w+) '(?P<name>(?:[^'\\]|\\.)*)'")


class BrowserGymBackend:
    def __init__(self, task: str, delay: float | None):
        from playwright.sync_api._generated import BrowserType

        # BrowserGym launches Playwright's own Chromium for the env and for its chat
        # window; neither takes an executable here, so default it for every launch.
        original = BrowserType.launch

        def launch(self_, *args, **kwargs):
            kwargs.setdefault("executable_path", chromium_path())
            return original(self_, *args, **kwargs)

        BrowserType.launch = launch
        import gymnasium as gym

        import browsergym.miniwob  # noqa: F401
        from browsergym.utils.obs import flatten_axtree_to_str

        self._flatten = flatten_axtree_to_str
        kwargs = {"pw_chromium_kwargs": {"executable_path": chromium_path()}}
        if delay is not None:
            kwargs["pre_observation_delay"] = delay
        self.env = gym.make(f"browsergym/miniwob.{task}", **kwargs)

    def reset(self, seed):
        obs, _ = self.env.reset(seed=seed)
        return obs["goal"], obs

    def action(self, step, obs):
        matches = []
        for line in self._flatten(obs["axtree_object"]).splitlines():
            m = _BG_LINE.match(line)
            if m and m["role"] == step.role and (step.name is None or m["name"] == step.name):
                matches.append(m["bid"])
        bid = matches[step.nth]
        if step.kind == "click":
            return f"click({bid!r})"
        if step.kind == "type":
            return f"fill({bid!r}, {step.text!r})"
        return f"select_option({bid!r}, {step.text!r})"

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if obs["last_action_error"]:
            raise RuntimeError(obs["last_action_error"])
        return obs, reward, terminated or truncated

    def obs_chars(self, obs):
        return len(self._flatten(obs["axtree_object"]))

    def close(self):
        self.env.close()


def part_browsergym(episodes: int, delay: float | None) -> list[dict]:
    os.environ.setdefault("MINIWOB_URL", _miniwob_url())
    rows = []
    for task in TASKS:
        backend = BrowserGymBackend(task, delay)
        try:
            rows.append(run_episodes(backend, task, episodes))
        finally:
            backend.close()
    return rows


def _miniwob_url() -> str:
    out = subprocess.run(
        [sys.executable if not _in_bg_venv() else str(ROOT / ".venv" / "bin" / "python"), "-c",
         "import importlib.util, pathlib; "
         "print(pathlib.Path(importlib.util.find_spec('miniwob').origin).parent / 'html' / 'miniwob')"],
        check=True, capture_output=True, text=True)
    return Path(out.stdout.strip()).as_uri() + "/"


def _in_bg_venv() -> bool:
    return Path(sys.prefix).resolve() == BG_VENV.resolve()


def ensure_browsergym_venv() -> Path:
    """The benchmark-only venv with browsergym-miniwob; created on first use."""
    python = BG_VENV / "bin" / "python"
    if python.exists():
        return python
    print(f"creating {BG_VENV} (browsergym-miniwob, for this benchmark only)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(BG_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt"),
                    *BG_REQUIREMENTS], check=True)
    return python


# -- MiniWoB's Selenium env ----------------------------------------------------------------

class SeleniumBackend:
    def __init__(self, task: str):
        os.environ.setdefault("MINIWOB_CHROME_BINARY", chromium_path())
        os.environ.setdefault("MINIWOB_CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")
        import gymnasium as gym
        import miniwob  # noqa: F401
        from miniwob.action import ActionTypes

        self.types = ActionTypes
        self.env = gym.make(f"miniwob/{task}-v1")

    def reset(self, seed):
        obs, _ = self.env.reset(seed=seed)
        return obs["utterance"], obs

    def action(self, step, obs):
        elements = obs["dom_elements"]
        if step.role == "button":
            matches = [e for e in elements if e["tag"] == "button" and (step.name is None or e["text"] == step.name)]
        elif step.role == "checkbox":  # <label><input type=checkbox>NAME</label>
            parents = {e["parent"] for e in elements if e["tag"] == "t" and e["text"] == step.name}
            matches = [e for e in elements if e["tag"] == "input_checkbox" and e["parent"] in parents]
        elif step.role == "textbox":
            matches = [e for e in elements if e["tag"] in ("input_text", "input_password", "textarea")]
        else:
            raise ValueError(f"no Selenium mapping for role {step.role}")
        ref = int(matches[step.nth]["ref"])
        if step.kind == "click":
            return self.env.unwrapped.create_action(self.types.CLICK_ELEMENT, ref=ref)
        return self.env.unwrapped.create_action(self.types.FOCUS_ELEMENT_AND_TYPE_TEXT, ref=ref, text=step.text)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        # MiniWoB's reward is time-discounted; success is the raw reward.
        return obs, float(info.get("raw_reward", reward) > 0), terminated or truncated

    def obs_chars(self, obs):
        return len(json.dumps([{k: e[k] for k in ("ref", "tag", "text", "value")} for e in obs["dom_elements"]]))

    def close(self):
        self.env.close()


def part_selenium(episodes: int) -> list[dict]:
    rows = []
    for task in TASKS:
        backend = SeleniumBackend(task)
        try:
            rows.append(run_episodes(backend, task, episodes))
        finally:
            backend.close()
    return rows


# -- the shop: browser versus text ---------------------------------------------------------

def part_shop(episodes: int) -> list[dict]:
    import gymnasium as gym

    import webgrove.envs  # noqa: F401
    from webgrove.agents.base import StepContext
    from webgrove.agents.scripted import OraclePolicy
    from webgrove.envs.browser.shop import text_action_to_browser

    rows = []
    for env_id in ("webgrove/WebShop-v0", "webgrove/WebShopBrowser-v0"):
        env = gym.make(env_id, split="test")
        browser = env_id.endswith("Browser-v0")
        oracle = OraclePolicy(env)
        text = gym.make("webgrove/WebShop-v0", split="test")  # gives the oracle its text pages
        reset_s = step_s = 0.0
        steps = 0
        rewards = []
        n = episodes * (1 if browser else 20)
        for goal_id in range(n + 1):
            t = time.perf_counter()
            obs, info = env.reset(options={"goal_id": goal_id})
            dt_reset = time.perf_counter() - t
            tobs, tinfo = text.reset(options={"goal_id": goal_id})
            history, dt, k = [], 0.0, 0
            for _ in range(15):
                action = oracle.act(StepContext(tinfo["goal"], tobs, tinfo["available_actions"], history))
                history.append(action)
                tobs, _, _, _, tinfo = text.step(action)
                act = text_action_to_browser(action, obs["axtree"]) if browser else action
                t = time.perf_counter()
                obs, reward, terminated, truncated, info = env.step(act)
                dt += time.perf_counter() - t
                k += 1
                if terminated or truncated:
                    break
            if goal_id == 0:
                continue  # warm-up
            reset_s += dt_reset
            step_s += dt
            steps += k
            rewards.append(reward)
        env.close()
        text.close()
        rows.append({"env": env_id, "episodes": n, "steps": steps,
                     "steps_per_s": round(steps / step_s, 2), "resets_per_s": round(n / reset_s, 2),
                     "mean_reward": round(sum(rewards) / len(rewards), 4)})
    return rows


# -- memory --------------------------------------------------------------------------------

def _tree_pss_mb(root_pids: list[int]) -> float:
    """PSS (proportional set size) of these processes and all their descendants, in MiB."""
    import psutil

    seen, total = set(), 0
    for pid in root_pids:
        try:
            root = psutil.Process(pid)
            procs = [root] + root.children(recursive=True)
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            if p.pid in seen:
                continue
            seen.add(p.pid)
            try:
                total += p.memory_full_info().pss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
    return total / 2**20


def part_memory(n: int = 4) -> dict:
    import gymnasium as gym

    import webgrove.envs  # noqa: F401
    from webgrove.envs.browser.chromium import Chromium

    me = os.getpid()
    base = _tree_pss_mb([me])
    out = {"python_baseline_mb": round(base, 1)}

    # Each env launches its own Chromium (the default); one Playwright driver per process.
    envs_ = []
    for i in range(n):
        env = gym.make("webgrove/miniwob.click-checkboxes-v0")
        env.reset(seed=i)
        envs_.append(env)
        if i == 0:
            one = _tree_pss_mb([me])
    many = _tree_pss_mb([me])
    out["own_browser_first_env_mb"] = round(one - base, 1)
    out["own_browser_each_more_env_mb"] = round((many - one) / (n - 1), 1)
    for env in envs_:
        env.close()

    # Envs sharing one Chromium (a context each).
    with Chromium() as chromium:
        envs_ = []
        for i in range(n):
            env = gym.make("webgrove/miniwob.click-checkboxes-v0", browser=chromium)
            env.reset(seed=i)
            envs_.append(env)
            if i == 0:
                one = _tree_pss_mb([me])
        many = _tree_pss_mb([me])
        out["shared_browser_first_env_mb"] = round(one - base, 1)
        out["shared_browser_each_more_env_mb"] = round((many - one) / (n - 1), 1)
        for env in envs_:
            env.close()

    # AsyncVectorEnv: a worker process per env, each with its own driver and Chromium.
    vec = gym.vector.AsyncVectorEnv([lambda: gym.make("webgrove/miniwob.click-checkboxes-v0")] * n,
                                    shared_memory=False)
    vec.reset(seed=list(range(n)))
    workers = [p.pid for p in vec.processes]
    t = time.perf_counter()
    for _ in range(10):
        vec.reset(seed=list(range(n)))
    out["async_vector_resets_per_s"] = round(10 * n / (time.perf_counter() - t), 2)
    out["async_vector_per_env_mb"] = round(_tree_pss_mb(workers) / n, 1)
    out["async_vector_envs"] = n
    vec.close()
    return out


# -- driver ----------------------------------------------------------------------------------

def run_part(python: str, part: str, episodes: int, extra: list[str] = ()) -> object:
    cmd = [python, __file__, "--part", part, "--episodes", str(episodes), *extra]
    print("$ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if proc.returncode != 0:
        print(proc.stderr[-3000:], file=sys.stderr)
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _table(rows: list[dict], cols: list[str]) -> str:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def _summary(rows: list[dict]) -> dict:
    steps = sum(r["steps"] for r in rows)
    step_time = sum(r["steps"] / r["steps_per_s"] for r in rows)
    episodes = sum(r["episodes"] for r in rows)
    reset_time = sum(r["episodes"] / r["resets_per_s"] for r in rows)
    return {"steps_per_s": round(steps / step_time, 2), "resets_per_s": round(episodes / reset_time, 2),
            "success_rate": round(sum(r["success_rate"] * r["episodes"] for r in rows) / episodes, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=PARTS, choices=PARTS)
    parser.add_argument("--episodes", type=int, default=10, help="episodes per task (after one warm-up)")
    parser.add_argument("--part", help=argparse.SUPPRESS)  # internal: run one part, print JSON
    parser.add_argument("--extras", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--delay", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.part:
        result = {
            "ours": lambda: part_ours(args.episodes, args.extras),
            "browsergym": lambda: part_browsergym(args.episodes, args.delay),
            "selenium": lambda: part_selenium(args.episodes),
            "shop": lambda: part_shop(args.episodes),
            "memory": lambda: part_memory(),
        }[args.part]()
        print(json.dumps(result))
        return 0

    py = sys.executable
    results: dict[str, object] = {}
    if "ours" in args.parts:
        results["webgrove (axtree)"] = run_part(py, "ours", args.episodes)
        results["webgrove (axtree+screenshot+html)"] = run_part(py, "ours", args.episodes, ["--extras"])
    if "browsergym" in args.parts:
        bg = str(ensure_browsergym_venv())
        results["BrowserGym (as shipped, 0.5 s delay)"] = run_part(bg, "browsergym", args.episodes)
        results["BrowserGym (pre_observation_delay=0)"] = run_part(bg, "browsergym", args.episodes,
                                                                   ["--delay", "0"])
    if "selenium" in args.parts:
        results["miniwob Selenium env"] = run_part(py, "selenium", args.episodes)
    shop = run_part(py, "shop", args.episodes) if "shop" in args.parts else None
    memory = run_part(py, "memory", args.episodes) if "memory" in args.parts else None

    summary_rows = []
    for name, rows in results.items():
        if isinstance(rows, dict):  # an error
            summary_rows.append({"env": name, "steps_per_s": rows.get("error")})
            continue
        print(f"\n{name}\n" + _table(rows, ["task", "episodes", "steps", "steps_per_s", "resets_per_s",
                                             "success_rate", "obs_text_chars"]))
        summary_rows.append({"env": name, **_summary(rows)})
    print("\nMiniWoB (" + ", ".join(TASKS) + ")\n"
          + _table(summary_rows, ["env", "steps_per_s", "resets_per_s", "success_rate"]))
    speedup = None
    ours = next((r for r in summary_rows if r["env"] == "webgrove (axtree)"), None)
    bg = next((r for r in summary_rows if r["env"].startswith("BrowserGym (as shipped")), None)
    if ours and bg and isinstance(bg.get("steps_per_s"), float):
        speedup = round(ours["steps_per_s"] / bg["steps_per_s"], 2)
        print(f"target: webgrove steps/s >= {TARGET_SPEEDUP}x BrowserGym's: {speedup}x -> "
              f"{'met' if speedup >= TARGET_SPEEDUP else 'MISSED'}")
    if isinstance(shop, list):
        print("\nShop, oracle\n" + _table(shop, ["env", "episodes", "steps", "steps_per_s", "resets_per_s",
                                                 "mean_reward"]))
    if isinstance(memory, dict):
        print("\nMemory (PSS, MiB)\n" + _table([memory], list(memory)))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "command": " ".join(["python"] + sys.argv), "chromium": chromium_path(),
        "miniwob": results, "summary": summary_rows, "speedup_vs_browsergym": speedup,
        "shop": shop, "memory": memory}, indent=2))
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
