"""Tiny causal language models built from a config, with a tokenizer trained here.

Nothing is downloaded: the tokenizer is a byte-level BPE trained on shop text with
`tokenizers`, wrapped in `PreTrainedTokenizerFast`; the model is a GPT-2 or Llama
config initialised from a seed. `init_model` saves both with `save_pretrained`, so the
result is a plain model directory that loads like any real checkpoint
(`AutoModelForCausalLM.from_pretrained(dir)`, `AutoTokenizer.from_pretrained(dir)`).

Sizes (with the default 2000-token vocabulary, 1024 positions):

| size  | layers | width | heads | parameters (GPT-2) |
|-------|--------|-------|-------|--------------------|
| tiny  | 4      | 192   | 4     | ≈ 2.2 M            |
| small | 6      | 512   | 8     | ≈ 20 M             |
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # heavy imports stay inside the functions
    from transformers import PreTrainedModel, PreTrainedTokenizerFast

BOS, EOS, PAD, UNK = "<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>"
SPECIAL_TOKENS = [PAD, BOS, EOS, UNK]  # ids 0..3 in this order

# (layers, width, heads); the MLP is 4x the width (GPT-2) or 8/3x rounded (Llama).
SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (4, 192, 4),
    "small": (6, 512, 8),
}
ARCHS = ("gpt2", "llama")
MAX_POSITIONS = 1024

# Page words and action strings every shop page or prompt uses; they go into the
# corpus verbatim so the tokenizer learns them even from a small sample of pages.
SHOP_FIXED_STRINGS = [
    "Instruction: [SEP]", "WebShop [SEP] Instruction: [SEP]", "[SEP] Search", "Back to Search",
    "Next >", "< Prev", "Page 1 (Total results: 50)", "Buy Now", "Description", "Features",
    "Reviews", "Attributes", "Price: $", "Rating: N.A.", "search[", "search[...]", "click[",
    "click[buy now]", "click[back to search]", "click[next >]", "click[< prev]",
    "click[description]", "click[features]", "click[reviews]", "click[attributes]",
    "and price lower than 40.00 dollars", "Goal:", "History:", "Page:", "Actions:", "Action:",
]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000, lowercase: bool = False) -> "PreTrainedTokenizerFast":
    """Train a byte-level BPE tokenizer on `texts`.

    Byte-level means every string is encodable (no unknown tokens in practice). Special
    tokens: pad (id 0), bos, eos, unk; `pad_token` is set, padding is on the right, and
    no special token is added when encoding (a plain tokenizer with no chat template).

    Args:
        texts: training text, any iterable of strings.
        vocab_size: target vocabulary size including the 256 byte tokens and specials.
        lowercase: an uncased tokenizer (a `Lowercase` normalizer before the "[" one). The shop
            prints product ids and titles in capitals (`B0UL4H6VQA`, `Leggings`) while actions and
            goals are lower case (`click[b0ul4h6vqa]`, "leggings"), so a cased tokenizer gives a
            model different tokens to match; measured (session 6, scratch) on the demo's base with
            its page lowercased: option choice in the oracle's item-page states 46% -> 95%,
            greedy validation success 11.0% -> 14.0%. Decoded text is then lower case.

    Returns:
        A `PreTrainedTokenizerFast` ready for `save_pretrained`.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be at least {256 + len(SPECIAL_TOKENS)}, got {vocab_size}")
    backend = Tokenizer(models.BPE())
    # "click[large]": the word after "[" would be a different token ("large") from the one in
    # the goal (" large"), so a small model could not copy it. A space after every "[" that a
    # word follows makes them one token; "search[" at the end of a prompt stays as it is, so
    # a generated query starts with a spaced word as in training.
    spaced = normalizers.Replace(Regex(r"\[(?=[^\s\]])"), "[ ")
    backend.normalizer = normalizers.Sequence([normalizers.Lowercase(), spaced]) if lowercase else spaced
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(iter(texts), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        model_max_length=MAX_POSITIONS, padding_side="right",
    )
    return tokenizer


