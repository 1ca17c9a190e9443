"""The neural-art optimizee: losses against direct loops, the feature networks, specs and data."""

import numpy as np
import pytest
import torch

from l2l.features import (
    VGG19_CONTENT_LAYERS,
    VGG19_STYLE_LAYERS,
    check_vgg19_state_dict,
    load_vgg19,
    random_features,
    vgg19_features,
)
from l2l.problems import NeuralArt, make_problem
from l2l.problems import neural_art as art
from l2l.specs import SpecError


def direct_gram(x):
    """G[b, k, l] = Σ_p x[b, k, p] x[b, l, p] / P by explicit loops over k, l."""
    B, C = x.shape[:2]
    flat = x.reshape(B, C, -1)
    gram = torch.zeros(B, C, C, dtype=x.dtype)
    for b in range(B):
        for k in range(C):
            for m in range(C):
                gram[b, k, m] = (flat[b, k] * flat[b, m]).sum() / flat.shape[2]
    return gram


def test_gram_matrix_matches_a_loop():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(art.gram_matrix(x), direct_gram(x))


def test_style_loss_matches_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    acts = {"a": torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64),
            "b": torch.randn(2, 5, 2, 3, generator=g, dtype=torch.float64)}
    style = {"a": torch.randn(1, 3, 6, 5, generator=g, dtype=torch.float64),
             "b": torch.randn(1, 5, 3, 2, generator=g, dtype=torch.float64)}
    targets = {k: direct_gram(v)[0] for k, v in style.items()}
    expected = torch.zeros(2, dtype=torch.float64)
    for b in range(2):
        for layer in acts:
            G, A = direct_gram(acts[layer])[b], targets[layer]
            num = sum((G[i, j] - A[i, j]) ** 2 for i in range(len(A)) for j in range(len(A)))
            den = sum(A[i, j] ** 2 for i in range(len(A)) for j in range(len(A)))
            expected[b] += num / den / len(acts)
    torch.testing.assert_close(art.style_loss(acts, targets), expected)
    # zero at the style's own statistics
    same = {k: v.expand(2, -1, -1, -1) for k, v in style.items()}
    assert art.style_loss(same, targets).abs().max() < 1e-12


def test_content_loss_matches_a_direct_computation():
    g = torch.Generator().manual_seed(1)
    acts = {"c": torch.randn(3, 4, 5, 5, generator=g, dtype=torch.float64)}
    targets = {"c": torch.randn(3, 4, 5, 5, generator=g, dtype=torch.float64)}
    expected = torch.tensor([((acts["c"][b] - targets["c"][b]) ** 2).sum() / (targets["c"][b] ** 2).sum()
                             for b in range(3)], dtype=torch.float64)
    torch.testing.assert_close(art.content_loss(acts, targets), expected)


def test_total_variation_matches_a_loop():
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    expected = torch.zeros(2, dtype=torch.float64)
    for b in range(2):
        down = [(x[b, c, i + 1, j] - x[b, c, i, j]) ** 2 for c in range(3) for i in range(3) for j in range(5)]
        right = [(x[b, c, i, j + 1] - x[b, c, i, j]) ** 2 for c in range(3) for i in range(4) for j in range(4)]
        expected[b] = sum(down) / len(down) + sum(right) / len(right)
    torch.testing.assert_close(art.total_variation(x), expected)
    assert art.total_variation(torch.full((1, 3, 4, 4), 0.7)).item() == 0


# ------------------------------------------------------------------------- feature networks

def test_vgg19_has_torchvision_parameter_names():
    names = list(vgg19_features().state_dict())
    convs = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]  # torchvision's indices
    assert names == [f"features.{i}.{p}" for i in convs for p in ("weight", "bias")]
    network = vgg19_features()
    assert {*VGG19_STYLE_LAYERS, *VGG19_CONTENT_LAYERS} <= set(network.names)
    assert network.names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]


def test_vgg19_state_dict_round_trip(tmp_path):
    original = vgg19_features()
    state = dict(original.state_dict())
    state["classifier.0.weight"] = torch.zeros(2, 2)  # a whole torchvision state dict has these
    path = tmp_path / "vgg19.pth"
    torch.save(state, path)
    loaded = load_vgg19(path)
    for (name, a), (_, b) in zip(original.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(loaded(x, ["relu2_1"])["relu2_1"], original(x, ["relu2_1"])["relu2_1"])


def test_vgg19_loading_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="no VGG-19 weights"):
        load_vgg19(tmp_path / "absent.pth")
    good = vgg19_features().state_dict()
    # another network's keys
    path = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.bias": torch.zeros(10)}, path)
    with pytest.raises(ValueError, match=r"not a VGG-19 state dict.*missing 32 keys.*features\.0\.weight"):
        load_vgg19(path)
    # VGG-19's keys but a wrong shape (e.g. a different first layer)
    wrong = dict(good)
    wrong["features.0.weight"] = torch.zeros(64, 1, 3, 3)
    path = tmp_path / "wrong_shape.pth"
    torch.save(wrong, path)
    with pytest.raises(ValueError, match=r"wrong shapes: features\.0\.weight \[64, 1, 3, 3\]"):
        load_vgg19(path)
    # vgg19_bn's layout: more layers, so keys VGG-19 does not have
    bn = {f"features.{i}.weight": torch.zeros(1) for i in (0, 1, 3, 4, 50)}
    with pytest.raises(ValueError, match="unexpected keys"):
        check_vgg19_state_dict(bn)
    # not a dict at all
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match="not a state dict"):
        load_vgg19(path)
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot be read"):
        load_vgg19(path)


