"""Meta-train the CIFAR and neural-art optimizers, tune their baselines and record test curves,
all at once on a lent GPU machine, within a fixed wall-clock budget.

    python experiments/gpu/run.py OUT SECONDS [--quick]

Launches side by side (one process each, all on ``cuda``):
- five CIFAR meta-trainings (CIFAR-10, CIFAR-5 = labels 0-4, its LSTM-sub on 5-9, CIFAR-2 = labels
  0-1, its LSTM-sub on 2-9) and the neural-art meta-training, each stopped by ``--time-limit``
  (resumable, so a CPU can continue any of them with ``--resume``);
- per test problem, ``python -m l2l tune … --store`` for the four baselines, then their test
  curves (``evaluate --save``);
then, once the trainings stop, the learned optimizers' test curves. Everything written goes to
``OUT/results.tgz`` (runs, curves, tuned rates, logs). Data come from ``$L2L_DATA``
(``experiments/gpu/pack_data.py`` makes a small enough copy to travel). ``--quick``: seconds-long
versions of every command, to check the script itself.
"""

import os
import shlex
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

out, budget = Path(sys.argv[1]), float(sys.argv[2])
quick = "--quick" in sys.argv
out.mkdir(parents=True, exist_ok=True)
work = Path("gpu_work")
work.mkdir(exist_ok=True)
logs = work / "logs"
logs.mkdir(exist_ok=True)
started = time.time()
train_seconds = 25 if quick else 0.55 * budget
steps_c, runs_c, steps_a, runs_a = (20, 2, 8, 2) if quick else (1000, 10, 128, 20)
device = os.environ.get("L2L_DEVICE", "cuda")
L2L = [sys.executable, "-m", "l2l"]

CIFAR = {  # name: (problem trained on, problem tested on)
    "cifar10": ("cifar10", "cifar10"),
    "cifar5": ("cifar10:labels=0-4", "cifar10:labels=0-4"),
    "cifar5_sub": ("cifar10:labels=5-9", "cifar10:labels=0-4"),
    "cifar2": ("cifar10:labels=0-1", "cifar10:labels=0-1"),
    "cifar2_sub": ("cifar10:labels=2-9", "cifar10:labels=0-1"),
}
ART = {"neural_art": "neural_art", "neural_art_128": "neural_art:style=vangogh_night_cafe,size=128"}
BASELINES = ["sgd", "rmsprop", "adam", "nag"]


def start(name, commands):
    """Run ``commands`` one after another in the background; log to logs/NAME.log. A command
    that fails on the GPU is run again on the CPU (so a GPU-only fault costs speed, not results)."""
    def fallback(c):
        if device == "cpu":
            return shlex.join(c)
        return f"{{ {shlex.join(c)} || {shlex.join([x if x != device else 'cpu' for x in c])}; }}"
    script = " && ".join(fallback(c) for c in commands)
    log = open(logs / f"{name}.log", "w")
    log.write(f"$ {script}\n")
    log.flush()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(["bash", "-c", f"time ( {script} )"], stdout=log, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def kill(proc):
    """End a background job and every process it started."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


quick_train = ["--horizon", "10", "--unroll", "5", "--validate-every", "2", "--validation-size", "2"]
trainings = {}
for name, (problem, _) in CIFAR.items():
    trainings[name] = start(f"train_{name}", [L2L + [
        "train", problem, "--device", device, "--time-limit", str(train_seconds), "--epochs", "5000",
        "--out", str(work / "runs" / name), "--quiet", "--force"] + (quick_train if quick else [])])
trainings["neural_art"] = start("train_neural_art", [L2L + [
    "train", "neural_art", "--device", device, "--time-limit", str(train_seconds), "--epochs", "5000",
    "--validation-size", "8", "--out", str(work / "runs" / "neural_art"), "--quiet", "--force"]
    + (["--horizon", "8", "--unroll", "4", "--validate-every", "2", "--validation-size", "2"] if quick else [])])

quick_tune = ["--runs", "2"] if quick else []
baselines = {}
for test in dict.fromkeys(p for _, p in CIFAR.values()):
    key = test.replace(":", "_").replace("=", "")
    baselines[key] = start(f"baselines_{key}", [
        L2L + ["tune", test, "--steps", str(steps_c), "--store", "--device", device, "--tune-batch", "64"] + quick_tune,
        L2L + ["evaluate", test, "--steps", str(steps_c), "--runs", str(runs_c), "--device", device, "--quiet",
               "--save", str(work / "curves" / f"{key}_baselines.pt")] + sum((["--optimizer", b] for b in BASELINES), [])])
for key, test in ART.items():
    baselines[key] = start(f"baselines_{key}", [
        L2L + ["tune", test, "--steps", str(steps_a), "--store", "--device", device] + quick_tune,
        L2L + ["evaluate", test, "--steps", str(steps_a), "--runs", str(runs_a), "--device", device, "--quiet",
               "--save", str(work / "curves" / f"{key}_baselines.pt")] + sum((["--optimizer", b] for b in BASELINES), [])])

for name, proc in trainings.items():
    try:
        proc.wait(timeout=max(1, started + train_seconds + 90 - time.time()))
    except subprocess.TimeoutExpired:  # its checkpoints (every few epochs) are kept
        kill(proc)
    print(f"{time.time() - started:6.0f} s  training {name} ended ({proc.returncode})", flush=True)

lstm = {}
for test in dict.fromkeys(p for _, p in CIFAR.values()):
    key = test.replace(":", "_").replace("=", "")
    specs = [f"lstm:{work / 'runs' / n / 'best.pt'}" for n, (_, t) in CIFAR.items() if t == test]
    lstm[key] = start(f"lstm_{key}", [L2L + [
        "evaluate", test, "--steps", str(steps_c), "--runs", str(runs_c), "--device", device, "--quiet",
        "--save", str(work / "curves" / f"{key}_lstm.pt")] + sum((["--optimizer", s] for s in specs), [])])
for key, test in ART.items():
    lstm[key] = start(f"lstm_{key}", [L2L + [
        "evaluate", test, "--steps", str(steps_a), "--runs", str(runs_a), "--device", device, "--quiet",
        "--optimizer", f"lstm:{work / 'runs' / 'neural_art' / 'best.pt'}",
        "--save", str(work / "curves" / f"{key}_lstm.pt")]])

deadline = started + budget - 25
for name, proc in {**lstm, **baselines}.items():
    try:
        proc.wait(timeout=max(1, deadline - time.time()))
    except subprocess.TimeoutExpired:
        kill(proc)
        print(f"killed {name} at the deadline", flush=True)
    print(f"{time.time() - started:6.0f} s  {name} ended ({proc.returncode})", flush=True)

with tarfile.open(out / "results.tgz", "w:gz") as tar:
    tar.add(work, arcname="gpu_work")
    if Path("l2l/pretrained/tuned_rates.json").exists():
        tar.add("l2l/pretrained/tuned_rates.json", arcname="gpu_work/tuned_rates.json")
for log in sorted(logs.glob("*.log")):
    print(f"==== {log.name}: " + " | ".join(log.read_text().strip().splitlines()[-6:]), flush=True)
print(f"{time.time() - started:.0f} s in all")
