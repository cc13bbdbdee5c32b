"""Supervised fine-tuning on (prompt, completion) rows with TRL's `SFTTrainer`.

Behaviour cloning on oracle demonstrations, RFT on successful search trajectories and
Agent-R revision trajectories all come here as rows of `prompt` and `completion`
(docs/DESIGN.md, "Training data"). The loss covers the completion and its eos only: TRL
tokenizes `prompt` and `prompt + completion + eos` and masks the common prefix, which
with our byte-level tokenizer is exactly the prompt (it ends on "Action:", a token
boundary). For a revision row the erroneous action sits in the prompt, so it is never
trained on.

This module also holds what SFT and DPO share: the common config fields, loading a
model directory, the LoRA config, and saving (merging a LoRA adapter into a plain model
directory, so every later command takes a plain model path).
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from webgrove.agents.chat import PROMPT_FORMATS

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"  # subfolder of --out that holds Trainer checkpoints (for --resume)
RESULT_FILE = "train_result.json"


@dataclass(kw_only=True)
class TrainConfig:
    """Fields every training command shares (SFT and DPO)."""

    model: str = field(metadata={"help": "model directory to start from (a plain `save_pretrained` folder)"})
    out: str = field(metadata={"help": "output directory: the trained model, checkpoints/, train_result.json"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the data"})
    max_steps: int = field(default=-1, metadata={"help": "stop after this many optimizer steps (-1: run all epochs)"})
    learning_rate: float = field(default=1e-4, metadata={"help": "peak learning rate (AdamW, linear decay)"})
    warmup_ratio: float = field(default=0.0, metadata={"help": "share of steps spent warming the learning rate up"})
    batch_size: int = field(default=8, metadata={"help": "rows per device step"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps"})
    max_length: int = field(default=1024, metadata={"help": "truncate tokenized rows to this many tokens"})
    lora: bool = field(default=False, metadata={"help": "train a LoRA adapter (PEFT) instead of all weights"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout"})
    lora_targets: str = field(default="all-linear", metadata={
        "help": "modules LoRA adapts: 'all-linear' or comma-separated module names"})
    merge: bool = field(default=True, metadata={
        "help": "merge a LoRA adapter into the weights and save a plain model (else save the adapter)"})
    seed: int = field(default=0, metadata={"help": "seed for data order and adapter init"})
    resume: bool = field(default=False, metadata={"help": "resume from the last checkpoint in OUT/checkpoints"})
    save_steps: int = field(default=0, metadata={"help": "checkpoint every N steps (0: only at the end)"})
    logging_steps: int = field(default=10, metadata={"help": "log metrics every N steps"})
    bf16: bool = field(default=False, metadata={"help": "bf16 mixed precision (GPUs; CPU stays fp32)"})
    gradient_checkpointing: bool = field(default=False, metadata={
        "help": "recompute activations in backward (saves memory on big models; slower on CPU)"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})
    num_processes: int = field(default=1, metadata={
        "help": "data-parallel processes: relaunch under `accelerate launch` (GPUs, or CPU over gloo); "
                "see webgrove.training.distributed"})
    report_to: str = field(default="none", metadata={
        "help": "experiment tracker TRL logs to (none | tensorboard | any TrainingArguments.report_to value)"})
    run_dir: str | None = field(default=None, metadata={
        "help": "TensorBoard folder (default: OUT/runs); the same as collection's and evaluation's --run-dir "
                "makes one run"})
    prompt_format: str = field(default="auto", metadata={
        "help": "rows as chat conversations through the model's chat template (chat), as text (raw), or "
                "auto (chat when the tokenizer has a chat template); the same as the collecting policy's",
        "choices": list(PROMPT_FORMATS)})

    def __post_init__(self) -> None:
        checks = {
            "num_processes": self.num_processes >= 1,
            "epochs": self.epochs > 0, "learning_rate": self.learning_rate > 0,
            "batch_size": self.batch_size >= 1, "grad_accum": self.grad_accum >= 1,
            "max_length": self.max_length >= 8, "lora_r": self.lora_r >= 1,
            "lora_dropout": 0.0 <= self.lora_dropout < 1.0, "warmup_ratio": 0.0 <= self.warmup_ratio < 1.0,
            "save_steps": self.save_steps >= 0, "logging_steps": self.logging_steps >= 1,
            "max_steps": self.max_steps == -1 or self.max_steps >= 1,
            "prompt_format": self.prompt_format in PROMPT_FORMATS,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid value for {', '.join(bad)}: "
                             + ", ".join(f"{k}={getattr(self, k)!r}" for k in bad))

    def trainer_kwargs(self) -> dict[str, Any]:
        """The `TrainingArguments` fields these options set (shared by SFTConfig and DPOConfig)."""
        return dict(
            output_dir=str(Path(self.out) / CHECKPOINTS),
            num_train_epochs=self.epochs, max_steps=self.max_steps, learning_rate=self.learning_rate,
            warmup_steps=self.warmup_ratio, lr_scheduler_type="linear",
            per_device_train_batch_size=self.batch_size, gradient_accumulation_steps=self.grad_accum,
            max_length=self.max_length, seed=self.seed, data_seed=self.seed,
            # a bar redraws into pipes and log files: only on a terminal
            logging_steps=self.logging_steps, disable_tqdm=not (self.progress and sys.stderr.isatty()),
            save_strategy="steps" if self.save_steps else "no", save_steps=self.save_steps or 500,
            save_total_limit=2, bf16=self.bf16, gradient_checkpointing=self.gradient_checkpointing,
            dataloader_num_workers=0, remove_unused_columns=True, report_to=self.tracking(),
        )

    def tracking(self) -> str:
        """TrainingArguments' `report_to`; TensorBoard's folder goes through the variable its
        callback reads when the Trainer is built."""
        if self.report_to == "tensorboard":
            os.environ["TENSORBOARD_LOGGING_DIR"] = str(self.run_dir or Path(self.out) / "runs")
        return self.report_to


def lora_config(cfg: TrainConfig):
    """PEFT LoRA config for a causal LM from the shared options."""
    from peft import LoraConfig

    targets: str | list[str] = cfg.lora_targets
    if targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, bias="none", task_type="CAUSAL_LM")


def load_model(model_dir: str | Path):
    """(model, tokenizer) from a local model directory; nothing is downloaded."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a model directory (no config.json); "
                                "make one with `webgrove init-model --out DIR`")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.eos_token is None:
        raise ValueError(f"the tokenizer in {path} has no eos token; completions could not end")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    return model, tokenizer


