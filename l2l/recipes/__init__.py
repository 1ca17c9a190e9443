"""Training recipes as data: how each shipped optimizer is meta-trained.

A recipe is a TOML file, ``l2l/recipes/NAME.toml`` for the shipped optimizer ``pretrained:NAME``
(or any path). It names its ``problem`` and says what it is for (``description``); every other
top-level key is a setting of all its stages. A recipe with several stages lists them as
``[[stage]]`` tables, each with a ``name`` and the settings it adds or changes; ``init = "NAME"``
starts a stage from the best optimizer of the earlier stage NAME. The settings are the fields of
:class:`~l2l.optimizers.lstm.LSTMConfig` (the LSTM's architecture), :class:`~l2l.meta.MetaConfig`
(meta-training) and :class:`~l2l.imitation.WarmStart` (imitation before meta-training); a field
left out takes its default. ``python -m l2l train --recipe NAME`` runs every stage in turn, and
a problem family's training defaults are those of its shipped recipe (:attr:`Problem.recipe`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import cache
from pathlib import Path

import tomllib

from ..errors import ConfigError

HERE = Path(__file__).parent
#: the top-level keys of a recipe that are not settings
HEADER = ("problem", "description", "stage")


def sections() -> dict:
    """Concern → the config dataclass whose fields are its settings (also the CLI's groups)."""
    from ..imitation import WarmStart
    from ..meta import MetaConfig
    from ..optimizers.lstm import LSTMConfig

    return {"LSTM architecture": LSTMConfig, "meta-training": MetaConfig,
            "imitation warm start": WarmStart}


def setting_names() -> dict[str, type]:
    """Every setting's name → the dataclass it belongs to (the names are unique across them)."""
    return {f.name: cls for cls in sections().values() for f in fields(cls)}


@dataclass(frozen=True)
class Stage:
    """One meta-training run of a recipe: its settings, and the earlier stage it starts from."""

    name: str
    settings: dict
    init: str | None = None

    def config(self, cls, overrides: dict | None = None):
        """The stage's settings for one dataclass (``cls``), with ``overrides`` applied."""
        merged = {**self.settings, **(overrides or {})}
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in merged.items() if k in names})


@dataclass(frozen=True)
class Recipe:
    """A training recipe: ``problem`` (a spec), ``stages`` in order, and what it is for."""

    name: str
    problem: str
    stages: tuple[Stage, ...]
    description: str = ""

    def final(self) -> Stage:
        return self.stages[-1]


def stage_folders(stages, out: Path) -> dict[str, Path]:
    """Where each stage runs: the last in ``out``, earlier ones in ``out/STAGE``."""
    folders = {stage.name: out / stage.name for stage in stages[:-1]}
    folders[stages[-1].name] = out
    return folders


def stage_start(stage: Stage, folders: dict[str, Path], init: str | None = None) -> str | None:
    """The optimizer a stage starts from: ``init`` if given (it then runs alone), else its
    recipe's earlier stage's best.pt, else None (a fresh optimizer)."""
    if init is not None or stage.init is None:
        return init
    return f"lstm:{folders[stage.init] / 'best.pt'}"


def list_recipes() -> list[str]:
    """The names of the shipped recipes."""
    return sorted(p.stem for p in HERE.glob("*.toml"))


def _check_settings(settings: dict, where: str) -> None:
    known = setting_names()
    for key in settings:
        if key not in known:
            raise ConfigError(f"{where}: unknown setting {key!r}; settings are the fields of "
                              f"{', '.join(c.__name__ for c in sections().values())}: "
                              f"{', '.join(known)}")


@cache
def _read(path: Path) -> Recipe:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read recipe {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"recipe {path} is not valid TOML: {error}") from None
    if "problem" not in data:
        raise ConfigError(f"recipe {path} names no problem; add problem = \"NAME\"")
    shared = {k: v for k, v in data.items() if k not in HEADER}
    _check_settings(shared, str(path))
    tables = data.get("stage", [{"name": path.stem}])
    stages, seen = [], set()
    for k, table in enumerate(tables):
        table = dict(table)
        name = table.pop("name", f"stage{k + 1}")
        init = table.pop("init", None)
        _check_settings(table, f"{path}, stage {name!r}")
        if init is not None and init not in seen:
            raise ConfigError(f"{path}, stage {name!r}: init = {init!r} is not an earlier stage "
                              f"({', '.join(seen) or 'none'})")
        seen.add(name)
        stages.append(Stage(name, {**shared, **table}, init))
    for stage in stages:  # every config checks its values now, before any work
        for cls in sections().values():
            stage.config(cls)
    return Recipe(path.stem, data["problem"], tuple(stages), data.get("description", ""))


def recipe_for(problem) -> Recipe:
    """A problem family's shipped recipe (:attr:`~l2l.problems.Problem.recipe`); for a family
    without one, a single stage of the config dataclasses' defaults."""
    if problem.recipe:
        return load_recipe(problem.recipe)
    return Recipe(problem.name, problem.spec(), (Stage(problem.name, {}),))


