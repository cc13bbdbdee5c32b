"""Multi-process training with Hugging Face accelerate.

`webgrove train dpo|sft ... --num-processes N` relaunches the same command under
`accelerate launch --multi_gpu --num_processes N` (data-parallel: one process per GPU,
or N CPU processes talking over gloo when there is no GPU). It is the same as running::

    accelerate launch --multi_gpu --num_processes N -m webgrove train dpo ...   # (CPU: ACCELERATE_USE_CPU=true)

Each process trains on its share of every batch (the effective batch is N x
--batch-size x --grad-accum); only the main process writes the model, the adapter and
train_result.json (`webgrove.training.sft.run_trainer`), and the Trainer writes
checkpoints from the main process only, so `--resume` works as with one process.

For DeepSpeed ZeRO or FSDP, launch accelerate yourself with one of the configs in
`configs/accelerate/` (see `configs/README.md`)::

    accelerate launch --config_file configs/accelerate/deepspeed_zero2.yaml -m webgrove train dpo ...
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from typing import Any


def launched() -> bool:
    """True inside a process started by accelerate/torchrun (its rank is set)."""
    return "LOCAL_RANK" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def config_argv(cfg: Any) -> list[str]:
    """Command-line flags that rebuild the dataclass `cfg` (`--name value`, `--[no-]flag`)."""
    argv: list[str] = []
    for f in dataclasses.fields(cfg):
        value, flag = getattr(cfg, f.name), "--" + f.name.replace("_", "-")
        if value is None:
            continue
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, (list, tuple)):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def launch_command(words: tuple[str, ...], cfg: Any) -> tuple[list[str], dict[str, str]]:
    """The `accelerate launch` command line (and environment) that runs `webgrove WORDS` with
    `cfg`'s flags in `cfg.num_processes` processes."""
    import torch

    env = dict(os.environ)
    if not torch.cuda.is_available():
        env["ACCELERATE_USE_CPU"] = "true"  # N CPU processes over gloo
    env.setdefault("OMP_NUM_THREADS", "1")  # processes share the cores; oversubscribed threads spin-wait
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
           "--num_processes", str(cfg.num_processes), "--num_machines", "1",
           "--mixed_precision", "bf16" if getattr(cfg, "bf16", False) else "no", "--dynamo_backend", "no",
           "-m", "webgrove", *words, *config_argv(cfg)]
    return cmd, env


def relaunch(words: tuple[str, ...], cfg: Any) -> int:
    """Run `webgrove WORDS` under accelerate in `cfg.num_processes` processes; its exit code."""
    cmd, env = launch_command(words, cfg)
    return subprocess.call(cmd, env=env)


def leave_process_group() -> None:
    """In a launched process, once its training is done: wait for every rank, then tear the
    process group down before the interpreter exits (nothing to do in a single process). Left
    to interpreter exit, gloo's threads can be destroyed while still joinable ("terminate called
    without an active exception": one rank aborted after a finished 2-process DPO run, once in
    the suite)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def needs_relaunch(cfg: Any) -> bool:
    """True when `cfg` asks for several processes and this is not one of them yet."""
    return getattr(cfg, "num_processes", 1) > 1 and not launched()
