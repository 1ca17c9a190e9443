"""Speed and memory benchmark of meta-training and evaluation (``python -m l2l bench``).

Times, in one run on one machine:

(a) MNIST meta-training, ms per optimizee step: :meth:`l2l.meta.MetaTrainer.train_epoch` itself
    (the real truncated unroll, meta-backward and Adam step), horizon 100, unroll 20;
(b) evaluation without meta-gradients (:func:`l2l.rollout.run`), ms per step and coordinate
    updates per second;
(c) both again with a reference optimizer whose LSTM is ``torch.nn.LSTMCell`` (the usual way to
    write it, :mod:`l2l.optimizers.reference`), with the same weights, and the speed-ups;
(d) CIFAR-10 meta-training, ms per step (fast and reference);
(e) the drop-in :class:`l2l.LearnedOptimizer` with its default rule, ms per ``step()`` on a
    model of one million parameters (a 1000 × 1000 linear layer with its bias, gradients given),
    beside ``torch.optim.Adam``'s, timed alternately;
(f) peak memory of MNIST meta-training at horizons 100 and 1000, each measured in a fresh
    subprocess as the growth of its peak resident set size (``ru_maxrss``) over the resident set
    just before meta-training. Truncated BPTT must make the two equal.

The optimizees are the library's own families with their paper settings: :class:`~l2l.problems.Mnist`
(an MLP 784-20-10 with sigmoid units on minibatches of 128, 15,910 coordinates, Section 3.2) and
:class:`~l2l.problems.Cifar10` (three 5×5 convolutions with 16 channels, batch norm, ReLU and 2×2
max pooling, then a fully-connected layer of 32 with batch norm and ReLU, and 10 outputs, on
minibatches of 128; one LSTM for the convolution weights and one for the rest, Section 3.3), with
their optimizers' default settings. The data (``--data``, else ``$L2L_DATA`` or the per-user
cache) are loaded before anything is timed. Fast and reference are timed alternately, epoch by
epoch, so that load from other processes hits both alike; the figures are medians over epochs.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch

from . import data
from .data import DataUnavailableError
from .meta import MetaConfig, MetaTrainer
from .optimizers import LSTMOptimizer, _native
from .optimizers.reference import reference_optimizer
from .problems import Cifar10, Mnist
from .problems.base import Problem
from .rollout import run

#: speed targets of the fast engine (see benchmarks/README.md)
TARGETS = {"train_ms": 8.0, "train_speedup": 2.5, "eval_updates_per_s": 5e6, "memory_ratio": 0.10}


# -- optimizees -----------------------------------------------------------------------------------
def load_data(data_dir: str = "", cifar: bool = True) -> None:
    """Load MNIST (and CIFAR-10) into memory from ``data_dir`` (empty: ``$L2L_DATA`` or the
    per-user cache) without downloading; a :class:`~l2l.data.DataUnavailableError` says what is
    missing."""
    try:
        for split in ("train", "test"):
            data.load_mnist(split, data_dir or None, download=False)
            if cifar:
                data.load_cifar10(split, data_dir or None, download=False)
    except DataUnavailableError as error:
        where = data_dir or data.data_dir()
        raise DataUnavailableError(
            f"the benchmark meta-trains on MNIST and CIFAR-10, read from the data folder {where} "
            f"(its mnist/ and cifar10/ subfolders; pass --data DIR or set L2L_DATA): {error}"
        ) from None


# -- timing ---------------------------------------------------------------------------------------
def _trainer(problem: Problem, optimizer: LSTMOptimizer, horizon: int, unroll: int) -> MetaTrainer:
    config = MetaConfig(epochs=10**6, batch_size=1, horizon=horizon, unroll=unroll, seed=0)
    return MetaTrainer(problem, optimizer, config, progress=False)


def time_meta_training(problem: Problem, optimizers: dict, horizon: int, unroll: int,
                       epochs: int) -> dict:
    """Median ms per optimizee step of ``MetaTrainer.train_epoch`` for each optimizer.

    The optimizers take turns epoch by epoch (after one untimed warm-up epoch each), on the same
    sampled optimizees.
    """
    trainers = {name: _trainer(problem, opt, horizon, unroll) for name, opt in optimizers.items()}
    times = {name: [] for name in optimizers}
    for epoch in range(epochs + 1):
        for name, trainer in trainers.items():
            started = time.perf_counter()
            trainer.train_epoch(epoch)
            if epoch > 0:
                times[name].append(1e3 * (time.perf_counter() - started) / horizon)
    return {name: statistics.median(t) for name, t in times.items()}


def time_evaluation(problem: Problem, optimizers: dict, steps: int, repeats: int) -> dict:
    """Median ms per step of :func:`l2l.rollout.run` (no meta-gradient) for each optimizer."""
    optimizee = problem.sample(1, torch.Generator().manual_seed(1))
    times = {name: [] for name in optimizers}
    for r in range(repeats + 1):
        for name, opt in optimizers.items():
            started = time.perf_counter()
            run(optimizee, opt, steps)
            if r > 0:
                times[name].append(1e3 * (time.perf_counter() - started) / steps)
    return {name: statistics.median(t) for name, t in times.items()}


def time_drop_in(repeats: int) -> dict:
    """Median ms per ``step()`` of :class:`l2l.LearnedOptimizer` (its default rule) and of
    ``torch.optim.Adam`` on a 1000 × 1000 linear layer (1,001,000 parameters)."""
    from .torch_optim import LearnedOptimizer

    torch.manual_seed(0)
    models = {name: torch.nn.Linear(1000, 1000) for name in ("learned", "adam")}
    optimizers = {"learned": LearnedOptimizer(models["learned"].parameters()),
                  "adam": torch.optim.Adam(models["adam"].parameters(), lr=1e-3)}
    times = {name: [] for name in optimizers}
    for r in range(repeats + 2):
        for name, opt in optimizers.items():
            for p in models[name].parameters():
                p.grad = torch.randn_like(p) * 1e-3
            started = time.perf_counter()
            opt.step()
            if r > 1:  # the first steps allocate the state
                times[name].append(1e3 * (time.perf_counter() - started))
    return {name: statistics.median(t) for name, t in times.items()}


def _rss_mb() -> float:
    """Current resident set size in MB (Linux ``/proc``; else the peak so far)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return _maxrss_mb()


