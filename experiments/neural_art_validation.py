"""Validation-split comparison of candidate LSTMs against stored-rate Adam/RMSprop (both settings)."""
import sys, os, torch
from l2l.problems import make_problem
from l2l.evaluate import rollout_batched, make_optimizer
from l2l import checkpoint
torch.set_num_threads(1)
split = os.environ.get("SPLIT", "val"); runs = int(os.environ.get("RUNS", "20")); seed = int(os.environ.get("SEED", "0"))
settings = os.environ.get("SETTINGS", "64,128").split(",")
specs = {"64": "neural_art", "128": "neural_art:style=vangogh_night_cafe,size=128"}
for s in settings:
    problem = make_problem(specs[s])
    rows = []
    for base in ("adam", "rmsprop"):
        cache = f"{os.environ.get('CACHE', '/tmp')}/base_{s}_{base}_{split}_{runs}_{seed}.pt"
        if os.path.exists(cache):
            m = torch.load(cache)
        else:
            name, opt, lr = make_optimizer(base, problem, 128)
            losses, _ = rollout_batched(problem, opt, 128, runs, seed, split=split, metrics=False)
            m = losses.mean(1); torch.save(m, cache)
        rows.append((base, m))
    for path in sys.argv[1:]:
        opt = checkpoint.load_optimizer(path)
        losses, _ = rollout_batched(problem, opt, 128, runs, seed, split=split, metrics=False)
        rows.append((path.split("/")[-2] + "/" + path.split("/")[-1], losses.mean(1)))
    print(f"== {s}px {split} runs={runs} seed={seed}")
    for name, m in rows:
        print(f"{name:40s} " + " ".join(f"@{k} {m[k]:.4f}" for k in (8, 16, 32, 64, 100, 128)), flush=True)
