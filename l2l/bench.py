"""Speed and memory benchmark of meta-training and evaluation (``python -m l2l bench``).

Times, in one run on one machine:

(a) MNIST-shaped meta-training, ms per optimizee step: :meth:`l2l.meta.MetaTrainer.train_epoch`
    itself (the real truncated unroll, meta-backward and Adam step), horizon 100, unroll 20;
(b) evaluation without meta-gradients (:func:`l2l.rollout.run`), ms per step and coordinate
    updates per second;
(c) both again with a reference optimizer whose LSTM is ``torch.nn.LSTMCell`` (the usual way to
    write it), with the same weights, and the speed-ups;
(d) CIFAR-shaped convnet meta-training, ms per step (fast and reference);
(e) peak memory of MNIST meta-training at horizons 100 and 1000, each measured in a fresh
    subprocess as the growth of its peak resident set size (``ru_maxrss``) over the resident set
    just before meta-training. Truncated BPTT must make the two equal.

The optimizees are built here, from synthetic data preloaded in memory (data loading is not
timed): an MLP 784-20-10 with sigmoid units on batches of 128 (15,910 coordinates, Section 3.2)
and a convnet on 3×32×32 inputs (three 5×5 convolutions with 16 channels, batch norm, ReLU and
2×2 max pooling, then a fully-connected layer of 32 with batch norm and ReLU, and 10 outputs;
Section 3.3). Their losses are written functionally, as every l2l optimizee is. Fast and
reference are timed alternately, epoch by epoch, so that load from other processes hits both alike;
the figures are medians over epochs.
"""

from __future__ import annotations

import copy
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
import torch.nn.functional as F
from torch import Tensor, nn

from .meta import MetaConfig, MetaTrainer
from .optimizers import LSTMOptimizer, _native
from .optimizers.lstm import CoordinatewiseLSTM
from .problems.base import Optimizee, Problem
from .rollout import run

#: what the issue asks of the fast engine
TARGETS = {"train_ms": 8.0, "train_speedup": 2.5, "eval_updates_per_s": 5e6, "memory_ratio": 0.10}


