"""The imitation warm start (l2l.imitation): its error measure, that it learns, and `train --imitate`."""

import json

import pytest
import torch

from l2l.checkpoint import load_optimizer
from l2l.cli import main
from l2l.evaluate import evaluate
from l2l.imitation import imitate
from l2l.objectives import Imitation, imitation_error
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


def test_a_nan_gradient_of_the_imitation_error_is_skipped_and_counted(monkeypatch):
    import l2l.imitation

    real = l2l.imitation.imitation_error
    monkeypatch.setattr(l2l.imitation, "imitation_error",  # finite value, NaN gradient
                        lambda *a: real(*a) + (real(*a) * 0).sqrt())
    torch.manual_seed(0)
    student = LSTMOptimizer(hidden_size=4, preprocess=True, output_scale=0.1)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    log = imitate("quadratic:dim=3", student, Adam(0.1), epochs=2, horizon=4, unroll=2,
                  progress=False)
    assert [row["skipped"] for row in log] == [2, 2]
    assert all(torch.equal(v, student.state_dict()[k]) for k, v in before.items())


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


def test_the_imitation_term_compares_the_recorded_steps_with_the_teachers_on_the_same_gradients():
    from l2l.problems import make_problem
    from l2l.rollout import unroll

    torch.manual_seed(0)
    student = LSTMOptimizer(hidden_size=4, adam_inputs=True)
    optimizee = make_problem("quadratic:dim=6").sample(2, torch.Generator().manual_seed(0))
    theta = optimizee.theta0
    path = unroll(optimizee, student, theta, student.init_state(theta), 0, 3,
                  record=Imitation.needs)
    assert len(path.grads) == len(path.updates) == 3
    term = Imitation(Adam(0.1), weight=2.0)
    term.start(theta)
    # Adam's first step is lr·sign(∇): the term's first error is against that
    teacher_step, _ = Adam(0.1)(path.grads[0], Adam(0.1).init_state(theta))
    first = imitation_error(path.updates[0], teacher_step, None)
    errors = [first]
    state = Adam(0.1).init_state(theta)
    errors = []
    for grad, update in zip(path.grads, path.updates):
        step, state = Adam(0.1)(grad, state)
        errors.append(imitation_error(update, step, None))
    torch.testing.assert_close(errors[0], first)
    value = term(path)
    torch.testing.assert_close(value, 2.0 * torch.stack(errors).mean())
    value.backward()  # in the student's graph
    assert all(p.grad is not None for p in student.parameters())


def test_meta_training_with_an_imitation_term_pulls_towards_the_teacher():
    from l2l.meta import MetaConfig, MetaTrainer

    def error_after(weight):
        torch.manual_seed(0)
        student = LSTMOptimizer(hidden_size=8, output_scale=0.1, adam_inputs=True)
        extra = {"imitate": "adam:0.1", "imitate_weight": weight} if weight else {}
        config = MetaConfig(epochs=20, batch_size=4, horizon=20, unroll=10, meta_lr=1e-2,
                            validate_every=20, validation_size=4, **extra)
        MetaTrainer("quadratic:dim=5", student, config, progress=False).train()
        from l2l.rollout import unroll

        optimizee = __import__("l2l").make_problem("quadratic:dim=5").sample(8, torch.Generator().manual_seed(1))
        probe, theta = Imitation(Adam(0.1), 1.0), optimizee.theta0
        probe.start(theta)
        with torch.no_grad():
            path = unroll(optimizee, student, theta, student.init_state(theta), 0, 20, meta=False,
                          record=Imitation.needs)
            return probe(path).item()

    assert error_after(10.0) < 0.5 * error_after(0.0)
    with pytest.raises(ValueError, match="imitate_weight needs imitate"):
        MetaConfig(imitate_weight=1.0)
