"""Plot pieces every report shares: the backend, seed bands, accuracy
against density, learning curves.

Every band is ± one standard deviation over seeds (population, ddof=0, the
`std` of `core/stats.mean_std`) and takes its line's colour; `BAND` is the
phrase titles use for it.
"""
import math
import textwrap

import numpy as np

BAND = 'band: ±1 std over seeds, ddof 0'


def title(text: str, note: str = BAND, width: int = 90) -> str:
  """A plot title wrapped to `width` characters, between its comma-separated
  phrases where it can ('40 steps, 2 seeds' stays on one line); a phrase
  longer than a line breaks after its colon ('IMP m on d:' / 'its rule'),
  else fills the line it starts on and goes on in the next, where the
  following phrases join it. `note` on its own line."""
  lines = ['']

  def add(part):  # onto the last line if it fits, else a line of its own
    joined = f'{lines[-1]}, {part}' if lines[-1] else part
    if len(joined) <= width:
      lines[-1] = joined
    else:
      lines[-1] += ','
      lines.append(part)

  for part in text.split(', '):
    head, colon, tail = part.partition(': ')
    if len(part) <= width:
      add(part)
    elif colon and len(head) < width and len(tail) <= width:
      add(head + ':')
      lines.append(tail)
    else:
      joined = f'{lines[-1]}, {part}' if lines[-1] else part
      lines[-1:] = textwrap.wrap(joined, width)
  lines = [line for line in lines if line]  # ('' for an empty text)
  return '\n'.join(lines + ([f'({note})'] if note else []))


