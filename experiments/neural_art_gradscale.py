"""Is the 128-pixel LSTM held back by its 4× smaller per-pixel gradients? Scale the loss and see.

Every term of the neural-art loss is a mean over pixels or positions, so at 128×128 each pixel's
gradient is about a quarter of its size at 64×64, the size the LSTM was trained on. This runs
``pretrained:neural_art`` on the new-style 128-pixel test crops with f multiplied by each SCALE
(losses reported divided by it again):

    python experiments/neural_art_gradscale.py SEED RUNS SCALE [SCALE ...]

Output of ``7 10 1 4 2``: ``results/neural_art_gradscale_128px.txt``.
"""

import sys
import time

import torch

from l2l import checkpoint
from l2l.evaluate import rollout_batched
from l2l.problems import make_problem
from l2l.problems import neural_art as na

torch.set_num_threads(1)
seed, runs = int(sys.argv[1]), int(sys.argv[2])
scales = [float(s) for s in sys.argv[3:]]
problem = make_problem("neural_art:style=vangogh_night_cafe,size=128")
optimizer = checkpoint.load_optimizer("pretrained:neural_art")
plain_loss = na.NeuralArtOptimizee.loss
for scale in scales:
    na.NeuralArtOptimizee.loss = lambda self, theta, step=0, s=scale: s * plain_loss(self, theta, step)
    start = time.time()
    losses, _ = rollout_batched(problem, optimizer, 128, runs, seed, metrics=False)
    mean = (losses / scale).mean(1)
    print(f"scale {scale}: " + " ".join(f"@{k} {mean[k]:.4f}" for k in (1, 8, 16, 32, 64, 100, 128)),
          f"({time.time() - start:.0f}s)", flush=True)
