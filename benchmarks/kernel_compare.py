"""The native LSTM kernel of another git revision against this tree's, layer by layer.

    python benchmarks/kernel_compare.py REVISION [--threads 1] [--repeats 30]

Builds both kernels (``l2l/optimizers/lstm_kernel.c`` at REVISION and here), then times
one layer's forward (without and with saving the activations, as evaluation and meta-training
call it) and backward for MNIST's 15,910 coordinates with the paper's H = 20, for the first layer
(I = 2, the encoded gradient) and the second (I = 20). Weights are an untrained optimizer's,
inputs and states of the size they have in training. The two kernels run alternately, and the
median of CPU time per call (``time.process_time``, which other processes disturb less than wall
time) is printed with the largest difference between their outputs.
"""

import argparse
import statistics
import subprocess
import time
from pathlib import Path

import torch

from l2l.optimizers import LSTMOptimizer, _native

ROOT = Path(__file__).resolve().parents[1]


def source_at(revision: str) -> str:
    """The kernel's C source at ``revision`` (earlier revisions kept it in ``_native.py``'s
    ``SOURCE`` string)."""
    def show(path):
        return subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:{path}"],
                              capture_output=True, text=True)

    done = show("l2l/optimizers/lstm_kernel.c")
    if done.returncode == 0:
        return done.stdout
    text = show("l2l/optimizers/_native.py")
    text.check_returncode()
    namespace = {}
    start = text.stdout.index('SOURCE = r"""')
    exec(text.stdout[start:text.stdout.index('"""', start + 13) + 3], namespace)
    return namespace["SOURCE"]


def compare_layer(libs: dict, layer: int, I: int, repeats: int) -> None:
    """Print one line per case for layer ``layer`` (input size I) of an untrained optimizer."""
    g = torch.Generator().manual_seed(layer)
    N, H = 15910, 20
    net = LSTMOptimizer().net
    x = torch.rand(N, I, generator=g) * 2 - 1
    h, c = torch.rand(N, H, generator=g) * 0.4 - 0.2, torch.randn(N, H, generator=g) * 0.5
    dh, dc = torch.randn(N, H, generator=g), torch.randn(N, H, generator=g)
    w_ih, w_hh, b = (t.detach() for t in (net.w_ih[layer], net.w_hh[layer], net.bias[layer]))
    need = (I == H, True, True)

    def run(case: str, lib, saved=None):
        if case == "backward":
            return _native.backward(saved[2], c, saved[3], dh, dc, x, h, w_ih, w_hh, need, lib)
        return _native.forward(x, h, c, w_ih, w_hh, b, case == "forward, saving", lib)

    first, second = (run("forward, saving", lib) for lib in libs.values())
    grads = [run("backward", lib, first) for lib in libs.values()]
    differences = {
        "forward": max((p - q).abs().max().item() for p, q in zip(first[:2], second[:2])),
        "forward, saving": (first[2] - second[2]).abs().max().item(),
        "backward": max((p - q).abs().max().item() for p, q in zip(*grads) if p is not None),
    }
    for case, difference in differences.items():
        times = {name: [] for name in libs}
        for _ in range(repeats):
            for name, lib in libs.items():
                start = time.process_time()
                run(case, lib, first)
                times[name].append(1e3 * (time.process_time() - start))
        print(f"{f'layer {layer + 1} (I = {I}), {case}':34s}"
              + "".join(f"{statistics.median(t):11.3f} ms" for t in times.values())
              + f"   {difference:.1e}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    libs = {name: _native._open(_native._build("gcc", True, source)) for name, source in
            ((args.revision, source_at(args.revision)), ("this tree", _native.source()))}
    print(f"{'case':34s}" + "".join(f"{name:>14s}" for name in libs) + "   max |difference|")
    for layer, I in ((0, 2), (1, 20)):
        compare_layer(libs, layer, I, args.repeats)


if __name__ == "__main__":
    main()
