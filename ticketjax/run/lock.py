"""One writer per run folder: the `.lock` file a run holds while it runs.

`take(folder)` locks `<folder>/.lock` with `flock` and writes who holds it;
a second process taking it gets a ValueError naming the holder (a line
of a process that is gone is no holder: a killed run leaves its line).
The kernel drops the lock of a killed process, so a stale `.lock` never
blocks a rerun. On several hosts only process 0 takes it. `release_all`
(called by `jobs.run` when a job returns or fails) drops every lock this
process holds.
"""
import fcntl
import os
import socket
import time

from ticketjax.run import hosts

# run folder -> its open, locked `.lock` file, while this process runs it
_HELD = {}


def take(folder: str) -> None:
  """Locks `folder` for this process (ValueError if another holds it);
  taking it again in the same process is a no-op."""
  if folder in _HELD or not hosts.is_main():  # process 0 holds it
    return
  # stays open while the run holds the lock (closed by release_all)
  f = open(os.path.join(folder, '.lock'), 'a+', encoding='utf-8')
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    holder = ''
    for _ in range(20):  # the holder writes its line just after locking
      f.seek(0)
      holder = _alive(f.read().strip())
      if holder:
        break
      time.sleep(0.05)
    f.close()
    holder = holder or 'another process'
    raise ValueError(
        f'{folder} is in use by {holder}; one process writes a run folder '
        'at a time: wait for it to finish or stop it') from None
  f.seek(0)
  f.truncate()
  f.write(f'process {os.getpid()} on {socket.gethostname()}\n')
  f.flush()
  _HELD[folder] = f


def _alive(line: str) -> str:
  """`line`, or '' when it names a process of this host that is gone (a
  killed holder's line, before the next holder overwrites it)."""
  words = line.split()
  if (len(words) == 4 and words[0] == 'process' and words[1].isdigit()
      and words[3] == socket.gethostname()):
    try:
      os.kill(int(words[1]), 0)
    except ProcessLookupError:
      return ''
    except OSError:  # alive, another user's
      pass
  return line


def release_all() -> None:
  """Releases every run-folder lock this process holds, emptying its
  line first."""
  while _HELD:
    _, f = _HELD.popitem()
    f.seek(0)
    f.truncate()
    fcntl.flock(f, fcntl.LOCK_UN)
    f.close()
