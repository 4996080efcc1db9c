"""User plug-ins named in a config (``plugins:``) or on ``vlthinker eval --plugins``."""

from __future__ import annotations

import textwrap

import pytest

from vlthinker.algorithms import ESTIMATORS
from vlthinker.train.config import ConfigError, dump_config, load_config

PLUGIN = textwrap.dedent(
    """
    import torch
    from vlthinker.algorithms import ESTIMATORS

    @ESTIMATORS.register("{name}")
    def advantages(rewards, group_ids, task_ids=None, *, weights=None, shift: float = 0.0):
        return torch.zeros(rewards.shape[0]) + shift
    """
)


def write_run(tmp_path, name: str, plugin_ref: str) -> tuple:
    (tmp_path / "plugs").mkdir()
    (tmp_path / "plugs" / "est.py").write_text(PLUGIN.format(name=name))
    config_file = tmp_path / "run.yaml"
    config_file.write_text(
        f"plugins: [{plugin_ref}]\n"
        f"algorithm:\n  estimator: {name}\n  estimator_options: {{shift: 2}}\n"
    )
    return config_file


def test_a_file_plugin_is_imported_before_the_config_is_checked(tmp_path):
    with ESTIMATORS.scoped():
        config_file = write_run(tmp_path, "plugin_shift_a", "plugs/est.py")
        config = load_config(config_file)
        assert config.algorithm.estimator == "plugin_shift_a"
        assert config.algorithm.estimator_options == {"shift": 2.0}  # typed by the plug-in
        # Saved absolute, so a run folder elsewhere (resume) still finds the file.
        assert config.plugins == [str((tmp_path / "plugs" / "est.py").resolve())]
        saved = tmp_path / "elsewhere" / "config.yaml"
        saved.parent.mkdir()
        dump_config(config, saved)
        assert load_config(saved).algorithm.estimator == "plugin_shift_a"


def test_without_the_plugin_the_estimator_is_unknown(tmp_path):
    with ESTIMATORS.scoped():
        config_file = write_run(tmp_path, "plugin_shift_b", "plugs/est.py")
        text = config_file.read_text().replace("plugins: [plugs/est.py]\n", "")
        config_file.write_text(text)
        with pytest.raises(ConfigError, match="unknown advantage estimator 'plugin_shift_b'"):
            load_config(config_file)


def test_a_missing_or_failing_plugin_is_named(tmp_path):
    with pytest.raises(ConfigError, match="plugin 'no_such_module_xyz' could not be imported"):
        load_config(None, ["plugins=[no_such_module_xyz]"])
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match=r"plugin '.*broken.py' .* failed while importing: boom"):
        load_config(None, [f"plugins=[{tmp_path / 'broken.py'}]"])
    with pytest.raises(ConfigError, match="is not a file"):
        load_config(None, [f"plugins=[{tmp_path / 'absent.py'}]"])


def test_eval_imports_its_plugins_first(tmp_path, capsys):
    from vlthinker.cli import main

    with pytest.raises(SystemExit, match="plugin 'no_such_module_xyz' could not be imported"):
        main(["eval", "--plugins", "no_such_module_xyz", "--data", "synthetic"])
