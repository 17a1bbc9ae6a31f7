import subprocess
import sys

import pytest

from config import ConfigError, load_cfg


def test_defaults_are_the_bot_baseline():
    cfg = load_cfg()
    assert cfg.MODEL.NAME == "resnet50" and cfg.MODEL.LAST_STRIDE == 1 and not cfg.MODEL.STEM_RELU
    assert cfg.SOLVER.BASE_LR == pytest.approx(3.5e-4) and list(cfg.SOLVER.STEPS) == [40, 70]
    assert not cfg.DISENTANGLE.IMAGE.ENABLED and not cfg.DISENTANGLE.FEATURE.ENABLED
    assert cfg.MODEL.DEVICE == "auto"


def test_overrides_are_typed_and_applied(tmp_path):
    path = tmp_path / "x.yml"
    path.write_text("MODEL:\n  NAME: resnet18\nSOLVER:\n  MAX_EPOCHS: 3\n")
    cfg = load_cfg(str(path), ["SOLVER.MAX_EPOCHS", "5", "DATASETS.SOURCES", "['veri','vehiclex']"])
    assert cfg.MODEL.NAME == "resnet18"
    assert cfg.SOLVER.MAX_EPOCHS == 5
    assert list(cfg.DATASETS.SOURCES) == ["veri", "vehiclex"]


@pytest.mark.parametrize("opts, needle", [
    (["SOLVER.BASE_LRR", "0.1"], "SOLVER.BASE_LRR"),
    (["MODEL.NAME", "resnet51"], "MODEL.NAME"),
    (["SOLVER.MAX_EPOCHS", "'ten'"], "SOLVER.MAX_EPOCHS"),
    (["DATASETS.SOURCES", "['veri','kitti']"], "DATASETS.SOURCES"),
    (["DATASETS.TARGET", "vehiclex"], "DATASETS.TARGET"),
    (["SOLVER.IMS_PER_BATCH", "30"], "SOLVER.IMS_PER_BATCH"),
    (["SOLVER.MAX_EPOCHS"], "KEY VALUE"),
])
def test_mistakes_name_the_key(opts, needle):
    with pytest.raises(ConfigError) as err:
        load_cfg("", opts)
    assert needle in str(err.value)


def test_typo_in_yaml_file_names_file_and_key(tmp_path):
    path = tmp_path / "typo.yml"
    path.write_text("SOLVER:\n  MAX_EPOCH: 3\n")
    with pytest.raises(ConfigError) as err:
        load_cfg(str(path))
    assert "typo.yml" in str(err.value) and "SOLVER.MAX_EPOCH" in str(err.value)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="config file not found: nope.yml"):
        load_cfg("nope.yml")


