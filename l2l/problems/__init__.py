"""Optimizee families, by command-line name."""

from ..specs import build
from .base import Optimizee, Problem, group_coordinates
from .cifar import Cifar10, Cifar10Optimizee
from .classification import Classification, ClassificationOptimizee
from .mnist import Mnist, MnistOptimizee
from .neural_art import NeuralArt, NeuralArtOptimizee
from .quadratic import Quadratic, QuadraticOptimizee
from .tasks import Tasks

#: problem families by command-line name: a new family is a module here and one entry below
PROBLEMS = {Quadratic.name: Quadratic, Mnist.name: Mnist, Cifar10.name: Cifar10,
            NeuralArt.name: NeuralArt, Tasks.name: Tasks}


def make_problem(spec: "str | Problem") -> Problem:
    """Build a problem from a spelling such as ``quadratic`` or ``quadratic:dim=20``."""
    return spec if isinstance(spec, Problem) else build("problem", PROBLEMS, spec)


__all__ = ["Optimizee", "Problem", "Classification", "ClassificationOptimizee", "Quadratic",
           "QuadraticOptimizee", "Tasks", "Mnist", "MnistOptimizee", "Cifar10", "Cifar10Optimizee",
           "NeuralArt", "NeuralArtOptimizee", "PROBLEMS", "group_coordinates", "make_problem"]
