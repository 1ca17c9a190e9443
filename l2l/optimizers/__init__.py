"""Update rules: the hand-designed baselines and the learned coordinatewise LSTM."""

from .base import Optimizer, State, detach_state
from .handcrafted import BASELINES, NAG, SGD, Adam, RMSprop
from .lstm import CoordinatewiseLSTM, LSTMOptimizer

__all__ = [
    "Optimizer", "State", "detach_state", "BASELINES", "SGD", "RMSprop", "Adam", "NAG",
    "CoordinatewiseLSTM", "LSTMOptimizer",
]
