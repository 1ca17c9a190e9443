"""A ``torch.optim.Optimizer`` that runs a trained optimizer on any ``nn.Module``.

The paper's learned optimizer m(∇_t, h_t; φ) is coordinatewise (Section 2.1): every coordinate of
θ feeds its own gradient through the shared LSTM and keeps its own hidden state, so the same
trained φ applies to a parameter vector of any size. :class:`LearnedOptimizer` wraps such an
update rule as an ordinary PyTorch optimizer, for the usual loop::

    opt = l2l.LearnedOptimizer(model.parameters())   # the default rule, pretrained:general
    for x, y in batches:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()                      # θ_{t+1} = θ_t + lr · g_t   (equation 1)

At each step the gradients of a parameter group's parameters are concatenated into one flat
``[1, n]`` tensor (float32, in the group's parameter order), the rule runs once on all of them
without autograd, and each parameter receives its slice of the update. The per-coordinate LSTM
state is kept per parameter (``state[p]["lstm"]``: ``2·num_layers`` tensors ``[p.numel(), H]``),
so ``state_dict()`` and ``load_state_dict()`` follow torch's conventions; the state dict also holds
the rule itself (class, config, weights φ), so loading it resumes exactly the saved run.
"""

from __future__ import annotations

import os
import sys
import warnings
from itertools import chain

import torch
from torch import Tensor

from .checkpoint import CLASSES, load_optimizer
from .errors import check_positive
from .optimizers.base import Optimizer as UpdateRule


