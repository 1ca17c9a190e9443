"""Does the LSTM at 128 px stall because per-pixel gradients are 4x smaller? Scale the loss."""
import sys, time, torch
from l2l.problems import make_problem, neural_art as na
from l2l.evaluate import rollout_batched
from l2l import checkpoint
torch.set_num_threads(1)
seed = int(sys.argv[1]); runs = int(sys.argv[2]); scales = [float(s) for s in sys.argv[3:]]
problem = make_problem("neural_art:style=vangogh_night_cafe,size=128")
opt = checkpoint.load_optimizer("pretrained:neural_art")
orig = na.NeuralArtOptimizee.loss
for s in scales:
    na.NeuralArtOptimizee.loss = lambda self, theta, step=0, s=s: s * orig(self, theta, step)
    t = time.time()
    losses, _ = rollout_batched(problem, opt, 128, runs, seed, metrics=False)
    m = (losses / s).mean(1)
    print(f"scale {s}: " + " ".join(f"@{k} {m[k]:.4f}" for k in (1, 8, 16, 32, 64, 100, 128)),
          f"({time.time()-t:.0f}s)", flush=True)
