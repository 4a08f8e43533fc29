"""Table-driven bad tool flags: each is one line naming the flag, exit status 2, before any work (run in-process)."""
import importlib.util
import json
import os

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILE = "{file}"  # replaced by the path of an existing regular file
UNDER_FILE = "{file}/sub"  # a path whose folder is an existing regular file
DIR = "{dir}"  # replaced by an existing folder
EVIL = "{evil}"  # a config file whose payload would create the marker file


def _tool(name):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", os.path.join(ROOT, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _entry(tool):
    """The in-process entry of each tool: the function that parses (and checks) its command line."""
    if tool == "benchmark":
        from wish_d2.benchmark.cli import main

        return main
    name = {"make_synthetic": "parse_args", "reproduce_table": "main", "video_benchmark": "main",
            "extract_proposals": "invoke", "train_net": "parse_args", "extract_features": "parse_args",
            "pretrain_synthetic_clip": "main", "hand_benchmark": "main", "train_hand_detector": "parse_args"}[tool]
    return getattr(_tool(tool), name)


REPRO = ["--config-file", os.path.join(ROOT, "configs", "wish_synthetic.yaml")]
PROPS = ["--dataset", "wish_synth_val"]

# (tool, argv, what the error line must contain)
CASES = [
    ("make_synthetic", ["--image-size", "0x0"], "argument --image-size: expected HxW with both sides in [32, 8192]"),
    ("make_synthetic", ["--image-size", "1x1"], "argument --image-size"),
    ("make_synthetic", ["--image-size", "-5x10"], "argument --image-size"),
    ("make_synthetic", ["--image-size", "160"], "argument --image-size: expected HxW"),
    ("make_synthetic", ["--image-size", "10000x10000"], "argument --image-size"),
    ("make_synthetic", ["--num-train", "-1"], "argument --num-train: expected an integer in [0, 1000000]"),
    ("make_synthetic", ["--num-test", "1e9"], "argument --num-test"),
    ("make_synthetic", ["--seed", "-1"], "argument --seed: expected an integer in [0, 4294967295]"),
    ("make_synthetic", ["--out", FILE], "argument --out"),
    ("make_synthetic", ["--out", UNDER_FILE], "argument --out"),
    ("reproduce_table", REPRO + ["--output-dir", DIR, "--seeds", "-1"], "argument --seeds: expected an integer"),
    ("reproduce_table", REPRO + ["--output-dir", DIR, "--seeds", "0", "x"], "argument --seeds"),
    ("reproduce_table", REPRO + ["--output-dir", DIR, "--jobs", "0"], "argument --jobs: expected an integer in [1,"),
    ("reproduce_table", REPRO + ["--output-dir", DIR, "--jobs", "-1"], "argument --jobs"),
    ("reproduce_table", REPRO + ["--output-dir", DIR, "--train-seed", "-3"], "argument --train-seed"),
    ("reproduce_table", REPRO + ["--output-dir", FILE], "argument --output-dir"),
    ("reproduce_table", REPRO + ["--output-dir", UNDER_FILE], "argument --output-dir"),
    ("reproduce_table", ["--config-file", EVIL, "--output-dir", DIR], "--config-file: "),
    ("reproduce_table", REPRO + ["--output-dir", DIR, "SOLVER.IMS_PER_BATCH", "1e9"],
     "config override SOLVER.IMS_PER_BATCH"),
    ("reproduce_table", REPRO + ["--output-dir", DIR, "DATALOADER.NUM_WORKERS", "-1"], "DATALOADER.NUM_WORKERS=-1"),
    ("video_benchmark", ["--output-dir", DIR, "--seconds", "0"], "argument --seconds: expected a number > 0"),
    ("video_benchmark", ["--output-dir", DIR, "--seconds", "nan"], "argument --seconds"),
    ("video_benchmark", ["--output-dir", DIR, "--seconds", "-2"], "argument --seconds"),
    ("video_benchmark", ["--output-dir", DIR, "--val-videos", "0"], "argument --val-videos"),
    ("video_benchmark", ["--output-dir", DIR, "--train-seeds", "0", "-1"], "argument --train-seeds"),
    ("video_benchmark", ["--output-dir", DIR, "--threads", "-1"], "argument --threads"),
    ("video_benchmark", ["--output-dir", FILE], "argument --output-dir"),
    ("video_benchmark", ["--output-dir", DIR, "--config-file", EVIL], "--config-file: "),
    ("extract_proposals", PROPS + ["--output", "{dir}/p.jsonl", "--limit", "-1"], "argument --limit"),
    ("extract_proposals", ["--dataset", "no_such_split", "--output", "{dir}/p.jsonl"],
     "--dataset 'no_such_split' is not registered"),
    ("extract_proposals", PROPS + ["--output", DIR], "argument --output: '{dir}' is an existing folder"),
    ("extract_proposals", PROPS + ["--output", "{file}/p.jsonl"], "argument --output"),
    ("extract_proposals", PROPS + ["--output", "{dir}/p.jsonl", "--config-file", EVIL], "--config-file: "),
    ("extract_proposals", PROPS + ["--output", "{dir}/p.jsonl", "--num-machines", "2", "--machine-rank", "2"],
     "--machine-rank 2"),
    ("extract_proposals", PROPS + ["--output", "{dir}/p.jsonl", "--num-gpus", "0"], "--num-gpus 0"),
    ("train_net", ["--machine-rank", "1"], "--machine-rank 1: expected 0 <= rank < --num-machines (1)"),
    ("train_net", ["--num-machines", "2", "--machine-rank", "5"], "--machine-rank 5"),
    ("train_net", ["--num-machines", "0"], "--num-machines 0"),
    ("train_net", ["--num-machines", "2", "--dist-url", "auto"], "--dist-url auto"),
    ("extract_features", ["--machine-rank", "-1"], "--machine-rank -1"),
    ("pretrain_synthetic_clip", ["--probe-frames", "-1"], "argument --probe-frames"),
    ("pretrain_synthetic_clip", ["--json", DIR], "argument --json"),
    ("pretrain_synthetic_clip", ["--config-file", EVIL], "--config-file: "),
    ("pretrain_synthetic_clip", ["--save-every", "0"], "argument --save-every"),
    ("pretrain_synthetic_clip", ["--probe-val-frames", "-1"], "argument --probe-val-frames"),
    ("pretrain_synthetic_clip", ["--ship", DIR], "argument --ship"),
    ("pretrain_synthetic_clip", ["--ship", "{dir}/w.pt", "--work-dir", FILE], "argument --work-dir"),
    ("benchmark", ["--threads", "0"], "argument --threads"),
    ("benchmark", ["--batch-size", "0"], "argument --batch-size"),
    ("benchmark", ["--json", DIR], "argument --json"),
    ("benchmark", ["--work-dir", FILE], "argument --work-dir"),
    ("hand_benchmark", ["--output-dir", DIR, "--seed", "-1"], "argument --seed: expected an integer in [0, "),
    ("hand_benchmark", ["--output-dir", DIR, "--num-train", "0"], "argument --num-train: expected an integer in [1,"),
    ("hand_benchmark", ["--output-dir", DIR, "--num-val", "-1"], "argument --num-val: expected an integer in [0,"),
    ("hand_benchmark", ["--output-dir", DIR, "--detector-iters", "x"], "argument --detector-iters"),
    ("hand_benchmark", ["--output-dir", DIR, "--chest-test", "0"], "argument --chest-test"),
    ("hand_benchmark", ["--output-dir", DIR, "--jobs", "0"], "argument --jobs: expected an integer >= 1"),
    ("hand_benchmark", ["--output-dir", FILE], "argument --output-dir"),
    ("train_hand_detector", ["--num-machines", "0"], "--num-machines 0"),
    ("train_hand_detector", ["--machine-rank", "1"], "--machine-rank 1"),
]
if torch.cuda.device_count() == 1:  # with CUDA, one process per GPU (without CUDA: CPU processes, gloo)
    CASES += [("train_net", ["--num-gpus", "2"], "--num-gpus 2: "),
              ("extract_features", ["--num-gpus", "2"], "--num-gpus 2: "),
              ("extract_proposals", PROPS + ["--output", "{dir}/p.jsonl", "--num-gpus", "2"], "--num-gpus 2: ")]


