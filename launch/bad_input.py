"""The launchers' one way to report bad input."""
import contextlib
import sys


@contextlib.contextmanager
def exit_on_value_error():
  """A ValueError (bad input) prints `error: ...` and exits 2, no traceback."""
  try:
    yield
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