def test_random_features_are_fixed_and_keep_their_scale():
    a, b = random_features(), random_features()
    for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q), name
    assert all(not p.requires_grad for p in a.parameters())
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    out = a(x, ["relu1", "relu4"])
    assert out["relu1"].shape == (2, 32, 32, 32) and out["relu4"].shape == (2, 128, 4, 4)
    # He initialisation: the activations neither vanish nor explode with depth
    ratio = out["relu4"].pow(2).mean() / out["relu1"].pow(2).mean()
    assert 0.05 < ratio.item() < 20
    out["relu4"].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# ------------------------------------------------------------------------------- the problem

@pytest.fixture
def fake_art(tmp_path):
    """A data dir with a tiny art/ folder: 6 + 2 + 2 crops at 64, 4 at 128, two styles."""
    from PIL import Image

    folder = tmp_path / "art"
    (folder / "styles").mkdir(parents=True)
    g = np.random.default_rng(0)
    np.savez(folder / "content_64.npz", x=g.integers(0, 256, (10, 64, 64, 3), dtype=np.uint8),
             train=np.arange(6), val=np.arange(6, 8), test=np.arange(8, 10))
    np.savez(folder / "content_128_heldout.npz",
             x=g.integers(0, 256, (4, 128, 128, 3), dtype=np.uint8),
             val=np.arange(2), test=np.arange(2, 4))
    for name in ("hokusai_great_wave", "vangogh_night_cafe"):
        Image.fromarray(g.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(folder / "styles" / f"{name}.png")
    return str(tmp_path)


def test_problem_shapes_gradients_and_terms(fake_art):
    problem = NeuralArt(data_dir=fake_art)
    assert problem.num_params == 3 * 64 * 64
    optimizee = problem.sample(3, torch.Generator().manual_seed(0))
    assert optimizee.theta0.shape == (3, 3 * 64 * 64)
    theta = optimizee.theta0.clone().requires_grad_(True)
    loss = optimizee.loss(theta)
    assert loss.shape == (3,) and torch.isfinite(loss).all()
    (grad,) = torch.autograd.grad(loss.sum(), theta)
    assert grad.shape == theta.shape and grad.abs().sum() > 0
    terms = optimizee.metrics(theta)
    torch.testing.assert_close(sum(terms.values()), loss.detach())
    # θ0 is the content plus noise, and the problem is seeded by the generator alone
    again = problem.sample(3, torch.Generator().manual_seed(0))
    assert torch.equal(again.theta0, optimizee.theta0)
    assert (optimizee.theta0 - optimizee.content.flatten(1)).std().item() == pytest.approx(0.1, rel=0.05)
    # each image's loss depends on its own θ only
    other = theta.detach().clone()
    other[1] += 0.1
    changed = optimizee.loss(other)
    assert changed[0] == loss[0] and changed[2] == loss[2] and changed[1] != loss[1]


def test_a_few_adam_steps_reduce_the_loss(fake_art):
    optimizee = NeuralArt(data_dir=fake_art).sample(2, torch.Generator().manual_seed(1))
    theta = optimizee.theta0.clone().requires_grad_(True)
    adam = torch.optim.Adam([theta], lr=0.02)
    first = optimizee.loss(theta).detach()
    for _ in range(10):
        adam.zero_grad()
        optimizee.loss(theta).sum().backward()
        adam.step()
    assert (optimizee.loss(theta) < 0.8 * first).all()


def test_vgg19_features_in_the_problem(fake_art, tmp_path):
    path = tmp_path / "vgg19.pth"
    torch.save(vgg19_features().state_dict(), path)
    problem = NeuralArt(features="vgg19", weights=str(path), data_dir=fake_art)
    assert problem.style_layer_names == VGG19_STYLE_LAYERS
    loss = problem.sample(1, torch.Generator().manual_seed(0)).loss(problem.sample(1, torch.Generator()).theta0)
    assert loss.shape == (1,) and torch.isfinite(loss).all()
    with pytest.raises(FileNotFoundError, match="no VGG-19 weights"):
        NeuralArt(features="vgg19", data_dir=fake_art).network()


def test_spec_parsing_and_round_trip(fake_art):
    problem = make_problem("neural_art:style=vangogh_night_cafe,size=128,content=test")
    assert (problem.style, problem.size, problem.content) == ("vangogh_night_cafe", 128, "test")
    assert problem.num_params == 49152
    assert problem.spec() == "neural_art:style=vangogh_night_cafe,size=128,content=test"
    custom = make_problem("neural_art:style_weight=10,tv_weight=0.5,style_layers=relu1+relu2")
    assert custom.style_layer_names == ("relu1", "relu2")
    assert make_problem(custom.spec()).spec() == custom.spec()
    assert make_problem("neural_art").spec() == "neural_art:style=hokusai_great_wave,size=64,content=train"
    # the short spelling: without content= the 128-pixel problem takes the held-out crops, and
    # each split its own
    at_128 = make_problem("neural_art:style=vangogh_night_cafe,size=128")
    assert at_128.content == "test" and at_128.for_split("val").content == "val"
    with pytest.raises(SpecError, match="size must be one of"):
        make_problem("neural_art:size=32")
    with pytest.raises(SpecError, match="content must be one of"):
        make_problem("neural_art:content=holdout")
    with pytest.raises(ValueError, match="no style 'monet'.*hokusai_great_wave"):
        NeuralArt(style="monet", data_dir=fake_art).style_image()
    with pytest.raises(ValueError, match="has no layers"):
        NeuralArt(style_layers="relu9", data_dir=fake_art).network()


def test_content_splits_and_sizes(fake_art):
    assert art.load_content("train", 64, fake_art).shape == (6, 3, 64, 64)
    assert art.load_content("test", 128, fake_art).shape == (2, 3, 128, 128)
    test = NeuralArt(data_dir=fake_art).for_split("test")
    assert test.content == "test" and test.data_dir == fake_art
    crops = art.load_content("test", 64, fake_art).float() / 255
    sampled = test.sample(4, torch.Generator().manual_seed(0)).content
    assert all(any(torch.equal(s, c) for c in crops) for s in sampled)
    big = NeuralArt(style="vangogh_night_cafe", size=128, content="val", data_dir=fake_art)
    assert big.style_image().shape[-2:] == (128, round(40 * 128 / 30))
    assert big.sample(1, torch.Generator()).theta0.shape == (1, 49152)


def test_missing_art_data_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="cannot be downloaded"):
        NeuralArt(data_dir=str(tmp_path)).sample(1, torch.Generator())


