"""Optimizee families, by command-line name."""

from ..specs import build
from .base import Optimizee, Problem
from .mnist import Mnist, MnistOptimizee
from .quadratic import Quadratic, QuadraticOptimizee

#: problem families by command-line name
PROBLEMS = {Quadratic.name: Quadratic, Mnist.name: Mnist}


def make_problem(spec: "str | Problem") -> Problem:
    """Build a problem from a spelling such as ``quadratic`` or ``quadratic:dim=20``."""
    return spec if isinstance(spec, Problem) else build("problem", PROBLEMS, spec)


__all__ = ["Optimizee", "Problem", "Quadratic", "QuadraticOptimizee", "Mnist", "MnistOptimizee",
           "PROBLEMS", "make_problem"]
