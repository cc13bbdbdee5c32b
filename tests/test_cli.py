"""The `webgrove` command: every subcommand has --help; a user error is one line on stderr and
exit 2; a bug keeps its traceback; --debug shows every traceback; progress bars only on a terminal."""
from __future__ import annotations

import json
import os
import fcntl
import pty
import socket
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from webgrove.cli import COMMANDS, command_parser, main, rollout_warnings

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def webgrove(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "webgrove", *args], capture_output=True, text=True,
                          env=ENV, timeout=120, **kwargs)


def test_top_level_help_lists_every_command():
    out = webgrove("--help")
    assert out.returncode == 0
    for words in COMMANDS:
        assert words[0] in out.stdout


def test_no_arguments_prints_help_and_exits_2():
    out = webgrove()
    assert out.returncode == 2
    assert "usage: webgrove" in out.stderr and "rollout" in out.stderr and out.stdout == ""


@pytest.mark.parametrize("words", sorted(COMMANDS), ids=lambda w: " ".join(w))
def test_every_command_has_help_with_text_for_each_flag(words, capsys):
    with pytest.raises(SystemExit) as exc:
        main(list(words) + ["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "usage: webgrove " + " ".join(words) in text
    parser = command_parser(words)
    for action in parser._actions:
        if action.dest != "help":
            assert action.help, f"{' '.join(words)} --{action.dest} has no help text"


def test_shared_groups_give_one_flag_each_with_one_default(capsys):
    """rollout composes EnvArgs, PolicyArgs, SearchArgs and OutputArgs; the search defaults are SearchConfig's."""
    from webgrove.search.mcts import SearchConfig

    with pytest.raises(SystemExit):
        main(["rollout", "--help"])
    text = capsys.readouterr().out
    for section in ("EnvArgs:", "PolicyArgs:", "SearchArgs:", "OutputArgs:"):
        assert section in text
    for flag in ("--goal-set", "--policy", "--simulations", "--rollout-temperature", "--json"):
        assert text.count(flag + " ") >= 1
    assert "--goals " not in text
    assert f"(default: {SearchConfig().simulations})" in text.split("--simulations SIMULATIONS")[2][:200]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _error_cases(tmp_path) -> dict[str, tuple[list[str], str]]:
    not_a_model = tmp_path / "not_a_model"  # the test creates it, empty
    return {
        "episodes 0": (["rollout", "--episodes", "0"], "--episodes must be at least 1"),
        "bad goal range": (["demos", "--out", str(tmp_path / "d.jsonl"), "--goal-range", "5:2"], "is empty"),
        "goal range not A:B": (["demos", "--out", str(tmp_path / "d.jsonl"), "--goal-range", "5"], "A:B"),
        "goal range beyond the split": (["demos", "--out", str(tmp_path / "d.jsonl"), "--goal-range", "0:100000"],
                                        "goals (ids 0 to"),
        "demos on a non-shop env": (["demos", "--out", str(tmp_path / "d.jsonl"), "--env",
                                     "webgrove/miniwob.click-test-v0"], "demos need a shop env"),
        "rollout beyond the split": (["rollout", "--start-goal", "499", "--episodes", "5"], "has 500 goals"),
        "unknown policy": (["rollout", "--policy", "nope"], "unknown policy 'nope'"),
        "not a model": (["rollout", "--policy", str(not_a_model)], "not a model"),
        "missing data dir": (["rollout", "--data-dir", str(tmp_path / "missing")], "--data-dir"),
        "human goals need data": (["rollout", "--goal-set", "human"], "needs the original WebShop files"),
        "port out of range": (["shop", "serve", "--port", "99999"], "65535"),
        "unreachable server": (["rollout", "--policy", "openai", "--base-url", f"http://127.0.0.1:{_free_port()}/v1",
                                "--model-name", "m", "--episodes", "1", "--max-retries", "0"], "Connection refused"),
        "unknown flag": (["rollout", "--no-such-flag"], "unrecognized arguments"),
        "bad int": (["rollout", "--episodes", "many"], "invalid int value"),
        "unknown env": (["rollout", "--env", "webgrove/Nope-v0"], "not a registered Gymnasium id"),
        "eval is rollout now": (["eval", "--model", "x"], "webgrove rollout --policy"),
        "unknown command": (["frobnicate"], "unknown command"),
        "group without subcommand": (["train"], "sft, dpo, critic, merge"),
        "missing tree file": (["view", str(tmp_path / "missing.jsonl")], "No such file or directory"),
    }


@pytest.mark.parametrize("case", list(_error_cases(Path("unused"))))
def test_user_error_is_one_line_on_stderr_and_exit_2(case, tmp_path, capsys):
    (tmp_path / "not_a_model").mkdir()
    argv, expected = _error_cases(tmp_path)[case]
    assert main(argv) == 2
    out = capsys.readouterr()
    lines = out.err.splitlines()
    assert len(lines) == 1, out.err
    assert expected in lines[0] and lines[0].startswith("webgrove")
    assert "Traceback" not in out.err and out.out == ""


def test_port_in_use_is_one_line_in_the_real_command():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        out = webgrove("shop", "serve", "--port", str(s.getsockname()[1]), "--num-products", "50")
    assert out.returncode == 2
    assert out.stderr.splitlines() == ["webgrove shop serve: error: the port is already in use: "
                                       "choose another --port (--port 0 picks a free one)"]


def test_debug_shows_the_traceback_of_a_user_error():
    plain = webgrove("rollout", "--episodes", "0")
    debug = webgrove("--debug", "rollout", "--episodes", "0")
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "UsageError" in debug.stderr


def test_a_bug_keeps_its_traceback(capsys):
    # json:loads is called as loads(env=env): a TypeError in code, not a user error.
    with pytest.raises(TypeError):
        main(["rollout", "--policy", "json:loads", "--episodes", "1", "--no-progress"])


def test_rollout_prints_its_summary_and_writes_json(tmp_path, capsys):
    path = tmp_path / "r.json"
    assert main(["rollout", "--policy", "oracle", "--episodes", "3", "--num-products", "100",
                 "--json", str(path), "--no-progress"]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("oracle on webgrove/WebShop-v0 (test, 3 episodes): success rate 1.000 "
                              "[95% CI 0.439-1.000], score 100.0 [95% CI 100.0-100.0]")
    assert out.err == ""
    assert json.loads(path.read_text())["success_rate"] == 1.0


def test_rollout_warns_when_the_env_rejects_most_actions():
    summary = {"policy": "oracle", "env": "webgrove/WebShopBrowser-v0", "episodes": 2, "mean_steps": 15,
               "invalid_actions": 30}
    assert "rejected 30 of 30 actions" in rollout_warnings(summary)[0]
    assert rollout_warnings(dict(summary, invalid_actions=1)) == []


def _stderr_of(args: list[str], terminal: bool) -> str:
    """stderr of the real command, on a pseudo-terminal or a pipe."""
    if not terminal:
        return webgrove(*args).stderr
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # tqdm needs a width
    proc = subprocess.Popen([sys.executable, "-m", "webgrove", *args], stdout=subprocess.DEVNULL,
                            stderr=follower, env=ENV)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(leader)
    return b"".join(chunks).decode(errors="replace")


def test_progress_bar_only_on_a_terminal():
    args = ["rollout", "--policy", "rule", "--episodes", "3", "--num-products", "100"]
    assert "rollout rule" in _stderr_of(args, terminal=True)
    assert _stderr_of(args, terminal=False) == ""
