"""Shared fixtures for agent tests: a tiny model built here, hand-made shop steps, and a
real OpenAI-compatible HTTP server of ours on 127.0.0.1.

The server speaks the subset of the API the agents use (`/v1/completions` with
prompt lists, `n`, `stop`, `seed`, `echo` + `logprobs`; `/v1/chat/completions`). It
runs one of two language models:
- `TinyLM`: the session's tiny transformers model; echoes real prompt-token
  log-probabilities computed with the model (as vLLM does);
- `ToyLM`: a small rule-based writer with seeded randomness and, like llama.cpp's
  server, log-probabilities for generated tokens only (no echo).
"""
from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from webgrove.agents.base import StepContext

GOAL = "i need a large red cotton shirt, and price lower than 40.00 dollars"

RESULTS_OBS = (
    f"Instruction: [SEP] {GOAL} [SEP] Back to Search [SEP] Page 1 (Total results: 50) [SEP] Next > "
    "[SEP] B000SYN042 [SEP] Acme red cotton shirt for men [SEP] $12.99 "
    "[SEP] B000SYN043 [SEP] Zeta blue denim jeans [SEP] $30.00 "
    "[SEP] B000SYN044 [SEP] Polar wool winter hat [SEP] $9.50")
RESULTS_ACTIONS = ["click[back to search]", "click[next >]", "click[b000syn042]", "click[b000syn043]",
                   "click[b000syn044]"]
ITEM_OBS = (
    f"Instruction: [SEP] {GOAL} [SEP] Back to Search [SEP] < Prev [SEP] size [SEP] small [SEP] large "
    "[SEP] color [SEP] red [SEP] blue [SEP] Acme red cotton shirt for men [SEP] Price: $12.99 "
    "[SEP] Rating: N.A. [SEP] Description [SEP] Features [SEP] Reviews [SEP] Attributes [SEP] Buy Now")
ITEM_ACTIONS = ["click[back to search]", "click[< prev]", "click[small]", "click[large]", "click[red]",
                "click[blue]", "click[description]", "click[features]", "click[reviews]",
                "click[attributes]", "click[buy now]"]
SEARCH_OBS = f"WebShop [SEP] Instruction: [SEP] {GOAL} [SEP] Search"


