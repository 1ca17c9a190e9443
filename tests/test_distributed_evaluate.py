"""Evaluation and tuning on torch.distributed: two processes on the loopback interface (gloo)
split the test runs and the grid of rates, and report what one process reports.

Each test launches ``python -m torch.distributed.run`` with a rendezvous on 127.0.0.1 at a free
port and a bounded timeout; the processes run one thread each.
"""

import json
import os
import re
import socket
import subprocess
import sys

import pytest
import torch

from l2l.cli import main

pytestmark = pytest.mark.skipif(not torch.distributed.is_available()
                                or not torch.distributed.is_gloo_available(),
                                reason="this torch has no gloo backend")

#: 6 runs split 3 + 3; sgd is tuned (no stored rate for this problem), split over the grid
EVALUATE = ["evaluate", "quadratic:dim=3", "--optimizer", "adam:0.1", "--optimizer", "sgd",
            "--optimizer", "pretrained:quadratic", "--steps", "20", "--runs", "6", "--seed", "3",
            "--retune", "--quiet"]
TUNE = ["tune", "quadratic:dim=3", "--steps", "20", "--runs", "4", "--optimizer", "sgd",
        "--optimizer", "adam", "--quiet"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*argv, nproc=2):
    """``python -m l2l ARGV`` in ``nproc`` processes; the finished process."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               "--nnodes=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_port()}",
               "-m", "l2l", *map(str, argv)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
           "L2L_DIST_TIMEOUT": "60"}
    return subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)


def test_two_processes_evaluate_what_one_evaluates(tmp_path):
    assert main([*EVALUATE, "--json", str(tmp_path / "one.json")]) == 0
    done = torchrun(*EVALUATE, "--json", tmp_path / "two.json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("lstm (quadratic)") == 1  # rank 0 alone prints the table
    one, two = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert [r["name"] for r in two["results"]] == [r["name"] for r in one["results"]]
    for a, b in zip(one["results"], two["results"]):
        assert b["lr"] == a["lr"]  # sgd's: the same rate of the same grid
        for key in ("loss_mean", "loss_std"):
            torch.testing.assert_close(torch.tensor(b[key]), torch.tensor(a[key]), rtol=1e-5,
                                       atol=0)
    assert two["provenance"]["world_size"] == 2 and two["provenance"]["backend"] == "gloo"
    assert one["provenance"]["world_size"] == 1 and one["provenance"]["backend"] is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.json", "two.json"]


def _chosen(text: str) -> dict:
    return {name: float(lr) for name, lr in re.findall(r"^(\w+) +best lr (\S+)", text, re.M)}


def test_two_processes_tune_what_one_tunes(tmp_path, capsys):
    assert main([*TUNE, "--store", "--store-path", str(tmp_path / "one.json")]) == 0
    one = _chosen(capsys.readouterr().out)
    done = torchrun(*TUNE, "--store", "--store-path", tmp_path / "two.json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("stored in") == 1  # rank 0 alone prints and stores
    assert set(one) == {"sgd", "adam"} and _chosen(done.stdout) == one
    stored = {n: next(iter(json.loads((tmp_path / f"{n}.json").read_text()).values()))
              for n in ("one", "two")}
    for name in one:
        a, b = stored["one"][name]["20"], stored["two"][name]["20"]
        assert b["lr"] == a["lr"]  # the same rate of the same grid
        assert b["scores"] == pytest.approx(a["scores"], rel=1e-5)
        assert a["provenance"]["world_size"] == 1 and b["provenance"]["world_size"] == 2
