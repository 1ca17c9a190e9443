import torch

from l2l.analysis import update_histories
from l2l.optimizers import SGD, Adam, LSTMOptimizer
from l2l.problems import Quadratic
from l2l.rollout import run
from l2l.seeding import generator


def test_update_histories_follow_the_learned_trajectory():
    torch.manual_seed(0)
    learned = LSTMOptimizer(hidden_size=5, preprocess=True, output_scale=0.1)
    optimizee = Quadratic(dim=6).sample(3, generator(0, "test"))
    history = update_histories(optimizee, learned, {"sgd": SGD(0.1), "adam": Adam(0.1)}, steps=7)
    losses, theta = run(optimizee, learned, 7)
    torch.testing.assert_close(history.losses, losses)
    torch.testing.assert_close(history.theta, theta)
    assert history.grads.shape == history.updates["adam"].shape == (7, 3, 6)
    # SGD's record is -lr times the very gradients the learned optimizer saw
    torch.testing.assert_close(history.updates["sgd"], -0.1 * history.grads)
    # Adam's first update is -lr·sign(∇) (bias-corrected moments)
    torch.testing.assert_close(history.updates["adam"][0], -0.1 * history.grads[0].sign(),
                               atol=1e-5, rtol=0)
