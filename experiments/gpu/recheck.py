"""Apply stable_choice to the GPU-stored neural-art scores, store the result."""
import json
import sys
import time

from l2l import tuned
from l2l.evaluate import stable_choice
from l2l.problems import make_problem

src = json.load(open(sys.argv[1]))
for spec, per in src.items():
    if not spec.startswith("neural_art"):
        continue
    problem = make_problem(spec)
    for name, by_steps in per.items():
        e = by_steps["128"]
        scores = {float(k): (v if v is not None else float("inf")) for k, v in e["scores"].items()}
        t = time.time()
        lr = stable_choice(problem, name, scores, 128)
        print(spec, name, "val-best", e["lr"], "stable", lr, f"{time.time()-t:.0f}s", flush=True)
        cmd = (e["provenance"]["command"] + "  [rate re-chosen with l2l.evaluate.stable_choice over these scores: "
               "python experiments/gpu/recheck.py]")
        tuned.store(spec, name, 128, lr, scores, e["runs"], e["seed"], cmd)
