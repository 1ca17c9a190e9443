import math

import pytest
import torch

from l2l.preprocessing import preprocess_gradients


def test_golden_numbers_p10():
    grad = torch.tensor([1.0, -0.5, 1e-5, -1e-6, 0.0, 100.0], dtype=torch.float64)
    out = preprocess_gradients(grad, p=10.0)
    expected = torch.tensor([
        [0.0, 1.0],
        [-0.06931471805599453, -1.0],
        [-1.0, 0.22026465794806718],
        [-1.0, -0.022026465794806718],
        [-1.0, 0.0],
        [0.4605170185988091, 1.0],
    ], dtype=torch.float64)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_branches_meet_at_threshold_and_p5():
    p = 5.0
    at = torch.tensor([math.exp(-p), -math.exp(-p)], dtype=torch.float64)
    out = preprocess_gradients(at, p)
    torch.testing.assert_close(out[:, 0], torch.tensor([-1.0, -1.0], dtype=torch.float64))
    torch.testing.assert_close(out[:, 1], torch.tensor([1.0, -1.0], dtype=torch.float64))
    just_below = preprocess_gradients(at * (1 - 1e-9), p)
    torch.testing.assert_close(just_below, out, rtol=1e-6, atol=1e-6)


def test_shape_and_finite_second_derivatives():
    grad = torch.tensor([[0.0, 1e-8], [3.0, -2.0]], requires_grad=True)
    out = preprocess_gradients(grad)
    assert out.shape == (2, 2, 2)
    (g,) = torch.autograd.grad(out.sum(), grad)
    assert torch.isfinite(g).all()


def test_rejects_bad_p():
    with pytest.raises(ValueError, match="positive"):
        preprocess_gradients(torch.zeros(3), p=0)
