"""Where does the neural-art LSTM stop, and could Adam have gone on from there?

On the 8 validation crops the meta-training validates on (training style, 64×64): the shipped
LSTM run for 256 steps; from its image at step 128, Adam at the stored tuned rate and at a small
rate (0.02) for 128 more steps; and Adam alone for 256 steps.

    python experiments/neural_art_stall.py     # output: results/neural_art_stall.txt
"""

import copy

import torch

from l2l import checkpoint
from l2l.evaluate import make_optimizer
from l2l.problems import make_problem
from l2l.rollout import run
from l2l.seeding import generator

torch.set_num_threads(1)
problem = make_problem("neural_art")
optimizees = problem.for_split("val").sample(8, generator(0, "val"))
lstm = checkpoint.load_optimizer("pretrained:neural_art")
_, adam, adam_lr = make_optimizer("adam", problem, 128)
_, adam_small, _ = make_optimizer("adam:0.02", problem, 128)


def means(losses, steps):
    return "  ".join(f"@{k} {float(losses[k].mean()):.4f}" for k in steps)


losses, _ = run(optimizees, lstm, 256)
print("LSTM, 256 steps:                 ", means(losses, (32, 64, 128, 192, 256)))
after = copy.copy(optimizees)
after.theta0 = run(optimizees, lstm, 128)[1]
print(f"LSTM 128, then Adam {adam_lr:.3g} 128:  ", means(run(after, adam, 128)[0], (0, 32, 64, 128)))
print("LSTM 128, then Adam 0.02 128:    ", means(run(after, adam_small, 128)[0], (0, 32, 64, 128)))
print(f"Adam {adam_lr:.3g}, 256 steps:          ", means(run(optimizees, adam, 256)[0], (32, 64, 128, 192, 256)))
