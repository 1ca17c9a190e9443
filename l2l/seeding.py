"""Seeds for every random draw, with disjoint streams for training, validation and test.

Every optimizee is sampled from a ``torch.Generator`` made here from (seed, split, index). The
split name enters the hash, so training, validation and test optimizees never share a stream, and
the same (seed, split, index) always gives the same optimizee.
"""

from __future__ import annotations

import hashlib

import torch

SPLITS = ("train", "val", "test")


def seed_for(seed: int, split: str, index: int = 0) -> int:
    """A 63-bit seed derived from (seed, split, index)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    digest = hashlib.sha256(f"l2l:{split}:{int(seed)}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int, split: str, index: int = 0) -> torch.Generator:
    """A CPU generator seeded from (seed, split, index)."""
    return torch.Generator().manual_seed(seed_for(seed, split, index))


def minibatch_seed(family: str, seed: int, step: int) -> int:
    """The 63-bit seed of one network's minibatch at ``step``, in ``family``'s own stream.

    Each sampled network of a stochastic problem draws one ``seed``; its minibatch at step t
    then depends on (family, seed, t) only, whatever order the steps are asked in.
    """
    digest = hashlib.sha256(f"l2l:{family}-batch:{seed}:{step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1
