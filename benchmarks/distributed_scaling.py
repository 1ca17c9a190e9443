"""Scaling of distributed meta-training, measured here and modelled for many workers.

    python benchmarks/distributed_scaling.py [--json FILE]

1. The same MNIST meta-training (batch 4 optimizees, horizon 40, unroll 20) run three ways on
   this machine: 1 process of 1 thread, 1 process of 2 threads, 2 processes of 1 thread each
   (torchrun, gloo on 127.0.0.1). Prints the median seconds per epoch (from the training log),
   the CPU time of all processes together, and the parallel efficiency of the 2 processes:
   t(1 process, 1 thread) / (2 · t(2 processes)).
2. The all-reduce of φ's gradient between 2 processes (gloo, loopback): median time for the
   gradient vectors of the MNIST/neural-art optimizer (one LSTM) and the CIFAR optimizer (two
   LSTMs, Adam inputs), and for 1 MB and 16 MB vectors, from which a latency α and a bandwidth β
   are fitted (t = α + bytes/β).
3. The compute of one truncation per optimizee for MNIST (unroll 20), CIFAR (unroll 20) and neural
   art (unroll 32), one process of one thread.
4. The model: with P workers each running b optimizees, a truncation costs t_c (compute) plus a
   ring all-reduce of n bytes, t_ar(P) = 2(P − 1)·α + 2(P − 1)/P · n/β. Printed: the number of
   workers at which the all-reduce reaches 10% of a truncation, for the fitted loopback α, β and for
   a 10 Gb/s network (α = 50 µs, β = 1.25 GB/s).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN = ["mnist", "--batch-size", "4", "--horizon", "40", "--unroll", "20", "--epochs", "6",
         "--validate-every", "100", "--validation-size", "2", "--quiet"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train_run(processes: int, threads: int, out: Path) -> dict:
    """Seconds per epoch (median of epochs 2…) and CPU seconds of one meta-training."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if processes == 1:
        command = [sys.executable, "-m", "l2l", "train", *TRAIN, "--out", str(out)]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}",
                   "--nnodes=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{_port()}",
                   "-m", "l2l", "train", *TRAIN, "--out", str(out)]
    before = _child_cpu()
    subprocess.run(command, check=True, env=env, capture_output=True, timeout=1200)
    log = json.loads((out / "log.json").read_text())["log"]
    seconds = [b["seconds"] - a["seconds"] for a, b in zip(log, log[1:])]
    return {"processes": processes, "threads": threads,
            "s_per_epoch": statistics.median(seconds), "cpu_s": _child_cpu() - before}


def _allreduce_worker() -> None:
    """Run under torchrun: time all-reduces of several sizes; rank 0 prints JSON."""
    import torch
    import torch.distributed as dist

    from l2l.optimizers import LSTMOptimizer

    dist.init_process_group("gloo")
    sizes = {"mnist_phi": sum(p.numel() for p in LSTMOptimizer().parameters()),
             "cifar_phi": sum(p.numel() for p in LSTMOptimizer(groups=("conv", "other"),
                                                                   adam_inputs=True).parameters()),
             "1MB": 2**18, "16MB": 2**22}
    result = {}
    for name, n in sizes.items():
        x = torch.ones(n + 4)  # the flags and the meta-loss ride along
        for _ in range(10):
            dist.all_reduce(x)
        times = []
        for _ in range(100 if n < 2**20 else 20):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(x)
            times.append(time.perf_counter() - start)
        result[name] = {"floats": n + 4, "bytes": 4 * (n + 4), "s": statistics.median(times)}
    if dist.get_rank() == 0:
        print(json.dumps(result))
    dist.destroy_process_group()


def allreduce_times() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--nnodes=1",
         "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{_port()}", __file__, "--worker"],
        check=True, env=env, capture_output=True, text=True, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])


