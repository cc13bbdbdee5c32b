"""What the shop's pages let a greedy policy solve: the information behind product choice.

The demo's policies pick a product on the results page at about chance (`benchmarks/bc_choices.py`:
9–12% of states), and Agent Q's product pairs do not move that. This asks how much of the shop can
be solved from what the pages *show*, with four visible-text policies on the same goals, each after
searching the instruction (the rule baseline's query):

- `first`: the rule baseline (first result, buy; no options).
- `first_options`: the first result, with the options the instruction names selected (as below).
- `title`: choose on the results page alone: a listed price under the instruction's limit, then the
  most instruction words in the title; select the options the instruction names; buy.
- `pages`: open every result of page 1 and read its item page and its Attributes, Features and
  Description pages (free reads through the env's snapshots: a policy would pay ~3 steps a product),
  then choose: price under the limit, the instruction's options on offer, the most attribute phrases
  the instruction names, the most instruction words anywhere; select the options; buy.
- `best_on_page` (uses the reward: an upper bound): every page-1 product bought with `pages`' option
  choice; the goal counts as solved if any of them earns reward 1.

No policy reads the goal's hidden fields; only `best_on_page` reads rewards. With `--model DIR`, a
model (`HFPolicy`, greedy) plays the same goals and joins the table, and what it does is counted step by
step: its query equal to the instruction's, the rank of the result it opens, all the instruction's
options clicked on the item page it buys from. Prints a table (success rate and score with 95%
intervals, paired against `first`) and writes benchmarks/results/ceiling.json with the exact command.

    python benchmarks/ceiling.py                                  # validation goals 1645-1844
    python benchmarks/ceiling.py --split test --start-goal 0 --goals 500
    python benchmarks/ceiling.py --model runs/demo/base                # + the demo's base, step by step
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from webgrove.agents.scripted import chosen_options, item_view, prices, words

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "ceiling.json"
ENV_ID = "webgrove/WebShop-v0"
POLICIES = ("first", "first_options", "title", "pages", "best_on_page")
SUB_PAGES = ("attributes", "features", "description")
MODEL_STEPS = 15  # a model's episode ends here unbought, as webgrove/WebShop-v0's step limit ends it
_LIMIT = re.compile(r"price lower than ([0-9.]+) dollars")


def price_limit(instruction: str) -> float:
    m = _LIMIT.search(instruction.lower())
    return float(m.group(1)) if m else float("inf")


def results(obs: str) -> list[tuple[str, str, float]]:
    """(action, title, lowest listed price) of each result on a results page, in order."""
    from webgrove.envs.shop.actions import click_action, is_product_id, split_page

    els = split_page(obs)
    out = []
    for i, el in enumerate(els[:-2]):
        if is_product_id(el.lower()):
            listed = prices(els[i + 2])
            out.append((click_action(el.lower()), els[i + 1], min(listed) if listed else float("inf")))
    return out


def read_product(env, click: str) -> dict:
    """Open a result and its sub-pages through snapshots; the env is left where it was."""
    from webgrove.envs.shop.actions import click_action

    base = env.unwrapped
    here = base.get_state()
    obs, _, _, _, info = env.step(click)
    view = item_view(obs, info["available_actions"])
    at_item = base.get_state()
    text = {}
    for sub in SUB_PAGES:
        action = click_action(sub)
        if action in info["available_actions"]:
            text[sub] = env.step(action)[0].split("< Prev [SEP]", 1)[-1]
            base.set_state(at_item)
    base.set_state(here)
    return {"click": click, **view, **text}


def page_key(product: dict, instruction: str, rank: int) -> tuple:
    said, low = words(instruction), instruction.lower()
    phrases = [p.strip().lower() for p in product.get("attributes", "").split("[SEP]") if p.strip()]
    everything = " ".join([product["title"], *(product.get(s, "") for s in SUB_PAGES)])
    return (product["price"] <= price_limit(instruction), len(chosen_options(product["groups"], instruction)),
            sum(p in low for p in phrases), len(said & words(everything)), -rank)


def buy(env, product_click: str, options: list[str]) -> float:
    """Open the product, click the options, buy; the episode's reward."""
    from webgrove.envs.shop.actions import BUY_NOW, click_action

    env.step(product_click)
    for value in options:
        env.step(click_action(value))
    return float(env.step(click_action(BUY_NOW.lower()))[1])


def run_goal(env, goal_id: int, seed: int) -> dict:
    """Every policy's reward on one goal (each from the same state after the search)."""
    from webgrove.envs.shop.actions import instruction_query, search_action

    _, info = env.reset(seed=seed, options={"goal_id": goal_id})
    instruction = info["goal"]
    obs = env.step(search_action(instruction_query(instruction)))[0]
    base = env.unwrapped
    after_search = base.get_state()
    listed = results(obs)
    out = {p: 0.0 for p in POLICIES}
    if not listed:
        return out
    read = [read_product(env, click) for click, _, _ in listed]
    said, limit = words(instruction), price_limit(instruction)
    title_pick = max(range(len(listed)), key=lambda i: (listed[i][2] <= limit, len(said & words(listed[i][1])), -i))
    page_pick = max(range(len(read)), key=lambda i: page_key(read[i], instruction, i))
    plans = {"first": (0, []), "first_options": (0, chosen_options(read[0]["groups"], instruction)), "title": (title_pick, chosen_options(read[title_pick]["groups"], instruction)),
             "pages": (page_pick, chosen_options(read[page_pick]["groups"], instruction))}
    for name, (i, options) in plans.items():
        base.set_state(after_search)
        out[name] = buy(env, listed[i][0], options)
    best = 0.0
    for product in read:
        base.set_state(after_search)
        best = max(best, buy(env, product["click"], chosen_options(product["groups"], instruction)))
    out["best_on_page"] = best
    return out


