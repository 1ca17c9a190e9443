"""The figures `MetaTrainer.validate` logs (mean f and f at the last step on the trainer's 4
validation networks of seed 0), for any optimizers, so that a run's validation column can be read
against NAG and against its own starting point.

    python experiments/cifar_validation_reference.py PROBLEM STEPS SPEC [SPEC ...]
    python experiments/cifar_validation_reference.py cifar10:labels=0-1 1000 nag:0.0215 pretrained:cifar2
"""
import sys

from l2l.evaluate import make_optimizer
from l2l.meta import validation_loss
from l2l.problems import make_problem
from l2l.seeding import generator

if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    problem, steps = make_problem(sys.argv[1]), int(sys.argv[2])
    networks = problem.for_split("val").sample(4, generator(0, "val"))
    for spec in sys.argv[3:]:
        _, optimizer, _ = make_optimizer(spec, problem, steps)
        print(spec, validation_loss(optimizer, networks, steps, None), flush=True)
