"""Does averaging φ over a meta-training run beat its best single φ? (neural art)

    python experiments/neural_art_averaging.py run R SEED OUT [--stage1 FILE]  # stage 2's run from stage 1, φ saved every 5 epochs
    python experiments/neural_art_averaging.py average OUT A B  # mean φ over epochs A … B, on the 8 validation photos

``run`` repeats ``python -m l2l train neural_art --init lstm:STAGE1 --random-scale R --scale-down
--epochs 300 --validate-every 20 --validation-size 8 --seed SEED`` (its validations match that
command's log) and saves φ after every 5th epoch as ``OUT/phi_EPOCH.pt``; STAGE1 is ``--stage1``,
by default ``experiments/results/checkpoints/neural_art_stage1.pt`` (the first stage, the paper's
recipe, that the second stage of ``pretrained:neural_art`` starts from).
``average`` validates the mean of the snapshots of epochs A … B as the trainer validates.
"""
import argparse
import glob

import torch

from l2l import checkpoint
from l2l.meta import MetaConfig, MetaTrainer, validation_loss
from l2l.problems import make_problem
from l2l.seeding import generator

torch.set_num_threads(1)


STAGE1 = "experiments/results/checkpoints/neural_art_stage1.pt"


def snapshots(spread: float, seed: int, out: str, stage1_path: str = STAGE1) -> None:
    config = MetaConfig(**{**make_problem("neural_art").training_defaults, "epochs": 300,  # stage 2's recipe
                           "validation_size": 8, "seed": seed, "random_scale": spread, "scale_down": True})
    stage1 = checkpoint.load_optimizer(stage1_path)
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
    figures = validation_loss(optimizer, problem.for_split("val").sample(8, generator(0, "val")), 128)
    print(f"{out}: mean φ of epochs {first}–{last} ({len(files)} snapshots): validation meta-loss "
          f"{figures['meta_loss']:.4f}, f at step 128 {figures['final_loss']:.4f}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    run = modes.add_parser("run", help="stage 2's run from stage 1, φ saved every 5 epochs")
    run.add_argument("spread", type=float, metavar="R")
    run.add_argument("seed", type=int, metavar="SEED")
    run.add_argument("out", metavar="OUT")
    run.add_argument("--stage1", default=STAGE1, help="the optimizer stage 2 starts from")
    mean = modes.add_parser("average", help="the mean φ of epochs A … B on the 8 validation photos")
    mean.add_argument("out", metavar="OUT")
    mean.add_argument("first", type=int, metavar="A")
    mean.add_argument("last", type=int, metavar="B")
    args = parser.parse_args()
    if args.mode == "run":
        snapshots(args.spread, args.seed, args.out, args.stage1)
    else:
        average(args.out, args.first, args.last)
