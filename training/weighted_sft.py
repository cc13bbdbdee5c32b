"""Reward-weighted SFT on TRL: every row's loss is scaled by its `weight` column.

RISE (Qu et al. 2024, Sec. 4.2) trains every turn as a supervised example weighted by
exp(r / τ) -- reward-weighted regression. The rows are `prompt`, `completion` and
`weight` (see `webgrove.training.rise` for how weights come from rewards); everything
else is `webgrove.training.sft`'s SFT: the loss covers completions only, the same
config fields, LoRA, checkpoints and resuming.

The loss of a batch is

    L = Σ_rows w_i · Σ_{t ∈ completion_i} −log p(token_t) / N

where N is the number of completion tokens in the batch (over all gradient-accumulation
micro-batches, as TRL counts them), the normalisation TRL's plain SFT uses. N does not
depend on the weights, so a row of weight 0 adds nothing to the gradient and a row of
weight 2w adds exactly twice what it adds at w.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

from webgrove.training.sft import SFTRunConfig, load_model, load_rows, lora_config, run_trainer, sft_dataset_rows

log = logging.getLogger(__name__)

WEIGHT = "weight"


def rwr_weights(rewards: Sequence[float], tau: float = 0.4, normalize: bool = True) -> list[float]:
    """Reward-weighted regression weights exp(r / τ) (RISE, Eq. 4.2 with τ ≈ 0.4).

    With `normalize` they are divided by their mean, so the average row keeps weight 1
    and the learning rate means the same whatever τ is.
    """
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if not rewards:
        return []
    top = max(rewards)
    raw = [math.exp((r - top) / tau) for r in rewards]  # shifted by the max: no overflow, same ratios
    if not normalize:
        return [w * math.exp(top / tau) for w in raw]
    mean = sum(raw) / len(raw)
    return [w / mean for w in raw]


def rwr_weight_of(reward: float, rewards: Sequence[float], tau: float = 0.4) -> float:
    """The weight a row of `reward` gets beside rows of `rewards`, normalised as
    `rwr_weights(rewards, tau)` normalises them (the same floats for a reward among them)."""
    top = max(rewards)
    mean = sum(math.exp((r - top) / tau) for r in rewards) / len(rewards)
    return math.exp((reward - top) / tau) / mean


def weighted_token_loss(token_logps, weights, num_tokens):
    """Σ_i w_i Σ_t −log p_it / num_tokens, from per-token log-probs (B, T) that are zero
    where no loss applies, and per-row weights (B,)."""
    import torch

    return -(token_logps * weights[:, None].to(token_logps.dtype)).sum() / torch.as_tensor(num_tokens).clamp(min=1)


def weighted_collator_class():
    """TRL's language-modelling collator, plus a `weight` tensor (B,) from the rows."""
    import torch
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    class WeightedCollator(DataCollatorForLanguageModeling):
        def torch_call(self, examples):
            out = super().torch_call(examples)
            out[WEIGHT] = torch.tensor([float(e[WEIGHT]) for e in examples], dtype=torch.float32)
            return out

    return WeightedCollator


def weighted_trainer_class():
    """`SFTTrainer` whose loss honours the rows' weights (see the module docstring)."""
    from trl import SFTTrainer

    class WeightedSFTTrainer(SFTTrainer):
        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if WEIGHT not in self._signature_columns:
                self._signature_columns = [*self._signature_columns, WEIGHT]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            weights = inputs.pop(WEIGHT)
            outputs = model(**inputs, use_cache=False, fused_lm_head=True)
            num_tokens = outputs.label_mask.sum() if num_items_in_batch is None else num_items_in_batch
            loss = weighted_token_loss(outputs.log_probs, weights, num_tokens)
            return (loss, outputs) if return_outputs else loss

    return WeightedSFTTrainer


@dataclass(kw_only=True)
class WeightedSFTConfig(SFTRunConfig):
    """Reward-weighted SFT on prompt/completion/weight rows; the loss covers completions only."""


def make_weighted_trainer(cfg: SFTRunConfig, rows: list[dict] | None = None, model=None, tokenizer=None):
    """A `WeightedSFTTrainer` on rows with `prompt`, `completion` and `weight` (from `cfg.data` unless given)."""
    from datasets import Dataset
    from trl import SFTConfig

    from webgrove.agents.chat import resolve_format

    rows = load_rows(cfg.data if rows is None else rows, ("prompt", "completion", WEIGHT))
    bad = [i for i, r in enumerate(rows) if not (isinstance(r[WEIGHT], (int, float)) and r[WEIGHT] >= 0)]
    if bad:
        raise ValueError(f"row {bad[0]}: weight must be a number >= 0, got {rows[bad[0]][WEIGHT]!r}")
    if model is None:
        model, tokenizer = load_model(cfg.model)
    weighted = [{**r, WEIGHT: float(r[WEIGHT])} for r in rows]
    dataset = Dataset.from_list(sft_dataset_rows(weighted, resolve_format(tokenizer, cfg.prompt_format), (WEIGHT,)))
    args = SFTConfig(**cfg.trainer_kwargs(), completion_only_loss=True, packing=False,
                     train_sampling_strategy="group_by_length")
    collator = weighted_collator_class()(pad_token_id=tokenizer.pad_token_id)
    return weighted_trainer_class()(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                                    data_collator=collator, peft_config=lora_config(cfg) if cfg.lora else None)


def train_weighted_sft(cfg: SFTRunConfig, rows: list[dict] | None = None) -> dict:
    """Fine-tune `cfg.model` on weighted rows, save to `cfg.out`; returns the training summary."""
    trainer = make_weighted_trainer(cfg, rows)
    tokens = sum(len(ids) for ids in trainer.train_dataset["input_ids"])
    return run_trainer(trainer, cfg, tokens, len(trainer.train_dataset))


def run_weighted_sft(cfg: WeightedSFTConfig) -> int:
    s = train_weighted_sft(cfg)
    loss = "n/a" if s["train_loss"] is None else f"{s['train_loss']:.4f}"
    log.info(f"weighted sft: {s['rows']} rows, {s['steps']} steps, loss {loss}, {s['seconds']:.1f}s -> {s['out']}")
    return 0
