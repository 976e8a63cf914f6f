"""Vmapped hyperparameter grids: many settings of one search, one program.

`config.grid` lists values of numeric hyperparameters; the search runs the
cartesian product of those lists (the first name varies slowest), every
*point* with all the run's seeds, side by side on the member axis of one
compiled program. Seed s of every point has seed s's init and data order,
so a point's numbers are those of a separate run with that setting (see
`WORKSPACE.md` for where they are bitwise equal).

Names a grid may vary (`NAMES`) and what they replace per point:
  learning_rate  optimizer.learning_rate (the peak of the schedule);
  weight_decay   optimizer.weight_decay (the L2 term is then always applied,
                 also for a value of 0);
  pruning_rate   imp.rates: one rate for every prunable layer (a mapping of
                 per-layer rates is replaced as a whole);
  rewind_step    imp.rewind_step, whole steps, for the rewind modes 'step'
                 and 'lr': level 0 saves every point's rewind state, and in
                 later levels each member starts at its own step (members
                 at a later step wait, `train.Trainer.train`).
The IMP job takes grids; Continuous Sparsification and Edge-Popup vmap their
own lists (`cs.lambdas`, `edgepopup.k`). A name with an empty list is not
part of the grid, so an all-empty `config.grid` is no grid.

Members are laid out grid-point-major: lineage l = g * S + s is seed s of
point g (`GridSpec.who`).
"""
import dataclasses
import itertools
import math
from typing import Any

import numpy as np

NAMES = ('learning_rate', 'weight_decay', 'pruning_rate', 'rewind_step')
OPTIMIZER_NAMES = ('learning_rate', 'weight_decay')
INTEGER_NAMES = ('rewind_step',)
# the jobs that take a grid, and the names each takes
JOB_NAMES = {'imp': NAMES}
SHORT = {'learning_rate': 'lr', 'weight_decay': 'wd', 'pruning_rate': 'rate',
         'rewind_step': 'k'}


@dataclasses.dataclass(frozen=True)
class GridSpec:
  """The points of a grid (one empty point when there is no grid).

  Attributes:
    names: the varied names, in config order.
    points: one {name: value} per point; the first name varies slowest.
  """
  names: tuple[str, ...] = ()
  points: tuple[dict, ...] = ({},)

  @property
  def size(self) -> int:
    return len(self.points)

  @property
  def optimizer_names(self) -> tuple[str, ...]:
    return tuple(n for n in self.names if n in OPTIMIZER_NAMES)

  def who(self, lineage: int, num_seeds: int) -> dict:
    """{'seed': s, name: value, ...} of lineage g * S + s."""
    return {'seed': lineage % num_seeds,
            **self.points[lineage // num_seeds]}

  def per_lineage(self, name: str, num_seeds: int) -> np.ndarray:
    """[G * S] values of `name` (int32 or float32), grid-point-major."""
    dtype = np.int32 if name in INTEGER_NAMES else np.float32
    return np.repeat(np.asarray([p[name] for p in self.points], dtype),
                     num_seeds)

  def label(self, point: dict) -> str:
    """'lr=0.01 rate=0.2' (empty without a grid)."""
    return ' '.join(f'{SHORT[n]}={point[n]:g}' for n in self.names)


def _values(name, raw) -> tuple[float, ...]:
  if isinstance(raw, (int, float)):
    raw = (raw,)
  try:
    values = tuple(float(v) for v in raw)
  except (TypeError, ValueError) as e:
    raise ValueError(f'config.grid.{name} must be a list of numbers, got '
                     f'{raw!r}') from e
  if not all(math.isfinite(v) for v in values):
    raise ValueError(f'config.grid.{name} has a non-finite value: {values}')
  if name in INTEGER_NAMES:
    if not all(v.is_integer() for v in values):
      raise ValueError(f'config.grid.{name} must list whole numbers (steps),'
                       f' got {values}')
    values = tuple(int(v) for v in values)
  if len(set(values)) != len(values):
    raise ValueError(f'config.grid.{name} repeats a value: {values}')
  return values


def from_config(config: Any) -> GridSpec:
  """The grid of `config` (no grid if `config.grid` is absent or empty).

  Raises ValueError for an unknown name, a job that takes no grid, or a
  list that is not distinct finite numbers. Ranges are checked where the
  values are used (`check_values`).
  """
  section = config.get('grid', None)
  section = section.to_dict() if hasattr(section, 'to_dict') else dict(
      section or {})
  lists = {}
  for name, raw in section.items():
    if name not in NAMES:
      raise ValueError(f'unknown grid name {name!r}; valid names are '
                       f'{list(NAMES)}')
    if raw is None or (not isinstance(raw, (int, float)) and not len(raw)):
      continue
    lists[name] = _values(name, raw)
  if not lists:
    return GridSpec()
  allowed = JOB_NAMES.get(config.job, ())
  bad = sorted(set(lists) - set(allowed))
  if bad:
    raise ValueError(
        f'the {config.job!r} job takes no grid over {bad}; grids run in the '
        f'jobs {sorted(JOB_NAMES)} (names {list(NAMES)}); Continuous '
        'Sparsification and Edge-Popup take lists in cs.lambdas and '
        'edgepopup.k')
  if 'rewind_step' in lists:
    _check_rewind_steps(config, lists['rewind_step'])
  names = tuple(n for n in section if n in lists)
  points = tuple(dict(zip(names, combo))
                 for combo in itertools.product(*(lists[n] for n in names)))
  return GridSpec(names, points)


def _check_rewind_steps(config: Any, steps: tuple[int, ...]) -> None:
  """A rewind-step grid needs a mode that rewinds to step k, and every k
  inside training."""
  total = int(config.train.steps)
  bad = [k for k in steps if not 0 <= k < total]
  if bad:
    raise ValueError(f'grid.rewind_step values {bad} are outside training: '
                     f'they must lie in [0, {total}) (train.steps)')
  rewind = config.imp.get('rewind', 'init')
  if rewind not in ('step', 'lr'):
    raise ValueError(
        "a grid over rewind_step needs imp.rewind 'step' or 'lr' (each "
        'member then starts every level at its own rewind step); got '
        f'imp.rewind={rewind!r}')


def check_values(spec: GridSpec) -> None:
  """Range checks of every point, before any work (ValueError)."""
  for point in spec.points:
    lr = point.get('learning_rate')
    if lr is not None and not lr > 0:
      raise ValueError(f'grid.learning_rate values must be > 0, got {lr}')
    wd = point.get('weight_decay')
    if wd is not None and wd < 0:
      raise ValueError(f'grid.weight_decay values must be >= 0, got {wd}')
    rate = point.get('pruning_rate')
    if rate is not None and not 0.0 <= rate < 1.0:
      raise ValueError(f'grid.pruning_rate values are fractions of the '
                       f'surviving weights to remove and must lie in [0, 1),'
                       f' got {rate}')
