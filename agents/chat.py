"""Prompt formats: raw text, or the model's chat template. The one place that turns a prompt
and its completions into token ids, for acting, the self-critique and training alike.

Every prompt in `webgrove.agents.prompts` is text that ends on a cue ("Action:", "Best:"),
and every completion is text with a leading space (" click[large]", " 2"). A model reads
them in one of two formats:

- **raw**: the prompt text, then the completion text, then eos -- what our own tiny models
  (no chat template) are trained on and act with;
- **chat**: the conversation `messages(prompt)` (a system message, `system_for(prompt)`, and
  the prompt as the user's message) rendered by the tokenizer's chat template with the
  generation prompt; the completion is the assistant's message (`assistant(completion)`, its
  text stripped), closed the way the template closes a turn (e.g. "<|im_end|>\\n"), no eos added.

`resolve_format` picks one: "auto" is chat when the tokenizer has a chat template.

Token ids are always TRL's (`trl.DPOTrainer` / `SFTTrainer` 1.16, `_prepare_dataset`): the
prompt is tokenized alone and joined to each completion (raw: `tokenizer(prompt +
completion + eos_token)`; chat: `apply_chat_template(prompt + completion messages)`), and the
completion starts where the two sequences part (`common_prefix_length`). Tokenizing prompt and
completion separately and concatenating differs wherever tokens merge across the boundary
(tests/agents/test_chat.py: a Metaspace BPE whose merges cross spaces writes ":▁click[") and
depends, in chat, on the template's text around the reply; joining, then splitting, is what
the trainer does, so the reference log-probs a policy stores are over the tokens DPO scores.
Where tokenizing apart provably gives the same ids (`splits_at_the_boundary`: GPT-2-style
byte-level BPE, ours), the prompt is not tokenized again for every candidate.
"""
from __future__ import annotations

from typing import Any

from webgrove.agents.prompts import CRITIC_CUE
from webgrove.envs.errors import UsageError

PROMPT_FORMATS = ("auto", "chat", "raw")
POLICY_SYSTEM = "Reply with exactly one action from the Actions line, nothing else."
CRITIC_SYSTEM = "Reply with the number of the best action only."


def has_chat_template(tokenizer: Any) -> bool:
    """True when the tokenizer carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def resolve_format(tokenizer: Any, prompt_format: str = "auto") -> str:
    """"chat" or "raw" for `prompt_format` ("auto": chat when the tokenizer has a chat template).

    Raises:
        UsageError: an unknown format, or "chat" with a tokenizer that has no chat template.
    """
    if prompt_format not in PROMPT_FORMATS:
        raise UsageError(f"--prompt-format must be one of {', '.join(PROMPT_FORMATS)}, got {prompt_format!r}")
    if prompt_format == "auto":
        return "chat" if has_chat_template(tokenizer) else "raw"
    if prompt_format == "chat" and not has_chat_template(tokenizer):
        raise UsageError("--prompt-format chat needs a chat template, and this model's tokenizer has no chat "
                         "template; use --prompt-format raw (or auto)")
    return prompt_format


# -- conversations --------------------------------------------------------------------

def system_for(prompt: str) -> str:
    """The system message of a prompt: the critic's for a critic prompt (it ends with the
    critic's cue), the policy's for anything else (policy prompts, revision prompts)."""
    return CRITIC_SYSTEM if prompt.endswith(CRITIC_CUE) else POLICY_SYSTEM


def messages(prompt: str, system: str | None = None) -> list[dict]:
    """The conversation a prompt becomes: a system message (default `system_for(prompt)`), then
    the prompt as the user's message."""
    return [{"role": "system", "content": system_for(prompt) if system is None else system},
            {"role": "user", "content": prompt}]


def assistant(completion: str) -> list[dict]:
    """A completion as the assistant's reply (TRL's conversational chosen/rejected/completion)."""
    return [{"role": "assistant", "content": completion.strip()}]


def conversational(row: dict, completion_columns: tuple[str, ...]) -> dict:
    """`row` with its text `prompt` as `messages(prompt)` and each completion column as
    `assistant(text)`: TRL's conversational format. Other columns are kept as they are."""
    out = dict(row)
    out["prompt"] = messages(row["prompt"])
    for c in completion_columns:
        out[c] = assistant(row[c])
    return out


# -- token ids ------------------------------------------------------------------------

def common_prefix_length(ids: list[int], other: list[int]) -> int:
    """Number of leading tokens the two sequences share (TRL's `common_prefix_length`)."""
    n = 0
    for a, b in zip(ids, other):
        if a != b:
            break
        n += 1
    return n


def _chat_ids(tokenizer: Any, conversations: list[list[dict]], **kwargs: Any) -> list[list[int]]:
    """Token ids of each conversation through the chat template, called as TRL calls it."""
    out = tokenizer.apply_chat_template(conversations, tokenize=True, return_dict=True, **kwargs)
    return [list(x) for x in out["input_ids"]]


def prompt_ids(tokenizer: Any, prompt: str, fmt: str) -> list[int]:
    """What the model reads before a completion: the prompt's tokens (chat: with the generation prompt)."""
    if fmt == "chat":
        return _chat_ids(tokenizer, [messages(prompt)], add_generation_prompt=True)[0]
    return list(tokenizer(prompt)["input_ids"])


