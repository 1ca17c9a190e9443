"""Plots in the paper's style: mean loss per step on a log axis, a shaded band, one colour each.

Bands show the 95% confidence interval of the mean (mean ± 1.96·std/√runs), clipped to positive
values for the log axis. Colours are fixed per optimizer name across every figure, so "Adam" looks
the same in notebook 01 and notebook 04.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt

COLOURS = {"lstm": "#d62728", "sgd": "#7f7f7f", "rmsprop": "#2ca02c", "adam": "#1f77b4",
           "nag": "#ff7f0e"}
LABELS = {"lstm": "LSTM", "sgd": "SGD", "rmsprop": "RMSprop", "adam": "ADAM", "nag": "NAG"}
EXTRA = ["#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]


def colour(name: str, index: int = 0) -> str:
    key = name.split(" ")[0].lower()
    return COLOURS.get(key, EXTRA[index % len(EXTRA)])


def label(name: str) -> str:
    key, _, rest = name.partition(" ")
    return LABELS.get(key.lower(), key) + (f" {rest}" if rest else "")


def plot_curves(curves, ax=None, title: str | None = None, start: int = 0, log: bool = True,
                band: bool = True):
    """Draw mean loss per step with a 95% band for each :class:`~l2l.evaluate.Curve`.

    ``start`` offsets the step axis (Figure 4 right draws steps 101–200). Returns the axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.5))
    for i, curve in enumerate(curves):
        mean = curve.mean.numpy()
        steps = range(start, start + len(mean))
        ax.plot(steps, mean, color=colour(curve.name, i), label=label(curve.name), lw=1.6)
        if band and curve.losses.shape[1] > 1:
            half = 1.96 * curve.std.numpy() / math.sqrt(curve.losses.shape[1])
            low = (mean - half).clip(min=mean.clip(min=1e-12) * 1e-3)
            ax.fill_between(steps, low, mean + half, color=colour(curve.name, i), alpha=0.2, lw=0)
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title)
    ax.legend(frameon=False, fontsize="small")
    ax.grid(True, which="major", alpha=0.3)
    return ax


def plot_training_log(log: list[dict], ax=None, title: str = "meta-training"):
    """Meta-loss per epoch and validation loss, from :attr:`MetaTrainer.log` rows."""
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.5))
    epochs = [row["epoch"] for row in log]
    train = [row["meta_loss"] for row in log]
    # a log f meta-loss is negative: it gets a linear axis of its own on the right
    train_ax = ax if min(train) > 0 else ax.twinx()
    lines = train_ax.plot(epochs, train, color="#bbbbbb", lw=0.8,
                          label="meta-loss (train)" if train_ax is ax else "meta-loss (train, log f; right)")
    val = [(row["epoch"], row["val_meta_loss"]) for row in log if "val_meta_loss" in row]
    if val:
        lines += ax.plot(*zip(*val), "o-", color=COLOURS["lstm"], ms=3, label="validation: mean f")
        if train_ax is not ax:  # the validation curve in front of the noisy one
            ax.set_zorder(train_ax.zorder + 1)
            ax.patch.set_visible(False)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean f over the horizon")
    ax.set_title(title)
    ax.legend(lines, [line.get_label() for line in lines], frameon=False, fontsize="small")
    return ax
