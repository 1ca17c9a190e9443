"""The command line: one-line errors that list what exists, and the evaluate JSON contract."""

import json
import shutil

import pytest

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
    code, _, err = run(capsys, "train", "quadratic", "--out", str(tmp_path / "empty"), "--resume")
    assert code == 2 and "no training state" in err


def test_evaluate_json_contract(capsys, tmp_path):
    out = tmp_path / "eval.json"
    code, text, _ = run(capsys, "evaluate", "quadratic", "--optimizer", "pretrained:quadratic",
                        "--optimizer", "adam:0.1", "--steps", "5", "--runs", "4", "--seed", "3",
                        "--json", str(out), "--quiet", "--at", "3")
    assert code == 0 and "step 5" in text and "step 3" in text
    assert run(capsys, "evaluate", "quadratic", "--optimizer", "adam:0.1", "--steps", "5",
               "--at", "9")[0] == 2
    record = json.loads(out.read_text())
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
    assert code != 0 and "--hidden-size 7 does not fit --init" in err
