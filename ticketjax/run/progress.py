"""A progress line with steps/s and ETA for long compiled runs.

The driver trains in chunks; after each chunk it calls `update`. On a
terminal the line redraws in place; in a log (CI, Colab cells, files) it
prints at most about `max_lines` lines per bar so logs stay readable. The
first chunk includes compilation, so the rate and ETA are measured from the
end of the first chunk on; the last line's time is the whole bar's, with
compiling.
"""
import sys
import time


def _fmt_time(seconds: float) -> str:
  seconds = int(round(seconds))
  if seconds >= 3600:
    return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m'
  if seconds >= 60:
    return f'{seconds // 60}m{seconds % 60:02d}s'
  return f'{seconds}s'


class Progress:
  """Progress of `total` steps (or other `unit`s); `update(done, **scalars)`
  after each chunk."""

  def __init__(self, total: int, desc: str = '', stream=None,
               max_lines: int = 10, enabled: bool = True, start: int = 0,
               unit: str = 'steps'):
    self.total = max(int(total), 1)
    self.desc = desc
    self.unit = unit
    self.stream = stream or sys.stderr
    self.enabled = enabled
    self.tty = hasattr(self.stream, 'isatty') and self.stream.isatty()
    self.every = self.total / max(max_lines, 1)
    self.t0 = time.perf_counter()
    self.warm = None  # (time, done) after the first chunk
    self.next_print = 0.0
    self.done = self.start = int(start)  # a resumed or late-starting run
    self.rate = 0.0

  def update(self, done: int, **scalars) -> None:
    now = time.perf_counter()
    self.done = done
    if self.warm is None:
      self.warm = (now, done)
      self.rate = (done - self.start) / max(now - self.t0, 1e-9)
    elif done > self.warm[1]:
      self.rate = (done - self.warm[1]) / max(now - self.warm[0], 1e-9)
    if not self.enabled:
      return
    if not self.tty and done < self.total and done < self.next_print:
      return
    self.next_print = done + self.every
    self._write(self.line(**scalars), final=done >= self.total)

  def line(self, **scalars) -> str:
    eta = (self.total - self.done) / self.rate if self.rate else 0.0
    pct = 100.0 * self.done / self.total
    parts = [f'{self.desc} {self.done}/{self.total} ({pct:3.0f}%)'.strip(),
             (f'{1 / self.rate:,.1f} s/{self.unit.removesuffix("s")}'
              if 0 < self.rate < 1 else  # slow: 'per block', not '0.0/s'
              f'{self.rate:,.{1 if self.rate < 10 else 0}f} {self.unit}/s'),
             f'ETA {_fmt_time(eta)}' if self.done < self.total else
             f'took {_fmt_time(time.perf_counter() - self.t0)} with '
             'compiling']
    parts += [f'{k} {v:.4g}' for k, v in scalars.items()]
    return ' | '.join(parts)

  def _write(self, text: str, final: bool) -> None:
    if self.tty:
      self.stream.write('\r\033[K' + text + ('\n' if final else ''))
    else:
      self.stream.write(text + '\n')
    self.stream.flush()
