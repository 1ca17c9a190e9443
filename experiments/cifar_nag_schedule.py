"""Is there room below constant-rate NAG late in a 1000-step CIFAR run? NAG with a decaying rate.

A learned optimizer meta-trained on 200 steps trails tuned NAG at
step 1000 on CIFAR-2; if a rate that decays over the 1000 steps ends clearly lower, an optimizer
that sees the whole horizon has something to learn. Runs on the 4 validation networks (seed 0):

    python experiments/cifar_nag_schedule.py cifar10:labels=0-1 const:0.0215 cos:0.0464 cos:0.1

KIND:RATE with KIND const, cos (cosine to 0 at step 1000), lin (linear to 0) or step (×0.1 from
step 700). Prints the mean loss at steps 200/400/800/1000 and over steps 951–1000 (one
minibatch's loss at a single step is noisy).
"""

import math
import sys

import torch

from l2l.evaluate import rollout_batched
from l2l.optimizers.handcrafted import NAG
from l2l.problems import make_problem

STEPS = 1000
torch.set_num_threads(1)


class ScheduledNAG(NAG):
    """NAG whose rate is multiplied by a schedule of the step count (kept in the state)."""

    def __init__(self, lr: float, kind: str):
        super().__init__(lr)
        self.kind = kind

    def init_state(self, theta, groups=None):
        return (torch.zeros_like(theta), torch.zeros(()))

    def forward(self, grad, state):
        velocity, t = state
        frac = float(t) / STEPS
        scale = {"const": 1.0, "cos": 0.5 * (1 + math.cos(math.pi * frac)), "lin": 1 - frac,
                 "step": 1.0 if frac < 0.7 else 0.1}[self.kind]
        update, (velocity,) = super().forward(grad, (velocity,))
        return scale * update, (velocity, t + 1)


problem = make_problem(sys.argv[1])
for spec in sys.argv[2:]:
    kind, lr = spec.split(":")
    losses, _ = rollout_batched(problem, ScheduledNAG(float(lr), kind), STEPS, 4, 0, split="val",
                                metrics=False)
    m = losses.mean(1)
    print(f"{spec:14s} @200 {m[200]:.4f} @400 {m[400]:.4f} @800 {m[800]:.4f} @1000 {m[1000]:.4f} "
          f"mean 951–1000 {m[951:].mean():.4f}", flush=True)