class LearnedOptimizer(torch.optim.Optimizer):
    """Train any ``nn.Module`` with a learned update rule, inside a plain PyTorch loop.

    Args:
        params: parameters or parameter groups, as for any ``torch.optim.Optimizer``.
        optimizer: the update rule: ``"pretrained:NAME"``, ``"lstm:PATH"`` or a checkpoint path
            (loaded with :func:`l2l.load_optimizer`), or an :class:`l2l.Optimizer` instance such
            as a trained :class:`l2l.LSTMOptimizer` (used as is, not copied). The default,
            ``pretrained:general``, is the one meant for models of your own: a scale-free rule
            built on Adam's step and meta-trained on a family of tasks (``l2l/pretrained/README.md``).
            The paper's optimizers (``pretrained:mnist`` and the others) are reproductions, each
            meta-trained on one small problem.
        lr: multiplies the learned update, θ ← θ + lr · g (default 1: the update as
            meta-trained). It sits in each parameter group under ``"lr"``, so
            ``torch.optim.lr_scheduler`` schedules it like a learning rate.
        lstm_group: which of the rule's LSTMs updates a parameter group (a per-group key too).
            The paper uses one LSTM for every coordinate, except on CIFAR, where convolutional and
            fully-connected parameters have their own (Section 3.3). For such an optimizer
            (``pretrained:cifar10``) every parameter group names one, ``"conv"`` or ``"other"``;
            for a one-LSTM optimizer (named ``"all"``) ``None`` means that one.
        skip_nonfinite: what a step does when some gradient holds a NaN or an infinity. False
            (the default) does what ``torch.optim`` does: the gradient goes through the rule, so
            the NaN reaches those parameters and their LSTM state, and stays. True skips the
            whole step instead, as ``torch.amp.GradScaler`` does: no parameter moves, no LSTM
            state advances, and :attr:`skipped_steps` counts it.

    Gradients: a parameter whose ``.grad`` is ``None`` at a step (unused in the forward pass, or
    frozen) is skipped: it is not updated and its LSTM state does not advance, as if the step had
    not happened for it. A zero gradient, by contrast, is an input like any other and does move
    the state. Sparse gradients raise a ``RuntimeError`` (the LSTM state is per coordinate and
    dense); complex parameters raise a ``ValueError``. Parameters of any real floating dtype
    work: gradients are fed to the rule in its own dtype (float32) and updates cast back.

    The rule runs on the parameters' device (it is moved there at the first step). All the
    parameters of one group must be on one device.
    """

    def __init__(self, params, optimizer: str | os.PathLike | UpdateRule = "pretrained:general",
                 lr: float = 1.0, lstm_group: str | None = None, skip_nonfinite: bool = False):
        if isinstance(optimizer, (str, os.PathLike)):
            optimizer = load_optimizer(optimizer)
        if not isinstance(optimizer, UpdateRule):
            raise TypeError("optimizer must be 'pretrained:NAME', a checkpoint path or an "
                            f"l2l.Optimizer (such as l2l.LSTMOptimizer), got {type(optimizer).__name__}")
        probe_rule = optimizer.group_rule(optimizer.groups[0]) if getattr(optimizer, "groups", None) else optimizer
        probe = probe_rule.init_state(torch.zeros(1, 3, dtype=rule_dtype(optimizer)))
        if any(t.dim() == 0 or t.shape[0] != 3 for t in probe):
            raise ValueError(
                f"LearnedOptimizer runs coordinatewise rules whose state has one row per "
                f"coordinate, such as l2l.LSTMOptimizer; {type(optimizer).__name__}'s does not "
                "(for hand-designed rules use torch.optim)")
        check_positive("lr", lr, inclusive=True)  # 0 is allowed: a scheduler may reach it
        self.rule = optimizer
        self.skip_nonfinite = bool(skip_nonfinite)
        #: steps skipped for a non-finite gradient (with ``skip_nonfinite``)
        self.skipped_steps = 0
        super().__init__(params, {"lr": lr, "lstm_group": lstm_group})

    # ---------------------------------------------------------------- parameter groups

    def lstm_groups(self) -> tuple[str, ...]:
        """Names of the rule's LSTMs that a parameter group can select with ``lstm_group``."""
        return getattr(self.rule, "groups", None) or ("all",)

    def add_param_group(self, param_group: dict) -> None:
        name = param_group.get("lstm_group", self.defaults.get("lstm_group"))
        if name is not None and name not in self.lstm_groups():
            raise ValueError(
                f"lstm_group {name!r} is not an LSTM of this learned optimizer; it has "
                f"{', '.join(map(repr, self.lstm_groups()))} (None means 'all'). The paper's "
                "separate conv / fully-connected LSTMs need an optimizer meta-trained with them.")
        super().add_param_group(param_group)
        for p in self.param_groups[-1]["params"]:
            if torch.is_complex(p):
                raise ValueError("LearnedOptimizer does not support complex parameters; "
                                 "view them as real pairs with torch.view_as_real")

    def _rule_for(self, group: dict) -> UpdateRule:
        """The update rule of a parameter group: its LSTM, for a rule with one LSTM per group."""
        groups = getattr(self.rule, "groups", None)
        if not groups:
            return self.rule
        if group.get("lstm_group") not in groups:
            raise ValueError(f"this learned optimizer has one LSTM per group ({', '.join(groups)}); "
                             "give every parameter group an lstm_group, e.g. "
                             "[{'params': convs, 'lstm_group': 'conv'}, {'params': rest, 'lstm_group': 'other'}]")
        views = self.__dict__.setdefault("_group_rules", {})
        if views.get(group["lstm_group"], (None,))[0] is not self.rule:
            views[group["lstm_group"]] = (self.rule, self.rule.group_rule(group["lstm_group"]))
        return views[group["lstm_group"]][1]

    # ---------------------------------------------------------------- the step

    @torch.no_grad()
    def step(self, closure=None):
        """θ ← θ + lr · g for every parameter with a gradient; returns ``closure()``'s loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        work = []
        for group in self.param_groups:  # check everything before changing anything
            params = [p for p in group["params"] if p.grad is not None]
            for p in params:
                if p.grad.is_sparse:
                    raise RuntimeError(
                        "LearnedOptimizer does not support sparse gradients (the LSTM keeps a "
                        "dense state per coordinate); use a dense nn.Embedding (sparse=False), "
                        "or optimize the sparse parameters with torch.optim.SparseAdam in a "
                        "separate optimizer")
            if params:
                if len({p.device for p in params}) > 1:
                    raise RuntimeError("all parameters of a LearnedOptimizer parameter group "
                                       "must be on one device")
                work.append((group, params))
        if self.skip_nonfinite and not all(bool(torch.isfinite(p.grad).all())
                                           for _, params in work for p in params):
            self.skipped_steps += 1
            return loss
        for group, params in work:
            self._step_group(group, params)
        self._warn_past_horizon()
        return loss

    def training_horizon(self) -> int | None:
        """The horizon the rule was meta-trained for (from its provenance), if it records one."""
        training = (getattr(self.rule, "provenance", None) or {}).get("training") or {}
        horizon = training.get("horizon")
        return int(horizon) if horizon else None

    def _warn_past_horizon(self) -> None:
        """Say once, when the run takes more steps than the rule was meta-trained for."""
        horizon = self.training_horizon()
        if horizon is None or getattr(self, "_warned_horizon", False):
            return
        steps = max((s.get("step", 0) for s in self.state.values()), default=0)
        if steps > horizon:
            self._warned_horizon = True
            warnings.warn(f"LearnedOptimizer: step {steps} is past the {horizon}-step horizon "
                          "this optimizer was meta-trained for; learned optimizers can stall or "
                          "diverge beyond it, so watch the loss", RuntimeWarning,
                          stacklevel=_caller_level())

    def _step_group(self, group: dict, params: list[Tensor]) -> None:
        rule = self._rule_for(group)
        device = params[0].device
        weights = next(iter(rule.parameters()), None)
        if weights is not None and weights.device != device:
            rule.to(device)
        dtype = rule_dtype(rule)
        grad = torch.cat([p.grad.reshape(-1).to(dtype) for p in params]).unsqueeze(0)
        states = []
        for p in params:
            state = self.state[p]
            if "lstm" not in state:
                state["step"] = 0
                state["lstm"] = rule.init_state(p.detach().reshape(1, -1).to(dtype))
            states.append(state["lstm"])
        flat_state = tuple(torch.cat(parts) for parts in zip(*states))
        update, flat_state = rule(grad, flat_state)
        sizes = [p.numel() for p in params]
        pieces = [torch.split(s, sizes) for s in flat_state]
        for i, (p, delta) in enumerate(zip(params, torch.split(update.reshape(-1), sizes))):
            p.add_(delta.view_as(p).to(p.dtype), alpha=group["lr"])
            self.state[p]["lstm"] = tuple(s[i] for s in pieces)
            self.state[p]["step"] += 1

    # ---------------------------------------------------------------- state dicts

    def state_dict(self) -> dict:
        """torch's optimizer state dict, plus ``"rule"``: the update rule's class, config and φ."""
        state_dict = super().state_dict()
        state_dict["rule"] = {
            "class": type(self.rule).__name__,
            "config": self.rule.config(),
            "state_dict": {k: v.detach().clone() for k, v in self.rule.state_dict().items()},
        }
        if isinstance(getattr(self.rule, "provenance", None), dict):
            state_dict["rule"]["provenance"] = self.rule.provenance
        return state_dict

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a :meth:`state_dict`: groups, per-coordinate LSTM states and the rule.

        The LSTM states are restored in the rule's dtype, whatever the parameters' dtype (torch's
        own loader would cast them to it), so a resumed run continues bit for bit. If the state
        dict holds a rule, it replaces the one given to the constructor.
        """
        state_dict = dict(state_dict)
        record = state_dict.pop("rule", None)
        saved = state_dict["state"]
        lstm = {k: v["lstm"] for k, v in saved.items() if "lstm" in v}
        state_dict["state"] = {k: {n: x for n, x in v.items() if n != "lstm"}
                               for k, v in saved.items()}
        if record is not None:
            rule = self._rule_from_record(record)
        super().load_state_dict(state_dict)
        if record is not None:
            self.rule = rule
        dtype = rule_dtype(self.rule)
        params = dict(zip(chain.from_iterable(g["params"] for g in state_dict["param_groups"]),
                          chain.from_iterable(g["params"] for g in self.param_groups)))
        for key, value in lstm.items():
            p = params[key]
            self.state[p]["lstm"] = tuple(t.to(device=p.device, dtype=dtype) for t in value)

    def _rule_from_record(self, record: dict) -> UpdateRule:
        """Rebuild the update rule saved by :meth:`state_dict`."""
        name = record["class"]
        current = type(self.rule)
        cls = current if name == current.__name__ else CLASSES.get(name)
        if cls is None:
            raise ValueError(f"the state dict was saved with update rule {name}, which cannot "
                             f"be rebuilt here (this optimizer runs {current.__name__})")
        rule = cls(**record["config"])
        rule.load_state_dict(record["state_dict"])
        if hasattr(self.rule, "engine") and hasattr(rule, "engine"):
            rule.engine = self.rule.engine
        if "provenance" in record:
            rule.provenance = record["provenance"]
        return rule


def _caller_level() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside torch and l2l: the
    user's ``opt.step()`` line, whatever wrappers torch puts around ``step``."""
    inside = (os.path.dirname(torch.__file__), os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(inside):
        frame, level = frame.f_back, level + 1
    return level


def rule_dtype(rule: UpdateRule) -> torch.dtype:
    """The dtype a rule computes in: that of its weights φ (float32 for rules without any)."""
    weights = next(iter(rule.parameters()), None)
    return weights.dtype if weights is not None else torch.float32


__all__ = ["LearnedOptimizer"]
