"""A tiny model directory and hand-made shop prompts shared by the training tests."""
from __future__ import annotations

import os

import pytest

from training_fixtures import ACTIONS, shop_contexts

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A freshly initialised tiny GPT-2 and a BPE tokenizer trained on the test prompts."""
    from agents.prompts import action_completion, policy_prompt
    from training.tiny import build_model, train_tokenizer

    texts = [policy_prompt(c) + action_completion(a) for c in shop_contexts() for a in ACTIONS]
    texts += ["Thought: my last action was a mistake; I take a better one."]
    tokenizer = train_tokenizer(texts * 3, vocab_size=400)
    model = build_model(tokenizer, size="tiny", seed=0)
    out = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
