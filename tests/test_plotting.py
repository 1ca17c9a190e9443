"""The meta-training log plot: a log f meta-loss (negative) must not vanish from a log axis."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from l2l.plotting import plot_training_log  # noqa: E402


def _log(train):
    return [{"epoch": e, "meta_loss": m, **({"val_meta_loss": 0.5 - 0.01 * e} if e % 2 == 0 else {})}
            for e, m in enumerate(train, 1)]


def test_positive_meta_loss_shares_the_validation_axis():
    fig, ax = plt.subplots()
    plot_training_log(_log([2.0, 1.5, 1.2, 1.0]), ax)
    assert len(fig.axes) == 1 and ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["meta-loss (train)", "validation: mean f"]
    plt.close(fig)


def test_log_f_meta_loss_gets_a_linear_axis_of_its_own():
    fig, ax = plt.subplots()
    plot_training_log(_log([-0.5, -0.9, -1.1, -1.2]), ax)
    assert len(fig.axes) == 2
    twin = fig.axes[1]
    assert twin.get_yscale() == "linear" and ax.get_yscale() == "log"
    (line,) = twin.get_lines()
    assert list(line.get_ydata()) == [-0.5, -0.9, -1.1, -1.2]  # every point drawn, none dropped
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["meta-loss (train, log f; right)", "validation: mean f"]
    plt.close(fig)
