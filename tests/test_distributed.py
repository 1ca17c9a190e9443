"""Meta-training on torch.distributed: two processes on the loopback interface (gloo) train the
optimizer one process trains, resume each other's runs, and refuse to start when they disagree.

Each test launches ``python -m torch.distributed.run`` with a rendezvous on 127.0.0.1 at a free
port and a bounded timeout; the processes run one thread each.
"""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from l2l.checkpoint import load_optimizer
from l2l.cli import main

pytestmark = pytest.mark.skipif(not torch.distributed.is_available()
                                or not torch.distributed.is_gloo_available(),
                                reason="this torch has no gloo backend")

#: a short quadratic meta-training whose batch (6) and validation set (6) split over 2 processes
ARGS = ["quadratic:dim=4", "--batch-size", "6", "--horizon", "10", "--unroll", "5",
        "--validate-every", "1", "--validation-size", "6", "--quiet"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*argv, nproc=2, module=True, timeout=180):
    """Run ``argv`` (``-m l2l`` arguments, or a script) in ``nproc`` processes; the result."""
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               "--nnodes=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{free_port()}"]
    command += (["-m", "l2l"] if module else []) + [str(a) for a in argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
           "L2L_DIST_TIMEOUT": "60"}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def _validations(folder):
    log = json.loads((folder / "log.json").read_text())["log"]
    return [(row["val_meta_loss"], row["val_final_loss"]) for row in log]


def test_two_processes_train_what_one_trains(tmp_path):
    assert main(["train", *ARGS, "--epochs", "4", "--out", str(tmp_path / "one")]) == 0
    done = torchrun("train", *ARGS, "--epochs", "4", "--out", tmp_path / "two")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("best validation") == 1  # rank 0 alone reports
    torch.testing.assert_close(torch.tensor(_validations(tmp_path / "two")),
                               torch.tensor(_validations(tmp_path / "one")), rtol=1e-5, atol=0)
    one, two = load_optimizer(tmp_path / "one" / "best.pt"), load_optimizer(tmp_path / "two" / "best.pt")
    for a, b in zip(one.state_dict().values(), two.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert two.provenance["world_size"] == 2 and two.provenance["backend"] == "gloo"
    assert one.provenance["world_size"] == 1 and one.provenance["backend"] is None
    files = sorted(p.name for p in (tmp_path / "two").iterdir())
    assert files == ["best.pt", "last.pt", "log.csv", "log.json"]  # no second writer's leftovers


@pytest.mark.parametrize("first, second", [(2, 1), (1, 2)])
def test_a_run_resumes_on_another_number_of_processes(tmp_path, first, second):
    straight = tmp_path / "straight"
    assert main(["train", *ARGS, "--epochs", "4", "--out", str(straight)]) == 0

    def leg(nproc, epochs, *extra):
        argv = ["train", *ARGS, "--epochs", str(epochs), "--out", tmp_path / "legs", *extra]
        if nproc == 1:
            assert main([str(a) for a in argv]) == 0
        else:
            done = torchrun(*argv)
            assert done.returncode == 0, done.stderr[-2000:]

    leg(first, 2)
    leg(second, 4, "--resume")
    torch.testing.assert_close(torch.tensor(_validations(tmp_path / "legs")),
                               torch.tensor(_validations(straight)), rtol=1e-5, atol=0)


def test_processes_that_disagree_on_the_settings_stop_with_a_clear_error(tmp_path):
    script = tmp_path / "disagree.py"
    script.write_text(
        "import os, sys\n"
        "from l2l.distributed import setup\n"
        "from l2l.errors import ConfigError\n"
        "from l2l.meta import MetaConfig, MetaTrainer\n"
        "group = setup()\n"
        "lr = 1e-3 if group.rank == 0 else 2e-3\n"
        "config = MetaConfig(epochs=1, batch_size=2, horizon=4, unroll=2, validation_size=2,\n"
        "                    meta_lr=lr)\n"
        "try:\n"
        "    MetaTrainer('quadratic:dim=2', config=config, progress=False, group=group).train()\n"
        "except ConfigError as error:\n"
        "    open(sys.argv[1] + f'/rank{group.rank}.txt', 'w').write(str(error))\n"
        "    sys.exit(3)\n")
    done = torchrun(script, tmp_path, module=False, timeout=120)
    assert done.returncode != 0
    for rank in (0, 1):  # both stop, saying what differs
        said = (tmp_path / f"rank{rank}.txt").read_text()
        assert said.startswith("the processes disagree on meta_lr: 0.002 on rank 1, 0.001 on rank 0")


def test_a_batch_smaller_than_the_processes_is_refused_before_any_work(tmp_path):
    done = torchrun("train", "quadratic:dim=2", "--batch-size", "1", "--epochs", "1",
                    "--horizon", "4", "--unroll", "2", "--quiet", "--out", tmp_path / "run")
    assert done.returncode != 0 and "--batch-size (1) and --validation-size" in done.stderr
    assert not (tmp_path / "run" / "best.pt").exists()


def test_two_processes_split_pes_pairs_and_train_what_one_trains(tmp_path):
    pes = ["--estimator", "pes", "--pes-pairs", "4", "--pes-std", "0.01", "--epochs", "3"]
    assert main(["train", *ARGS, *pes, "--out", str(tmp_path / "one")]) == 0
    done = torchrun("train", *ARGS, *pes, "--out", tmp_path / "two")
    assert done.returncode == 0, done.stderr[-2000:]
    torch.testing.assert_close(torch.tensor(_validations(tmp_path / "two")),
                               torch.tensor(_validations(tmp_path / "one")), rtol=1e-5, atol=0)
