"""The tiny-model builder (training/tiny.py); its tests live here with the model users."""
import numpy as np
import pytest

from webgrove.training.tiny import build_model, count_parameters, shop_corpus, train_tokenizer


@pytest.fixture(scope="module")
def corpus():
    return shop_corpus(num_products=100, episodes=6)


@pytest.fixture(scope="module")
def tokenizer(corpus):
    return train_tokenizer(corpus, vocab_size=800)


def test_corpus_holds_real_pages_and_prompts(corpus):
    assert any(t.startswith("Instruction: [SEP] ") and "[SEP] Buy Now" in t for t in corpus)  # item pages
    assert any(t.startswith("WebShop [SEP] Instruction: [SEP]") for t in corpus)  # search pages
    prompts = [t for t in corpus if t.startswith("Goal: ")]
    assert prompts and all("\nAction: " in t for t in prompts)
    assert any(t.endswith("Action: click[buy now]") for t in prompts)
    assert "search[" in corpus and "click[buy now]" in corpus
    assert corpus == shop_corpus(num_products=100, episodes=6)  # deterministic


def test_tokenizer(tokenizer):
    assert len(tokenizer) == 800
    assert tokenizer.pad_token == "<|pad|>" and tokenizer.pad_token_id == 0
    assert tokenizer.bos_token_id is not None and tokenizer.eos_token_id is not None
    assert tokenizer.unk_token is not None and tokenizer.chat_template is None
    for text, decoded in [("Action: click[buy now]", "Action: click[ buy now]"),
                          ("search[größe 10 – ünïcode ✓]", "search[ größe 10 – ünïcode ✓]"),
                          ("  two  spaces\n", "  two  spaces\n"), ("search[", "search["), ("[]", "[]")]:
        # the one normalisation: a space after a "[" that a word follows (see train_tokenizer)
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.unk_token_id not in ids and tokenizer.decode(ids) == decoded
    # an option value after "[" is the same token as in the goal, so a model can copy it
    word = tokenizer(" large")["input_ids"]
    assert tokenizer(" click[large]")["input_ids"][-len(word) - 1:-1] == word
    # no specials added, and frequent shop words merge into fewer tokens than rare letters
    assert tokenizer.eos_token_id not in tokenizer("click")["input_ids"]
    assert len(tokenizer(" click[buy now]")["input_ids"]) < len(tokenizer(" qzxjv[wvk yfq]")["input_ids"]) - 3


@pytest.mark.parametrize("size,low,high", [("tiny", 1e6, 5e6), ("small", 15e6, 30e6)])
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_model_sizes(tokenizer, size, low, high, arch):
    n = count_parameters(build_model(tokenizer, size=size, arch=arch))
    assert low <= n <= high


def test_build_is_seeded(tokenizer):
    import torch

    before = torch.random.get_rng_state()
    a, b, c = (build_model(tokenizer, seed=s) for s in (0, 0, 1))
    assert torch.equal(torch.random.get_rng_state(), before)  # global RNG untouched
    wa, wb, wc = (m.transformer.h[0].attn.c_attn.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    with pytest.raises(ValueError, match="unknown size"):
        build_model(tokenizer, size="huge")
    with pytest.raises(ValueError, match="unknown arch"):
        build_model(tokenizer, arch="mamba")


def test_init_model_command(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from webgrove.agents.base import StepContext
    from webgrove.agents.hf import HFPolicy
    from webgrove.cli import main

    out = tmp_path / "model"
    assert main(["init-model", "--out", str(out), "--arch", "llama", "--vocab-size", "600"]) == 0
    model = AutoModelForCausalLM.from_pretrained(out)
    tok = AutoTokenizer.from_pretrained(out)
    assert model.config.model_type == "llama" and model.config.vocab_size == len(tok) == 600
    assert model.config.eos_token_id == tok.eos_token_id and tok.pad_token_id == 0
    ctx = StepContext("i need shoes", "WebShop [SEP] Search", ["click[a]", "click[b]"], [])
    lps = HFPolicy(out, device="cpu").logprobs(ctx, ["click[a]", "click[b]"])
    assert np.all(np.isfinite(lps))


def test_an_uncased_tokenizer_gives_page_and_action_the_same_tokens(corpus):
    uncased = train_tokenizer(corpus, vocab_size=800, lowercase=True)
    ids = uncased(" B0UL4H6VQA Everyday Women's Leggings")["input_ids"]
    assert ids == uncased(" b0ul4h6vqa everyday women's leggings")["input_ids"]
    product = uncased(" b0ul4h6vqa")["input_ids"]
    assert uncased(" click[b0ul4h6vqa]")["input_ids"][-len(product) - 1:-1] == product  # the id copies
    assert uncased.decode(uncased("Buy Now")["input_ids"]) == "buy now"
    # a prompt and its completion tokenize apart as they do together (what scoring relies on)
    prompt, completion = "Goal: a Dress\nPage: B0UL4H6VQA [SEP] Dress\nAction:", " click[b0ul4h6vqa]"
    assert uncased(prompt)["input_ids"] + uncased(completion)["input_ids"] == uncased(prompt + completion)["input_ids"]
    cased = train_tokenizer(corpus, vocab_size=800)
    assert cased(" B0UL4H6VQA")["input_ids"] != cased(" b0ul4h6vqa")["input_ids"]  # the default stays cased