def joined_ids(tokenizer: Any, prompt: str, completions: list[str], fmt: str, close: bool = True) -> list[list[int]]:
    """Token ids of prompt + completion for each completion, tokenized together.

    `close`: end the completion as training does (raw: eos; chat: the template's end of turn);
    False leaves it open (raw: no eos; chat: the assistant's message continues).
    """
    if fmt == "chat":
        convs = [messages(prompt) + assistant(c) for c in completions]
        return _chat_ids(tokenizer, convs, continue_final_message=not close)
    eos = tokenizer.eos_token if close else ""
    return [list(x) for x in tokenizer([prompt + c + eos for c in completions])["input_ids"]]


def splits_at_the_boundary(tokenizer: Any, prompt: str, completions: list[str]) -> bool:
    """True when, for this tokenizer and these texts, raw prompt + completion provably
    tokenizes as the prompt's ids followed by the completion's (tokenized alone, no specials).

    Holds for a GPT-2-style byte-level BPE -- a ByteLevel pre-tokenizer with its regex and no
    prefix space, no special tokens added around a text, no added token containing a space --
    when the normalized prompt ends on a non-space character, each normalized completion
    starts with a space and then a non-space, and normalizing the joined text equals
    normalizing the parts: the regex then ends a match at the prompt's end (only
    whitespace-led alternatives may hold a space, and they start with it), restarts there,
    and looks behind nowhere, so neither side's pre-tokens change; BPE runs within each.
    Our own tokenizers are of this kind (`webgrove.training.tiny`). It spares tokenizing the
    prompt once per candidate; any other case goes the joined way.
    """
    from tokenizers import pre_tokenizers

    backend = getattr(tokenizer, "backend_tokenizer", None)
    pre = getattr(backend, "pre_tokenizer", None)
    if not (isinstance(pre, pre_tokenizers.ByteLevel) and pre.use_regex and not pre.add_prefix_space):
        return False
    post = backend.post_processor
    if post is not None and post.num_special_tokens_to_add(False) != 0:
        return False
    if any(any(ch.isspace() for ch in t.content) for t in tokenizer.added_tokens_decoder.values()):
        return False
    norm = backend.normalizer or _Identity()
    p = norm.normalize_str(prompt)
    if not p or p[-1].isspace():
        return False
    for c in completions:
        n = norm.normalize_str(c)
        if len(n) < 2 or n[0] != " " or n[1].isspace() or norm.normalize_str(prompt + c) != p + n:
            return False
    return True


class _Identity:
    @staticmethod
    def normalize_str(text: str) -> str:
        return text


def model_positions(config: Any) -> int:
    """The token positions a model takes: its config's `max_position_embeddings` (GPT-2: `n_positions`)."""
    return int(getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", 1024))


def fit_prompt(prompt_ids: list[int], longest: int, positions: int) -> list[int]:
    """`prompt_ids` without its oldest tokens, so that it and a completion of `longest` tokens
    fit in `positions`; ValueError when the completion alone does not fit."""
    if longest >= positions:
        raise ValueError(f"a completion of {longest} tokens does not fit in {positions} positions")
    return prompt_ids[-(positions - longest):]


def split_completions(tokenizer: Any, prompt: str, completions: list[str], fmt: str,
                      close: bool = True) -> tuple[list[int], list[list[int]]]:
    """(shared prompt ids, each completion's ids) as TRL splits them.

    Each completion starts where the tokenized prompt and the joined sequence part; over
    several completions, at the earliest such point, so all share one prompt (TRL splits a
    pair at the earlier of its two). When the prompt ends on a token boundary -- as with every
    tokenizer design tested but one whose merges cross spaces -- that is the whole prompt.
    Where `splits_at_the_boundary` holds, prompt and completions are tokenized apart, which
    provably gives the same ids.

    Raises:
        ValueError: a prompt with no token in common with its joined sequence, or an empty completion.
    """
    alone = prompt_ids(tokenizer, prompt, fmt)
    if fmt == "raw" and splits_at_the_boundary(tokenizer, prompt, completions):
        end = [tokenizer.eos_token_id] if close else []
        start = len(alone)
        parts = [list(x) + end for x in tokenizer(completions, add_special_tokens=False)["input_ids"]]
    else:
        joined = joined_ids(tokenizer, prompt, completions, fmt, close)
        start = min(common_prefix_length(alone, j) for j in joined) if joined else len(alone)
        parts = [j[start:] for j in joined]
    if start == 0:
        raise ValueError("a prompt must tokenize to at least one token shared with prompt + completion")
    if not all(parts):
        raise ValueError("cannot score an empty completion")
    return alone[:start], parts


def generation_prefix_ids(tokenizer: Any, prompt: str, prefix: str, fmt: str) -> list[int]:
    """The ids a model continues to write a completion that starts with `prefix` (e.g. " search[")."""
    if fmt == "chat":
        return _chat_ids(tokenizer, [messages(prompt) + assistant(prefix)], continue_final_message=True)[0]
    return list(tokenizer(prompt + prefix)["input_ids"])