def _corpus() -> list[str]:
    """Shop-like text for the test tokenizer (the real corpus needs the env; see test_tiny)."""
    colors = ["red", "blue", "green", "black", "white"]
    items = ["cotton shirt", "denim jeans", "wool hat", "running shoes", "leather wallet"]
    texts = [RESULTS_OBS, ITEM_OBS, SEARCH_OBS, *RESULTS_ACTIONS, *ITEM_ACTIONS, "search[...]"]
    for i in range(400):
        c, it = colors[i % 5], items[(i // 5) % 5]
        texts.append(f"Goal: i need a {c} {it}, and price lower than {10 + i % 50}.00 dollars\n"
                     f"History: search[{c} {it}] > click[b00{i:07d}]\nAction: click[buy now]")
    return texts


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny GPT-2 and its tokenizer, saved as a plain model directory."""
    import torch

    from webgrove.training.tiny import build_model, train_tokenizer

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny-gpt2")
    tokenizer = train_tokenizer(_corpus(), vocab_size=1000)
    model = build_model(tokenizer, size="tiny", arch="gpt2", seed=0)
    tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def hf_policy(tiny_model_dir):
    from webgrove.agents.hf import HFPolicy

    return HFPolicy(tiny_model_dir, device="cpu")


@pytest.fixture
def results_ctx() -> StepContext:
    return StepContext(GOAL, RESULTS_OBS, list(RESULTS_ACTIONS), ["search[red cotton shirt]"])


@pytest.fixture
def item_ctx() -> StepContext:
    return StepContext(GOAL, ITEM_OBS, list(ITEM_ACTIONS), ["search[red cotton shirt]", "click[b000syn042]"])


@pytest.fixture
def search_ctx() -> StepContext:
    return StepContext(GOAL, SEARCH_OBS, ["search[...]"], [])


# -- the server's language models ---------------------------------------------------

class TinyLM:
    """The tiny transformers model behind the API: real log-probabilities and samples."""

    def __init__(self, model_dir):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.lock = threading.Lock()

    def echo(self, text: str) -> dict:
        """OpenAI `logprobs` of `text`'s tokens (first one None) plus one greedy token."""
        torch = self.torch
        enc = self.tokenizer(text, return_offsets_mapping=True)
        ids = enc["input_ids"]
        with self.lock, torch.inference_mode():
            logits = self.model(input_ids=torch.tensor([ids])).logits[0].float()
        logp = torch.log_softmax(logits, -1)
        token_lps = [None] + [float(logp[i - 1, ids[i]]) for i in range(1, len(ids))]
        nxt = int(logp[-1].argmax())
        tokens = [self.tokenizer.decode([i]) for i in ids] + [self.tokenizer.decode([nxt])]
        offsets = [start for start, _ in enc["offset_mapping"]] + [len(text)]
        token_lps.append(float(logp[-1, nxt]))
        return {"text": text + tokens[-1],
                "logprobs": {"tokens": tokens, "token_logprobs": token_lps, "text_offset": offsets,
                             "top_logprobs": None}}

    def sample(self, prompt: str, n: int, temperature: float, max_tokens: int, stop: list[str],
               seed: int) -> list[str]:
        torch = self.torch
        ids = torch.tensor([self.tokenizer(prompt)["input_ids"]])
        kwargs = dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0) if temperature > 0 else {}
        with self.lock, torch.inference_mode(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = self.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_tokens,
                                      num_return_sequences=n if temperature > 0 else 1,
                                      pad_token_id=self.tokenizer.pad_token_id, **kwargs)
        texts = self.tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
        return [_cut(t, stop) for t in texts] * (1 if temperature > 0 else n)


class ToyLM:
    """A rule-based writer for prompts in our formats; no prompt log-probabilities.

    Policy prompts ("Action:"): the i-th listed action with probability ∝ 1 / (i + 1)
    (a search writes the goal's first four words), and one answer in ten is chatter
    that parses to no action. Critic prompts ("Best:"): the number of the candidate with
    the most words in common with the goal (ties: the first).
    """

    def sample(self, prompt: str, n: int, temperature: float, max_tokens: int, stop: list[str],
               seed: int) -> list[str]:
        rng = np.random.default_rng(seed)
        return [_cut(self._one(prompt, rng, temperature), stop) for _ in range(n)]

    @staticmethod
    def _one(prompt: str, rng: np.random.Generator, temperature: float) -> str:
        goal = re.search(r"^Goal: (.*)$", prompt, re.M).group(1)
        if prompt.endswith("Best:"):
            goal_words = set(goal.split())
            cands = re.findall(r"^(\d+)\. (.*)$", prompt, re.M)
            best = max(cands, key=lambda c: (len(goal_words & set(re.findall(r"\w+", c[1]))), -int(c[0])))
            return f" {best[0]}\n"
        query = " ".join(goal.split()[:4])
        if prompt.endswith(" search["):
            return f"{query}]"
        if temperature > 0 and rng.random() < 0.1:
            return " I am not sure.\n"
        actions = re.search(r"^Actions: (.*)$", prompt, re.M).group(1).split(" | ")
        if temperature > 0:
            w = 1.0 / np.arange(1, len(actions) + 1)
            a = actions[int(rng.choice(len(actions), p=w / w.sum()))]
        else:
            a = actions[0]
        return f" search[{query}]\n" if a == "search[...]" else f" {a}\n"

    @staticmethod
    def echo(text: str) -> dict:
        # like llama.cpp: log-probabilities of the generated token only, prompt not echoed
        return {"text": text + " x", "logprobs": {"tokens": [" x"], "token_logprobs": [-0.1], "text_offset": [0]}}


def _cut(text: str, stop: list[str] | None) -> str:
    for s in stop or []:
        i = text.find(s)
        if i >= 0:
            text = text[:i]
    return text


# -- the HTTP server ------------------------------------------------------------------

class _Handler(BaseHTTPRequestHandler):
    server: "ApiServer"

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def _send(self, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with srv.lock:
            srv.requests.append((self.path, body, self.headers.get("Authorization")))
            fail = srv.fail_first > 0
            srv.fail_first -= int(fail)
            srv.active += 1
            srv.max_active = max(srv.max_active, srv.active)
        try:
            self._answer(srv, body, fail)
        finally:
            with srv.lock:
                srv.active -= 1

    def _answer(self, srv: "ApiServer", body: dict, fail: bool) -> None:
        if srv.delay:
            time.sleep(srv.delay)
        if fail:
            return self._send(500, {"error": {"message": "temporarily overloaded"}})
        if body.get("model") != srv.model_name:
            return self._send(404, {"error": {"message": f"model {body.get('model')!r} not found"}})
        lm, seed = srv.lm, int(body.get("seed", 0))
        args = (int(body.get("n", 1)), float(body.get("temperature", 1.0)), int(body.get("max_tokens", 16)),
                body.get("stop") or [], seed)
        if self.path == "/v1/completions":
            if srv.one_prompt and isinstance(body["prompt"], list):  # as `transformers serve` does
                return self._send(400, {"detail": "prompt must be a string."})
            prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
            choices = []
            for p in prompts:
                if body.get("echo"):
                    choices.append({**lm.echo(p), "finish_reason": "length"})
                else:
                    choices += [{"text": t, "logprobs": None, "finish_reason": "stop"} for t in lm.sample(p, *args)]
            choices = [{**c, "index": i} for i, c in enumerate(choices)]
            return self._send(200, {"id": "cmpl-test", "object": "text_completion", "model": srv.model_name,
                                    "choices": choices})
        if self.path == "/v1/chat/completions":
            prompt = body["messages"][-1]["content"]
            texts = lm.sample(prompt, *args)
            return self._send(200, {"id": "chat-test", "object": "chat.completion", "model": srv.model_name,
                                    "choices": [{"index": i, "message": {"role": "assistant", "content": t},
                                                 "finish_reason": "stop"} for i, t in enumerate(texts)]})
        return self._send(404, {"error": {"message": f"no route {self.path}"}})


class ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, lm, model_name: str = "test-model", fail_first: int = 0, delay: float = 0.0,
                 one_prompt: bool = False):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lm, self.model_name, self.fail_first, self.delay = lm, model_name, fail_first, delay
        self.one_prompt = one_prompt  # refuse lists of prompts (HTTP 400)
        self.active = self.max_active = 0  # requests being answered now, and the most at once
        self.lock = threading.Lock()
        self.requests: list[tuple[str, dict, str | None]] = []

    def handle_error(self, request, client_address) -> None:
        # a client that timed out hangs up before the answer: expected in the timeout test
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@contextmanager
def _serving(lm, **kwargs):
    server = ApiServer(lm, **kwargs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="session")
def tiny_lm(tiny_model_dir):
    return TinyLM(tiny_model_dir)


@pytest.fixture
def toy_lm():
    return ToyLM()


@pytest.fixture
def serve():
    """`with serve(lm, fail_first=0, delay=0.0, one_prompt=False) as server:` runs an API server on 127.0.0.1."""
    return _serving


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"
