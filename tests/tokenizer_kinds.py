"""Tokenizers of the designs real checkpoints use, trained here with `tokenizers` (no hub).

- "metaspace": Llama/Mistral-style SentencePiece BPE -- a Metaspace pre-tokenizer ("▁" for
  spaces, one prepended to the text, no split at spaces, so merges may cross them), byte
  fallback (<0x..> tokens for characters outside the vocabulary), bos added to every text;
- "bytelevel": Qwen-style byte-level BPE -- Qwen2's split regex, then ByteLevel, NFC, no bos.

Each comes without a chat template (`raw`) or with one (`chat`): a Llama-2-style
"[INST] ... [/INST] answer</s>" template for the metaspace tokenizer, ChatML
("<|im_start|>user ... <|im_end|>") for the byte-level one. "metaspacex" is a metaspace
tokenizer whose merges were learned across spaces, so ":" at the end of a prompt merges
with the completion's first word (":▁click["): the prompt is not a token prefix of
prompt + completion. `KINDS` names the five.

The last goal of `contexts()` has characters the corpus never shows (byte fallback).
"""
from __future__ import annotations

from webgrove.agents.base import StepContext
from webgrove.agents.prompts import action_completion, critic_prompt, policy_prompt

KINDS = ("metaspace-raw", "metaspace-chat", "bytelevel-raw", "bytelevel-chat", "metaspacex-raw")

LLAMA2_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}<<SYS>>\n{{ m['content'] }}\n<</SYS>>\n\n"
    "{% elif m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
    "{% else %} {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}")
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")

GOALS = ["i need a red cotton shirt, and price lower than 40.00 dollars",
         "i want a café crème mug for my naïve friend",  # accents: byte fallback for the metaspace vocab
         "looking for blue running shoes ☕ size 9",
         "größe 42 schuhe → 日本"]  # left out of the corpus: byte pieces
ACTIONS = ["click[back to search]", "click[< prev]", "click[small]", "click[large]", "click[red]",
           "click[buy now]", "click[b000syn042]", "click[description]"]


def contexts() -> list[StepContext]:
    """Shop steps with plain, accented and emoji goals; the first has a search box."""
    out = [StepContext(goal=GOALS[0], observation="WebShop [SEP] Search", available_actions=["search[...]"])]
    for i, g in enumerate(GOALS):
        out.append(StepContext(goal=g, observation=f"Back to Search [SEP] < Prev [SEP] {g} [SEP] size [SEP] "
                                                   "small [SEP] large [SEP] Price: $12.00 [SEP] Buy Now",
                               available_actions=ACTIONS[i:i + 5], history=[f"search[{g[:20]}]"]))
    return out


def corpus() -> list[str]:
    """Policy and critic prompts with their completions, so the merges see the prompt boundary."""
    texts = []
    for ctx in contexts()[:-1]:
        for a in ctx.available_actions:
            texts.append(policy_prompt(ctx) + action_completion(a))
        texts.append(critic_prompt(ctx, ctx.available_actions) + " 1")
    return texts * 4


def _metaspace(texts: list[str], vocab_size: int, crossing: bool):
    import json

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    # SentencePiece learns pieces within words (split=True) and Llama's tokenizer.json encodes
    # the text as one piece (split=False); "crossing" learns across spaces too
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=not crossing)
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, max_token_length=12, show_progress=False,
                                                       special_tokens=["<unk>", "<s>", "</s>"]))
    trained = json.loads(tok.to_str())["model"]
    vocab = dict(trained["vocab"])
    for b in range(256):  # the byte pieces byte fallback needs, as ordinary vocabulary
        vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    tok.model = models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return tok, dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>")


def _bytelevel(texts: list[str], vocab_size: int, chat: bool):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                                       show_progress=False,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    # Qwen's instruct checkpoints end a turn with <|im_end|>, the base ones with <|endoftext|>
    return tok, dict(eos_token="<|im_end|>" if chat else "<|endoftext|>", pad_token="<|endoftext|>")


def build_tokenizer(kind: str, vocab_size: int = 700):
    """A `PreTrainedTokenizerFast` of `kind` (one of `KINDS`), trained on `corpus()`."""
    from transformers import PreTrainedTokenizerFast

    design, fmt = kind.split("-")
    chat = fmt == "chat"
    if design.startswith("metaspace"):
        tok, specials = _metaspace(corpus(), vocab_size, crossing=design == "metaspacex")
        template = LLAMA2_TEMPLATE
    else:
        tok, specials = _bytelevel(corpus(), vocab_size, chat)
        template = CHATML_TEMPLATE
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, **specials)
    if chat:
        tokenizer.chat_template = template
    return tokenizer


def build_model(tokenizer):
    """A tiny Llama for `tokenizer` (the architecture of the checkpoints these tokenizers mimic)."""
    from webgrove.training.tiny import build_model as tiny_model

    return tiny_model(tokenizer, size="tiny", arch="llama", seed=0)
