"""Every `--help` is instant: building the command line imports neither torch nor TRL."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "trl", "transformers", "vlthinker.train.trainer")

_PROBE = """
import sys
from vlthinker.cli import build_parser
parser = build_parser()
for argv in {argvs!r}:
    try:
        parser.parse_args(argv)
    except SystemExit:
        pass
print("HEAVY:" + ",".join(m for m in {heavy!r} if m in sys.modules))
"""


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )


def test_building_the_parser_and_every_help_import_neither_torch_nor_trl():
    argvs = [
        ["--help"],
        ["data", "--help"],
        ["data", "synth", "--help"],
        ["data", "check", "--help"],
        ["sft", "--help"],
        ["train", "--help"],
        ["eval", "--help"],
    ]
    out = _run(_PROBE.format(argvs=argvs, heavy=HEAVY)).stdout
    assert out.strip().splitlines()[-1] == "HEAVY:"


@pytest.mark.parametrize("command", [[], ["train"], ["eval"], ["sft"], ["data", "check"]])
def test_help_of_every_command_runs_as_a_module(command):
    result = _run(
        "import runpy, sys\n"
        f"sys.argv = ['vlthinker', *{command!r}, '--help']\n"
        "try:\n"
        "    runpy.run_module('vlthinker.cli', run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
        f"print('HEAVY:' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    assert "usage: vlthinker" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "HEAVY:"


def test_sft_help_explains_every_option_and_eval_model_says_local_folder(capsys):
    from vlthinker.cli import main

    with pytest.raises(SystemExit):
        main(["sft", "--help"])
    text = capsys.readouterr().out
    from dataclasses import fields

    from vlthinker.sft import OPTION_HELP, SFTSettings

    assert set(OPTION_HELP) == {f.name for f in fields(SFTSettings)}
    for help_text in OPTION_HELP.values():
        assert help_text.split()[0] in text
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "local checkpoint folder" in text and "hub-style" not in text


def test_the_train_package_still_exposes_its_names_lazily():
    import vlthinker.train as train

    assert "G2RPOTrainer" in dir(train)
    with pytest.raises(AttributeError):
        train.no_such_name  # noqa: B018
