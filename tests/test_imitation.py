"""The imitation warm start (l2l.imitation): its error measure, that it learns, and `train --imitate`."""

import json

import pytest
import torch

from l2l.checkpoint import load_optimizer
from l2l.cli import main
from l2l.evaluate import evaluate
from l2l.imitation import imitate, imitation_error
from l2l.optimizers import Adam, LSTMOptimizer


def test_imitation_error_is_relative_and_averaged_over_groups():
    teacher = torch.tensor([[1.0, 2.0, 0.01, 0.02]])
    groups = {"big": torch.tensor([0, 1]), "small": torch.tensor([2, 3])}
    assert imitation_error(teacher, teacher, groups).item() == 0
    assert imitation_error(torch.zeros_like(teacher), teacher, groups).item() == pytest.approx(1)
    # the small group's error counts as much as the big one's, whatever their scales
    off_small = teacher.clone()
    off_small[0, 2:] = 0
    assert imitation_error(off_small, teacher, groups).item() == pytest.approx(0.5)
    assert imitation_error(off_small, teacher, None).item() == pytest.approx(5e-4 / 5.0005, rel=1e-3)


def test_imitating_adam_brings_the_learned_steps_close_to_adams():
    torch.manual_seed(0)
    student = LSTMOptimizer(hidden_size=8, preprocess=True, output_scale=0.1, adam_inputs=True)
    teacher = Adam(0.1)
    log = imitate("quadratic:dim=5", student, teacher, epochs=80, horizon=20, unroll=10, lr=1e-2,
                  progress=False)
    assert log[0]["error"] > 0.5 and log[-1]["error"] < 0.15
    curves = evaluate("quadratic:dim=5", [student, teacher, Adam(0.01)], steps=20, runs=16,
                      progress=False)
    final = [c.mean[-1].item() for c in curves]
    # on fresh test functions (its own trajectory now) its loss at step 20 is within 15% of its
    # teacher's (seeds 0-3: 6-8%), and far from an Adam ten times slower
    assert abs(final[0] - final[1]) < 0.15 * final[1] < final[2] - final[1]


def test_train_imitate_writes_its_log_and_provenance(tmp_path, capsys):
    common = ["--epochs", "0", "--horizon", "4", "--unroll", "2", "--validation-size", "2",
              "--adam-inputs", "--quiet"]
    code = main(["train", "quadratic:dim=2", "--imitate", "adam:0.1", "--imitate-epochs", "2",
                 "--out", str(tmp_path / "a"), *common])
    out, _ = capsys.readouterr()
    assert code == 0 and "imitated adam: relative error" in out
    record = json.loads((tmp_path / "a" / "imitation.json").read_text())
    assert record["teacher"] == "adam:0.1" and len(record["log"]) == 2
    assert "imitating adam:0.1" in load_optimizer(tmp_path / "a" / "best.pt").provenance["init"]["from"]
    code = main(["train", "quadratic:dim=2", "--imitate", "pretrained:quadratic",
                 "--out", str(tmp_path / "b"), *common])
    _, err = capsys.readouterr()
    assert code == 2 and "must be a hand-designed optimizer" in err