def build_model(tokenizer: "PreTrainedTokenizerFast", size: str = "tiny", arch: str = "gpt2",
                seed: int = 0) -> "PreTrainedModel":
    """A freshly initialised causal LM sized for `tokenizer`'s vocabulary.

    Initialisation draws from a forked torch RNG seeded with `seed`, so the same
    arguments give the same weights and the global RNG is left untouched.

    Args:
        tokenizer: gives the vocabulary size and the bos/eos/pad ids.
        size: "tiny" (≈ 1–5 M parameters) or "small" (≈ 15–30 M), see `SIZES`.
        arch: "gpt2" or "llama".
        seed: initialisation seed.
    """
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; choose from {sorted(SIZES)}")
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose from {list(ARCHS)}")
    layers, width, heads = SIZES[size]
    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
               pad_token_id=tokenizer.pad_token_id)
    vocab = len(tokenizer)
    if arch == "gpt2":
        config = GPT2Config(vocab_size=vocab, n_positions=MAX_POSITIONS, n_embd=width, n_layer=layers,
                            n_head=heads, tie_word_embeddings=True, **ids)
        model_cls = GPT2LMHeadModel
    else:
        intermediate = 64 * round(width * 8 / 3 / 64)  # SwiGLU width, a multiple of 64
        config = LlamaConfig(vocab_size=vocab, hidden_size=width, intermediate_size=intermediate,
                             num_hidden_layers=layers, num_attention_heads=heads,
                             num_key_value_heads=heads, max_position_embeddings=MAX_POSITIONS,
                             tie_word_embeddings=True, **ids)
        model_cls = LlamaForCausalLM
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def shop_corpus(num_products: int = 300, episodes: int = 40, catalog_seed: int = 0,
                seed: int = 0) -> list[str]:
    """Text the shop renders, for training a tokenizer (and warming up a tiny model).

    Three parts, all deterministic from the seeds:
    1. the synthetic catalog's words: instructions, titles, option values, attributes, bullets;
    2. real pages and policy prompts: `episodes` episodes of `webgrove/WebShop-v0` (train
       split) played alternately by the oracle and the random policy; each step adds the
       observation and the policy prompt followed by the chosen action's completion
       (`webgrove.agents.prompts`), so the tokenizer sees exactly what acting and training feed it;
    3. the fixed page words and action strings (`SHOP_FIXED_STRINGS`).

    Args:
        num_products: catalog size for the env and the catalog texts.
        episodes: episodes to render.
        catalog_seed: the synthetic catalog's seed.
        seed: first reset seed (episode i uses seed + i) and the random policy's seed.
    """
    import gymnasium as gym
    import numpy as np

    import webgrove.envs  # noqa: F401  (registers the webgrove ids)
    from webgrove.agents.base import context_from
    from webgrove.agents.prompts import action_completion, policy_prompt
    from webgrove.agents.scripted import OraclePolicy, RandomPolicy
    from webgrove.envs.shop.synthetic import generate_catalog

    texts: list[str] = []
    catalog = generate_catalog(num_products=num_products, seed=catalog_seed)
    for goal in catalog.goals:
        texts.append(goal.instruction)
    for product in catalog.products:
        texts.append(product.title)
        texts.append(" ".join(v for values in product.options.values() for v in values))
        texts.extend(product.attributes)
        texts.extend(product.bullet_points)

    env = gym.make("webgrove/WebShop-v0", split="train", observation_mode="text",
                   num_products=num_products, catalog_seed=catalog_seed)
    rng = np.random.default_rng(seed)
    try:
        oracle, random_policy = OraclePolicy(env), RandomPolicy()
        for i in range(episodes):
            policy = oracle if i % 2 == 0 else random_policy
            obs, info = env.reset(seed=seed + i)
            history: list[str] = []
            done = False
            while not done:
                ctx = context_from(obs, info, history)
                action = policy.propose(ctx, 1, rng)[0].action
                texts.append(obs)
                texts.append(policy_prompt(ctx) + action_completion(action))
                obs, _, terminated, truncated, info = env.step(action)
                history.append(action)
                done = terminated or truncated
    finally:
        env.close()
    texts.extend(SHOP_FIXED_STRINGS)
    return texts


def count_parameters(model) -> int:
    """Number of distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


def init_model(out_dir: str | Path, size: str = "tiny", arch: str = "gpt2",
               corpus: list[str] | None = None, seed: int = 0, vocab_size: int = 2000,
               lowercase: bool = False) -> Path:
    """Train a tokenizer, build a fresh model and save both to `out_dir`.

    Args:
        out_dir: directory to write (created; existing files are overwritten).
        size, arch, seed: see `build_model`.
        corpus: tokenizer training text; `shop_corpus()` when None.
        vocab_size: tokenizer vocabulary size.
        lowercase: an uncased tokenizer (see `train_tokenizer`).

    Returns:
        The model directory, loadable with `AutoModelForCausalLM.from_pretrained`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    texts = shop_corpus(seed=seed) if corpus is None else corpus
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size, lowercase=lowercase)
    model = build_model(tokenizer, size=size, arch=arch, seed=seed)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    return out


@dataclass
class InitModelConfig:
    """Write a freshly initialised tiny causal LM and its locally trained tokenizer."""

    out: str = field(metadata={"help": "output model directory"})
    size: str = field(default="tiny", metadata={"help": "model size", "choices": list(SIZES)})
    arch: str = field(default="gpt2", metadata={"help": "architecture", "choices": list(ARCHS)})
    seed: int = field(default=0, metadata={"help": "initialisation and corpus seed"})
    vocab_size: int = field(default=2000, metadata={"help": "tokenizer vocabulary size"})
    lowercase: bool = field(default=False, metadata={
        "help": "an uncased tokenizer: the shop's capitalised ids and titles become the tokens its actions "
                "and goals use"})

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"unknown size {self.size!r}; choose from {sorted(SIZES)}")
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; choose from {list(ARCHS)}")


def run_init_model(config: InitModelConfig) -> int:
    """`webgrove init-model`: build and save; prints the directory and parameter count."""
    from transformers import AutoModelForCausalLM

    out = init_model(config.out, size=config.size, arch=config.arch, seed=config.seed,
                     vocab_size=config.vocab_size, lowercase=config.lowercase)
    model = AutoModelForCausalLM.from_pretrained(out)
    log.info(f"wrote {config.arch} {config.size} model ({count_parameters(model) / 1e6:.2f} M parameters) to {out}")
    return 0
