"""Tool command lines: list options end where config overrides begin; one setup helper builds the config."""
import importlib.util
import os

import pytest

from wish_d2.engine.cli import split_overrides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tool(name):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", os.path.join(ROOT, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("argv,seeds,methods,opts", [
    (["--seeds", "1", "2", "MODEL.X", "Y"], [1, 2], None, ["MODEL.X", "Y"]),
    (["--seeds", "1", "2", "SEED", "3"], [1, 2], None, ["SEED", "3"]),
    (["--methods", "wish", "supervised", "MODEL.WISH.STAGE1.MAX_ITER", "5", "SEED", "1"], None,
     ["wish", "supervised"], ["MODEL.WISH.STAGE1.MAX_ITER", "5", "SEED", "1"]),
    (["--seeds", "1", "2", "--methods", "wish", "MODEL.A", "b"], [1, 2], ["wish"], ["MODEL.A", "b"]),
    (["--seeds", "4", "--", "MODEL.A", "b"], [4], None, ["MODEL.A", "b"]),
    (["--seeds", "1", "MODEL.A", "b", "--", "MODEL.C", "d"], [1], None, ["MODEL.A", "b", "MODEL.C", "d"]),
    (["--jobs", "1", "MODEL.A", "b"], None, None, ["MODEL.A", "b"]),
])
def test_reproduce_table_list_options_stop_at_overrides(argv, seeds, methods, opts):
    args = _tool("reproduce_table").parse_args(["--config-file", "c.yaml", "--output-dir", "o"] + argv)
    assert args.seeds == seeds and args.methods == methods and args.opts == opts


@pytest.mark.parametrize("argv", [["--seeds", "MODEL.X", "1"], ["--seeds", "one"], ["--seeds", "1", "MODEL.X"]])
def test_reproduce_table_bad_command_lines_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        _tool("reproduce_table").parse_args(["--config-file", "c.yaml", "--output-dir", "o"] + argv)
    assert e.value.code == 2
    assert "--seeds" in capsys.readouterr().err or "KEY VALUE" in str(e.value)


def test_split_overrides_keeps_lowercase_values():
    assert split_overrides(["wish_synth_train", "ego4d", "DATASETS.TEST", "('x',)"]) == (
        ["wish_synth_train", "ego4d"], ["DATASETS.TEST", "('x',)"])
    assert split_overrides(["a", "b"]) == (["a", "b"], [])


def test_setup_cfg_validates_and_registers(tmp_path):
    import argparse

    from detectron2.data import DatasetCatalog

    from wish_d2.config_validation import ConfigError
    from wish_d2.engine.setup import setup_cfg

    config = os.path.join(ROOT, "configs", "wish_synthetic.yaml")
    cfg = setup_cfg(argparse.Namespace(config_file=config, opts=["OUTPUT_DIR", str(tmp_path)]))
    assert cfg.is_frozen() and cfg.OUTPUT_DIR == str(tmp_path)
    assert "wish_synth_train" in DatasetCatalog.list()
    with pytest.raises(ConfigError, match="SHARD_SIZE"):
        setup_cfg(argparse.Namespace(config_file=config, opts=["MODEL.WISH.CACHE.SHARD_SIZE", "0"]))