@pytest.fixture
def real_art(shared_data_dir):
    folder = art.art_folder()
    if not (folder / "content_64.npz").is_file():
        pytest.skip(f"the art data are absent from {folder}")
    return folder


def test_real_art_data(real_art):
    assert art.load_content("train").shape == (1880, 3, 64, 64)
    assert art.load_content("val").shape == (20, 3, 64, 64)
    assert art.load_content("test", 128).shape == (100, 3, 128, 128)
    assert len(art.style_names()) == 17
    assert (real_art / art.ATTRIBUTION).is_file()
    style = art.load_style("hokusai_great_wave")
    assert style.shape[0] == 3 and max(style.shape[1:]) == 256 and 0 <= style.min() <= style.max() <= 1
    optimizee = NeuralArt().sample(2, torch.Generator().manual_seed(0))
    loss = optimizee.loss(optimizee.theta0)
    assert loss.shape == (2,) and torch.isfinite(loss).all()


def test_second_order_meta_gradient_reaches_through_the_feature_network(fake_art):
    """The shipped optimizer was meta-trained with ``--second-order``: ∂∇_t/∂φ must flow back
    through the feature network's double backward (Gram matrices, convolutions, ReLUs), so the
    meta-gradient differs from the paper's first-order one, and both are finite."""
    from l2l import load_optimizer
    from l2l.rollout import unroll

    # no total variation: its Hessian alone (f is quadratic in θ there) would make the two differ
    problem = NeuralArt(data_dir=fake_art, tv_weight=0.0)
    optimizee = problem.sample(1, torch.Generator().manual_seed(2))
    optimizer = load_optimizer("pretrained:neural_art")  # a fresh LSTM barely moves θ in 3 steps
    meta_grads = {}
    for second_order in (False, True):
        theta = optimizee.theta0
        state = optimizer.init_state(theta)
        losses = unroll(optimizee, optimizer, theta, state, 0, 3, second_order=second_order).losses
        meta_grads[second_order] = torch.cat([g.flatten() for g in torch.autograd.grad(
            losses.mean(), list(optimizer.parameters()))])
    first, second = meta_grads[False], meta_grads[True]
    assert torch.isfinite(first).all() and torch.isfinite(second).all()
    assert first.abs().sum() > 0
    assert (second - first).norm() > 0.1 * first.norm()


def test_a_damaged_style_image_names_itself(tmp_path):
    from l2l import data
    from l2l.problems.neural_art import load_style

    styles = tmp_path / "art" / "styles"
    styles.mkdir(parents=True)
    (styles / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)  # a cut-off PNG
    with pytest.raises(data.DataUnavailableError, match="broken.png cannot be read as an image"):
        load_style("broken", root=tmp_path)
