"""l2l: learning to learn by gradient descent by gradient descent, in PyTorch.

The public API, re-exported from the modules that define it:

- update rules: :class:`LSTMOptimizer` (learned) and :class:`SGD`, :class:`RMSprop`,
  :class:`Adam`, :class:`NAG` (hand-designed);
- optimizee families: :class:`Quadratic` (and every family in :data:`PROBLEMS`);
- meta-training: :class:`MetaTrainer`, :class:`MetaConfig`, the meta-objectives
  :data:`OBJECTIVES` of a :class:`Trajectory` (what :func:`unroll` returns); imitation of a
  hand-designed optimizer (not in the paper): :func:`imitate`;
- recipes, the shipped optimizers' training settings as data: :func:`load_recipe`;
- evaluation: :func:`evaluate`, :func:`tune_learning_rate`, :func:`run`;
- checkpoints: :func:`load_optimizer`, :func:`save_optimizer`;
- training any ``nn.Module`` with a learned optimizer: :class:`LearnedOptimizer`;
- errors: :class:`L2LError`, the base of the library's own (:mod:`l2l.errors`).
"""

from .checkpoint import load_optimizer, save_optimizer
from .errors import L2LError
from .evaluate import Curve, evaluate, tune_learning_rate
from .imitation import imitate
from .meta import MetaConfig, MetaTrainer
from .objectives import OBJECTIVES
from .optimizers import NAG, SGD, Adam, LSTMOptimizer, Optimizer, RMSprop
from .preprocessing import preprocess_gradients
from .problems import PROBLEMS, Problem, Quadratic, make_problem
from .recipes import load_recipe
from .rollout import Trajectory, run, unroll
from .torch_optim import LearnedOptimizer

__version__ = "0.1.0"

__all__ = [
    "NAG",
    "OBJECTIVES",
    "PROBLEMS",
    "SGD",
    "Adam",
    "Curve",
    "L2LError",
    "LSTMOptimizer",
    "LearnedOptimizer",
    "MetaConfig",
    "MetaTrainer",
    "Optimizer",
    "Problem",
    "Quadratic",
    "RMSprop",
    "Trajectory",
    "evaluate",
    "imitate",
    "load_optimizer",
    "load_recipe",
    "make_problem",
    "preprocess_gradients",
    "run",
    "save_optimizer",
    "tune_learning_rate",
    "unroll",
]