def load_recipe(name: str | Path) -> Recipe:
    """The recipe ``name`` (a shipped one, see :func:`list_recipes`) or at a path ``*.toml``."""
    path = Path(name)
    if path.suffix != ".toml":
        if str(name) not in list_recipes():
            raise ConfigError(f"no recipe {str(name)!r}; shipped: {', '.join(list_recipes())} "
                              "(or give a path to a .toml file)")
        path = HERE / f"{name}.toml"
    elif not path.is_file():
        raise ConfigError(f"recipe {path} does not exist")
    return _read(path.resolve())


#: the LSTM settings that shape φ: a stage started from a trained optimizer must match them
ARCHITECTURE = ("hidden_size", "num_layers", "preprocess", "groups", "adam_inputs", "relative")


def fit_to_init(optimizer, lstm, init: str) -> None:
    """Check that a trained optimizer (``init``) has the architecture a stage asks for, and give
    it the stage's output scale and p (a later stage may rescale its steps)."""
    for key in ARCHITECTURE:
        wanted, have = getattr(lstm, key), getattr(optimizer, key)
        if wanted != have:
            raise ConfigError(f"{key} = {wanted} does not fit --init {init}, which has "
                              f"{key} = {have}; drop the setting or train from scratch")
    optimizer.p, optimizer.output_scale = float(lstm.p), float(lstm.output_scale)


def check_stage(problem, stage: Stage, overrides: dict | None = None) -> tuple:
    """The stage's (LSTMConfig, MetaConfig, WarmStart) with ``overrides``; every value and the
    teacher checked, so that a bad setting fails before any work."""
    from ..imitation import make_teacher

    lstm, meta, warm = (stage.config(cls, overrides) for cls in sections().values())
    if meta.imitate is not None:
        make_teacher(meta.imitate, problem, meta.horizon)
        if not (warm.imitate_epochs or meta.imitate_weight):
            raise ConfigError(f"imitate = {meta.imitate!r} has no effect: set imitate_epochs "
                              "(imitation before meta-training) or imitate_weight (in the "
                              "meta-loss)")
    elif warm.imitate_epochs:
        raise ConfigError("imitate_epochs needs imitate, the teacher whose steps to imitate")
    return lstm, meta, warm


def train_stage(problem, stage: Stage, out: Path, *, overrides: dict | None = None,
                init: str | None = None, resume: bool = False, command: str | None = None,
                progress: bool = True, device=None, time_limit: float | None = None,
                group=None):
    """Run one stage in ``out``: a fresh optimizer (or the trained one ``init``, a spec such as
    ``lstm:PATH``), its imitation warm start if the stage has one, then meta-training. Returns
    :class:`~l2l.meta.TrainingResult`; a resumed stage skips the warm start it did already.
    In a process ``group`` (:mod:`l2l.distributed`) rank 0 runs the warm start and sends the
    result to the others, and meta-training is split among them."""
    import json

    from .. import checkpoint
    from ..distributed import SINGLE
    from ..imitation import imitate, make_teacher
    from ..meta import MetaTrainer, fresh_optimizer

    group = group or SINGLE

    lstm, meta, warm = check_stage(problem, stage, overrides)
    if init is not None:
        optimizer = checkpoint.load_optimizer(init)
        fit_to_init(optimizer, lstm, init)
    else:
        optimizer = fresh_optimizer(asdict(lstm), meta.seed)
    origin = init
    if warm.imitate_epochs and not resume:
        teacher = make_teacher(meta.imitate, problem, meta.horizon)
        rate = getattr(teacher, "lr", None)
        if group.writes:
            log = imitate(problem, optimizer, teacher, epochs=warm.imitate_epochs,
                          horizon=meta.horizon, unroll=meta.unroll, lr=warm.imitate_lr,
                          seed=meta.seed, progress=progress, device=device)
            record = {"teacher": meta.imitate, "lr": rate, "epochs": warm.imitate_epochs,
                      "imitate_lr": warm.imitate_lr, "log": log}
            out.mkdir(parents=True, exist_ok=True)
            checkpoint.atomic_write_text(json.dumps(record, indent=1), out / "imitation.json")
            print(f"imitated {teacher.name}: relative error {log[0]['error']:.4g} (epoch 1) → "
                  f"{log[-1]['error']:.4g} (epoch {len(log)})")
        weights = group.broadcast(checkpoint.cpu_state(optimizer) if group.writes else None)
        optimizer.load_state_dict(weights)
        origin = (f"{init or 'a fresh optimizer'}, then {warm.imitate_epochs} epochs imitating "
                  f"{meta.imitate} (lr {rate:.3g})")
    trainer = MetaTrainer(problem, optimizer, meta, out=out, command=command, progress=progress,
                          init=origin, device=device, time_limit=time_limit, group=group)
    return trainer.train(resume=resume)