def pyplot():
  """matplotlib.pyplot on the Agg backend unless one is already chosen."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg', force=False)
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def style(i: int) -> dict:
  """Line style and marker of line i: past the colour cycle's 10 colours,
  the colours repeat with another style, so no two lines look alike."""
  ls, marker = (('-', 'o'), ('--', 's'), ('-.', '^'))[i // 10 % 3]
  return {'ls': ls, 'marker': marker}


def legend(fig, ax, widen: float = 1.6) -> None:
  """The legend of `ax`; more than 8 entries go beside the axes, so they
  cover no data, in columns of at most 30 on a figure `widen` - 1 times
  wider per column and tall enough for them."""
  n = len(ax.get_legend_handles_labels()[1])
  if n > 8:
    ncol = -(-n // 30)
    fig.set_figheight(max(fig.get_figheight(), 0.19 * -(-n // ncol) + 1.3))
    fig.set_figwidth(fig.get_figwidth() * (1 + (widen - 1) * ncol))
    ax.legend(fontsize='x-small', loc='upper left', bbox_to_anchor=(1.01, 1),
              ncol=ncol)
  else:
    ax.legend(fontsize='small')


def band(ax, x, mean, std, label, **line_kwargs):
  """A mean line and its ± std band in the line's colour (one point: an
  error bar); returns the line."""
  x, mean, std = (np.asarray(v, float) for v in (x, mean, std))
  line, = ax.plot(x, mean, label=label, **line_kwargs)
  ax.fill_between(x, mean - std, mean + std, alpha=0.2,
                  color=line.get_color(), lw=0)
  if len(x) == 1:  # a band of one point is not drawn: an error bar
    ax.errorbar(x, mean, std, color=line.get_color(), capsize=3, lw=1)
  return line


def save(fig, ax, path: str, title_text: str, ylabel: str,
         note: str = BAND) -> None:
  """The finish every accuracy plot shares: y label, wrapped title with
  the band `note`, grid, `legend`; writes `path` and closes the figure."""
  ax.set_ylabel(ylabel)
  ax.set_title(title(title_text, note, width=80), fontsize='small')
  ax.grid(alpha=0.3, which='both')
  legend(fig, ax)
  write(fig, path)


def write(fig, path: str, rect=None) -> None:
  """Lays `fig` out (inside `rect`, figure fractions, if given), writes it
  to `path` and closes it."""
  fig.tight_layout(rect=rect)
  fig.savefig(path)
  pyplot().close(fig)


def accuracy_vs_density(path: str, title_text: str, lines: dict, *,
                        dense=(), ylabel: str = 'final test accuracy (%)',
                        scale: float = 100.0, figsize=(7, 4.5),
                        log_y: bool = False) -> None:
  """The accuracy plot every sparse method draws, written to `path`.

  `lines` maps a label to [(percent of weights remaining, mean_std)] (a
  `core/stats.mean_std` dict, times `scale` on the y axis): a mean line
  with its ± std band each (`style`). Points where every member diverged
  (stats None, or n = 0) are left out, and a line with none left is still
  named in the legend. A point whose dict counts members with an empty
  layer ('empty', as the cross-run report's do) is marked with a cross.
  `dense` is [(label, mean_std)]: reference lines across the plot (dashed,
  with a grey band). The x axis is `density_axis` down to the sparsest
  point given; `log_y` makes the y axis log too (perplexities of runs that
  differ a thousandfold). The title says what the band is, or that there
  is none (one seed per point).
  """
  plt = pyplot()
  fig, ax = plt.subplots(figsize=figsize, dpi=120)
  lowest, xs, empty = 100.0, [], []
  for i, (label, pts) in enumerate(lines.items()):
    lowest = min([lowest] + [x for x, _ in pts])
    xs += [x for x, _ in pts]
    pts = [(x, s) for x, s in pts if s and s['n']]
    if pts:
      band(ax, [x for x, _ in pts], [scale * s['mean'] for _, s in pts],
           [scale * s['std'] for _, s in pts], label, ms=3, **style(i))
      empty += [(x, scale * s['mean']) for x, s in pts if s.get('empty')]
    else:
      ax.plot([], [], ' ', label=f'{label}: no healthy member')
  if empty:
    ax.plot(*zip(*empty), 'x', color='k', ms=7, zorder=5,
            label='a member has an empty layer')
  for (label, s), ls in zip(dense, ('--', ':', '-.') * len(dense)):
    if s and s['n']:
      ax.axhline(scale * s['mean'], color='gray', ls=ls, lw=1.2, label=label)
      ax.axhspan(scale * (s['mean'] - s['std']),
                 scale * (s['mean'] + s['std']), color='gray', alpha=0.1,
                 lw=0)
  density_axis(ax, lowest, xs)
  if log_y and any(np.isfinite(y) and y > 0 for line in ax.get_lines()
                   for y in line.get_ydata()):  # (else linear)
    ax.set_yscale('log')
    plain_log_ticks(ax.yaxis)
  counts = [s['n'] for pts in lines.values() for _, s in pts if s] + [
      s['n'] for _, s in dense if s]
  save(fig, ax, path, title_text, ylabel,
       note=BAND if max(counts, default=0) > 1
       else 'one seed per point: no band')


def plain_log_ticks(axis) -> None:
  """A log axis labelled in plain numbers ('300', not '3x10^2'): its
  decades and its 2x and 5x minor ticks, or every minor tick when the view
  spans less than a decade."""
  import matplotlib.ticker  # pylint: disable=g-import-not-at-top

  def plain(v, _=None):
    return f'{v:,.0f}' if v >= 1 else f'{v:g}'

  def minor(v, _):
    low, high = sorted(axis.get_view_interval())
    mantissa = v / 10 ** math.floor(math.log10(v))
    wanted = (high < 10 * low
              or min(abs(mantissa - 2), abs(mantissa - 5)) < 1e-6)
    return plain(v) if wanted else ''

  axis.set_major_formatter(matplotlib.ticker.FuncFormatter(plain))
  axis.set_minor_formatter(matplotlib.ticker.FuncFormatter(minor))


def density_axis(ax, lowest: float, points=()) -> None:
  """A log x axis of percent of weights remaining, 100 at the left, with
  readable ticks down to `lowest` (percent): the densities of the plotted
  `points` (and 100), a point within 15% of a larger one sharing its tick;
  of more than 8 points (an IMP search's levels) about 7 ticks, spread over
  the decades, the sparsest point always one. Without points: IMP's 20%
  steps (100, 80, 64, ...) while they are far enough apart, else halvings
  (quarterings over a wide range), and `lowest` itself when the last of
  those is well above it."""
  ax.set_xscale('log')
  marks = sorted({100.0} | {float(f'{p:.4g}') for p in points}, reverse=True)
  ticks = _point_ticks(marks, lowest) if len(marks) > 1 else _steps(lowest)
  ax.set_xticks(ticks, [f'{t:.3g}' for t in ticks])
  ax.set_xticks([], minor=True)
  ax.set_xlim(105, lowest * 0.9)
  ax.set_xlabel('percent of weights remaining')


def _point_ticks(marks, lowest: float = 1.0) -> list[float]:
  """The densities `marks` (descending), each too near the tick before
  it for their labels to part left out: within 15%, or within 4.5% of
  the axis's decades down to `lowest` (100 -> 0.06: 80.7 next to 100,
  not 70)."""
  decades = math.log10(100.0 / max(min(lowest, 100.0), 1e-9))
  ratio = max(1.15, 10 ** (0.045 * decades))
  if len(marks) > 9:  # many: about 7 over the decades
    ratio = max(ratio, 10 ** (decades / 7))
  ticks = []
  for m in marks:
    if not ticks or ticks[-1] > ratio * m:
      ticks.append(m)
  if ticks[-1] != marks[-1]:  # the sparsest point, in place of a near one
    ticks[-1:] = ([ticks[-1]] if len(ticks) == 1 or ticks[-1] > ratio
                  * marks[-1] else []) + [marks[-1]]
  return ticks


def _steps(lowest: float) -> list[float]:
  """Ticks from 100 down to `lowest` (`density_axis`)."""
  ticks = [100.0]
  t = 100.0
  while t >= lowest * 0.99 and len(ticks) < 60:
    t = t * 0.8 if t > 20 else t / 2
    if t >= lowest * 0.99:
      ticks.append(t)
  if len(ticks) > 9:  # wide range: halvings, or quarterings if > 8
    ticks = [100 / 2 ** i for i in range(40) if 100 / 2 ** i >= lowest * 0.99]
    ticks = ticks[::2] if len(ticks) > 8 else ticks
  if ticks[-1] > 1.15 * lowest:  # the sparsest point gets its own tick
    ticks = ticks[:-1] if ticks[-1] < 1.5 * lowest and len(ticks) > 1 else ticks
    ticks.append(lowest)
  return ticks


def learning_curves(groups: dict, path: str, title_text: str,
                    next_token: bool = False) -> None:
  """Test accuracy (%) and loss against step, one line per group.

  `groups` maps a label to records with 'step', 'seed', 'test_accuracy',
  'test_loss'; each line is the mean over seeds at every step, with its band.
  Diverged records are left out. `next_token`: a language model's, whose
  accuracy is of the next token and loss in nats per token.
  """
  plt = pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=120)
  for i, (label, recs) in enumerate(groups.items()):
    recs = [r for r in recs if not r.get('diverged')]
    steps = sorted({r['step'] for r in recs})
    if not steps:
      continue
    for ax, key, scale in ((axes[0], 'test_accuracy', 100),
                           (axes[1], 'test_loss', 1)):
      vals = [[scale * r[key] for r in recs if r['step'] == s]
              for s in steps]
      band(ax, steps, [np.mean(v) for v in vals], [np.std(v) for v in vals],
           label, ms=2, **style(i))
  axes[0].set_ylabel('next-token test accuracy (%)' if next_token
                     else 'test accuracy (%)')
  axes[1].set_ylabel('test loss (nats per token)' if next_token
                     else 'test loss')
  import matplotlib.ticker  # pylint: disable=g-import-not-at-top
  for ax in axes:
    ax.set_xlabel('training step')
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
  fig.suptitle(title(title_text), fontsize='medium')
  handles, labels = axes[0].get_legend_handles_labels()
  below = 0.0  # the legend goes below both panels, covering no line
  if handles:
    ncol = min(3, len(handles))
    below = 0.25 * -(-len(handles) // ncol) + 0.1  # inches
    fig.set_figheight(fig.get_figheight() + below)
    fig.legend(handles, labels, loc='lower center', ncol=ncol,
               fontsize='small', frameon=False)
  write(fig, path, rect=(0, below / fig.get_figheight(), 1, 1))
