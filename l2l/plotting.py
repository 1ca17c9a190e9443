"""Plots in the paper's style: mean loss per step on a log axis, a band, one colour per optimizer.

- :func:`plot_curves`: the mean loss of each optimizer per step. Its band is the 95% confidence
  interval of the mean drawn on the log scale (mean × exp(±1.96·sem/mean), the delta method), so
  it never reaches below zero; the y-limits follow the curves, not the bands. ``smooth=k``
  draws a k-step moving average of noisy minibatch losses with the raw curve faint behind it.
- :func:`plot_relative`: each curve divided by the best hand-designed baseline at every step,
  the zoom that shows a lead of a few percent (1 is the best baseline).
- :func:`mark_horizon`: a dotted line at the horizon a learned optimizer was meta-trained for.
- :func:`plot_training_log`: meta-training as two labelled panels, the training meta-loss per
  epoch and the validation loss.

Colours are fixed per optimizer name across every figure, so "Adam" looks the same in notebook
01 and notebook 04.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from .optimizers import BASELINES

COLOURS = {"lstm": "#d62728", "sgd": "#7f7f7f", "rmsprop": "#2ca02c", "adam": "#1f77b4",
           "nag": "#ff7f0e", "lstm-sub": "#9467bd"}
LABELS = {"lstm": "LSTM", "sgd": "SGD", "rmsprop": "RMSprop", "adam": "ADAM", "nag": "NAG",
          "lstm-sub": "LSTM-sub"}
EXTRA = ["#8c564b", "#e377c2", "#17becf", "#bcbd22", "#9467bd"]


def colour(name: str, index: int = 0) -> str:
    key = name.split(" ")[0].lower()
    return COLOURS.get(key, EXTRA[index % len(EXTRA)])


def label(name: str) -> str:
    key, _, rest = name.partition(" ")
    return LABELS.get(key.lower(), key) + (f" {rest}" if rest else "")


def smoothed(values: np.ndarray, window: int) -> np.ndarray:
    """Moving average over ``window`` steps (shorter windows at the ends; same length)."""
    if window <= 1:
        return values
    kernel = np.ones(window)
    pad = window // 2
    padded = np.pad(values, (pad, window - 1 - pad), mode="edge")
    return np.convolve(padded, kernel, mode="valid") / window


def _band(curve) -> tuple[np.ndarray, np.ndarray]:
    """The 95% interval of the mean on the log scale: mean · exp(±1.96 · sem / mean)."""
    mean = curve.mean.numpy()
    sem = curve.std.numpy() / math.sqrt(curve.losses.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.exp(1.96 * np.where(mean > 0, sem / mean, 0.0))
    return mean / factor, mean * factor


def _limits(ax, lows, highs, log: bool) -> None:
    lo, hi = min(lows), max(highs)
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= 0:
        return
    if log:
        lo = max(lo, hi * 1e-6)
        ax.set_ylim(lo / 1.15, hi * 1.15)
    else:
        pad = 0.05 * (hi - lo or abs(hi) or 1.0)
        ax.set_ylim(lo - pad, hi + pad)


def plain_log_ticks(ax) -> None:
    """Plain numbers on a log y-axis (0.4, not 4×10⁻¹); across less than two decades also
    labelled minor ticks (at 2 and 5, or more within one decade), so a zoomed axis keeps a few
    labels that never collide."""
    low, high = ax.get_ylim()
    plain = FuncFormatter(lambda y, _: f"{y:g}")
    ax.yaxis.set_major_locator(LogLocator(numticks=8))
    ax.yaxis.set_major_formatter(plain)
    span = high / low if low > 0 else math.inf
    subs = (1.5, 2.0, 3.0, 4.0, 6.0, 8.0) if span < 10 else (2.0, 5.0)
    ax.yaxis.set_minor_locator(LogLocator(subs=subs, numticks=8))
    ax.yaxis.set_minor_formatter(plain if span < 100 else NullFormatter())


def plot_curves(curves, ax=None, title: str | None = None, start: int = 0, log: bool = True,
                band: bool = True, smooth: int = 1, legend: bool = True):
    """Mean loss per step of each :class:`~l2l.evaluate.Curve`, with a 95% band.

    ``start`` offsets the step axis (Figure 4 right draws steps 101–200); ``smooth=k`` draws a
    k-step moving average over the faint raw mean. Returns the axes.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4), layout="constrained")
    lows, highs = [], []
    for i, curve in enumerate(curves):
        mean = curve.mean.numpy()
        steps = np.arange(start, start + len(mean))
        c = colour(curve.name, i)
        shown = smoothed(mean, smooth)
        if smooth > 1:
            ax.plot(steps, mean, color=c, lw=0.5, alpha=0.2)
        ax.plot(steps, shown, color=c, label=label(curve.name), lw=1.6)
        if band and curve.losses.shape[1] > 1:
            low, high = (smoothed(b, smooth) for b in _band(curve))
            ax.fill_between(steps, low, high, color=c, alpha=0.15, lw=0)
        finite = shown[np.isfinite(shown)]
        if finite.size:
            lows.append(finite.min())
            highs.append(finite.max())
    if log:
        ax.set_yscale("log")
    if lows:
        _limits(ax, lows, highs, log)
    if log:
        plain_log_ticks(ax)
    ax.set_xlabel("step")
    ax.set_ylabel("loss" + (f" ({smooth}-step average)" if smooth > 1 else ""))
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(frameon=False, fontsize="small")
    ax.grid(True, which="major", alpha=0.3)
    return ax


