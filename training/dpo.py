"""Off-policy DPO on preference pairs with TRL's `DPOTrainer` (LoRA through PEFT by default).

Off-policy as in Agent Q: the reference log-probabilities are the collecting policy's,
stored in the trees and carried by every pair as `ref_chosen_logps` / `ref_rejected_logps`
(docs/DESIGN.md, "Training data"). TRL reads those columns when `precompute_ref_log_probs` is
on, and then holds no reference model; but it would still recompute them with the current
model before training. `StoredRefDPOTrainer` skips that recomputation when every row
already carries both values, so no second model and no extra pass over the data are
needed. Rows without stored values (pairs from a scripted collector, say) can instead
get them from the starting model (`--ref-logps model`).

The stored values must be on the same tokens TRL scores: the completion's tokens and the
eos (a chat template's end of turn), given the prompt, tokenized together and split where
prompt and completion part. `webgrove.agents.hf.HFPolicy` scores exactly that, and
`completion_logprobs` below does too, both through `webgrove.agents.chat` (`--prompt-format`
must be the collecting policy's); the tests check that TRL's first loss on pairs whose
stored values come from the model is log 2.

`--loss-type choice_sigmoid` / `choice_ce` (and `--nll-target choice`) train the
constrained-choice probability the agent acts on instead of the sequence's; the losses,
the optional pair columns they read and their reference are in `webgrove.training.choice`.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from webgrove.training.choice import (CANDIDATE_Q, CANDIDATES, CHOICE_LOSSES, CHOICE_REF_COLUMNS, NLL_TERMS,
                                      choice_trainer_class)
from webgrove.envs.errors import UsageError
from webgrove.training.sft import TrainConfig, load_model, load_rows, lora_config, run_trainer

log = logging.getLogger(__name__)

PAIR_TEXT_COLUMNS = ("prompt", "chosen", "rejected")
REF_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")
REF_SOURCES = ("stored", "model")


@dataclass(kw_only=True)
class DPORunConfig(TrainConfig):
    """DPO on preference pairs, off-policy: reference log-probs come from the trees."""

    pairs: str = field(metadata={"help": "JSONL of pairs (prompt, chosen, rejected, ref_chosen_logps, ...)"})
    beta: float = field(default=0.1, metadata={"help": "DPO β: strength of the pull towards the reference"})
    loss_type: str = field(default="sigmoid", metadata={
        "help": "sigmoid = DPO on sequence log-probs (or any TRL loss type: ipo, hinge, ...); "
                "choice_sigmoid = DPO on the constrained-choice log-probs the agent acts on; "
                "choice_ce = listwise cross-entropy of the choice towards the best candidate (training/choice.py)"})
    sft_weight: float = field(default=0.0, metadata={
        "help": "weight of an NLL loss on the chosen action added to the preference loss (RPO); 0: none"})
    nll_target: str = field(default="sequence", metadata={
        "help": "what the NLL term reads: sequence (log-prob of every token) or choice (the choice log-prob)",
        "choices": list(NLL_TERMS)})
    ref_logps: str = field(default="stored", metadata={
        "help": "reference log-probs: stored (the collecting policy's, from the pairs) or model "
                "(computed once with the starting model)", "choices": list(REF_SOURCES)})
    lora: bool = field(default=True, metadata={"help": "train a LoRA adapter (PEFT); --no-lora for all weights"})
    learning_rate: float = field(default=5e-4, metadata={"help": "peak learning rate (AdamW, linear decay)"})
    epochs: float = field(default=2.0, metadata={"help": "passes over the pairs"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if self.sft_weight < 0:
            raise ValueError(f"sft_weight must be >= 0, got {self.sft_weight}")
        if self.ref_logps not in REF_SOURCES:
            raise ValueError(f"ref_logps must be one of {REF_SOURCES}, got {self.ref_logps!r}")
        if self.nll_target not in NLL_TERMS:
            raise ValueError(f"nll_target must be one of {tuple(NLL_TERMS)}, got {self.nll_target!r}")

    @property
    def choice_level(self) -> bool:
        """True when some term reads choice log-probs (then `ChoiceDPOTrainer` runs the loss)."""
        return self.loss_type in CHOICE_LOSSES or (self.sft_weight > 0 and self.nll_target == "choice")

    def loss_terms(self) -> list[tuple[str, float]]:
        """(loss name, weight) pairs of `webgrove.training.choice.LOSSES` this config sums."""
        terms = [(self.loss_type, 1.0)]
        if self.sft_weight > 0:
            terms.append((NLL_TERMS[self.nll_target], self.sft_weight))
        return terms

    def to_trl(self):
        """The TRL `DPOConfig` these options describe."""
        from trl import DPOConfig

        if self.choice_level:  # the loss is ours (loss_terms); TRL only tokenizes and steps
            return DPOConfig(**self.trainer_kwargs(), beta=self.beta, precompute_ref_log_probs=True,
                             disable_dropout=True)
        losses, weights = [self.loss_type], [1.0]
        if self.sft_weight > 0:
            losses, weights = losses + ["sft"], weights + [self.sft_weight]
        return DPOConfig(**self.trainer_kwargs(), beta=self.beta, loss_type=losses, loss_weights=weights,
                         precompute_ref_log_probs=True, disable_dropout=True)


def has_stored_ref(rows: list[dict], columns: tuple[str, ...] = REF_COLUMNS) -> bool:
    """True when every row carries the reference log-probs `columns` as finite numbers."""
    return all(isinstance(r.get(c), (int, float)) and math.isfinite(r[c]) for r in rows for c in columns)


def pair_dataset_rows(rows: list[dict], use_stored: bool, choice_level: bool = False,
                      fmt: str = "raw") -> list[dict]:
    """The columns the trainer needs, reference values included only when used.

    With fmt "chat", prompt, chosen and rejected are in TRL's conversational format
    (`webgrove.agents.chat.conversational`). For choice-level losses: the candidate set and
    values (an empty list where a row has none; candidates stay text), and the stored
    reference choice log-probs when every row has both.
    """
    from webgrove.agents.chat import conversational

    keep = PAIR_TEXT_COLUMNS + (REF_COLUMNS if use_stored else ())
    out = [{c: (float(r[c]) if c in REF_COLUMNS else r[c]) for c in keep} for r in rows]
    if fmt == "chat":
        out = [conversational(o, ("chosen", "rejected")) for o in out]
    if choice_level:
        stored_choice = use_stored and has_stored_ref(rows, CHOICE_REF_COLUMNS)
        for o, r in zip(out, rows):
            o.update({CANDIDATES: list(r.get(CANDIDATES) or []), CANDIDATE_Q: list(r.get(CANDIDATE_Q) or []),
                      "q_chosen": r.get("q_chosen")})
            if stored_choice:
                o.update({c: float(r[c]) for c in CHOICE_REF_COLUMNS})
    return out


def stored_ref_trainer_class():
    """`DPOTrainer` that keeps reference log-probs already present in the dataset."""
    from trl import DPOTrainer

    class StoredRefDPOTrainer(DPOTrainer):
        """Uses `ref_chosen_logps` / `ref_rejected_logps` from the dataset when they are there."""

        def _precompute_ref_logps(self, dataset, name, batch_size):
            if all(c in dataset.column_names for c in REF_COLUMNS):
                return dataset  # off-policy: the collecting policy's values, as stored
            return super()._precompute_ref_logps(dataset, name, batch_size)

    return StoredRefDPOTrainer


def make_dpo_trainer(cfg: DPORunConfig, rows: list[dict] | None = None, model=None, tokenizer=None):
    """A DPO trainer for `cfg` (pairs from `cfg.pairs` unless given; model from `cfg.model` unless given).

    Raises ValueError when `ref_logps="stored"` and some pair lacks stored values.
    """
    from datasets import Dataset

    from webgrove.agents.chat import resolve_format

    rows = load_rows(cfg.pairs if rows is None else rows, PAIR_TEXT_COLUMNS)
    use_stored = cfg.ref_logps == "stored"
    if use_stored and not has_stored_ref(rows):
        missing = sum(not has_stored_ref([r]) for r in rows)
        raise ValueError(f"{missing} of {len(rows)} pairs lack stored reference log-probs "
                         f"({', '.join(REF_COLUMNS)}); collect with a model policy, or pass --ref-logps model")
    if model is None:
        model, tokenizer = load_model(cfg.model)
    fmt = resolve_format(tokenizer, cfg.prompt_format)
    dataset = Dataset.from_list(pair_dataset_rows(rows, use_stored, cfg.choice_level, fmt))
    kwargs = dict(model=model, args=cfg.to_trl(), train_dataset=dataset, processing_class=tokenizer,
                  peft_config=lora_config(cfg) if cfg.lora else None)
    if cfg.choice_level:
        return choice_trainer_class(stored_ref_trainer_class())(**kwargs, terms=cfg.loss_terms())
    return stored_ref_trainer_class()(**kwargs)


def train_dpo(cfg: DPORunConfig, rows: list[dict] | None = None) -> dict:
    """Train DPO on pairs and save the model to `cfg.out` (merged into plain weights by default).

    Returns a summary: rows, steps, train_loss, seconds, tokens_per_second, the log of
    TRL's metrics (`rewards/margins`, `rewards/accuracies`, ...), and the reference source.
    """
    trainer = make_dpo_trainer(cfg, rows)
    ds = trainer.train_dataset
    if len(ds) == 0:  # TRL drops pairs whose prompt alone fills max_length
        raise UsageError(f"every pair's prompt is longer than --max-length {cfg.max_length} tokens; use a model "
                         f"with more positions (and a larger --max-length) or shorter observations")
    tokens = sum(2 * len(p) + len(c) + len(r)
                 for p, c, r in zip(ds["prompt_ids"], ds["chosen_ids"], ds["rejected_ids"]))
    summary = run_trainer(trainer, cfg, tokens, len(ds))
    summary["ref_logps"] = cfg.ref_logps
    summary["loss_terms"] = cfg.loss_terms()
    if cfg.choice_level:  # where each reference column came from: stored in the pairs, or the starting model
        summary["ref_sources"] = trainer.ref_sources
    return summary


def completion_logprobs(model, tokenizer, prompts: list[str], completions: list[str],
                        batch_size: int = 16, prompt_format: str = "auto") -> list[float]:
    """Sum of log p(token) over each completion's tokens and its end (eos, or the chat
    template's end of turn), given its prompt.

    Tokenized like TRL does (`webgrove.agents.chat.split_completions`: prompt alone, then
    prompt + completion; the completion starts where they part), so these are the numbers
    DPO compares. A pair longer than the model's positions loses its oldest prompt tokens
    (what `HFPolicy` does when it acts). Batched, right-padded.
    """
    import torch

    from webgrove.agents.chat import fit_prompt, model_positions, resolve_format, split_completions

    if len(prompts) != len(completions):
        raise ValueError("prompts and completions differ in length")
    fmt = resolve_format(tokenizer, prompt_format)
    positions = model_positions(model.config)
    seqs, starts = [], []
    for p, c in zip(prompts, completions):
        head, (tail,) = split_completions(tokenizer, p, [c], fmt)
        head = fit_prompt(head, len(tail), positions)  # as HFPolicy fits a prompt when it acts
        seqs.append(head + tail)
        starts.append(len(head))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    out: list[float] = []
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(seqs), batch_size):
            chunk, chunk_starts = seqs[i:i + batch_size], starts[i:i + batch_size]
            t = max(len(s) for s in chunk)
            ids = torch.full((len(chunk), t), pad, dtype=torch.long)  # (B, T)
            attn = torch.zeros((len(chunk), t), dtype=torch.long)
            for j, s in enumerate(chunk):
                ids[j, :len(s)] = torch.tensor(s)
                attn[j, :len(s)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=attn.to(device)).logits.float()  # (B, T, V)
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None].to(device))[..., 0]
            for j, s in enumerate(chunk):
                out.append(float(logp[j, chunk_starts[j] - 1:len(s) - 1].sum()))  # tokens start..end
    if was_training:
        model.train()
    return out


def preference_margins(model, tokenizer, rows: list[dict], prompt_format: str = "auto") -> list[float]:
    """log π(chosen) − log π(rejected) for each pair under `model` (the policy's own preference)."""
    prompts = [r["prompt"] for r in rows]
    chosen = completion_logprobs(model, tokenizer, prompts, [r["chosen"] for r in rows], prompt_format=prompt_format)
    rejected = completion_logprobs(model, tokenizer, prompts, [r["rejected"] for r in rows],
                                   prompt_format=prompt_format)
    return [c - r for c, r in zip(chosen, rejected)]


def run_dpo(cfg: DPORunConfig) -> int:
    from webgrove.training.distributed import leave_process_group, needs_relaunch, relaunch

    if needs_relaunch(cfg):  # --num-processes N: the same command under accelerate launch
        return relaunch(("train", "dpo"), cfg)
    s = train_dpo(cfg)
    leave_process_group()
    last = next((h for h in reversed(s["log"]) if "rewards/margins" in h), {})
    log.info(f"dpo ({'LoRA' if cfg.lora else 'full'}, β={cfg.beta}, reference: {cfg.ref_logps}): "
             f"{s['rows']} pairs, {s['steps']} steps, loss {s['train_loss']:.4f}, "
             f"last margin {last.get('rewards/margins', float('nan')):.3f}, "
             f"{s['seconds']:.1f}s ({s['tokens_per_second']:.0f} tokens/s) -> {s['out']}")
    return 0
