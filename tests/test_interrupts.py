"""Interrupted meta-training resumes bit for bit; killed writes leave nothing behind.

SIGINT and SIGTERM are real signals sent to this process (``os.kill``) at chosen moments: in the
middle of a truncation, of a validation, of a checkpoint write, and twice in a row (stop at once).
Each interrupted run is then resumed and compared with a run never interrupted: φ, Adam's state,
``best.pt`` and every log row (wall-clock seconds aside) must be equal.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import l2l.checkpoint
import l2l.data
import l2l.meta
from l2l.errors import OutputError, TrainingInterrupted
from l2l.meta import MetaConfig, MetaTrainer

PROBLEM = "quadratic:dim=3"
CONFIG = {"epochs": 6, "batch_size": 4, "horizon": 8, "unroll": 4, "meta_lr": 1e-2, "validate_every": 2,
              "validation_size": 4}


def trainer(out, **kw):
    return MetaTrainer(PROBLEM, config=MetaConfig(**{**CONFIG, **kw}), out=out, progress=False)


def rows(log):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in log]


def assert_same_run(a: Path, b: Path):
    """Two run folders hold the same training: best.pt and last.pt tensors, and log rows."""
    best_a, best_b = (torch.load(p / "best.pt", weights_only=True) for p in (a, b))
    assert best_a["state_dict"].keys() == best_b["state_dict"].keys()
    for key, value in best_a["state_dict"].items():
        assert torch.equal(value, best_b["state_dict"][key]), key
    last_a, last_b = (torch.load(p / "last.pt", weights_only=False) for p in (a, b))
    for key, value in last_a["optimizer"]["state_dict"].items():
        assert torch.equal(value, last_b["optimizer"]["state_dict"][key]), key
    adam_a, adam_b = last_a["meta_optimizer"]["state"], last_b["meta_optimizer"]["state"]
    for index in adam_a:
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(adam_a[index][key], adam_b[index][key])
    assert rows(last_a["log"]) == rows(last_b["log"])
    assert last_a["best_validation"] == last_b["best_validation"]
    assert not list(b.glob(".*.tmp"))


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The run never interrupted."""
    out = tmp_path_factory.mktemp("straight")
    trainer(out).train()
    return out


def kill_on_call(monkeypatch, owner, name, call, signals=(signal.SIGINT,), when=None):
    """Make ``owner.name`` send ``signals`` to this process at its ``call``-th call (1-based;
    counting only calls whose arguments pass ``when``), then do its work."""
    real, count = getattr(owner, name), [0]

    def wrapper(*args, **kwargs):
        count[0] += when(*args) if when else 1
        if count[0] == call and (when is None or when(*args)):
            for s in signals:
                os.kill(os.getpid(), s)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


def training_state(obj, *_):
    """Whether ``torch.save`` is writing ``last.pt``."""
    return isinstance(obj, dict) and obj.get("format") == "l2l-training/1"


@pytest.mark.parametrize("moment", ["mid-truncation", "mid-validation", "mid-write", "sigterm",
                                    "twice-mid-write"])
def test_an_interrupted_run_resumes_bit_for_bit(straight, tmp_path, monkeypatch, moment):
    out = tmp_path / "run"
    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with monkeypatch.context() as m:
        if moment == "mid-truncation":  # epoch 3's second truncation (2 truncations an epoch)
            kill_on_call(m, l2l.meta, "unroll", 6)
        elif moment == "mid-validation":  # the validation after epoch 2
            kill_on_call(m, MetaTrainer, "validate", 1)
        elif moment == "mid-write":  # the write of last.pt after epoch 4
            kill_on_call(m, torch, "save", 2, when=training_state)
        elif moment == "sigterm":
            kill_on_call(m, l2l.meta, "unroll", 3, signals=(signal.SIGTERM,))
        else:  # a second Ctrl-C while last.pt is written after epoch 4: stop at once
            kill_on_call(m, torch, "save", 2, signals=(signal.SIGINT, signal.SIGINT),
                         when=training_state)
        with pytest.raises(TrainingInterrupted, match=r"last\.pt.*resume=True"):
            trainer(out).train()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers
    saved = torch.load(out / "last.pt", weights_only=False)
    expected = {"mid-truncation": 3, "mid-validation": 2, "mid-write": 4, "sigterm": 2,
                "twice-mid-write": 2}[moment]
    assert saved["epoch"] == expected and len(saved["log"]) == expected
    assert not list(out.glob(".*.tmp"))
    torch.manual_seed(123)  # whatever the global generator went through meanwhile
    trainer(out).train(resume=True)
    assert_same_run(straight, out)