def model_goal(env, policy, goal_id: int, seed: int) -> tuple[float, dict]:
    """A greedy episode of `policy` and what it did: (reward, counts)."""
    import numpy as np

    from webgrove.agents.base import context_from
    from webgrove.envs.shop.actions import instruction_query, search_action

    obs, info = env.reset(seed=seed, options={"goal_id": goal_id})
    instruction, history, listed, wanted, counts = info["goal"], [], [], None, {}
    rng = np.random.default_rng(seed)
    for _ in range(MODEL_STEPS):
        action = policy.act(context_from(obs, info, history), rng)
        if action.startswith("search["):
            counts["query_is_instruction"] = action == search_action(instruction_query(instruction))
        clicks = [click for click, _, _ in listed]
        if action in clicks:
            counts["opened_rank"] = clicks.index(action)
        obs, reward, terminated, truncated, info = env.step(action)
        history.append(action)
        if action.startswith("search["):
            listed = results(obs)
        elif action in clicks:
            wanted = set(chosen_options(item_view(obs, info["available_actions"])["groups"], instruction))
        if terminated or truncated:
            break
    else:  # out of steps: nothing bought
        reward = 0.0
    if wanted is not None:
        counts["all_options_clicked"] = wanted <= {h[len("click["):-1] for h in history if h.startswith("click[")}
    return float(reward), counts


def behaviour(counts: list[dict]) -> dict:
    """Shares of episodes: query equal to the instruction's, opened rank 0 / 1 / 2 / 3+, options."""
    n = len(counts)
    ranks = [c["opened_rank"] for c in counts if "opened_rank" in c]
    opened = [c["all_options_clicked"] for c in counts if "all_options_clicked" in c]
    return {"episodes": n, "query_is_instruction": sum(c.get("query_is_instruction", False) for c in counts) / n,
            "opened_rank": {str(r): sum(min(x, 3) == r for x in ranks) / n for r in range(4)},
            "all_options_clicked": sum(opened) / len(opened) if opened else None}


def summarize(rewards: dict[str, list[float]], goal_ids: list[int]) -> list[dict]:
    """Per policy: success rate and score with 95% intervals, paired against `first`."""
    from webgrove.envs import is_success
    from webgrove.stats import outcome_summary, paired_comparison

    def result(rs):
        return {"goal_ids": goal_ids, "rewards": rs, "successes": [is_success(r) for r in rs]}

    first = result(rewards["first"])
    return [{"policy": name, **outcome_summary(rs, result(rs)["successes"]),
             "vs_first": paired_comparison(first, result(rs))} for name, rs in rewards.items()]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", default="train", choices=("train", "test"))
    ap.add_argument("--start-goal", type=int, default=1645, help="first goal (default: the validation goals)")
    ap.add_argument("--goals", type=int, default=200)
    ap.add_argument("--num-products", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=None, help="a model directory to play the same goals greedily")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)

    import gymnasium as gym

    import webgrove.envs  # noqa: F401  (registers the ids)

    env = gym.make(ENV_ID, split=args.split, num_products=args.num_products, max_episode_steps=None)
    start = time.perf_counter()
    rewards = {p: [] for p in POLICIES}
    goal_ids = range(args.start_goal, args.start_goal + args.goals)
    for goal_id in goal_ids:
        for name, r in run_goal(env, goal_id, args.seed + goal_id).items():
            rewards[name].append(r)
    policy, counts = None, []
    if args.model:
        from webgrove.agents.hf import HFPolicy

        policy, rewards["model"] = HFPolicy(args.model, device="cpu", temperature=0.0), []
        for goal_id in goal_ids:
            reward, c = model_goal(env, policy, goal_id, args.seed + goal_id)
            rewards["model"].append(reward)
            counts.append(c)
    env.close()
    rows = summarize(rewards, list(goal_ids))
    print(f"{ENV_ID}, {args.split} goals {goal_ids.start}..{goal_ids.stop - 1}: success % [95% CI], score, vs `first`")
    print("| policy | success % | score | vs first, points [95% CI] | McNemar p |\n|---|---|---|---|---|")
    for r in rows:
        lo, hi = r["success_rate_ci95"]
        v = r["vs_first"]
        dlo, dhi = v["success_diff_ci95"]
        print(f"| {r['policy']} | {100 * r['success_rate']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}] | {r['score']:.1f} | "
              f"{100 * v['success_diff']:+.1f} [{100 * dlo:+.1f}, {100 * dhi:+.1f}] | {v['mcnemar']['p']:.3f} |")
    if counts:
        seen = behaviour(counts)
        print(f"model {args.model}: query = the instruction's {100 * seen['query_is_instruction']:.0f}%; opened rank "
              + " / ".join(f"{k}: {100 * v:.0f}%" for k, v in seen["opened_rank"].items())
              + f" (3 = 3 or later); all the instruction's options clicked {100 * (seen['all_options_clicked'] or 0):.0f}%")
    record = {"command": "python benchmarks/ceiling.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "env": ENV_ID, "split": args.split, "goals": [goal_ids.start, goal_ids.stop], "seed": args.seed,
              "num_products": args.num_products, "model": args.model,
              "model_behaviour": behaviour(counts) if counts else None, "seconds": time.perf_counter() - start, "rows": rows,
              "rewards": rewards}
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
