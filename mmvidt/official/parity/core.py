"""Compare mmvidt models with reference outputs recorded from the official implementations.

A fixture file (see ``shared/fixtures/README.md``) holds ``meta``, the official ``state_dict``,
``inputs`` and the recorded outputs. A *handler* knows one model family: it builds the mmvidt
equivalent from ``meta``, loads the converted weights and returns what mmvidt computes, keyed by
the fixture's own key paths (``outputs.intermediate.backbone_features.2``). This module does the
rest, identically for every family:

* every recorded output leaf is enumerated, so an output no handler produced is reported as
  ``skipped`` (and the fixture does not match) instead of being silently dropped;
* floating tensors are compared with ``|mine - ref| <= atol + rtol * |ref|`` (loss terms with the
  fixture's loss tolerances), integer and boolean tensors exactly;
* handlers may return a finished :class:`ParityRow` for outputs that need a comparison of their
  own (e.g. ranked detections whose order of near-equal scores is not meaningful).
"""
import math
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch

#: Top-level fixture entries that hold recorded results (everything else is input or metadata).
RECORDED_GROUPS = ('outputs', 'teacher_outputs', 'losses', 'postprocess')
#: Entries of ``losses`` that are bookkeeping, not results to reproduce.
LOSS_BOOKKEEPING = ('weight_dict', )

Produced = Dict[str, Any]
Handler = Callable[[dict], Produced]


@dataclass
class ParityRow:
    """One compared output: ``<fixture> <name> <max-abs-diff> <tolerance> ok|FAIL|skipped``."""
    fixture: str
    name: str
    max_abs_diff: Optional[float]
    tolerance: Optional[float]
    status: str
    detail: str = ''

    def format(self) -> str:
        diff = '-' if self.max_abs_diff is None else f'{self.max_abs_diff:.3e}'
        tol = '-' if self.tolerance is None else f'{self.tolerance:.3e}'
        line = f'{self.fixture} {self.name} {diff} {tol} {self.status}'
        return f'{line}  # {self.detail}' if self.detail else line


_HANDLERS: List[Tuple[Callable[[dict], bool], Handler]] = []


def register_parity_handler(accepts: Callable[[dict], bool]) -> Callable[[Handler], Handler]:
    """Decorator registering ``handler(fixture) -> {key_path: value}`` for fixtures it accepts.

    ``accepts`` receives the fixture's ``meta`` dict. Values are tensors (compared here) or
    :class:`ParityRow` objects (already compared by the handler; ``fixture`` is filled in here).
    """

    def wrap(handler: Handler) -> Handler:
        _HANDLERS.append((accepts, handler))
        return handler

    return wrap


def iter_leaves(tree: Any, prefix: str) -> Iterator[Tuple[str, Any]]:
    """Yield ``(dotted_key_path, leaf)`` for every non-container leaf of nested dicts/lists."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from iter_leaves(value, f'{prefix}.{key}')
    elif isinstance(tree, (list, tuple)):
        for index, value in enumerate(tree):
            yield from iter_leaves(value, f'{prefix}.{index}')
    else:
        yield prefix, tree


def recorded_outputs(fixture: dict) -> Dict[str, Any]:
    """All recorded results of a fixture, flattened to ``{key_path: leaf}``."""
    recorded = {}
    for group in RECORDED_GROUPS:
        if group not in fixture:
            continue
        tree = fixture[group]
        if group == 'losses':
            tree = {k: v for k, v in tree.items() if k not in LOSS_BOOKKEEPING}
        recorded.update(iter_leaves(tree, group))
    return recorded


def tolerance_for(meta: dict, key: str) -> Tuple[float, float]:
    """``(atol, rtol)`` the fixture prescribes for ``key`` (loss terms have their own)."""
    tol = meta['tolerance']
    if key.startswith('losses.') and 'losses_atol' in tol:
        return float(tol['losses_atol']), float(tol.get('losses_rtol', tol['rtol']))
    return float(tol['atol']), float(tol['rtol'])


def compare_values(mine: Any, ref: Any, atol: float, rtol: float) -> Tuple[float, bool, str]:
    """Compare one produced value with its reference. Returns ``(max_abs_diff, ok, detail)``."""
    if not isinstance(ref, torch.Tensor):
        ref_t = torch.as_tensor(ref)
        mine_t = torch.as_tensor(mine)
    else:
        ref_t, mine_t = ref, torch.as_tensor(mine)
    mine_t = mine_t.detach().cpu()
    if tuple(mine_t.shape) != tuple(ref_t.shape):
        return math.inf, False, f'shape {tuple(mine_t.shape)} != reference {tuple(ref_t.shape)}'
    if ref_t.numel() == 0:
        return 0.0, True, ''
    if ref_t.is_floating_point():
        mine_f, ref_f = mine_t.double(), ref_t.double()
        diff = (mine_f - ref_f).abs()
        finite_mismatch = torch.isfinite(mine_f) != torch.isfinite(ref_f)
        if finite_mismatch.any():
            return math.inf, False, 'non-finite values differ'
        diff = torch.where(torch.isfinite(ref_f), diff, torch.zeros_like(diff))
        ok = bool((diff <= atol + rtol * ref_f.abs().nan_to_num(0)).all())
        return float(diff.max()), ok, ''
    diff = (mine_t.long() - ref_t.long()).abs()
    return float(diff.max()), bool((diff == 0).all()), ''


def check_fixture(path: str) -> List[ParityRow]:
    """Run the matching handler on one fixture file and compare every recorded output."""
    name = os.path.basename(path)
    # weights_only: a fixture is data; never execute code from it.
    fixture = torch.load(path, map_location='cpu', weights_only=True)
    meta = fixture.get('meta', {})
    handlers = [h for accepts, h in _HANDLERS if accepts(meta)]
    recorded = recorded_outputs(fixture)
    if not handlers:
        return [ParityRow(name, key, None, None, 'skipped', 'no mmvidt handler for this fixture')
                for key in recorded]
    produced = handlers[0](fixture)
    rows = []
    for key, ref in recorded.items():
        atol, rtol = tolerance_for(meta, key)
        if key not in produced:
            rows.append(ParityRow(name, key, None, atol, 'skipped', 'not produced by mmvidt yet'))
            continue
        value = produced[key]
        if isinstance(value, ParityRow):
            value.fixture = name
            rows.append(value)
            continue
        diff, ok, detail = compare_values(value, ref, atol, rtol)
        rows.append(ParityRow(name, key, diff, atol, 'ok' if ok else 'FAIL', detail))
    return rows


def fixture_matches(rows: List[ParityRow]) -> bool:
    """A fixture matches only when every recorded output was compared and is within tolerance."""
    return bool(rows) and all(row.status == 'ok' for row in rows)