def test_resume_removes_temporary_files_of_killed_writes(straight, tmp_path):
    out = tmp_path / "run"
    trainer(out, epochs=2).train()
    stale = [out / ".last.pt.k9x2_a1.tmp", out / ".best.pt.zz.tmp", out / ".log.csv.q.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    mine = out / "notes.tmp"  # not a temporary file of the run: left alone
    mine.write_text("keep")
    trainer(out).train(resume=True)
    assert not any(p.exists() for p in stale) and mine.exists()
    assert_same_run(straight, out)


def test_resuming_a_finished_run_rewrites_logs_a_kill_left_behind(tmp_path):
    trainer(tmp_path, epochs=2).train()
    whole = (tmp_path / "log.csv").read_text()
    (tmp_path / "log.csv").write_text("epoch\n")  # killed between writing last.pt and the logs
    trainer(tmp_path, epochs=2).train(resume=True)
    assert (tmp_path / "log.csv").read_text() == whole


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(OSError):
        l2l.checkpoint.atomic_write_text("{}", tmp_path / "taken")
    with pytest.raises(OSError):
        l2l.checkpoint.atomic_save({"x": 1}, tmp_path / "taken")
    with pytest.raises(OutputError, match=f"cannot write {tmp_path / 'taken'}"):  # one line
        l2l.checkpoint.atomic_save({"x": 1}, tmp_path / "taken")
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="cannot write"):
        l2l.checkpoint.atomic_write_text("{}", tmp_path / "file" / "x.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "taken"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_are_written_with_the_users_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        saved = l2l.checkpoint.atomic_save({"x": 1}, tmp_path / "a.pt")
        text = l2l.checkpoint.atomic_write_text("{}", tmp_path / "a.json")
        converted = tmp_path / "a.npz"  # the data folder's converted files
        l2l.data.write_atomically(converted, lambda f: f.write(b"x"))
    finally:
        os.umask(old)
    for path in (saved, text, converted):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_ctrl_c_on_the_command_line_saves_and_resume_finishes_the_same_run(straight, tmp_path):
    """The real thing: ``python -m l2l train`` in a child process, SIGINT once its first
    validation is saved; then ``--resume`` (in this process) ends with the uninterrupted run."""
    out = tmp_path / "run"
    argv = ["train", PROBLEM, "--epochs", "6", "--batch-size", "4", "--horizon", "8",
            "--unroll", "4", "--meta-lr", "1e-2", "--validate-every", "2",
            "--validation-size", "4", "--out", str(out), "--quiet"]
    # the child is slowed down after each epoch so that the signal lands mid-run
    slow = ("import sys, time, l2l.meta as m; e = m.MetaTrainer._epoch\n"
            "def slow(*a): e(*a); time.sleep(0.3)\n"
            "m.MetaTrainer._epoch = slow\n"
            "from l2l.cli import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen([sys.executable, "-c", slow, *argv], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (out / "log.csv").exists() and child.poll() is None:
            assert time.monotonic() < deadline, "the child never saved its first validation"
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 130, err
    assert "Traceback" not in err and "--resume" in err and len(err.strip().splitlines()) <= 2
    from l2l.cli import main

    assert main([*argv, "--resume"]) == 0
    assert_same_run(straight, out)


def test_the_random_generators_state_is_saved_and_restored(tmp_path):
    """Training draws from explicit generators (l2l.seeding); should a problem or an optimizer
    draw from torch's global one, a resumed run would still continue bit for bit."""
    torch.manual_seed(5)
    trainer(tmp_path, epochs=2).train()
    saved = torch.load(tmp_path / "last.pt", weights_only=False)["rng"]["torch"]
    torch.manual_seed(99)
    trainer(tmp_path, epochs=4).load_training_state()
    assert torch.equal(torch.get_rng_state(), saved)
