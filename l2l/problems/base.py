"""The optimizee interface: a family of problems, and batches of instances sampled from it.

A :class:`Problem` is a distribution over functions f (the paper's "class of functions", Section
2); :meth:`Problem.sample` draws B of them at once as an :class:`Optimizee`, whose parameters θ
are one flat tensor ``[B, n]``. Losses are written functionally (plain tensor code or
``torch.func.functional_call``), so θ_{t+1} = θ_t + g_t stays in the autograd graph.

Parameter groups are data: a problem may name the parameters inside θ (its *layout*, a list of
(name, shape) in θ's order) and give *group rules* over those names and shapes;
:func:`group_coordinates` turns the two into the coordinates of each group. On CIFAR-10 the paper
gives the convolution weights one LSTM and everything else another (Section 3.3); that is the rule
``{"conv": "conv*.weight"}``, not code in the optimizer.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Mapping
from dataclasses import asdict
from typing import Callable, Union

import torch
from torch import Tensor

from ..errors import ConfigError

#: the parameters inside a flat θ: (name, shape) of each, in order
Layout = list[tuple[str, tuple[int, ...]]]

#: a group rule: a glob pattern over parameter names, or a predicate of (name, shape)
Rule = Union[str, Callable[[str, tuple[int, ...]], bool]]

#: the group of every coordinate that no rule claims
DEFAULT_GROUP = "other"


def layout_slices(layout: Layout) -> dict[str, slice]:
    """Where each named parameter sits in the flat θ: name → slice of its coordinates."""
    slices, start = {}, 0
    for name, shape in layout:
        if name in slices:
            raise ValueError(f"parameter name {name!r} appears twice in the layout")
        size = 1
        for d in shape:
            size *= int(d)
        slices[name] = slice(start, start + size)
        start += size
    return slices


def layout_size(layout: Layout) -> int:
    """n, the number of coordinates of a flat θ with this layout."""
    slices = layout_slices(layout)
    return max((s.stop for s in slices.values()), default=0)


def matches(rule: Rule, name: str, shape: tuple[int, ...]) -> bool:
    """Whether a parameter falls under a rule (glob pattern over its name, or predicate)."""
    if isinstance(rule, str):
        return fnmatch.fnmatchcase(name, rule)
    return bool(rule(name, tuple(shape)))


def group_coordinates(layout: Layout, rules: Mapping[str, Rule],
                      default: str = DEFAULT_GROUP) -> dict[str, Tensor]:
    """Split the coordinates of a flat θ into groups by rules over parameter names and shapes.

    Args:
        layout: (name, shape) of each parameter, in θ's order.
        rules: group name → rule, tried in order; a parameter joins the first group whose rule it
            matches. A rule is a glob pattern over names (``"conv*.weight"``) or a function of
            (name, shape) returning a bool (``lambda name, shape: len(shape) == 4``).
        default: the group of parameters that match no rule.

    Returns:
        group name → int64 indices ``[n_group]`` of its coordinates in θ (increasing), for every
        group in ``rules`` and then ``default``, empty groups included. Every coordinate of θ is
        in exactly one group.
    """
    if default in rules:
        raise ValueError(f"the default group {default!r} cannot also have a rule")
    members: dict[str, list[Tensor]] = {group: [] for group in [*rules, default]}
    for (name, shape), where in zip(layout, layout_slices(layout).values()):
        group = next((g for g, rule in rules.items() if matches(rule, name, shape)), default)
        members[group].append(torch.arange(where.start, where.stop))
    return {group: torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)
            for group, parts in members.items()}


class Optimizee:
    """B sampled functions f_b(θ_b) with their initial parameters.

    Attributes:
        theta0: the initial parameters, ``[B, n]``.
    """

    theta0: Tensor
    #: (name, shape) of each parameter in θ's order; None: one vector named "theta"
    layout: Layout | None = None
    #: group name → rule over the layout's names and shapes (see :func:`group_coordinates`)
    group_rules: Mapping[str, Rule] = {}

    @property
    def batch_size(self) -> int:
        return self.theta0.shape[0]

    def coordinate_groups(self) -> dict[str, Tensor]:
        """The coordinates of θ's second dimension in each parameter group: name → int64 indices.

        Groups come from :attr:`group_rules` over :attr:`layout` (:func:`group_coordinates`);
        without rules every coordinate is in ``"other"``. The same for all B optimizees.
        """
        n = self.theta0.shape[1]
        layout = self.layout if self.layout is not None else [("theta", (n,))]
        if layout_size(layout) != n:
            raise ValueError(f"the layout has {layout_size(layout)} coordinates, θ has {n}")
        return group_coordinates(layout, self.group_rules)

    def loss(self, theta: Tensor, step: int) -> Tensor:
        """f_b(θ_b) for each of the B functions: ``[B, n]`` → ``[B]``.

        ``step`` selects the data for stochastic problems (step t always sees the same
        minibatch for a given sample); deterministic problems ignore it.
        """
        raise NotImplementedError

    def metrics(self, theta: Tensor) -> dict[str, Tensor]:  # noqa: ARG002 (a hook)
        """Extra end-of-run figures (e.g. test accuracy), each ``[B]``; none by default."""
        return {}

    def repeat(self, copies: int) -> Optimizee:
        """The same B functions ``copies`` times over, as one optimizee of ``copies·B``: function
        ``c·B + b`` is function ``b`` (same θ0, same data). Lets several optimizer settings, such
        as a grid of learning rates, run on the same functions in one batched rollout."""
        raise NotImplementedError(f"{type(self).__name__} cannot repeat itself")

    def select(self, rows: slice) -> Optimizee:
        """Functions ``rows`` of the B, as an optimizee of their own (same θ0, same data, same
        minibatches): a process's share of a batch (:mod:`l2l.distributed`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be split across processes")


