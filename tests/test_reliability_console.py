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


def test_sft_reads_a_sectioned_config_then_flags_then_overrides(tmp_path, monkeypatch):
    from dataclasses import fields

    import vlthinker.sft as sft
    from vlthinker.cli import main

    assert set(sft.SFT_KEYS) == {f.name for f in fields(sft.SFTSettings)}
    config = tmp_path / "sft.yaml"
    config.write_text(
        "model:\n  path: some/model\n"
        "data:\n  train_size: 12\n  think_tag: thinking\n"
        "training:\n  epochs: 2\n  per_device_batch_size: 8\n"
        "logging:\n  report_to: [tensorboard]\n"
    )
    seen: list = []
    monkeypatch.setattr(sft, "run_sft", lambda settings: seen.append(settings) or tmp_path)
    assert main(["sft", "--config", str(config), "--epochs", "3", "--bf16"]) == 0
    settings = seen[-1]
    assert (settings.model, settings.synthetic_size, settings.think_tag) == (
        "some/model",
        12,
        "thinking",
    )
    assert (settings.epochs, settings.batch_size, settings.bf16) == (3.0, 8, True)  # flag > file
    assert settings.report_to == ["tensorboard"] and settings.learning_rate == 1e-3  # default
    main(["sft", "--config", str(config), "--epochs", "3", "training.epochs=4"])
    assert seen[-1].epochs == 4.0  # a key.sub=value override comes last
    main(["sft", "--batch-size", "4"])  # flags alone, as before
    assert (seen[-1].batch_size, seen[-1].epochs, seen[-1].model) == (4, 1.0, "embedded:tiny_vlm")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["training.epochs=0"], r"training\.epochs=0'.*training\.epochs \(--epochs\) must be"),
        (["training.epochz=1"], r"unknown config key 'training\.epochz'"),
        (["data.seed=x"], r"data\.seed: expected an integer"),
    ],
)
def test_sft_config_errors_name_the_key(argv, message, monkeypatch):
    import vlthinker.sft as sft
    from vlthinker.cli import main

    monkeypatch.setattr(sft, "run_sft", lambda settings: pytest.fail("must not train"))
    with pytest.raises(SystemExit, match=message):
        main(["sft", *argv])