def _fill(words, tmp_path):
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "evil.yaml").write_text(f'SEED: !!python/object/apply:os.system ["touch {tmp_path / "PWNED"}"]\n')
    (tmp_path / "d").mkdir(exist_ok=True)
    subs = {"{file}": str(tmp_path / "a_file"), "{dir}": str(tmp_path / "d"), "{evil}": str(tmp_path / "evil.yaml")}
    out = []
    for w in words:
        for k, v in subs.items():
            w = w.replace(k, v)
        out.append(w)
    return out


@pytest.mark.parametrize("tool,argv,expected", CASES, ids=[f"{t} {' '.join(a)}"[:70] for t, a, _ in CASES])
def test_bad_flag_exits_2_naming_it(tmp_path, capsys, tool, argv, expected):
    entry = _entry(tool)
    argv = _fill(argv, tmp_path)
    (expected,) = _fill([expected], tmp_path)
    before = sorted(os.listdir(tmp_path / "d"))
    with pytest.raises(SystemExit) as e:
        entry(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert expected in err and "Traceback" not in err, err
    assert sorted(os.listdir(tmp_path / "d")) == before  # nothing written
    assert not (tmp_path / "PWNED").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="without CUDA, --num-gpus N starts N CPU processes")
def test_num_gpus_beyond_the_visible_gpus_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        _tool("train_net").parse_args(["--num-gpus", str(torch.cuda.device_count() + 1)])
    assert e.value.code == 2 and "CUDA GPU(s) visible" in capsys.readouterr().err


