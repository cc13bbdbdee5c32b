"""Multi-process DPO with accelerate (2 CPU processes over gloo) and tracking into TensorBoard."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from webgrove.cli import parse_config
from webgrove.training.distributed import config_argv, launch_command
from webgrove.training.dpo import DPORunConfig, completion_logprobs
from webgrove.training.sft import load_model

from test_sft_dpo import dpo_rows


def test_config_argv_rebuilds_the_config(tmp_path):
    cfg = DPORunConfig(model="m", out=str(tmp_path), pairs="p.jsonl", beta=0.3, lora=False, epochs=1.5,
                       num_processes=2, report_to="tensorboard")
    assert parse_config(("train", "dpo"), config_argv(cfg)) == cfg
    cmd, env = launch_command(("train", "dpo"), cfg)
    assert cmd[1:4] == ["-m", "accelerate.commands.launch", "--multi_gpu"]
    assert cmd[cmd.index("--num_processes") + 1] == "2" and cmd[cmd.index("-m", 3):][:4] == [
        "-m", "webgrove", "train", "dpo"]
    assert env.get("ACCELERATE_USE_CPU") == ("true" if not _cuda() else env.get("ACCELERATE_USE_CPU"))


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.slow
def test_dpo_in_two_processes_learns_and_writes_once(tiny_model_dir, tmp_path):
    from webgrove.search.tracking import read_scalars

    model, tokenizer = load_model(tiny_model_dir)
    rows = dpo_rows(model, tokenizer) * 2  # 12 pairs, stored reference = the model's own log-probs
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out, run_dir = tmp_path / "dpo", tmp_path / "run"
    cmd = [sys.executable, "-m", "webgrove", "train", "dpo", "--model", str(tiny_model_dir), "--pairs", str(pairs),
           "--out", str(out), "--epochs", "4", "--batch-size", "3", "--learning-rate", "2e-3", "--beta", "0.5",
           "--no-merge", "--logging-steps", "1", "--no-progress", "--num-processes", "2",
           "--report-to", "tensorboard", "--run-dir", str(run_dir)]
    env = dict(os.environ, OMP_NUM_THREADS="1", TQDM_DISABLE="1", HF_DATASETS_DISABLE_PROGRESS_BARS="1")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "train_result.json").read_text())
    assert result["num_processes"] == 2
    assert result["steps"] == 4 * math.ceil(12 / (2 * 3))  # each step: 3 pairs on each of 2 processes
    losses = [h["loss"] for h in result["log"]]
    assert losses[0] == pytest.approx(math.log(2), abs=1e-3)  # starts at the stored reference
    assert losses[-1] < losses[0] - 0.1
    # only the main process writes: one adapter, one TensorBoard event file
    assert sorted(p.name for p in out.rglob("adapter_model.safetensors")) == ["adapter_model.safetensors"]
    assert len(list(run_dir.rglob("events.out.tfevents.*"))) == 1
    scalars = read_scalars(run_dir)
    assert len(scalars["train/loss"]) == result["steps"]
    # the adapter is the trained one: the preference moved on the training pairs
    from peft import PeftModel

    trained = PeftModel.from_pretrained(load_model(tiny_model_dir)[0], out)
    prompts = [r["prompt"] for r in rows]
    chosen = completion_logprobs(trained, tokenizer, prompts, [r["chosen"] for r in rows])
    assert all(c > r["ref_chosen_logps"] for c, r in zip(chosen, rows))


def test_leave_process_group_tears_down_an_initialized_group():
    import socket

    import torch.distributed as dist

    from webgrove.training.distributed import leave_process_group

    leave_process_group()  # no group: nothing to do
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    assert dist.is_initialized()
    leave_process_group()
    assert not dist.is_initialized()