def save_trained(model, tokenizer, out: str | Path, merge: bool = True) -> Path:
    """Save `model` (a PEFT model is merged into plain weights when `merge`) and its tokenizer."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if merge and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def merge_adapter(adapter_dir: str | Path, out: str | Path) -> Path:
    """Merge a saved LoRA adapter into its base model and write a plain model directory."""
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    model = AutoPeftModelForCausalLM.from_pretrained(adapter_dir, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir, local_files_only=True)
    return save_trained(model, tokenizer, out, merge=True)


def last_checkpoint(out: str | Path) -> str | None:
    """The newest Trainer checkpoint under OUT/checkpoints, or None."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = Path(out) / CHECKPOINTS
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


def load_rows(data: str | Path | list[dict], columns: tuple[str, ...]) -> list[dict]:
    """Rows from a JSONL file (or a list), checked for `columns`. Raises ValueError if unusable."""
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.is_file():
            raise FileNotFoundError(f"no data file {path}")
        from webgrove.training.pairs import RowsFileError, read_jsonl

        rows = read_jsonl(path, columns)
        if not rows:
            raise RowsFileError(path, "no rows (an empty file)")
    else:
        rows = list(data)
    if not rows:
        raise ValueError("no rows in the given list")
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise ValueError(f"rows lack column(s) {missing}; have {sorted(rows[0])}")
    return rows


def run_trainer(trainer, cfg: TrainConfig, tokens_per_epoch: int, rows: int) -> dict:
    """Train (resuming if asked), save the result, return and write a small summary."""
    resume = last_checkpoint(cfg.out) if cfg.resume else None
    start = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - start
    main = trainer.is_world_process_zero()  # under accelerate launch, only the main process writes
    if main:
        save_trained(trainer.model, trainer.processing_class, cfg.out, merge=cfg.merge)
    steps = int(output.global_step)
    epochs_done = float(trainer.state.epoch or 0.0)
    summary = {
        "rows": rows, "steps": steps, "epochs": epochs_done,
        "train_loss": float(output.training_loss) if not math.isnan(output.training_loss) else None,
        "seconds": seconds, "seconds_per_step": seconds / steps if steps else None,
        "tokens_per_second": tokens_per_epoch * epochs_done / seconds if seconds > 0 else None,
        "resumed_from": resume, "out": str(cfg.out), "num_processes": trainer.args.world_size,
        "log": [h for h in trainer.state.log_history if "loss" in h],
    }
    if main:
        (Path(cfg.out) / RESULT_FILE).write_text(json.dumps(summary, indent=2))
    return summary


# ---------------------------------------------------------------------------------------
# SFT

