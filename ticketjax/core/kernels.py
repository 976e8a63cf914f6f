"""One switch for the CPU-only kernels: `auto`, `on` or `off`.

Three kernels exist only to make training fast on the XLA:CPU backend
(WORKSPACE.md, current figures):
  * `models/cpu/patch_conv.py`: convolutions as shifted matmuls (XLA:CPU's
    convolution is slow inside `lax.scan`);
  * `models/cpu/kernel_matmul.py`: the dense matmul with a custom VJP whose
    kernel gradient is born in the kernel's [in, out] layout (no forward
    mode: `jax.jvp` through it fails);
  * `core/data_order.py`: the epoch permutation sorted as one array of
    64-bit words (bit for bit `jax.random.permutation`).
`auto` (the default) uses them on the CPU backend only, so every
accelerator run takes the standard XLA paths; `off` takes the standard
paths everywhere (forward-mode AD then works on CPU too); `on` forces the
CPU kernels on any backend. The data order is the same in every mode;
model outputs agree to float rounding, so the mode stays out of the run
folder's hash (`run/workdir.py`).

The mode is read when a model's layers are built and when a trainer's step
is traced: `setup.build` sets it from `config.cpu_kernels` before it
builds either.
"""
import jax

MODES = ('auto', 'on', 'off')
_mode = 'auto'


def set_mode(mode: str) -> None:
  """Sets the switch; ValueError for a mode not in MODES."""
  global _mode
  if mode not in MODES:
    raise ValueError(f'unknown cpu_kernels mode {mode!r}; valid modes are '
                     f'{list(MODES)}')
  _mode = mode


def mode() -> str:
  return _mode


def enabled() -> bool:
  """Whether the CPU kernels are used now (`auto`: on the CPU backend)."""
  return _mode == 'on' or (_mode == 'auto'
                           and jax.default_backend() == 'cpu')