def mark_horizon(ax, horizon: int, text: str = "training horizon"):
    """A dotted vertical line at step ``horizon``, labelled at the top of ``ax``: where a learned
    optimizer's meta-training trajectories ended. Returns the axes."""
    ax.axvline(horizon, color="0.5", linestyle=":", linewidth=1)
    ax.annotate(f" {text}", (horizon, 1), xycoords=("data", "axes fraction"), va="top",
                fontsize=8, color="0.4")
    return ax


def plot_relative(curves, ax=None, title: str | None = None, start: int = 0, smooth: int = 1,
                  legend: bool = True):
    """Each curve's mean loss divided by the best baseline's at every step (a zoom on a small
    lead: below 1 is ahead of every tuned hand-designed optimizer). Returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3), layout="constrained")
    baselines = [c for c in curves if c.name.split(" ")[0].lower() in BASELINES]
    if not baselines:
        raise ValueError("plot_relative needs at least one of the baselines "
                         f"{', '.join(BASELINES)} among the curves")
    best = np.min([smoothed(c.mean.numpy(), smooth) for c in baselines], axis=0)
    steps = np.arange(start, start + len(best))
    lows, highs = [1.0], [1.0]
    for i, curve in enumerate(curves):
        ratio = smoothed(curve.mean.numpy(), smooth) / best
        ax.plot(steps, ratio, color=colour(curve.name, i), label=label(curve.name), lw=1.4)
        finite = ratio[np.isfinite(ratio)]
        lows.append(finite.min(initial=1.0))
        highs.append(finite.max(initial=1.0))
    ax.axhline(1.0, color="#999999", lw=0.8, ls=":", zorder=0)
    _limits(ax, lows, [min(max(highs), 1.6)], log=False)
    ax.set_xlabel("step")
    ax.set_ylabel("loss ÷ best baseline")
    if title:
        ax.set_title(title)
    if legend:
        ax.legend(frameon=False, fontsize="small")
    ax.grid(True, alpha=0.3)
    return ax


def plot_training_log(log: list[dict], axes=None, title: str = "meta-training"):
    """Meta-training from :attr:`MetaTrainer.log` rows, as two labelled panels: the training
    meta-loss per epoch (log axis for mean f, linear for a mean log f meta-loss, which is
    negative) and the validation loss (mean f over the horizon; a log axis where it spans more
    than a decade). Returns the two axes."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3), layout="constrained")
    train_ax, val_ax = axes
    epochs = [row["epoch"] for row in log]
    train = [row["meta_loss"] for row in log]
    log_f = min(train) <= 0
    train_ax.plot(epochs, train, color="#888888", lw=0.6, alpha=0.5)
    if len(train) > 20:
        window = max(2, len(train) // 25)
        train_ax.plot(epochs, smoothed(np.asarray(train, dtype=float), window), color="#333333",
                      lw=1.2, label=f"{window}-epoch average")
        train_ax.legend(frameon=False, fontsize="small")
    if not log_f:
        train_ax.set_yscale("log")
    train_ax.set_ylabel("mean log f per unroll" if log_f else "mean f per unroll")
    train_ax.set_title(f"{title}: training meta-loss")
    val = [(row["epoch"], row["val_meta_loss"]) for row in log if "val_meta_loss" in row]
    if val:
        epochs_val, losses_val = zip(*val)
        val_ax.plot(epochs_val, losses_val, "o-", color=COLOURS["lstm"], ms=3)
        if min(losses_val) > 0 and max(losses_val) > 10 * min(losses_val):
            val_ax.set_yscale("log")
    val_ax.set_ylabel("validation: mean f")
    val_ax.set_title(f"{title}: validation")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        if ax.get_yscale() == "log":
            plain_log_ticks(ax)
        else:
            ax.yaxis.set_major_locator(MaxNLocator(5))
    return axes
