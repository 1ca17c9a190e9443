"""The library's own error types: problems a user can fix, as opposed to bugs.

The command line prints these as one line (``l2l: error: …``) and exits with status 2 (130 for an
interrupted training); anything else is a bug and keeps its traceback. Each one also derives from
the built-in type a caller would expect (a bad value is a ``ValueError``, missing data a
``FileNotFoundError``), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import math


class L2LError(Exception):
    """Base of every error the library raises for a cause outside its own code."""

    #: the command line's exit status for this error
    exit_code = 2


class ConfigError(L2LError, ValueError):
    """A setting, argument or command-line value outside what is allowed."""


class DataError(L2LError, ValueError):
    """A data or checkpoint file is unreadable (truncated, corrupted) or holds something else."""


class OutputError(L2LError, OSError):
    """A result could not be written (no space left, a read-only folder …)."""


class NonFiniteError(L2LError, ArithmeticError):
    """Meta-training went non-finite (NaN or infinite meta-gradients, weights or validation) and
    stopped without saving non-finite weights."""


class TrainingInterrupted(L2LError):
    """Meta-training stopped on SIGINT or SIGTERM after saving a state that ``resume`` continues
    exactly."""

    exit_code = 130


def check_count(name: str, value, minimum: int = 1) -> int:
    """``value`` as an int ≥ ``minimum``, or a :class:`ConfigError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        allowed = "a positive integer" if minimum == 1 else f"an integer ≥ {minimum}"
        raise ConfigError(f"{name} must be {allowed}, got {value!r}")
    return value


def check_positive(name: str, value, minimum: float = 0.0, inclusive: bool = False) -> float:
    """``value`` as a finite float > ``minimum`` (≥ with ``inclusive``), or a
    :class:`ConfigError` naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    ok = math.isfinite(number) and (number >= minimum if inclusive else number > minimum)
    if not ok:
        allowed = ("a positive finite number" if minimum == 0 and not inclusive
                   else f"a finite number {'≥' if inclusive else '>'} {minimum:g}")
        raise ConfigError(f"{name} must be {allowed}, got {value!r}")
    return number


__all__ = ["L2LError", "ConfigError", "DataError", "OutputError", "NonFiniteError", "TrainingInterrupted", "check_count",
           "check_positive"]
