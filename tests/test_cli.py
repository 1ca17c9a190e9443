"""The command line: one-line errors that list what exists, and the evaluate JSON contract."""

import json
import shutil

import pytest
import torch

from l2l.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "quadratc", "--optimizer", "adam"], "unknown problem 'quadratc'; known: "),
    (["evaluate", "quadratic:dims=3", "--optimizer", "adam"], "options: dim, distribution, init_std"),
    (["evaluate", "quadratic:dim=x", "--optimizer", "adam"], "bad value for quadratic:dim"),
    (["evaluate", "quadratic:distribution=cauchy", "--optimizer", "adam"], "'gaussian' or 'uniform'"),
    (["evaluate", "quadratic", "--optimizer", "adamw"], "unknown optimizer 'adamw'; use pretrained:NAME"),
    (["evaluate", "quadratic", "--optimizer", "adam:fast"], "bad learning rate in 'adam:fast'"),
    (["evaluate", "quadratic", "--optimizer", "pretrained:nope"], "no pretrained optimizer 'nope'; shipped: "),
    (["evaluate", "quadratic", "--optimizer", "lstm:/no/such.pt"], "does not exist"),
    (["reproduce", "fig99"], "unknown figure 'fig99'; known: fig4-left"),
    (["train", "quadratic", "--horizon", "50", "--unroll", "20"], "multiple of unroll"),
    (["train", "quadratic", "--scale-down"], "needs random_scale R > 1"),
])
def test_bad_input_gives_one_line_errors(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith("l2l: error: ") and message in err and err.count("\n") == 1


def test_unknown_problem_lists_every_family(capsys):
    from l2l.problems import PROBLEMS

    _, _, err = run(capsys, "evaluate", "nope", "--optimizer", "adam")
    assert all(name in err for name in PROBLEMS)


def test_train_refuses_to_overwrite_and_resume_needs_state(capsys, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_bytes(b"")
    code, _, err = run(capsys, "train", "quadratic", "--out", str(tmp_path / "run"))
    assert code == 2 and "--resume" in err
    code, _, err = run(capsys, "train", "quadratic:dim=2", "--out", str(tmp_path / "run"),
                       "--force", "--output-scale", "1e30", "--epochs", "1", "--horizon", "2",
                       "--unroll", "1", "--validation-size", "2", "--quiet")
    assert code == 2 and "no best.pt written" in err
    (tmp_path / "run" / "best.pt").write_bytes(b"")  # an old run's best, started over with --force
    code, _, err = run(capsys, "train", "quadratic:dim=2", "--out", str(tmp_path / "run"),
                       "--force", "--output-scale", "1e30", "--epochs", "1", "--horizon", "2",
                       "--unroll", "1", "--validation-size", "2", "--quiet")
    assert code == 2 and not (tmp_path / "run" / "best.pt").exists()  # none passes for the new
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "best.pt").write_bytes(b"")
    code, _, err = run(capsys, "train", "quadratic", "--out", str(tmp_path / "done"), "--resume")
    assert code == 2 and "holds files of a run but no last.pt" in err
    # a run stopped before it saved anything (Ctrl-C during its first epoch's setup) resumes
    # by starting: the same run as one never interrupted
    common = ["--epochs", "2", "--batch-size", "2", "--horizon", "4", "--unroll", "2",
              "--validate-every", "1", "--validation-size", "2", "--quiet"]
    code, _, err = run(capsys, "train", "quadratic:dim=2", "--out", str(tmp_path / "new"),
                       "--resume", *common)
    assert code == 0 and "nothing saved in" in err
    assert run(capsys, "train", "quadratic:dim=2", "--out", str(tmp_path / "b"), *common)[0] == 0
    a, b = (torch.load(tmp_path / d / "best.pt", weights_only=True)["state_dict"] for d in ("new", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_evaluate_json_contract(capsys, tmp_path):
    out = tmp_path / "eval.json"
    stale = tmp_path / ".eval.json.x7k2.tmp"  # left by an evaluate killed while writing
    stale.write_text("{")
    code, text, _ = run(capsys, "evaluate", "quadratic", "--optimizer", "pretrained:quadratic",
                        "--optimizer", "adam:0.1", "--steps", "5", "--runs", "4", "--seed", "3",
                        "--json", str(out), "--quiet", "--at", "3")
    assert code == 0 and "step 5" in text and "step 3" in text
    assert run(capsys, "evaluate", "quadratic", "--optimizer", "adam:0.1", "--steps", "5",
               "--at", "9")[0] == 2
    record = json.loads(out.read_text())
    assert not stale.exists()
    assert (record["problem"], record["steps"], record["runs"], record["seed"]) == (
        "quadratic:dim=10,distribution=gaussian,init_std=0.01", 5, 4, 3)
    names = [r["name"] for r in record["results"]]
    assert names == ["lstm (quadratic)", "adam"]
    for r in record["results"]:
        assert set(r) >= {"name", "lr", "loss_mean", "loss_std"}
        assert len(r["loss_mean"]) == len(r["loss_std"]) == 6
    assert record["results"][1]["lr"] == 0.1


def test_train_and_evaluate_a_checkpoint(capsys, tmp_path):
    code, text, _ = run(capsys, "train", "quadratic:dim=3", "--epochs", "2", "--batch-size", "4",
                        "--horizon", "10", "--unroll", "5", "--validate-every", "1",
                        "--validation-size", "4", "--out", str(tmp_path / "q"), "--quiet")
    assert code == 0 and "best validation" in text
    assert (tmp_path / "q" / "best.pt").exists() and (tmp_path / "q" / "log.json").exists()
    code, text, _ = run(capsys, "evaluate", "quadratic:dim=3", "--optimizer", f"lstm:{tmp_path / 'q'}",
                        "--steps", "3", "--runs", "2", "--quiet")
    assert code == 0 and text.splitlines()[2].startswith("lstm")
    # two checkpoints in one table are told apart
    shutil.copy(tmp_path / "q" / "best.pt", tmp_path / "other.pt")
    spec = f"lstm:{tmp_path / 'other.pt'}"
    code, text, _ = run(capsys, "evaluate", "quadratic:dim=3", "--optimizer", f"lstm:{tmp_path / 'q'}",
                        "--optimizer", spec, "--steps", "3", "--runs", "2", "--quiet")
    rows = text.splitlines()[2:4]
    assert code == 0 and rows[0].split()[0] == "lstm" and rows[1].startswith(f"lstm ({spec})")


def test_second_stage_starts_from_a_trained_optimizer(capsys, tmp_path):
    from l2l.checkpoint import load_optimizer

    common = ["--epochs", "1", "--batch-size", "2", "--horizon", "4", "--unroll", "2",
              "--validate-every", "1", "--validation-size", "2", "--quiet"]
    assert run(capsys, "train", "quadratic:dim=2", "--out", str(tmp_path / "a"), *common)[0] == 0
    code, _, _ = run(capsys, "train", "quadratic:dim=2", "--init", f"lstm:{tmp_path / 'a'}",
                     "--random-scale", "8", "--scale-down", "--out", str(tmp_path / "b"), *common)
    assert code == 0
    record = load_optimizer(tmp_path / "b").provenance
    assert record["training"]["random_scale"] == 8 and record["training"]["scale_down"] is True
    assert record["init"]["from"] == f"lstm:{tmp_path / 'a'}"
    assert record["init"]["provenance"]["problem"].startswith("quadratic:dim=2")


def test_second_stage_takes_a_new_output_scale_and_refuses_a_new_shape(capsys, tmp_path):
    from l2l.checkpoint import load_optimizer

    common = ["--epochs", "1", "--batch-size", "2", "--horizon", "4", "--unroll", "2",
              "--validate-every", "1", "--validation-size", "2", "--quiet"]
    assert run(capsys, "train", "quadratic:dim=2", "--out", str(tmp_path / "a"), *common)[0] == 0
    first = load_optimizer(tmp_path / "a")
    init = ["--init", f"lstm:{tmp_path / 'a'}"]
    code, _, _ = run(capsys, "train", "quadratic:dim=2", *init, "--output-scale", "0.25",
                     "--out", str(tmp_path / "b"), *common)
    assert code == 0 and first.output_scale != 0.25
    assert load_optimizer(tmp_path / "b").output_scale == 0.25
    code, _, err = run(capsys, "train", "quadratic:dim=2", *init, "--hidden-size", "7",
                       "--out", str(tmp_path / "c"), *common)
    assert code != 0 and "hidden_size = 7 does not fit --init" in err


# ------------------------------------------------------------------ every bad input, one line

def invoke(capsys, argv):
    """Run the command line in this process: (exit code, stdout, stderr), argparse's exits too."""
    try:
        code = main(list(argv))
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def bad_files(tmp_path):
    """Files a careless user may hand over: {name: path}."""
    import torch

    from l2l.checkpoint import PRETRAINED_DIR

    files = {"dir": tmp_path / "a folder", "text": tmp_path / "notes.txt",
             "empty": tmp_path / "empty.pt", "cut": tmp_path / "cut.pt",
             "plain": tmp_path / "plain.pt", "run": tmp_path / "run", "textrun": tmp_path / "textrun"}
    files["dir"].mkdir()
    files["text"].write_text("epoch,meta_loss\n1,0.5\n")
    files["empty"].write_bytes(b"")
    whole = (PRETRAINED_DIR / "quadratic.pt").read_bytes()
    files["cut"].write_bytes(whole[:len(whole) // 2])
    torch.save({"weights": torch.zeros(3)}, files["plain"])
    record = torch.load(PRETRAINED_DIR / "quadratic.pt", weights_only=True)
    next(iter(record["state_dict"].values())).view(-1)[0] = float("nan")
    files["nan"] = tmp_path / "nan.pt"  # weights from a run that diverged
    torch.save(record, files["nan"])
    files["run"].mkdir()
    (files["run"] / "last.pt").write_bytes(whole[:len(whole) // 3])  # a truncated training state
    files["half"] = tmp_path / "half"  # a run folder whose last.pt was deleted
    files["half"].mkdir()
    (files["half"] / "log.csv").write_text("epoch,meta_loss\n")
    files["textrun"].mkdir()
    (files["textrun"] / "last.pt").write_text("not a checkpoint")
    return files


Q = ["quadratic:dim=2"]
EVAL = ["evaluate", *Q, "--optimizer", "adam:0.1", "--steps", "3", "--runs", "2", "--quiet"]
TRAIN = ["train", *Q, "--epochs", "1", "--horizon", "4", "--unroll", "2", "--quiet"]
TUNE = ["tune", *Q, "--steps", "3", "--runs", "2", "--quiet"]

BAD = [
    # train: counts, rates, scales, clipping, devices, paths, checkpoints, teachers
    (TRAIN + ["--epochs", "-1"], "epochs must be an integer ≥ 0, got -1"),
    (TRAIN + ["--epochs", "many"], "argument --epochs: must be an integer, got 'many'"),
    (TRAIN + ["--horizon", "0"], "horizon must be a positive integer, got 0"),
    (TRAIN + ["--unroll", "-3"], "unroll must be a positive integer"),
    (TRAIN + ["--horizon", "50", "--unroll", "20"], "multiple of unroll"),
    (TRAIN + ["--batch-size", "-1"], "batch_size must be a positive integer, got -1"),
    (TRAIN + ["--batch-size", "0"], "batch_size must be a positive integer"),
    (TRAIN + ["--meta-lr", "0"], "meta_lr must be a positive finite number, got 0.0"),
    (TRAIN + ["--meta-lr", "nan"], "argument --meta-lr: must be a finite number"),
    (TRAIN + ["--meta-lr", "inf"], "argument --meta-lr"),
    (TRAIN + ["--meta-lr=-1e-3"], "meta_lr must be a positive"),
    (TRAIN + ["--meta-lr", "1e38"], "meta_lr must be at most 1"),
    (TRAIN + ["--imitate-lr", "5"], "imitate_lr must be at most 1"),
    (TRAIN + ["--clip-grad", "-1"], "clip_grad (None: no clipping) must be a positive finite number"),
    (TRAIN + ["--clip-grad", "0"], "clip_grad (None: no clipping) must be"),
    (TRAIN + ["--clip-grad", "nan"], "argument --clip-grad"),
    (TRAIN + ["--validation-size", "0"], "validation_size must be a positive integer"),
    (TRAIN + ["--validate-every", "0"], "validate_every must be a positive integer"),
    (TRAIN + ["--hidden-size", "0"], "hidden_size must be a positive integer"),
    (TRAIN + ["--num-layers", "-2"], "num_layers must be a positive integer"),
    (TRAIN + ["-p", "0"], "p must be a positive finite number"),
    (TRAIN + ["--output-scale", "nan"], "argument --output-scale: must be a finite number, got 'nan'"),
    (TRAIN + ["--output-scale", "-0.1"], "output_scale must be a positive finite number"),
    (TRAIN + ["--random-scale", "0.5"], "random_scale must be a finite number ≥ 1"),
    (TRAIN + ["--random-scale", "inf"], "argument --random-scale"),
    (TRAIN + ["--scale-down"], "needs random_scale R > 1"),
    (TRAIN + ["--imitate", "adam"], "imitate = 'adam' has no effect"),
    (TRAIN + ["--imitate-epochs", "2"], "imitate_epochs needs imitate"),
    (TRAIN + ["--recipe", "nope"], "no recipe 'nope'; shipped: cifar10"),
    (["train"], "name a PROBLEM"),
    (TRAIN + ["--imitate-epochs", "-1"], "imitate_epochs must be an integer ≥ 0"),
    (TRAIN + ["--imitate-lr", "0"], "imitate_lr must be a positive finite number"),
    (TRAIN + ["--imitate-weight", "-1"], "imitate_weight must be a finite number ≥ 0"),
    (TRAIN + ["--imitate-weight", "0.5"], "imitate_weight needs imitate"),
    (TRAIN + ["--imitate", "adamw"], "--imitate 'adamw': the teacher must be a hand-designed"),
    (TRAIN + ["--imitate", "pretrained:quadratic"], "the teacher must be a hand-designed"),
    (TRAIN + ["--imitate", "adam:nan"], "bad learning rate in 'adam:nan'"),
    (TRAIN + ["--time-limit", "-1"], "argument --time-limit"),
    (TRAIN + ["--seed", "-1"], "seed must be an integer ≥ 0, got -1"),
    (TRAIN + ["--seed", str(2**64)], "seed must be below 2^63"),
    (TRAIN + ["--objective", "final"], "objective must be one of loss, log_loss"),
    (TRAIN + ["--device", "mps"], "--device mps: "),
    (TRAIN + ["--device", "cuda:7"], "--device cuda:7: "),
    (TRAIN + ["--device", "tpu"], "--device 'tpu'"),
    (TRAIN + ["--out", "{text}"], "is a file, not a folder"),
    (TRAIN + ["--out", "{text}/sub"], "is a file, not a folder"),
    (TRAIN + ["--out", "{run}"], "already holds a training run"),
    (TRAIN + ["--out", "{run}", "--resume"], "training state {run}/last.pt is truncated or corrupted"),
    (TRAIN + ["--out", "{textrun}", "--resume"], "is not an l2l training state"),
    (TRAIN + ["--out", "{half}", "--resume"], "cannot resume: {half} holds files of a run"),
    (TRAIN + ["--init", "lstm:{text}"], "is not an l2l optimizer checkpoint"),
    (TRAIN + ["--init", "lstm:{cut}"], "is truncated or corrupted"),
    (TRAIN + ["--init", "pretrained:nope"], "no pretrained optimizer 'nope'"),
    (TRAIN + ["--init", "pretrained:quadratic", "--hidden-size", "7"], "does not fit --init"),
    (["train", "quadratc"], "unknown problem 'quadratc'"),
    (["train", "quadratic:dim=0"], "dim must be positive"),
    # evaluate
    (EVAL + ["--steps", "-5"], "argument --steps: must be a positive integer, got '-5'"),
    (EVAL + ["--steps", "0"], "argument --steps"),
    (EVAL + ["--runs", "-2"], "argument --runs: must be a positive integer, got '-2'"),
    (EVAL + ["--runs", "0"], "argument --runs"),
    (EVAL + ["--tune-runs", "0"], "argument --tune-runs"),
    (EVAL + ["--batch-size", "-1"], "argument --batch-size"),
    (EVAL + ["--seed", "-3"], "argument --seed"),
    (EVAL + ["--at", "-1"], "argument --at"),
    (EVAL + ["--at", "9"], "--at 9: the table has steps 0…3"),
    (EVAL + ["--device", "mps"], "--device mps: "),
    (EVAL + ["--device", "cuda"], "--device cuda: "),
    (EVAL + ["--json", "{dir}"], "--json {dir}: is a folder"),
    (EVAL + ["--save", "{dir}"], "--save {dir}: is a folder"),
    (EVAL + ["--plot", "{dir}"], "--plot {dir}: is a folder"),
    (EVAL + ["--json", "{text}/out.json"], "is a file, not a folder"),
    (EVAL + ["--plot", "{dir}/curves.gif"], "unknown file type '.gif'"),
    (EVAL + ["--plot", "{dir}/curves"], "unknown file type '(none)'"),
    (EVAL + ["--optimizer", "adam:nan"], "bad learning rate in 'adam:nan'"),
    (EVAL + ["--optimizer", "sgd:inf"], "bad learning rate in 'sgd:inf'"),
    (EVAL + ["--optimizer", "nag:-1"], "bad learning rate in 'nag:-1'"),
    (EVAL + ["--optimizer", "rmsprop:0"], "bad learning rate in 'rmsprop:0'"),
    (EVAL + ["--optimizer", "adamw"], "unknown optimizer 'adamw'"),
    (EVAL + ["--optimizer", "lstm:{text}"], "is not an l2l optimizer checkpoint"),
    (EVAL + ["--optimizer", "lstm:{empty}"], "is not an l2l optimizer checkpoint"),
    (EVAL + ["--optimizer", "lstm:{cut}"], "is truncated or corrupted"),
    (EVAL + ["--optimizer", "lstm:{plain}"], "is not an l2l optimizer checkpoint (format"),
    (EVAL + ["--optimizer", "lstm:{nan}"], "holds non-finite (NaN or infinite) weights"),
    (TRAIN + ["--init", "lstm:{nan}"], "holds non-finite (NaN or infinite) weights"),
    (EVAL + ["--optimizer", "lstm:{dir}"], "is a folder without best.pt"),
    (EVAL + ["--optimizer", "lstm:{dir}/none.pt"], "does not exist"),
    (EVAL + ["--optimizer", "pretrained:cifar10"], "one LSTM per group"),
    (["evaluate", "quadratic:dim=-1", "--optimizer", "adam"], "dim must be positive"),
    (["evaluate", "quadratic:init_std=nan", "--optimizer", "adam"], "init_std must be a finite"),
    # tune
    (TUNE + ["--steps", "0"], "argument --steps: must be a positive integer, got '0'"),
    (TUNE + ["--steps", "-3"], "argument --steps"),
    (TUNE + ["--runs", "0"], "argument --runs"),
    (TUNE + ["--grid", "0.1,nan"], "argument --grid: rates must be positive finite numbers"),
    (TUNE + ["--grid", "-1,0.1"], "argument --grid"),
    (TUNE + ["--grid", "fast"], "argument --grid"),
    (TUNE + ["--refine", "-1"], "argument --refine"),
    (TUNE + ["--tune-batch", "0"], "argument --tune-batch"),
    (TUNE + ["--optimizer", "adamw"], "unknown baseline 'adamw'"),
    (TUNE + ["--optimizer", "sgd", "--grid", "1e20,1e30", "--refine", "0"], "every rate diverged"),
    (TUNE + ["--device", "mps"], "--device mps: "),
    (TUNE + ["--store", "--store-path", "{dir}"], "--store-path {dir}: is a folder"),
    (TUNE + ["--store", "--store-path", "{text}"], "the store of tuned rates {text} cannot be read"),
    # reproduce
    (["reproduce", "fig99"], "unknown figure 'fig99'"),
    (["reproduce", "fig4-left", "--runs", "0"], "argument --runs"),
    (["reproduce", "fig4-left", "--runs", "-1"], "argument --runs"),
    (["reproduce", "fig4-left", "--seed", "-1"], "argument --seed"),
    (["reproduce", "fig4-left", "--out", "{text}"], "is a file, not a folder"),
    # the command itself
    (["trian", "quadratic"], "invalid choice: 'trian'"),
    (["evaluate", "quadratic"], "the following arguments are required: --optimizer"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(argv) for argv, _ in BAD])
def test_every_bad_input_is_one_line_before_any_work(capsys, bad_files, argv, message):
    names = {k: str(v) for k, v in bad_files.items()}
    argv = [a.format(**names) for a in argv]
    before = set(bad_files["dir"].parent.rglob("*"))
    code, out, err = invoke(capsys, argv)
    assert code == 2, (code, err)
    assert err.startswith("l2l: error: ") and message.format(**names) in err, err
    assert "Traceback" not in err and err.count("\n") == 1
    assert "best validation" not in out and "optimizer" not in out  # no work was done
    after = set(bad_files["dir"].parent.rglob("*"))
    assert after == before  # nothing written, no temporary file left


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped"])
def test_a_damaged_data_file_is_named_with_what_to_do(capsys, tmp_path, monkeypatch, damage):
    import numpy as np

    folder = tmp_path / "cifar10"
    folder.mkdir()
    for name in ("cifar10_train.npz", "cifar10_test.npz"):
        path = folder / name
        np.savez(path, x=np.full((4, 32, 32, 3), 9, np.uint8), y=np.arange(4, dtype=np.uint8) % 2)
        raw = bytearray(path.read_bytes())
        if damage == "truncated":
            raw = raw[:len(raw) // 2]
        else:
            raw[len(raw) // 3] ^= 0x01
        path.write_bytes(bytes(raw))
    monkeypatch.setenv("L2L_DATA", str(tmp_path))
    code, _, err = invoke(capsys, ["evaluate", "cifar10:labels=0-1", "--optimizer", "adam:0.1",
                                   "--steps", "1", "--runs", "1", "--quiet"])
    last = err.strip().splitlines()[-1]
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) <= 3
    assert last.startswith(f"l2l: error: {folder}") and "truncated or corrupted" in last
    assert "delete it" in last


def test_a_failed_allocation_is_one_line_and_a_bug_keeps_its_traceback(capsys, monkeypatch):
    """A request too big for the machine is the user's to shrink; any other RuntimeError is a bug.
    (Simulated: a real failed allocation of petabytes leaves glibc's malloc changed for the rest
    of the test process.)"""
    import importlib

    module = importlib.import_module("l2l.evaluate")  # l2l.evaluate is also the function

    def too_big(*args, **kwargs):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: "
                           "can't allocate memory: you tried to allocate 400000000000 bytes. "
                           "Error code 12 (Cannot allocate memory)")

    monkeypatch.setattr(module, "evaluate", too_big)
    code, _, err = invoke(capsys, EVAL)
    assert code == 2 and err == ("l2l: error: out of memory (400000000000 bytes): ask for less "
                                 "(fewer --runs, a smaller --batch-size or --validation-size, "
                                 "a smaller problem)\n")

    def bug(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(module, "evaluate", bug)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(EVAL)


def test_evaluate_beyond_runs_a_multiple_of_the_training_horizon(capsys, tmp_path):
    out = tmp_path / "beyond.json"
    code, text, _ = run(capsys, "evaluate", "quadratic:dim=2", "--optimizer", "pretrained:quadratic",
                        "--optimizer", "adam:0.1", "--beyond", "2", "--runs", "2", "--quiet",
                        "--json", str(out), "--plot", str(tmp_path / "beyond.png"))
    record = json.loads(out.read_text())
    assert code == 0 and record["steps"] == 200 and record["training_horizon"] == 100
    assert "step 100" in text and "step 200" in text  # the horizon and the end in the table
    code, _, err = run(capsys, "evaluate", "quadratic:dim=2", "--optimizer", "adam:0.1",
                       "--beyond", "2", "--quiet")
    assert code == 2 and "learned optimizer's training horizon" in err


def test_table_columns_line_up_with_long_optimizer_names():
    import torch

    from l2l.evaluate import Curve, table

    curves = [Curve("lstm (lstm:experiments/results/checkpoints/a_long_name.pt)", torch.ones(3, 2)),
              Curve("adam", torch.ones(3, 2), lr=0.01)]
    lines = table(curves, steps=[1, 2]).splitlines()
    ends = {len(line) for line in lines[2:]}
    assert len(ends) == 1 and lines[0].index("lr") + 2 == lines[2].index("-") + 1


def test_imitate_none_clears_a_recipes_teacher():
    """CIFAR-2's recipe imitates NAG; ``--imitate none`` is how PES (which has no imitation
    term) is run from its shipped optimizer."""
    from l2l.cli import _settings, build_parser
    from l2l.problems import make_problem
    from l2l.recipes import check_stage, recipe_for

    argv = ["train", "cifar10:labels=0-1", "--imitate", "none", "--estimator", "pes"]
    overrides = _settings(build_parser().parse_args(argv))
    assert overrides["imitate"] is None and overrides["imitate_weight"] == 0
    problem = make_problem("cifar10:labels=0-1")
    _, meta, _ = check_stage(problem, recipe_for(problem).stages[-1], overrides)
    assert meta.imitate is None and meta.estimator == "pes"
