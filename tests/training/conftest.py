"""A tiny model directory and hand-made shop prompts shared by the training tests."""
from __future__ import annotations

import os

import pytest

from training_fixtures import ACTIONS, shop_contexts

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A throwaway one-layer GPT-2 (about 40 k parameters) and a BPE tokenizer trained on the
    test prompts: small enough that collection and evaluation tests take seconds."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from webgrove.agents.prompts import action_completion, policy_prompt
    from webgrove.training.tiny import train_tokenizer

    texts = [policy_prompt(c) + action_completion(a) for c in shop_contexts() for a in ACTIONS]
    texts += ["Thought: my last action was a mistake; I take a better one."]
    tokenizer = train_tokenizer(texts * 3, vocab_size=400)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=1024, n_embd=32, n_layer=1, n_head=2,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    out = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
