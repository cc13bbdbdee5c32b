"""Choice-level preference losses for constrained actors, on TRL's `DPOTrainer`.

`webgrove.agents.hf.HFPolicy` does not act on an action's sequence log-probability: it
picks among the candidate actions by their *choice* log-probability, the sum over the
action's tokens of log p(token) renormalised over the tokens that candidates sharing its
prefix have there (`agents/hf.py`, `branch_sets`). Only the tokens where candidates
branch count; the others contribute log 1 = 0. Plain DPO moves every token of the
action, so probability can flow to tokens that decide nothing, or to third candidates.
The losses here move the quantity the agent acts on.

A pair row may carry, besides DPO's columns (all optional, so older pair files still load):

- `candidates`: the completions the choice is renormalised over at that state (chosen
  and rejected among them; by default the state's sibling proposals). Without it the set
  is {chosen, rejected}.
- `ref_chosen_choice_logps`, `ref_rejected_choice_logps`: the reference policy's choice
  log-probs over `candidates`. Without them they are computed once with the starting
  model before training (in Agent Q's loop that is the collecting policy).
- `candidate_q`: the candidates' values (None for an unexplored one); the listwise loss
  only pulls a row whose chosen action has the best value among them.

Losses (`LOSSES`; each maps the batch's log-probs to a loss per pair):

- `sigmoid`: DPO on sequence log-probs (Rafailov et al. 2023, Eq. 7);
- `choice_sigmoid`: the same on choice log-probs: -log σ(β[(c_θ(y_w) − c_ref(y_w)) − (c_θ(y_l) − c_ref(y_l))]);
- `choice_ce`: listwise cross-entropy of the choice distribution over the candidate set
  towards the best-valued candidate, −c_θ(y_w) (the choice log-probs of distinct
  candidates ending in eos sum to 1, so this is a softmax over the set);
- `sft`: NLL of the chosen sequence per token (RPO's term, Pang et al. 2024).

A run combines a main loss with an optional NLL term on the sequence (`sft`) or on the
choice (`choice_ce`), each with a weight. The math is in small pure functions; the
trainer only feeds them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from webgrove.agents.hf import branch_sets

CANDIDATES = "candidates"
CANDIDATE_Q = "candidate_q"
SEQ_REF_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")
CHOICE_REF_COLUMNS = ("ref_chosen_choice_logps", "ref_rejected_choice_logps")
BRANCH_COLUMNS = ("chosen_branch", "rejected_branch", "chosen_is_best")
_MASKED = -1e9  # a log-prob no real token has: masked-out branch slots (finite, so gradients stay finite)


# ---------------------------------------------------------------------------------------
# The math: pure functions.

@dataclass
class PreferenceLogps:
    """Log-probs of a batch of pairs, each tensor of shape (B,)."""

    chosen: Any  # policy sequence log-probs
    rejected: Any
    chosen_choice: Any  # policy choice log-probs
    rejected_choice: Any
    ref_chosen: Any
    ref_rejected: Any
    ref_chosen_choice: Any
    ref_rejected_choice: Any
    chosen_tokens: Any  # completion tokens of the chosen action (eos included)
    chosen_is_best: Any  # 1.0 where the chosen action has the best value among the candidates


def sigmoid_loss(p: PreferenceLogps, beta: float):
    """Sequence DPO: -log σ(β[(log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l))])."""
    import torch.nn.functional as F

    return -F.logsigmoid(beta * ((p.chosen - p.ref_chosen) - (p.rejected - p.ref_rejected)))


def choice_sigmoid_loss(p: PreferenceLogps, beta: float):
    """DPO on choice log-probs (the probability the actor picks each action among the candidates)."""
    import torch.nn.functional as F

    return -F.logsigmoid(beta * ((p.chosen_choice - p.ref_chosen_choice) - (p.rejected_choice - p.ref_rejected_choice)))


def choice_ce_loss(p: PreferenceLogps, beta: float):
    """Cross-entropy of the choice distribution towards the chosen action, on rows where it is the best."""
    return -p.chosen_choice * p.chosen_is_best


def sft_loss(p: PreferenceLogps, beta: float):
    """Per-token NLL of the chosen sequence (RPO's term)."""
    return -p.chosen / p.chosen_tokens.clamp(min=1)


LOSSES: dict[str, Callable] = {
    "sigmoid": sigmoid_loss,
    "choice_sigmoid": choice_sigmoid_loss,
    "choice_ce": choice_ce_loss,
    "sft": sft_loss,
}
CHOICE_LOSSES = ("choice_sigmoid", "choice_ce")
NLL_TERMS = {"sequence": "sft", "choice": "choice_ce"}  # what an NLL term on the chosen action means


def sequence_and_choice_logps(logits, targets, branch, branch_ok, mask):
    """(sequence log-probs, choice log-probs), each (N,), of the masked target tokens.

    Args:
        logits: (N, T, V) predictions; position t predicts `targets[:, t]`.
        targets: (N, T) token ids.
        branch: (N, T, M) token ids of the branch set at each position (the target among them).
        branch_ok: (N, T, M) which of the M slots are real.
        mask: (N, T) 1 at the completion's tokens.
    """
    import torch

    logp = torch.log_softmax(logits.float(), dim=-1)  # (N, T, V)
    token = logp.gather(-1, targets[..., None])[..., 0]  # (N, T)
    norm = torch.logsumexp(logp.gather(-1, branch).masked_fill(~branch_ok, _MASKED), dim=-1)  # (N, T)
    m = mask.bool()
    token = torch.where(m, token, torch.zeros_like(token))
    norm = torch.where(m, norm, torch.zeros_like(norm))
    return token.sum(dim=1), (token - norm).sum(dim=1)


def branch_tensors(branches: list[list[list[int]]], starts: list[int], length: int):
    """(branch (N, length, M) long, branch_ok (N, length, M) bool): row i's k-th branch set
    placed at position starts[i] + k (positions past `length` are cut, as truncation cuts them)."""
    import torch

    m = max([len(s) for b in branches for s in b] + [1])
    branch = torch.zeros((len(branches), length, m), dtype=torch.long)
    ok = torch.zeros((len(branches), length, m), dtype=torch.bool)
    for i, (sets, start) in enumerate(zip(branches, starts)):
        for k, s in enumerate(sets):
            t = start + k
            if 0 <= t < length:
                branch[i, t, :len(s)] = torch.tensor(s, dtype=torch.long)
                ok[i, t, :len(s)] = True
    return branch, ok


def pair_candidates(row: dict) -> list[str]:
    """The row's candidate completions, chosen and rejected always among them, each once."""
    listed = row.get(CANDIDATES) or []
    return list(dict.fromkeys([row["chosen"], row["rejected"], *listed]))


def chosen_is_best(row: dict) -> float:
    """1.0 when the chosen action's value is the best among the candidates' known values (or none are known)."""
    values = [q for q in (row.get(CANDIDATE_Q) or []) if q is not None]
    q = row.get("q_chosen")
    if not values or q is None:
        return 1.0
    return 1.0 if q >= max(values) - 1e-9 else 0.0


def sibling_candidates(actions: list[str], values: list[float | None]) -> dict:
    """The choice-set fields of a pair row: `candidates`, the completions of every sibling
    proposal at the state (in tree order), and `candidate_q`, their values (None: unexplored)."""
    from webgrove.agents.prompts import action_completion

    if len(actions) != len(values):
        raise ValueError(f"{len(actions)} actions but {len(values)} values")
    return {CANDIDATES: [action_completion(a) for a in actions], CANDIDATE_Q: list(values)}


def row_branches(prompt_ids: list[int], chosen_ids: list[int], rejected_ids: list[int],
                 candidate_ids: list[list[int]]) -> tuple[list[list[int]], list[list[int]]]:
    """Branch sets at each token of the chosen and rejected completions, over all candidates.

    Raises ValueError when chosen or rejected is not among the tokenized candidates.
    """
    ids = [list(c) for c in candidate_ids]
    sets = branch_sets(ids)
    try:
        return sets[ids.index(list(chosen_ids))], sets[ids.index(list(rejected_ids))]
    except ValueError:
        raise ValueError("a pair's chosen or rejected completion tokenizes differently from its candidate "
                         f"(prompt of {len(prompt_ids)} tokens)") from None


# ---------------------------------------------------------------------------------------
# Plumbing into TRL.

@dataclass
class ChoiceCollator:
    """TRL's preference collator plus each sequence's branch sets and the choice columns."""

    base: Any  # trl's DataCollatorForPreference

    def __call__(self, examples: list[dict]) -> dict:
        import torch

        out = self.base(examples)
        length = out["input_ids"].shape[1] - 1  # shifted: position t predicts token t + 1
        branches = [e["chosen_branch"] for e in examples] + [e["rejected_branch"] for e in examples]
        starts = [len(e["prompt_ids"]) - 1 for e in examples] * 2
        out["branch"], out["branch_ok"] = branch_tensors(branches, starts, length)
        out["chosen_is_best"] = torch.tensor([float(e["chosen_is_best"]) for e in examples])
        for c in CHOICE_REF_COLUMNS + SEQ_REF_COLUMNS:
            if c in examples[0]:
                out[c] = torch.tensor([float(e[c]) for e in examples])
        return out


def add_branch_columns(example: dict, tokenizer) -> dict:
    """`datasets.map` function: branch sets of a tokenized pair (TRL's prompt/chosen/rejected ids),
    text or conversational (`webgrove.agents.chat`; the candidates are always text)."""
    from trl.data_utils import is_conversational

    from webgrove.agents.chat import joined_ids

    n = len(example["prompt_ids"])
    if is_conversational(example):
        fmt, prompt = "chat", example["prompt"][-1]["content"]
        sides = [example[k][0]["content"] for k in ("chosen", "rejected")]
    else:  # TRL appended eos to chosen and rejected; joined_ids appends it to every candidate
        fmt, prompt = "raw", example["prompt"]
        sides = [example[k].removesuffix(tokenizer.eos_token) for k in ("chosen", "rejected")]
    texts = list(dict.fromkeys([*sides, *(example.get(CANDIDATES) or [])]))
    cand_ids = [ids[n:] for ids in joined_ids(tokenizer, prompt, texts, fmt)]
    chosen, rejected = row_branches(example["prompt_ids"], example["chosen_ids"], example["rejected_ids"], cand_ids)
    return {"chosen_branch": chosen, "rejected_branch": rejected, "chosen_is_best": chosen_is_best(example)}


class ChoiceLossMixin:
    """Mixed in before a TRL `DPOTrainer`: DPO with `LOSSES` terms (module docstring), reference
    values stored or computed once. Built by `choice_trainer_class`; constructed with
    `terms=[(loss name, weight), ...]` on top of DPOTrainer's arguments."""

    def __init__(self, *args, terms: list[tuple[str, float]], **kwargs):
        from trl.trainer.dpo_trainer import DataCollatorForPreference

        unknown = [name for name, _ in terms if name not in LOSSES]
        if unknown:
            raise ValueError(f"unknown loss {unknown}; use {', '.join(LOSSES)}")
        self.terms = list(terms)
        self.ref_sources: dict[str, str] = {}
        tok, cfg = kwargs["processing_class"], kwargs["args"]
        kwargs.setdefault("data_collator", ChoiceCollator(DataCollatorForPreference(
            pad_token_id=tok.pad_token_id, max_length=cfg.max_length, truncation_mode=cfg.truncation_mode)))
        super().__init__(*args, **kwargs)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        return dataset.map(add_branch_columns, fn_kwargs={"tokenizer": processing_class})

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        self._signature_columns = list(dict.fromkeys(
            [*self._signature_columns, *BRANCH_COLUMNS, *CHOICE_REF_COLUMNS, *SEQ_REF_COLUMNS]))

    def _precompute_ref_logps(self, dataset, name, batch_size):
        missing = [c for c in SEQ_REF_COLUMNS + CHOICE_REF_COLUMNS if c not in dataset.column_names]
        self.ref_sources = {c: ("model" if c in missing else "stored") for c in SEQ_REF_COLUMNS + CHOICE_REF_COLUMNS}
        if not missing:
            return dataset
        values = self._reference_pass(dataset, batch_size)
        for c in missing:
            dataset = dataset.add_column(c, values[c])
        return dataset

    def _reference_pass(self, dataset, batch_size) -> dict[str, list[float]]:
        """The starting model's sequence and choice log-probs of every pair (no gradients)."""
        import contextlib

        import torch
        from torch.utils.data import DataLoader

        loader = DataLoader(dataset, batch_size=batch_size, collate_fn=self.data_collator, shuffle=False)
        off = getattr(self.model, "disable_adapter", None)  # PEFT: the reference is the base model
        cols: dict[str, list[float]] = {c: [] for c in SEQ_REF_COLUMNS + CHOICE_REF_COLUMNS}
        with torch.no_grad(), (off() if off else contextlib.nullcontext()):
            for batch in loader:
                seq, choice, _ = self._logps(self.model, batch)
                for col, values in zip(SEQ_REF_COLUMNS + CHOICE_REF_COLUMNS,
                                       (*seq.chunk(2), *choice.chunk(2))):
                    cols[col] += values.tolist()
        return cols

    def _logps(self, model, inputs):
        """(sequence, choice, completion-token counts) of the 2B sequences in a batch."""
        device = next(model.parameters()).device
        ids, mask = inputs["input_ids"].to(device), inputs["completion_mask"].to(device)
        start = max(int(mask.float().argmax(dim=1).min()) - 1, 0)  # first completion token, shifted
        logits = model(input_ids=ids, attention_mask=inputs["attention_mask"].to(device), use_cache=False).logits
        shifted = mask[:, 1:][:, start:]
        seq, choice = sequence_and_choice_logps(
            logits[:, start:-1], ids[:, 1:][:, start:], inputs["branch"][:, start:].to(device),
            inputs["branch_ok"][:, start:].to(device), shifted)
        return seq, choice, shifted.sum(dim=1)

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        seq, choice, tokens = self._logps(model, inputs)
        (c, r), (cc, rc) = seq.chunk(2), choice.chunk(2)
        dev = seq.device
        p = PreferenceLogps(c, r, cc, rc, *(inputs[k].to(dev) for k in SEQ_REF_COLUMNS + CHOICE_REF_COLUMNS),
                            chosen_tokens=tokens.chunk(2)[0], chosen_is_best=inputs["chosen_is_best"].to(dev))
        loss = sum(w * LOSSES[name](p, self.beta).mean() for name, w in self.terms)
        self._log_choice_metrics(mode, p)
        return (loss, None) if return_outputs else loss

    def _log_choice_metrics(self, mode: str, p: PreferenceLogps) -> None:
        import torch

        with torch.no_grad():
            choice_gain = (p.chosen_choice - p.ref_chosen_choice) - (p.rejected_choice - p.ref_rejected_choice)
            seq_gain = (p.chosen - p.ref_chosen) - (p.rejected - p.ref_rejected)
            main = self.terms[0][0]
            gain = choice_gain if main.startswith("choice") else seq_gain
            metrics = {
                "rewards/margins": self.beta * gain, "rewards/accuracies": (gain > 0).float(),
                "rewards/chosen": self.beta * ((p.chosen_choice - p.ref_chosen_choice)
                                               if main.startswith("choice") else (p.chosen - p.ref_chosen)),
                "choice/margin": p.chosen_choice - p.rejected_choice,
                "choice/chosen_logps": p.chosen_choice,
                "sequence/margin": p.chosen - p.rejected,
                "logps/chosen": p.chosen,
            }
            for k, v in metrics.items():
                self._metrics[mode][k].append(float(v.float().mean()))


def choice_trainer_class(base_cls):
    """`ChoiceLossMixin` over `base_cls` (a TRL `DPOTrainer` subclass)."""
    return type("ChoiceDPOTrainer", (ChoiceLossMixin, base_cls), {})


# ---------------------------------------------------------------------------------------
# Measuring what the actor would do.

def choice_report(policy, rows: list[dict]) -> dict:
    """How the acting policy (`HFPolicy`) sees each pair, with its own scoring code.

    Returns means over the rows of the sequence margin (log π(y_w) − log π(y_l)), the
    choice margin over the row's candidates, the chosen action's choice log-prob, and the share of rows where the chosen
    action is the policy's greedy pick among the candidates (`chosen_greedy`).
    """
    seq_m, choice_m, chosen, greedy = [], [], [], []
    for row in rows:
        cands = pair_candidates(row)
        seq, choice = policy.score_choices(row["prompt"], cands)
        seq_m.append(seq[0] - seq[1])
        choice_m.append(choice[0] - choice[1])
        chosen.append(choice[0])
        greedy.append(max(range(len(cands)), key=lambda i: choice[i]) == 0)
    n = max(len(rows), 1)
    return {"pairs": len(rows), "sequence_margin": math.fsum(seq_m) / n, "choice_margin": math.fsum(choice_m) / n,
            "chosen_choice": math.fsum(chosen) / n, "chosen_greedy": sum(greedy) / n}
