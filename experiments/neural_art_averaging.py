"""Does averaging φ over a meta-training run beat its best single φ? (neural art, session 15)

    python experiments/neural_art_averaging.py run R SEED OUT   # stage 2's run from stage 1, φ saved every 5 epochs
    python experiments/neural_art_averaging.py average OUT A B  # mean φ over epochs A … B, on the 8 validation photos

``run`` repeats ``python -m l2l train neural_art --init lstm:STAGE1 --random-scale R --scale-down
--epochs 300 --validate-every 20 --validation-size 8 --seed SEED`` (its validations match that
command's log) and saves φ after every 5th epoch as ``OUT/phi_EPOCH.pt``; STAGE1 is
``$STAGE1`` (default /work/exp/s14/stage1.pt; it is ``git show 9422731:l2l/pretrained/neural_art.pt``).
``average`` validates the mean of the snapshots of epochs A … B as the trainer validates.
"""
import glob
import os
import sys

import torch

from l2l import checkpoint
from l2l.meta import MetaConfig, MetaTrainer, validation_loss
from l2l.problems import make_problem
from l2l.seeding import generator

torch.set_num_threads(1)


def snapshots(spread: float, seed: int, out: str) -> None:
    config = MetaConfig(**{**make_problem("neural_art").training_defaults, "epochs": 300,  # stage 2's recipe
                           "validation_size": 8, "seed": seed, "random_scale": spread, "scale_down": True})
    stage1 = checkpoint.load_optimizer(os.environ.get("STAGE1", "/work/exp/s14/stage1.pt"))
    trainer = MetaTrainer("neural_art", stage1, config, out=out, progress=False)
    plain = trainer.train_epoch

    def train_epoch(epoch: int) -> float:
        meta_loss = plain(epoch)
        if (epoch + 1) % 5 == 0:
            torch.save(checkpoint.cpu_state(trainer.optimizer), f"{out}/phi_{epoch + 1:04d}.pt")
        return meta_loss

    trainer.train_epoch = train_epoch
    trainer.train()


def average(out: str, first: int, last: int) -> None:
    files = [f for f in sorted(glob.glob(f"{out}/phi_*.pt")) if first <= int(f[-7:-3]) <= last]
    states = [torch.load(f) for f in files]
    mean = {k: (sum(s[k].double() for s in states) / len(states)).to(v.dtype) if v.is_floating_point() else v
            for k, v in states[-1].items()}
    optimizer = checkpoint.load_optimizer(f"{out}/best.pt")
    optimizer.load_state_dict(mean)
    problem = make_problem("neural_art")
    figures = validation_loss(problem, optimizer, problem.for_split("val").sample(8, generator(0, "val")), 128)
    print(f"{out}: mean φ of epochs {first}–{last} ({len(files)} snapshots): validation meta-loss "
          f"{figures['meta_loss']:.4f}, f at step 128 {figures['final_loss']:.4f}", flush=True)


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "run":
        snapshots(float(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif mode == "average":
        average(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(__doc__)
