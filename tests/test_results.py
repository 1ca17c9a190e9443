"""Stored results are used only for the settings that made them (l2l.results)."""

import shutil

import pytest
import torch

from l2l import checkpoint, results
from l2l.evaluate import Curve, evaluate

PROBLEM = "quadratic:dim=4"


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("L2L_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "results"


def key(**change):
    settings = {"problem": PROBLEM, "spec": "adam:0.1", "steps": 5, "runs": 3, "seed": 0}
    settings.update(change)
    return results.result_key(settings.pop("problem"), settings.pop("spec"), **settings)


def test_every_setting_that_determines_a_curve_changes_its_key(tmp_path):
    base = key()
    changed = [key(seed=1), key(steps=6), key(runs=4), key(spec="adam:0.2"), key(spec="adam"),
               key(problem="quadratic:dim=5"), key(spec="adam", tune_runs=7)]
    names = {results.file_name(k) for k in [base] + changed}
    assert len(names) == 1 + len(changed)
    assert key(spec="adam")["tuning"]["runs"] == 1024  # the problem's own, made explicit


def test_a_learned_optimizer_is_keyed_by_its_weights_and_config_not_its_provenance(tmp_path):
    copy = tmp_path / "copy.pt"
    shutil.copy(checkpoint.resolve("pretrained:quadratic"), copy)
    first = key(spec=f"lstm:{copy}")["optimizer_sha256"]
    assert first == key(spec="pretrained:quadratic")["optimizer_sha256"]
    # the same weights and config saved again with other provenance: the same key
    optimizer = checkpoint.load_optimizer(copy)
    checkpoint.save_optimizer(optimizer, copy, {"command": "python -m l2l train quadratic "
                                                           "--out runs/elsewhere"})
    assert key(spec=f"lstm:{copy}")["optimizer_sha256"] == first
    # one weight changed, or the config: another key
    with torch.no_grad():
        next(optimizer.parameters()).add_(1e-3)
    checkpoint.save_optimizer(optimizer, copy)
    assert key(spec=f"lstm:{copy}")["optimizer_sha256"] != first
    record = torch.load(checkpoint.resolve("pretrained:quadratic"), weights_only=True)
    record["config"]["output_scale"] *= 2
    torch.save(record, copy)
    assert key(spec=f"lstm:{copy}")["optimizer_sha256"] != first


def test_a_stored_curve_is_used_for_its_own_settings_only(tmp_path, cache):
    shipped = tmp_path / "shipped"
    marked = Curve("adam", torch.full((6, 3), 7.0), 0.1)  # not what adam would give
    results.save(marked, key(), shipped)
    (same,) = results.cached_evaluate(PROBLEM, ["adam:0.1"], steps=5, runs=3, seed=0,
                                      shipped=shipped, progress=False)
    assert torch.equal(same.losses, marked.losses)
    (other,) = results.cached_evaluate(PROBLEM, ["adam:0.1"], steps=5, runs=3, seed=1,
                                       shipped=shipped, progress=False)
    (expected,) = evaluate(PROBLEM, ["adam:0.1"], steps=5, runs=3, seed=1, progress=False)
    assert torch.equal(other.losses, expected.losses)
    # computed results go to the cache, never into the shipped folder
    assert len(list(shipped.iterdir())) == 1
    assert [p.name for p in cache.iterdir()] == [results.file_name(key(seed=1))]


def test_a_file_whose_key_differs_is_not_trusted(tmp_path):
    shipped = tmp_path / "shipped"
    path = results.save(Curve("adam", torch.full((6, 3), 7.0), 0.1), key(), shipped)
    record = torch.load(path, weights_only=True)
    record["key"]["seed"] = 99  # e.g. a file renamed by hand
    torch.save(record, path)
    (curve,) = results.cached_evaluate(PROBLEM, ["adam:0.1"], steps=5, runs=3, seed=0,
                                       shipped=shipped, progress=False)
    assert not torch.equal(curve.losses, torch.full((6, 3), 7.0))
    path.write_bytes(b"not a torch file")  # a damaged file is computed again, not an error
    (again,) = results.cached_evaluate(PROBLEM, ["adam:0.1"], steps=5, runs=3, seed=0,
                                       shipped=shipped, progress=False)
    assert torch.equal(again.losses, curve.losses)


def test_refresh_recomputes_into_the_shipped_folder(tmp_path, cache, capsys):
    shipped = tmp_path / "shipped"
    results.save(Curve("adam", torch.full((6, 3), 7.0), 0.1), key(), shipped)
    (curve,) = results.cached_evaluate(PROBLEM, ["adam:0.1"], steps=5, runs=3, seed=0,
                                       shipped=shipped, refresh=True, progress=False)
    assert "about" in capsys.readouterr().out  # the cost is stated before the work
    assert not cache.exists()
    assert torch.equal(results.load(key(), [shipped]).losses, curve.losses)
    assert not torch.equal(curve.losses, torch.full((6, 3), 7.0))