def test_num_gpus_on_a_machine_without_cuda_means_cpu_processes(monkeypatch):
    """No CUDA: ``--num-gpus 2`` is accepted and the processes join with gloo (the distributed run itself is in
    test_engine_distributed.py)."""
    from wish_d2.engine.launch import dist_backend

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    for tool in ("train_net", "extract_features"):
        assert _tool(tool).parse_args(["--num-gpus", "2"]).num_gpus == 2
    assert dist_backend() == "GLOO"


def test_good_flags_still_parse(tmp_path):
    args = _tool("make_synthetic").parse_args(["--out", str(tmp_path / "new"), "--image-size", "32x8192",
                                               "--num-val", "0", "--seed", "4294967295"])
    assert args.image_size == (32, 8192) and args.num_val == 0
    args = _tool("train_net").parse_args(["--num-gpus", "1", "--machine-rank", "0", "--eval-only"])
    assert args.eval_only and args.num_gpus == 1
    args = _tool("reproduce_table").parse_args(REPRO + ["--output-dir", str(tmp_path), "--seeds", "0", "3",
                                                        "--jobs", "1", "SEED", "1"])
    assert args.seeds == [0, 3] and args.jobs == 1 and args.opts == ["SEED", "1"]


# ----------------------------------------------------------------------------- extract_proposals --resume part files
def _record(image_id):
    return json.dumps({"image_id": image_id, "height": 4, "width": 4, "masks": [], "scores": []}) + "\n"


GARBAGE = [
    ("garbage line in the middle", _record("a") + "not json\n" + _record("b"), 2),
    ("a record that is a list", _record("a") + "[1, 2]\n", 2),
    ("a record without image_id", '{"masks": [], "scores": []}\n', 1),
    ("binary line", _record("a") + "\udcff\n", 2),
]


@pytest.mark.parametrize("case,text,line", GARBAGE, ids=[g[0] for g in GARBAGE])
def test_resume_refuses_a_part_file_with_garbage_and_keeps_it(tmp_path, capsys, case, text, line):
    tool = _tool("extract_proposals")
    out = tmp_path / "p.jsonl"
    part = tool.part_path(str(out), 0, 1)
    with open(part, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(text)
    before = open(part, "rb").read()
    with pytest.raises(SystemExit) as e:
        tool.invoke(PROPS + ["--output", str(out), "--resume"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"--resume: {part} line {line} is not a proposals record" in err, err
    assert open(part, "rb").read() == before  # finished records are not cut off


def test_resume_drops_only_a_torn_last_line(tmp_path):
    tool = _tool("extract_proposals")
    part = tmp_path / "p.jsonl.part0of1"
    part.write_text(_record("a") + _record("b") + '{"image_id": "c", "hei')
    assert [r["image_id"] for r in tool._read_part(str(part))] == ["a", "b"]
    assert part.read_text() == _record("a") + _record("b")
