"""The launchers' one way to report bad input: `error: ...`, exit 2.

Bad input is refused before any work with one line on stderr naming the
culprit and what is valid, and exit code 2; no traceback reaches the user
(it goes to the log file, `launch/logs.py`). Three places catch it:
  * `parse_flags`: the flags, the config file and its variant and
    overrides (ml_collections loads the file while absl parses the flags);
  * `launching(what)`: starting JAX (a platform or multi-host flag that
    cannot be honoured);
  * `exit_on_value_error()`: the library's own checks (ValueError).
"""
import contextlib
import re
import sys

from absl import flags
from absl import logging


def _fail(message: str) -> None:
  print(f'error: {message}', file=sys.stderr)
  sys.exit(2)


def _explain(e: BaseException, argv=()) -> str:
  """One line from an exception raised while loading a config: the
  innermost message (ml_collections wraps the config file's own error, its
  traceback included, in its own, and raises KeyError for an override in
  `argv` of a field the config does not have)."""
  while e.args and isinstance(e.args[0], BaseException):
    e = e.args[0]
  if isinstance(e, KeyError) and e.args and isinstance(e.args[0], str):
    # "'stepz'", or "'stepz' Did you mean \"steps\" instead of \"stepz\"?"
    key, *hint = e.args[0].split(None, 1)
    key = key.strip('\'"')
    hint = f" ({' '.join(hint[0].split())})" if hint else ''
    for flag in argv:
      name = flag.partition('=')[0]
      path = name[len('--config.'):].split('.')
      if name.startswith('--config.') and key in path:
        # (the last `key` in the path: a prefix missing makes it missing)
        missing = '.'.join(path[:len(path) - path[::-1].index(key)])
        return (f'{name}: the config has no field {missing!r}{hint}; an '
                'override sets only a field its config file defines')
  text = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)
  if 'Traceback (most recent call last)' in text:
    text = [line for line in text.splitlines() if line.strip()][-1]
    text = re.sub(r'^\w+(Error|Exception): ', '', text)  # its last line
  return ' '.join(text.split()) or type(e).__name__


def parse_flags(argv):
  """absl's flag parsing, with every failure (a missing or broken config
  file, a config without get_config, a bad variant, an unknown override, a
  malformed flag, an argument that is not a flag) turned into one `error:`
  line and exit 2."""
  rest = parse_flags_and_paths(argv)
  if len(rest) > 1:
    _fail(f'unexpected arguments {rest[1:]}: this program takes flags only; '
          f'valid: {_valid()}, see --helpfull')
  return rest


def parse_flags_and_paths(argv):
  """`parse_flags` for a program that also takes arguments (paths) after
  its flags: returns them after the program name."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, TypeError, ValueError,
          OSError, SyntaxError, ImportError) as e:
    _fail(f'{_explain(e, argv)} (flags: {" ".join(argv[1:])}); valid: '
          f'{_valid()}, see --helpfull')


def _valid() -> str:
  """The program's own flags (those its main module defines) and, for
  the launcher of config files, the config syntax."""
  own = sorted(f.name for f in flags.FLAGS.flags_by_module_dict().get(
      sys.argv[0], ()))
  text = 'flags ' + ', '.join(f'--{name}' for name in own)
  if 'config' in own:
    text += ('; --config=FILE.py[:VARIANT] with a get_config(arg), '
             'overrides --config.<existing field>=<value>')
  return text


@contextlib.contextmanager
def launching(what: str):
  """Any failure inside is bad input about `what`: `error:` and exit 2."""
  try:
    yield
  except Exception as e:  # pylint: disable=broad-except
    logging.info('launch failed: %s', what, exc_info=True)  # the log file
    text = _explain(e)
    if text == type(e).__name__:  # no message of its own
      text += ' (the traceback is in the log file, launch/logs.py)'
    _fail(f'{what}: {text}')


@contextlib.contextmanager
def exit_on_value_error():
  """A ValueError (bad input) prints `error: ...` and exits 2, no traceback."""
  try:
    yield
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
