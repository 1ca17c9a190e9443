"""Plots: bands on the log scale, y-limits from the curves, the zoom against the best baseline,
the training horizon marked, and meta-training logs as two labelled panels."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from l2l.evaluate import Curve
from l2l.plotting import mark_horizon, plot_curves, plot_relative, plot_training_log, smoothed


def _log(train):
    return [{"epoch": e, "meta_loss": m, **({"val_meta_loss": 0.5 - 0.01 * e} if e % 2 == 0 else {})}
            for e, m in enumerate(train, 1)]


def _curves():
    g = torch.Generator().manual_seed(0)
    steps = torch.arange(51.0)[:, None]
    wide = 1.0 / (1 + steps) * torch.exp(2.0 * torch.randn(51, 5, generator=g))  # huge spread
    return [Curve("lstm", wide), Curve("adam", 1.1 / (1 + steps) * torch.ones(51, 5), 0.01),
            Curve("nag", 1.2 / (1 + steps) * torch.ones(51, 5), 0.1)]


def test_bands_stay_positive_and_limits_follow_the_curves():
    fig, ax = plt.subplots()
    curves = _curves()
    plot_curves(curves, ax)
    low, high = ax.get_ylim()
    means = torch.stack([c.mean for c in curves])
    assert low > 0 and low >= means.min().item() / 1.2   # not stretched down by a band
    assert high <= means.max().item() * 1.2
    for band in ax.collections:
        (path,) = band.get_paths()
        assert (path.vertices[:, 1] > 0).all()
    plt.close(fig)


def test_smoothing_draws_the_raw_mean_faint_behind():
    fig, ax = plt.subplots()
    plot_curves(_curves()[:1], ax, smooth=5, band=False)
    raw, shown = ax.get_lines()
    assert raw.get_alpha() < 0.5 and shown.get_label() == "LSTM"
    assert np.allclose(shown.get_ydata(), smoothed(np.asarray(raw.get_ydata()), 5))
    assert np.allclose(smoothed(np.array([1.0, 2.0, 3.0]), 1), [1.0, 2.0, 3.0])
    plt.close(fig)


def test_relative_panel_divides_by_the_best_baseline_at_each_step():
    _fig, ax = plt.subplots()
    curves = _curves()
    plot_relative(curves, ax)
    lines = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
    assert np.allclose(lines["ADAM"], 1.0)       # the best baseline everywhere
    assert np.allclose(lines["NAG"], 1.2 / 1.1)
    expected = (curves[0].mean / curves[1].mean).numpy()
    assert np.allclose(lines["LSTM"], expected)
    with pytest.raises(ValueError, match="baselines"):
        plot_relative(curves[:1])
    plt.close("all")


@pytest.mark.parametrize("train, scale, ylabel", [([2.0, 1.5, 1.2, 1.0], "log", "mean f per unroll"),
                                                  ([-0.5, -0.9, -1.1, -1.2], "linear", "mean log f per unroll")])
def test_training_log_is_two_labelled_panels(train, scale, ylabel):
    train_ax, val_ax = plot_training_log(_log(train))
    assert train_ax.figure is val_ax.figure and len(train_ax.figure.axes) == 2  # no twin axis
    assert train_ax.get_yscale() == scale and train_ax.get_ylabel() == ylabel
    assert val_ax.get_yscale() == "linear" and val_ax.get_ylabel() == "validation: mean f"
    (line,) = train_ax.get_lines()
    assert list(line.get_ydata()) == train   # every point drawn, none dropped
    (val,) = val_ax.get_lines()
    assert list(val.get_xdata()) == [2, 4]
    plt.close("all")


def test_the_training_horizon_is_a_labelled_line_at_its_step_that_keeps_the_limits():
    ax = plot_curves(_curves())
    before = ax.get_ylim()
    mark_horizon(ax, 20)
    (line,) = [ln for ln in ax.lines if ln.get_linestyle() == ":"]
    assert list(line.get_xdata()) == [20, 20]
    assert [t.get_text() for t in ax.texts] == [" training horizon"]
    assert ax.get_ylim() == before
    plt.close("all")