@dataclass(kw_only=True)
class SFTRunConfig(TrainConfig):
    """Supervised fine-tuning on prompt/completion rows; the loss covers completions only."""

    data: str = field(metadata={"help": "JSONL with prompt and completion columns"})
    learning_rate: float = field(default=1e-3, metadata={"help": "peak learning rate (AdamW, linear decay)"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the data"})


def sft_dataset_rows(rows: list[dict], fmt: str, extra: tuple[str, ...] = ()) -> list[dict]:
    """The trainer's prompt/completion columns (and the `extra` ones): text (fmt "raw") or TRL's
    conversational format (fmt "chat": `webgrove.agents.chat.conversational`)."""
    from webgrove.agents.chat import conversational

    out = [{c: r[c] for c in ("prompt", "completion", *extra)} for r in rows]
    return [conversational(r, ("completion",)) for r in out] if fmt == "chat" else out


def make_sft_trainer(cfg: SFTRunConfig, rows: list[dict] | None = None, model=None, tokenizer=None):
    """An `SFTTrainer` for `cfg` (rows from `cfg.data` unless given; model from `cfg.model` unless given)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from webgrove.agents.chat import resolve_format

    rows = load_rows(cfg.data if rows is None else rows, ("prompt", "completion"))
    if model is None:
        model, tokenizer = load_model(cfg.model)
    dataset = Dataset.from_list(sft_dataset_rows(rows, resolve_format(tokenizer, cfg.prompt_format)))
    # rows of similar length share a batch: demonstration prompts run from ~60 to ~700
    # tokens, and a CPU computes on every padding token
    args = SFTConfig(**cfg.trainer_kwargs(), completion_only_loss=True, packing=False,
                     train_sampling_strategy="group_by_length")
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                      peft_config=lora_config(cfg) if cfg.lora else None)


def train_sft(cfg: SFTRunConfig, rows: list[dict] | None = None) -> dict:
    """Fine-tune `cfg.model` on prompt/completion rows and save the result to `cfg.out`.

    Returns a summary: rows, steps, train_loss, seconds, tokens_per_second, ... (also
    written to OUT/train_result.json).
    """
    trainer = make_sft_trainer(cfg, rows)
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    return run_trainer(trainer, cfg, tokens, len(trainer.train_dataset))


def run_sft(cfg: SFTRunConfig) -> int:
    from webgrove.training.distributed import leave_process_group, needs_relaunch, relaunch

    if needs_relaunch(cfg):
        return relaunch(("train", "sft"), cfg)
    s = train_sft(cfg)
    leave_process_group()
    log.info(f"sft: {s['rows']} rows, {s['steps']} steps, loss {s['train_loss']:.4f}, "
             f"{s['seconds']:.1f}s ({s['tokens_per_second']:.0f} tokens/s) -> {s['out']}")
    return 0


@dataclass
class MergeConfig:
    """Merge a saved LoRA adapter into its base model and write a plain model directory."""

    adapter: str = field(metadata={"help": "adapter directory (saved with --no-merge)"})
    out: str = field(metadata={"help": "output model directory"})


def run_merge(cfg: MergeConfig) -> int:
    log.info(f"merged model written to {merge_adapter(cfg.adapter, cfg.out)}")
    return 0


# ---------------------------------------------------------------------------------------
# Demonstrations for behaviour cloning

def demonstration_rows(env_id: str = "webgrove/WebShop-v0", split: str = "train", goals: range = range(100),
                       seed: int = 0, num_products: int = 1000, only_successes: bool = True,
                       first_steps: int | None = None, paginated: bool = True,
                       expert: str = "oracle") -> list[dict]:
    """An expert's episodes on `goals` as SFT rows: (policy_prompt(ctx), action_completion(action)).

    `expert` is a scripted policy spec: "oracle" (knows the hidden target product) or one that
    reads only the pages, e.g. "rule-options" (the first result with the instruction's options).
    Episode i of the range resets with seed + i. With `only_successes`, episodes whose
    purchase does not earn reward 1 are left out (the oracle can miss a target it cannot find).
    With `first_steps`, only each episode's first steps are kept (e.g. 1: the search query,
    whose short prompt makes it a cheap demonstration). With `paginated=False`, episodes
    in which the oracle turns a results page are left out: it turns pages because it knows
    where the target is, which nothing on the page shows, so cloning those steps teaches a
    small model to page forward blindly.
    """
    from webgrove.agents.episode import run_episode
    from webgrove.agents.prompts import action_completion, policy_prompt
    from webgrove.agents.specs import SCRIPTED, make_policy
    from webgrove.envs.make import make_env

    if expert not in SCRIPTED:
        raise ValueError(f"expert must be a scripted policy ({', '.join(SCRIPTED)}), got {expert!r}")
    env = make_env(env_id, split=split, num_products=num_products)
    rows: list[dict] = []
    try:
        teacher = make_policy(expert, env=env)
        for i, goal_id in enumerate(goals):
            episode: list[dict] = []

            def act(ctx, goal_id=goal_id, episode=episode):
                action = teacher.act(ctx)
                episode.append({"prompt": policy_prompt(ctx), "completion": action_completion(action),
                                "goal_id": goal_id, "depth": len(ctx.history)})
                return action

            result = run_episode(env, act, goal_id=goal_id, seed=seed + i)
            turns_pages = any(a in ("click[next >]", "click[< prev]") for a in result.actions)
            if (result.success or not only_successes) and (paginated or not turns_pages):
                rows.extend(episode[:first_steps])
    finally:
        env.close()
    return rows


def results_page_rows(goals: range, expert: str = "rule-options", seed: int = 0, num_products: int = 1000,
                      pages: int = 2, short_words: int = 6, env_id: str = "webgrove/WebShop-v0",
                      split: str = "train") -> list[dict]:
    """The expert's choice on results pages, as SFT rows: for each goal, the results of two
    queries (the instruction's, and its first `short_words` words) on `pages` pages each.

    An episode shows one results page per goal, so whole demonstrations hold only about one
    product choice a goal; the demo's 0.6 M model did not learn "open the first result" from
    ~1,000 of them (11% of validation states), and did after one epoch of ~6,500 of these rows
    (62%; 69% after two). Rows carry `goal_id` and `depth` like `demonstration_rows`.
    """
    from webgrove.agents.base import context_from
    from webgrove.agents.prompts import action_completion, policy_prompt
    from webgrove.agents.scripted import NEXT, instruction_query
    from webgrove.agents.specs import make_policy
    from webgrove.envs.make import make_env
    from webgrove.envs.shop.actions import search_action

    env = make_env(env_id, split=split, num_products=num_products)
    rows: list[dict] = []
    try:
        teacher = make_policy(expert, env=env)
        for i, goal_id in enumerate(goals):
            for short in (False, True):
                obs, info = env.reset(seed=seed + i, options={"goal_id": goal_id})
                query = instruction_query(context_from(obs, info, []).goal)
                history = [search_action(" ".join(query.split()[:short_words]) if short else query)]
                obs, _, _, _, info = env.step(history[0])
                for _ in range(pages):
                    ctx = context_from(obs, info, history)
                    rows.append({"prompt": policy_prompt(ctx), "completion": action_completion(teacher.act(ctx)),
                                 "goal_id": goal_id, "depth": len(history)})
                    if NEXT not in ctx.available_actions:
                        break
                    obs, _, _, _, info = env.step(NEXT)
                    history.append(NEXT)
    finally:
        env.close()
    return rows


@dataclass
class DemosConfig:
    """Record an expert's demonstrations as SFT rows (prompt, completion) for behaviour cloning."""

    out: str = field(metadata={"help": "output JSONL"})
    env: str = field(default="webgrove/WebShop-v0", metadata={"help": "Gymnasium id (a shop env)"})
    split: str = field(default="train", metadata={"help": "goal split", "choices": ["train", "test"]})
    goal_range: str = field(default="0:500", metadata={"help": "goal ids A:B (A included, B excluded)"})
    seed: int = field(default=0, metadata={"help": "base seed; episode i resets with seed + i"})
    num_products: int | None = field(default=None, metadata={"help": "synthetic catalog size (default 1000)"})
    expert: str = field(default="oracle", metadata={
        "help": "who demonstrates: oracle (knows the hidden target) or rule-options (reads only the pages)",
        "choices": ["oracle", "rule-options", "rule"]})

    def __post_init__(self) -> None:
        from webgrove.envs.errors import UsageError
        from webgrove.envs.make import SHOP_IDS, EnvArgs, parse_goal_range

        if self.env not in SHOP_IDS:  # the oracle reads the shop's catalog
            raise UsageError(f"demos need a shop env ({', '.join(sorted(SHOP_IDS))}): the oracle reads its "
                             f"catalog; {self.env} has none")
        env = EnvArgs(env=self.env, split=self.split, num_products=self.num_products)
        env.check_goals(parse_goal_range(self.goal_range))


def run_demos(cfg: DemosConfig) -> int:
    from webgrove.envs.make import parse_goal_range
    from webgrove.io import write_jsonl_atomic

    goals = parse_goal_range(cfg.goal_range)
    rows = demonstration_rows(cfg.env, cfg.split, goals, cfg.seed, cfg.num_products, expert=cfg.expert)
    n = write_jsonl_atomic(cfg.out, rows)
    log.info(f"demos: {n} steps from {len({r['goal_id'] for r in rows})} of {len(goals)} goals -> {cfg.out}")
    return 0