class Scaled(Optimizee):
    """The functions of ``inner`` multiplied by positive factors: f'_b(θ) = c_b·f_b(θ).

    Random scaling (Lv et al. 2017; not in the paper) meta-trains on such copies so that the
    learned optimizer does not tie its steps to one scale of gradients, e.g. to the 4× smaller
    per-pixel gradients of a 128×128 neural-art image. ``factors``: ``[B]``, one per function.
    """

    def __init__(self, inner: Optimizee, factors: Tensor):
        if factors.shape != (inner.batch_size,) or not bool((factors > 0).all()):
            raise ConfigError(f"need {inner.batch_size} positive factors, one per function; "
                              f"got shape {tuple(factors.shape)}")
        self.inner, self.factors = inner, factors
        self.theta0, self.layout, self.group_rules = inner.theta0, inner.layout, inner.group_rules

    def loss(self, theta: Tensor, step: int) -> Tensor:
        return self.factors.to(theta.device, theta.dtype) * self.inner.loss(theta, step)

    def metrics(self, theta: Tensor) -> dict[str, Tensor]:
        return self.inner.metrics(theta)

    def select(self, rows: slice) -> Scaled:
        return Scaled(self.inner.select(rows), self.factors[rows])


class Problem:
    """A family of optimizees, with the paper's optimizer and meta-training setup for it.

    Its constructor's keyword arguments are its options, each kept as an attribute of the same
    name, in the spelling of a spec (``mnist:hidden=40``): that is what :meth:`config`,
    :meth:`spec` and :meth:`with_options` read.
    """

    #: the command-line name
    name: str = "problem"
    #: the shipped training recipe for this family (``l2l/recipes/NAME.toml``), whose settings
    #: are its defaults; empty: the config dataclasses' defaults
    recipe: str = ""
    #: options that every spec writes out; the others appear only where not their defaults
    always_in_spec: tuple[str, ...] = ()
    #: options that say where files are, not what the problem is: never in a spec
    not_in_spec: tuple[str, ...] = ("data_dir",)
    #: group name → rule over parameter names and shapes (see :func:`group_coordinates`); the
    #: optimizees apply it to their layout. Empty: every coordinate is in one group, "other".
    group_rules: Mapping[str, Rule] = {}

    @property
    def optimizer_defaults(self) -> dict:
        """Keyword arguments of :class:`~l2l.optimizers.LSTMOptimizer` for this family: the
        architecture of its shipped recipe."""
        from ..optimizers.lstm import LSTMConfig
        from ..recipes import recipe_for

        return asdict(recipe_for(self).final().config(LSTMConfig))

    @property
    def training_defaults(self) -> dict:
        """Keyword arguments of :class:`~l2l.meta.MetaConfig` for this family: the settings of
        the last stage of its shipped recipe (the stage that made the shipped optimizer)."""
        from ..meta import MetaConfig
        from ..recipes import recipe_for

        return asdict(recipe_for(self).final().config(MetaConfig))

    def group_names(self) -> tuple[str, ...]:
        """The parameter groups of this family's optimizees, in order (e.g. ``("conv", "other")``)."""
        return (*self.group_rules, DEFAULT_GROUP)

    def sample(self, batch_size: int, generator: torch.Generator) -> Optimizee:
        """Draw ``batch_size`` optimizees using ``generator`` for every random choice."""
        raise NotImplementedError

    def for_split(self, split: str) -> Problem:  # noqa: ARG002 (a hook)
        """The problem whose optimizees serve ``split`` (``train``, ``val`` or ``test``).

        Families whose data have splits (e.g. neural art's content crops) return the problem on
        that split's data; the rest return themselves, their splits being seed streams only.
        Meta-training samples from ``for_split("train")``, validation and baseline tuning from
        ``for_split("val")``, evaluation from ``for_split("test")``.
        """
        return self

    def config(self) -> dict:
        """The options of the spec (used in specs, checkpoints and logs): those in
        :attr:`always_in_spec`, then, in the constructor's order, every other one whose value is
        not its default, leaving out :attr:`not_in_spec`."""
        config = {name: getattr(self, name) for name in self.always_in_spec}
        for name, option in inspect.signature(type(self)).parameters.items():
            if name not in config and name not in self.not_in_spec:
                value = getattr(self, name)
                if value != option.default:
                    config[name] = value
        return config

    def with_options(self, **changes) -> Problem:
        """The same family with some options changed (file locations included)."""
        options = {name: getattr(self, name) for name in inspect.signature(type(self)).parameters}
        return type(self)(**{**options, **changes})

    def spec(self) -> str:
        """The command-line spelling of this problem, e.g. ``quadratic:dim=10``."""
        options = ",".join(f"{k}={v}" for k, v in self.config().items())
        return f"{self.name}:{options}" if options else self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec()!r})"
