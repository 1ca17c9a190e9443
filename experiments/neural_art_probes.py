"""Probes of where `pretrained:neural_art` stalls, on 8 validation crops at 64×64.

    python experiments/neural_art_probes.py magnitudes   # |∇|, |update|, cos(−∇, update) along the way
    python experiments/neural_art_probes.py switch       # Adam for k steps, then the LSTM (fresh state)
    python experiments/neural_art_probes.py switch neural_art:style=vangogh_night_cafe,size=128 test 7 20 0.383
                                                 # the same on 20 test crops of seed 7 at 128 px
    python experiments/neural_art_probes.py scale        # the LSTM's updates multiplied by a schedule
    python experiments/neural_art_probes.py noise        # init=noise (Gatys' white-noise start)
    python experiments/neural_art_probes.py handover     # the LSTM for k steps, then Adam with the
                                                 # moments it gathered along the way

Output of each: ``results/neural_art_probes.txt``.
"""

import math
import sys

import torch

from l2l import checkpoint
from l2l.evaluate import rollout_batched
from l2l.optimizers import BASELINES
from l2l.problems import make_problem
from l2l.rollout import optimizee_step
from l2l.seeding import generator

torch.set_num_threads(1)
RUNS, SEED, STEPS = 8, 0, 128
lstm = checkpoint.load_optimizer("pretrained:neural_art")


def validation(spec="neural_art"):
    problem = make_problem(spec).for_split("val")
    return problem.sample(RUNS, generator(SEED, "val", 0))


def show(name, means):
    print(f"{name:28s} " + " ".join(f"@{k} {means[k]:.4f}" for k in (8, 16, 32, 64, 100, 128)),
          flush=True)


def magnitudes():
    for name, optimizer in (("lstm", lstm), ("adam 0.215", BASELINES["adam"](0.215))):
        optimizee = validation()
        theta = optimizee.theta0
        state = optimizer.init_state(theta, groups=optimizee.coordinate_groups())
        for t in range(STEPS + 1):
            before = theta.detach()
            with torch.enable_grad():
                x = before.clone().requires_grad_(True)
                (grad,) = torch.autograd.grad(optimizee.loss(x, t).sum(), x)
            loss, theta, state = optimizee_step(optimizee, optimizer, theta, state, t)
            if t in (0, 8, 32, 64, 100, 128):
                update = theta.detach() - before
                q = torch.tensor([0.1, 0.5, 0.9])
                g = torch.quantile(grad.abs().flatten()[::7], q).tolist()
                u = torch.quantile(update.abs().flatten()[::7], q).tolist()
                cos = torch.nn.functional.cosine_similarity(-grad.flatten(), update.flatten(), 0)
                print(f"{name} t={t:3d} f={loss.mean():.4f} |grad| q10/50/90 "
                      + " ".join(f"{v:.2g}" for v in g) + "  |update| q10/50/90 "
                      + " ".join(f"{v:.2g}" for v in u) + f"  cos(-grad, update) {cos:.2f}",
                      flush=True)


def switch(spec=None, split="val", seed=SEED, runs=RUNS, lr=None):
    """Adam for k steps, then the LSTM; by default on the validation crops at 64×64."""
    plan = ((0, 0.215), (4, 0.215), (8, 0.215), (16, 0.215), (32, 0.215), (48, 0.215),
            (128, 0.215), (8, 0.1), (16, 0.1))
    if lr is not None:
        plan = [(k, float(lr)) for k in (0, 4, 8, 128)]
    for k, lr in plan:
        optimizee = (validation() if spec is None else make_problem(spec).for_split(split).sample(
            int(runs), generator(int(seed), split, 0)))
        theta, groups = optimizee.theta0, optimizee.coordinate_groups()
        adam = BASELINES["adam"](lr)
        state, means = adam.init_state(theta, groups=groups), {}
        for t in range(STEPS):
            if t == k:
                state = lstm.init_state(theta, groups=groups)
            loss, theta, state = optimizee_step(optimizee, adam if t < k else lstm, theta, state, t)
            means[t] = loss.mean().item()
        means[STEPS] = optimizee.loss(theta, STEPS).mean().item()
        show(f"adam {lr} x{k}, then lstm", means)


class Scaled(torch.nn.Module):
    """The LSTM's update at step t multiplied by schedule(t)."""

    def __init__(self, optimizer, schedule):
        super().__init__()
        self.optimizer, self.schedule, self.t = optimizer, schedule, 0

    def init_state(self, theta, groups=None):
        self.t = 0
        return self.optimizer.init_state(theta, groups=groups)

    def forward(self, grad, state):
        update, state = self.optimizer(grad, state)
        self.t += 1
        return update * self.schedule(self.t - 1), state


class Handover(torch.nn.Module):
    """The LSTM's steps for the first k, Adam's after; Adam's moments follow from step 0."""

    def __init__(self, student, teacher, k):
        super().__init__()
        self.student, self.teacher, self.k, self.t = student, teacher, k, 0

    def init_state(self, theta, groups=None):
        self.t = 0
        return (self.student.init_state(theta, groups=groups),
                self.teacher.init_state(theta, groups=groups))

    def forward(self, grad, state):
        update, mine = self.student(grad, state[0])
        step, theirs = self.teacher(grad, state[1])
        self.t += 1
        return (update if self.t <= self.k else step), (mine, theirs)


def handover():
    """The LSTM for k steps, then Adam (its tuned rate) from the moments gathered on the way, on
    the 20 validation crops of ``neural_art_validation.py`` in both settings."""
    from l2l.evaluate import make_optimizer

    for spec in ("neural_art", "neural_art:style=vangogh_night_cafe,size=128"):
        problem = make_problem(spec)
        _, adam, lr = make_optimizer("adam", problem, STEPS)
        print(f"== {spec} (Adam {lr})", flush=True)
        for k in (0, 16, 32, 48, 64, 96, STEPS):
            optimizer = Handover(lstm, adam, k)
            with torch.no_grad():
                losses, _ = rollout_batched(problem, optimizer, STEPS, 20, 0, split="val",
                                            metrics=False)
            show(f"lstm x{k}, then adam", losses.mean(1).tolist())


def scale():
    problem = make_problem("neural_art")
    for name, schedule in (("x1", lambda t: 1.0), ("x0.5 after 48", lambda t: 1 if t < 48 else 0.5),
                           ("x0.25 after 48", lambda t: 1 if t < 48 else 0.25),
                           ("x0.5", lambda t: 0.5), ("x2", lambda t: 2.0),
                           ("cosine to 0", lambda t: 0.5 * (1 + math.cos(math.pi * t / STEPS)))):
        losses, _ = rollout_batched(problem, Scaled(lstm, schedule), STEPS, RUNS, SEED,
                                    split="val", metrics=False)
        show(f"lstm {name}", losses.mean(1))


def noise():
    problem = make_problem("neural_art:init=noise")
    losses, _ = rollout_batched(problem, lstm, STEPS, RUNS, SEED, split="val", metrics=False)
    show("lstm, init=noise", losses.mean(1))
    for lr in (0.1, 0.215, 0.4):
        losses, _ = rollout_batched(problem, BASELINES["adam"](lr), STEPS, RUNS, SEED, split="val",
                                    metrics=False)
        show(f"adam {lr}, init=noise", losses.mean(1))


if __name__ == "__main__":
    {"magnitudes": magnitudes, "switch": switch, "scale": scale, "noise": noise,
     "handover": handover}[sys.argv[1]](
        *sys.argv[2:])