def _maxrss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def memory_child(horizon: int, unroll: int, data_dir: str = "") -> dict:
    """(Run in a fresh process.) Peak RSS growth of one MNIST meta-training epoch, in MB (the
    data are loaded before)."""
    torch.manual_seed(0)
    load_data(data_dir, cifar=False)
    problem = Mnist(data_dir=data_dir)
    trainer = _trainer(problem, LSTMOptimizer(**problem.optimizer_defaults), horizon, unroll)
    before = _rss_mb()
    trainer.train_epoch(0)
    return {"horizon": horizon, "rss_before_mb": before, "peak_rss_mb": _maxrss_mb(),
            "peak_mb": _maxrss_mb() - before}


def measure_memory(horizon: int, unroll: int, data_dir: str = "") -> dict:
    """:func:`memory_child` in a fresh Python process."""
    code = (f"import json, l2l.bench as b; "
            f"print(json.dumps(b.memory_child({horizon}, {unroll}, {data_dir!r})))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- report ---------------------------------------------------------------------------------------
def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "nproc": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "native_kernel": _native.available(), "native_status": _native.status(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


def add_arguments(parser):
    """Options of ``python -m l2l bench``."""
    from .cli import _count

    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--data", metavar="DIR", default="",
                        help="data folder holding mnist/ and cifar10/ (default: $L2L_DATA, else "
                             "the per-user cache)")
    parser.add_argument("--epochs", type=_count(1), default=5,
                        help="timed meta-training epochs per engine (100 steps each)")
    parser.add_argument("--eval-repeats", type=_count(1), default=5,
                        help="timed evaluation runs per engine (100 steps each)")
    parser.add_argument("--cifar-epochs", type=_count(1), default=2,
                        help="timed CIFAR-10 meta-training epochs per engine (20 steps each)")
    parser.add_argument("--drop-in-repeats", type=_count(1), default=10,
                        help="timed LearnedOptimizer and Adam steps on one million parameters")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the (horizon 100 and 1000) peak memory measurement")
    parser.add_argument("--threads", type=_count(1), default=None, help="torch.set_num_threads")
    return parser


def main(args) -> dict:
    """Run the benchmark, print the table, write JSON if asked; return the results."""
    if args.json:  # a bad path fails now, not after the timings
        from .cli import _writable

        _writable(args.json, "--json")
    if args.threads:
        torch.set_num_threads(args.threads)
    info = machine()
    torch.manual_seed(0)
    mnist = Mnist(data_dir=args.data)
    fast = LSTMOptimizer(**mnist.optimizer_defaults)
    pair = {"fast": fast, "reference": reference_optimizer(fast)}
    n = mnist.num_params
    print(f"l2l bench: {info['cpu']}, {info['nproc']} CPUs, torch {info['torch']} "
          f"({info['torch_threads']} threads), LSTM engine {fast.engine} ({info['native_status']})",
          flush=True)
    load_data(args.data)

    train = time_meta_training(mnist, pair, horizon=100, unroll=20, epochs=args.epochs)
    evaluation = time_evaluation(mnist, pair, steps=100, repeats=args.eval_repeats)
    cifar_problem = Cifar10(data_dir=args.data)
    torch.manual_seed(0)
    cifar_fast = LSTMOptimizer(**cifar_problem.optimizer_defaults)
    cifar = time_meta_training(cifar_problem,
                               {"fast": cifar_fast, "reference": reference_optimizer(cifar_fast)},
                               horizon=20, unroll=20, epochs=args.cifar_epochs)

    drop_in = time_drop_in(args.drop_in_repeats)

    def case(name, times, **extra):
        return {"name": name, "ms_per_step": round(times["fast"], 3),
                "reference_ms_per_step": round(times["reference"], 3),
                "speedup": round(times["reference"] / times["fast"], 2), "peak_mb": None, **extra}

    cases = [
        case("mnist_meta_train", train, coordinates=n),
        case("mnist_evaluate", evaluation, coordinates=n,
             coordinate_updates_per_s=round(1e3 * n / evaluation["fast"]),
             reference_coordinate_updates_per_s=round(1e3 * n / evaluation["reference"])),
        case("cifar_meta_train", cifar,
             coordinates=cifar_problem.num_params),
        {"name": "drop_in_step_1m_params", "ms_per_step": round(drop_in["learned"], 3),
         "reference_ms_per_step": None, "speedup": None, "peak_mb": None,
         "adam_ms_per_step": round(drop_in["adam"], 3), "parameters": 1_001_000},
    ]
    if not args.no_memory:
        for horizon in (100, 1000):
            mem = measure_memory(horizon, 20, args.data)
            cases.append({"name": f"mnist_meta_train_memory_h{horizon}", "ms_per_step": None,
                          "reference_ms_per_step": None, "speedup": None,
                          "peak_mb": round(mem["peak_mb"], 1),
                          "peak_rss_mb": round(mem["peak_rss_mb"], 1)})

    checks = {
        "mnist_meta_train_ms <= 8": cases[0]["ms_per_step"] <= TARGETS["train_ms"],
        "mnist_meta_train_speedup >= 2.5": cases[0]["speedup"] >= TARGETS["train_speedup"],
        "mnist_evaluate_updates_per_s >= 5e6":
            cases[1]["coordinate_updates_per_s"] >= TARGETS["eval_updates_per_s"],
    }
    if not args.no_memory:
        a, b = (c["peak_mb"] for c in cases if c["name"].startswith("mnist_meta_train_memory"))
        checks["peak_mb equal at horizons 100 and 1000 (±10%)"] = (
            abs(b - a) <= TARGETS["memory_ratio"] * max(a, b))
    print(format_table(cases, checks))
    result = {"machine": info, "cases": cases, "checks": checks}
    if args.json:
        from .checkpoint import atomic_write_text

        atomic_write_text(json.dumps(result, indent=1), args.json)
    return result


def format_table(cases: list, checks: dict) -> str:
    def num(v, fmt):
        return "—" if v is None else format(v, fmt)

    lines = ["| case | ms/step | reference ms/step | speed-up | other |",
             "|---|---:|---:|---:|---|"]
    for c in cases:
        other = []
        if "coordinate_updates_per_s" in c:
            other.append(f"{c['coordinate_updates_per_s'] / 1e6:.2f} M coordinate updates/s "
                         f"(reference {c['reference_coordinate_updates_per_s'] / 1e6:.2f} M)")
        elif "adam_ms_per_step" in c:
            other.append(f"LearnedOptimizer's default rule on {c['parameters'] / 1e6:.2f} M "
                         f"parameters; torch.optim.Adam {c['adam_ms_per_step']:.2f} ms/step "
                         f"({c['ms_per_step'] / c['adam_ms_per_step']:.1f}× Adam's)")
        elif "coordinates" in c:
            other.append(f"{c['coordinates']:,} coordinates")
        if c["peak_mb"] is not None:
            other.append(f"peak RSS growth {c['peak_mb']:.1f} MB (process peak "
                         f"{c['peak_rss_mb']:.0f} MB)")
        lines.append(f"| {c['name']} | {num(c['ms_per_step'], '.2f')} | "
                     f"{num(c['reference_ms_per_step'], '.2f')} | "
                     f"{num(c['speedup'], '.2f') + '×' if c['speedup'] else '—'} | "
                     f"{'; '.join(other)} |")
    lines.append("")
    lines += [f"{'PASS' if ok else 'FAIL'}  {name}" for name, ok in checks.items()]
    return "\n".join(lines)