# -- optimizees ---------------------------------------------------------------------------------
class SyntheticData:
    """A fixed in-memory dataset (random inputs and labels) with a deterministic batch per step."""

    def __init__(self, shape: tuple, size: int, classes: int = 10, batch_size: int = 128,
                 seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.inputs = torch.rand(size, *shape, generator=g)
        self.labels = torch.randint(classes, (size,), generator=g)
        self.batch_size = batch_size

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        start = (step * self.batch_size) % (len(self.labels) - self.batch_size + 1)
        end = start + self.batch_size
        return self.inputs[start:end], self.labels[start:end]


class MLPOptimizee(Optimizee):
    """B MLPs ``inputs → hidden (sigmoid) → 10`` with cross-entropy, all weights in θ ``[B, n]``."""

    def __init__(self, data: SyntheticData, theta0: Tensor, hidden: int):
        self.data, self.theta0, self.hidden = data, theta0, hidden

    @staticmethod
    def size(inputs: int, hidden: int, classes: int = 10) -> int:
        return inputs * hidden + hidden + hidden * classes + classes

    def loss(self, theta: Tensor, step: int) -> Tensor:
        x, y = self.data.batch(step)
        B, D, H = theta.shape[0], x.shape[1], self.hidden
        sizes = [D * H, H, H * 10, 10]
        w1, b1, w2, b2 = theta.split(sizes, dim=1)
        hidden = torch.sigmoid(torch.matmul(x, w1.view(B, D, H)) + b1.unsqueeze(1))
        logits = torch.baddbmm(b2.unsqueeze(1), hidden, w2.view(B, H, 10))
        ce = F.cross_entropy(logits.reshape(-1, 10), y.repeat(B), reduction="none")
        return ce.view(B, -1).mean(1)


class MLPProblem(Problem):
    """MNIST-shaped MLPs (784-20-10, sigmoid, batch 128) on synthetic data."""

    name = "bench-mlp"
    optimizer_defaults = {"preprocess": True, "output_scale": 0.1}

    def __init__(self, inputs: int = 784, hidden: int = 20, data_size: int = 8192,
                 batch_size: int = 128):
        self.inputs, self.hidden = inputs, hidden
        self.data = SyntheticData((inputs,), data_size, batch_size=batch_size)

    def sample(self, batch_size: int, generator: torch.Generator) -> MLPOptimizee:
        n = MLPOptimizee.size(self.inputs, self.hidden)
        theta0 = 0.1 * torch.randn(batch_size, n, generator=generator)
        return MLPOptimizee(self.data, theta0, self.hidden)

    def config(self) -> dict:
        return {"inputs": self.inputs, "hidden": self.hidden}


class ConvOptimizee(Optimizee):
    """B convnets (Section 3.3's shape) with cross-entropy; θ ``[B, n]`` holds every weight."""

    def __init__(self, data: SyntheticData, theta0: Tensor, shapes: dict):
        self.data, self.theta0, self.shapes = data, theta0, shapes

    def _split(self, theta_b: Tensor) -> dict:
        out, at = {}, 0
        for name, shape in self.shapes.items():
            size = int(torch.Size(shape).numel())
            out[name] = theta_b[at:at + size].view(shape)
            at += size
        return out

    def loss(self, theta: Tensor, step: int) -> Tensor:
        x, y = self.data.batch(step)
        losses = []
        for theta_b in theta:  # the benchmark uses B = 1
            p = self._split(theta_b)
            h = x
            for k in range(3):
                x_k = F.conv2d(h, p[f"conv{k}.w"], p[f"conv{k}.b"], padding=2)
                x_k = F.batch_norm(x_k, None, None, p[f"bn{k}.w"], p[f"bn{k}.b"], training=True)
                h = F.max_pool2d(F.relu(x_k), 2)
            h = F.linear(h.flatten(1), p["fc.w"], p["fc.b"])
            h = F.relu(F.batch_norm(h, None, None, p["bnfc.w"], p["bnfc.b"], training=True))
            logits = F.linear(h, p["out.w"], p["out.b"])
            losses.append(F.cross_entropy(logits, y))
        return torch.stack(losses)


class ConvProblem(Problem):
    """CIFAR-shaped convnets on synthetic 3×32×32 data, batch 128 (timing only)."""

    name = "bench-conv"
    optimizer_defaults = {"preprocess": True, "output_scale": 0.1}

    def __init__(self, channels: int = 16, fc: int = 32, data_size: int = 2048,
                 batch_size: int = 128):
        self.channels, self.fc = channels, fc
        self.data = SyntheticData((3, 32, 32), data_size, batch_size=batch_size)
        C = channels
        self.shapes = {}
        for k, cin in enumerate([3, C, C]):
            self.shapes.update({f"conv{k}.w": (C, cin, 5, 5), f"conv{k}.b": (C,),
                                f"bn{k}.w": (C,), f"bn{k}.b": (C,)})
        self.shapes.update({"fc.w": (fc, C * 4 * 4), "fc.b": (fc,), "bnfc.w": (fc,),
                            "bnfc.b": (fc,), "out.w": (10, fc), "out.b": (10,)})

    def sample(self, batch_size: int, generator: torch.Generator) -> ConvOptimizee:
        parts = []
        for name, shape in self.shapes.items():
            if name.startswith("bn") and name.endswith(".w"):
                parts.append(torch.ones(batch_size, int(torch.Size(shape).numel())))
            else:
                fan_in = int(torch.Size(shape[1:]).numel()) if len(shape) > 1 else 1
                scale = fan_in ** -0.5 if len(shape) > 1 else 0.0
                parts.append(scale * torch.randn(batch_size, int(torch.Size(shape).numel()),
                                                 generator=generator))
        return ConvOptimizee(self.data, torch.cat(parts, 1), self.shapes)

    def config(self) -> dict:
        return {"channels": self.channels, "fc": self.fc}


# -- the reference LSTM ---------------------------------------------------------------------------
class LSTMCellNet(nn.Module):
    """:class:`~l2l.optimizers.lstm.CoordinatewiseLSTM` written with ``torch.nn.LSTMCell``.

    Built from a CoordinatewiseLSTM and computing the same function (its bias goes to
    ``bias_ih``, ``bias_hh`` is zero), with the same ``init_state`` and ``forward`` signatures.
    """

    #: plain PyTorch throughout, the gradient encoding included
    engine = "reference"

    def __init__(self, net: CoordinatewiseLSTM):
        super().__init__()
        self.hidden_size = net.hidden_size
        self.cells = nn.ModuleList()
        for w_ih, w_hh, bias in zip(net.w_ih, net.w_hh, net.bias):
            cell = nn.LSTMCell(w_ih.shape[1], net.hidden_size)
            with torch.no_grad():
                cell.weight_ih.copy_(w_ih)
                cell.weight_hh.copy_(w_hh)
                cell.bias_ih.copy_(bias)
                cell.bias_hh.zero_()
            self.cells.append(cell)
        self.readout = copy.deepcopy(net.readout)

    def init_state(self, num_rows: int, like: Tensor):
        zeros = like.new_zeros(num_rows, self.hidden_size)
        return tuple(zeros.clone() for _ in range(2 * len(self.cells)))

    def forward(self, x: Tensor, state):
        new_state = []
        for k, cell in enumerate(self.cells):
            h, c = cell(x, (state[2 * k], state[2 * k + 1]))
            new_state += [h, c]
            x = h
        return self.readout(x).squeeze(-1), tuple(new_state)


def reference_optimizer(optimizer: LSTMOptimizer) -> LSTMOptimizer:
    """A copy of ``optimizer`` whose LSTM runs on ``torch.nn.LSTMCell``."""
    reference = copy.deepcopy(optimizer)
    reference.net = LSTMCellNet(optimizer.net)
    return reference


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


def memory_child(horizon: int, unroll: int) -> dict:
    """(Run in a fresh process.) Peak RSS growth of one MNIST meta-training epoch, in MB."""
    torch.manual_seed(0)
    problem = MLPProblem()
    trainer = _trainer(problem, LSTMOptimizer(**problem.optimizer_defaults), horizon, unroll)
    before = _rss_mb()
    trainer.train_epoch(0)
    return {"horizon": horizon, "rss_before_mb": before, "peak_rss_mb": _maxrss_mb(),
            "peak_mb": _maxrss_mb() - before}


def measure_memory(horizon: int, unroll: int) -> dict:
    code = (f"import json, l2l.bench as b; "
            f"print(json.dumps(b.memory_child({horizon}, {unroll})))")
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
            "native_kernel": _native.available(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


def add_arguments(parser):
    """Options of ``python -m l2l bench``."""
    from .cli import _count

    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--epochs", type=_count(1), default=5,
                        help="timed meta-training epochs per engine (100 steps each)")
    parser.add_argument("--eval-repeats", type=_count(1), default=5,
                        help="timed evaluation runs per engine (100 steps each)")
    parser.add_argument("--cifar-epochs", type=_count(1), default=2,
                        help="timed CIFAR-shaped meta-training epochs per engine (20 steps each)")
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
    mnist = MLPProblem()
    fast = LSTMOptimizer(**mnist.optimizer_defaults)
    pair = {"fast": fast, "reference": reference_optimizer(fast)}
    n = MLPOptimizee.size(784, 20)
    print(f"l2l bench: {info['cpu']}, {info['nproc']} CPUs, torch {info['torch']} "
          f"({info['torch_threads']} threads), LSTM engine {fast.engine}"
          f"{' (native kernel)' if info['native_kernel'] else ' (no native kernel: PyTorch)'}",
          flush=True)

    train = time_meta_training(mnist, pair, horizon=100, unroll=20, epochs=args.epochs)
    evaluation = time_evaluation(mnist, pair, steps=100, repeats=args.eval_repeats)
    cifar_problem = ConvProblem()
    torch.manual_seed(0)
    cifar_fast = LSTMOptimizer(**cifar_problem.optimizer_defaults)
    cifar = time_meta_training(cifar_problem,
                               {"fast": cifar_fast, "reference": reference_optimizer(cifar_fast)},
                               horizon=20, unroll=20, epochs=args.cifar_epochs)

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
             coordinates=int(cifar_problem.sample(1, torch.Generator()).theta0.shape[1])),
    ]
    if not args.no_memory:
        for horizon in (100, 1000):
            mem = measure_memory(horizon, 20)
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
        a, b = cases[3]["peak_mb"], cases[4]["peak_mb"]
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