@pytest.mark.slow
def test_cli_prints_one_line_without_traceback():
    result = subprocess.run([sys.executable, "tools/train.py", "SOLVER.BASE_LRR", "0.1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("error:") and "SOLVER.BASE_LRR" in result.stderr


def test_a_typo_gets_the_same_hint_in_a_yaml_file_and_on_the_command_line(tmp_path):
    path = tmp_path / "typo.yml"
    path.write_text("SOLVER:\n  BASE_LRR: 0.1\n")
    with pytest.raises(ConfigError) as in_file:
        load_cfg(str(path))
    with pytest.raises(ConfigError) as on_line:
        load_cfg("", ["SOLVER.BASE_LRR", "0.1"])
    hint = "unknown config key SOLVER.BASE_LRR; did you mean SOLVER.BASE_LR?"
    assert str(in_file.value) == f"{path}: {hint} (config/defaults.py lists the keys)"
    assert str(on_line.value) == f"command line: {hint} (config/defaults.py lists the keys)"


@pytest.mark.parametrize("key, values, expected", [
    ("TEST.RE_RANKING", ["yes", "True", "on", "YES"], "yes"),
    ("TEST.RE_RANKING", ["no", "False", "off"], "no"),
    ("TEST.FEAT_NORM", ["no", "False"], "no"),
    ("MODEL.IF_LABELSMOOTH", ["off", "False", "no"], "off"),
    ("TEST.FLIP", ["yes", "True", "on"], True),
    ("DATASETS.STRICT", ["no", "False", "off"], False),
    ("MODEL.NECK", ["no", "False"], "no"),
])
def test_yes_no_switches_take_words_and_booleans(key, values, expected, tmp_path):
    group, name = key.split(".")
    for value in values:
        assert load_cfg("", [key, value])[group][name] == expected, value
        # In YAML an unquoted yes/no/on/off/true/false is a boolean; quoted, a string.
        for written in (value, f"'{value}'"):
            path = tmp_path / "switch.yml"
            path.write_text(f"{group}:\n  {name}: {written}\n")
            assert load_cfg(str(path))[group][name] == expected, written


def test_a_value_of_the_wrong_type_names_the_key_and_the_type():
    with pytest.raises(ConfigError, match=r"^command line: SOLVER.MAX_EPOCHS takes an int \(default 120\), not a "
                                          r"str \('ten'\)$"):
        load_cfg("", ["SOLVER.MAX_EPOCHS", "ten"])
    with pytest.raises(ConfigError, match="TEST.RE_RANKING = 'maybe' is not one of 'yes', 'no'"):
        load_cfg("", ["TEST.RE_RANKING", "maybe"])
    assert load_cfg("", ["SOLVER.BIAS_LR_FACTOR", "2"]).SOLVER.BIAS_LR_FACTOR == 2.0


def test_config_file_has_the_dashed_alias():
    import argparse

    from utils.cli import add_config_arguments

    parser = add_config_arguments(argparse.ArgumentParser())
    for flag in ("--config_file", "--config-file"):
        args = parser.parse_args([flag, "a.yml", "SOLVER.MAX_EPOCHS", "3"])
        assert args.config_file == "a.yml" and args.opts == ["SOLVER.MAX_EPOCHS", "3"]


@pytest.mark.parametrize("opts, message", [
    (["SOLVER.MAX_EPOCHS", "0"], "SOLVER.MAX_EPOCHS = 0 must be at least 1"),
    (["SOLVER.MAX_EPOCHS", "-1"], "SOLVER.MAX_EPOCHS = -1 must be at least 1"),
    (["DATALOADER.NUM_INSTANCE", "0"], "DATALOADER.NUM_INSTANCE = 0 must be at least 1"),
    (["DATALOADER.NUM_WORKERS", "-1"], "DATALOADER.NUM_WORKERS = -1 must be at least 0"),
    (["TEST.IMS_PER_BATCH", "0"], "TEST.IMS_PER_BATCH = 0 must be at least 1"),
    (["SOLVER.ITERS_PER_EPOCH", "-1"], "SOLVER.ITERS_PER_EPOCH = -1 must be at least 0"),
    (["INPUT.PIXEL_STD", "[0.229, 0.0, 0.225]"], "INPUT.PIXEL_STD = [0.229, 0.0, 0.225] must be positive"),
    (["TEST.MAX_UNREADABLE", "1.5"], "TEST.MAX_UNREADABLE = 1.5 must be a fraction in [0, 1]"),
    (["SOLVER", "5"], "command line: SOLVER is a section of keys (SOLVER.OPTIMIZER_NAME, SOLVER.MAX_EPOCHS, "
                      "SOLVER.ITERS_PER_EPOCH, ...), not a single value"),
    (["SOLVER.BASE_LR", "[1]"], "command line: SOLVER.BASE_LR takes a float (default 0.00035), not a list"),
])
def test_values_that_would_fail_later_are_refused_in_one_line(opts, message):
    with pytest.raises(ConfigError) as err:
        load_cfg("", opts)
    assert str(err.value).startswith(message), str(err.value)


def test_config_mistakes_are_one_line_errors_of_the_tools(tmp_path):
    from tool_runs import assert_user_error, run_tool_in_process

    files = {"list.yml": b"- SOLVER\n- MODEL\n", "scalar.yml": b"5\n", "binary.yml": b"\x89PNG\r\n\x1a\n\x00\x00",
             "section.yml": b"SOLVER: 5\n"}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    expected = {
        "list.yml": "holds a YAML list, not a mapping of keys",
        "scalar.yml": "holds a YAML int, not a mapping of keys",
        "binary.yml": "not a YAML text file (byte 0x89 at offset 0 is not UTF-8 text)",
        "section.yml": "SOLVER is a section of keys (SOLVER.OPTIMIZER_NAME,",
    }
    for name, message in expected.items():
        path = str(tmp_path / name)
        assert_user_error(run_tool_in_process("train.py", "--config_file", path), f"error: {path}: {message}")
    for key, value in (("SOLVER.MAX_EPOCHS", 0), ("SOLVER.MAX_EPOCHS", -1), ("DATALOADER.NUM_INSTANCE", 0),
                       ("DATALOADER.NUM_WORKERS", -1), ("TEST.IMS_PER_BATCH", 0), ("SOLVER.ITERS_PER_EPOCH", -1)):
        assert_user_error(run_tool_in_process("train.py", "OUTPUT_DIR", tmp_path / "run", key, value),
                          f"error: {key} = {value} must be at least")
    assert not (tmp_path / "run").exists()
