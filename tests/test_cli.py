"""The `webgrove` command: every subcommand has --help, and bad flags fail clearly."""
import subprocess
import sys

import pytest

from webgrove.cli import COMMANDS, command_parser, main


def test_top_level_help_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "webgrove", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for words in COMMANDS:
        assert words[0] in out.stdout


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


def test_unknown_flag_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["rollout", "--no-such-flag"])
    assert exc.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_invalid_value_is_reported():
    with pytest.raises(ValueError, match="episodes"):
        main(["rollout", "--episodes", "0"])
