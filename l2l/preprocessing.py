"""The paper's gradient encoding (Appendix A).

Gradients of different coordinates span many orders of magnitude, which a small LSTM
cannot take in raw. Appendix A encodes each gradient as two numbers, a scaled log-magnitude
and a sign, switching to a linear encoding for tiny gradients:

    ∇ ↦ (log|∇| / p, sign ∇)    if |∇| ≥ e^{-p}
    ∇ ↦ (-1, e^{p} ∇)           otherwise

The two branches meet at |∇| = e^{-p}: the first coordinate is -1 on both sides.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .errors import ConfigError


def preprocess_gradients(grad: Tensor, p: float = 10.0) -> Tensor:
    """Encode gradients as in Appendix A of the paper.

    Args:
        grad: gradients of any shape ``[...]``.
        p: the scale parameter; the paper uses 10 (the authors' code 5).

    Returns:
        A tensor of shape ``[..., 2]``: log-magnitude over p and sign, or (-1, e^p ∇) for
        gradients smaller than e^{-p} in magnitude.
    """
    if p <= 0:
        raise ConfigError(f"preprocessing scale p must be positive, got {p}")
    threshold = math.exp(-p)
    magnitude = grad.abs()
    big = magnitude >= threshold
    # Clamp before the log so that tiny and zero gradients give finite values (and finite
    # second derivatives when they are kept).
    log_part = torch.where(big, torch.log(magnitude.clamp_min(threshold)) / p, -torch.ones_like(grad))
    sign_part = torch.where(big, torch.sign(grad), grad * math.exp(p))
    return torch.stack((log_part, sign_part), dim=-1)