def truncation_compute() -> dict:
    """Seconds of one truncation of one optimizee (compute only), one thread."""
    import torch

    from l2l.meta import MetaConfig, MetaTrainer

    torch.set_num_threads(1)
    cases = {"mnist": ("mnist", 20, 1e-3, False), "cifar": ("cifar10", 20, 1e-3, True),
             "neural_art": ("neural_art", 32, 1e-3, False)}
    result = {}
    for name, (spec, unroll, lr, adam) in cases.items():
        from l2l.optimizers import LSTMOptimizer
        from l2l.problems import make_problem

        problem = make_problem(spec)
        options = {**problem.optimizer_defaults, "adam_inputs": adam}
        config = MetaConfig(epochs=3, batch_size=1, horizon=2 * unroll, unroll=unroll, meta_lr=lr,
                            validation_size=1)
        trainer = MetaTrainer(problem, LSTMOptimizer(**options), config, progress=False)
        trainer.train_epoch(0)  # warm-up: data, kernels
        times = []
        for epoch in (1, 2):
            start = time.perf_counter()
            trainer.train_epoch(epoch)
            times.append((time.perf_counter() - start) / 2)
        result[name] = {"unroll": unroll, "s": min(times),
                        "phi_floats": sum(p.numel() for p in trainer.optimizer.parameters())}
    return result


def workers_at(share: float, t_compute: float, n_bytes: int, alpha: float, beta: float) -> int:
    """The smallest P at which the ring all-reduce is ``share`` of a truncation (or 10^6)."""
    for p in range(2, 10**6):
        t_ar = 2 * (p - 1) * alpha + 2 * (p - 1) / p * n_bytes / beta
        if t_ar >= share * (t_compute + t_ar):
            return p
    return 10**6


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _allreduce_worker()
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        runs = [train_run(p, t, Path(tmp) / f"p{p}t{t}") for p, t in ((1, 1), (1, 2), (2, 1))]
    one, threads, procs = runs
    efficiency = one["s_per_epoch"] / (2 * procs["s_per_epoch"])
    print("MNIST meta-training, batch 4, horizon 40, unroll 20 (median s per epoch, CPU s of all "
          "processes)")
    for r in runs:
        print(f"  {r['processes']} process(es) × {r['threads']} thread(s): "
              f"{r['s_per_epoch']:.3f} s/epoch, CPU {r['cpu_s']:.1f} s")
    print(f"  2 processes vs 1 process of 1 thread: speed-up "
          f"{one['s_per_epoch'] / procs['s_per_epoch']:.2f}, parallel efficiency {efficiency:.2f}; "
          f"vs 1 process of 2 threads: speed-up {threads['s_per_epoch'] / procs['s_per_epoch']:.2f}")
    reduce = allreduce_times()
    print("all-reduce between 2 processes (gloo, loopback), median:")
    for name, r in reduce.items():
        print(f"  {name:10} {r['bytes']:>10,} bytes  {1e6 * r['s']:9.1f} µs")
    small, big = reduce["1MB"], reduce["16MB"]
    beta = (big["bytes"] - small["bytes"]) / max(big["s"] - small["s"], 1e-9)
    alpha = max(reduce["mnist_phi"]["s"] - reduce["mnist_phi"]["bytes"] / beta, 1e-6)
    print(f"  fitted: latency α {1e6 * alpha:.1f} µs, bandwidth β {beta / 1e9:.2f} GB/s")
    compute = truncation_compute()
    print("one truncation of one optimizee (1 thread), and the workers at which the all-reduce "
          "reaches 10% of it:")
    model = {}
    for name, c in compute.items():
        n_bytes = 4 * (c["phi_floats"] + 4)
        here = workers_at(0.1, c["s"], n_bytes, alpha, beta)
        net = workers_at(0.1, c["s"], n_bytes, 50e-6, 1.25e9)
        model[name] = {**c, "bytes": n_bytes, "workers_10pct_loopback": here,
                       "workers_10pct_10GbE": net}
        print(f"  {name:10} unroll {c['unroll']:>2}: {1e3 * c['s']:8.1f} ms, φ {n_bytes:,} bytes; "
              f"10% at P = {here} (loopback α, β), P = {net} (10 Gb/s, 50 µs)")
    record = {"train": runs, "efficiency": efficiency, "allreduce": reduce,
              "alpha_s": alpha, "beta_bytes_per_s": beta, "model": model}
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    return record


if __name__ == "__main__":
    main()
