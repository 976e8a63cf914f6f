"""The model zoo: a registry of constructors returning pure `Model` pairs.

Every entry of `MODELS` is a function of keyword hyperparameters that returns
a `ticketjax.types.Model`, whose `init`/`apply` work on nested dicts (see
`adapter.from_nnx`, the only code here that knows about Flax NNX). Configs
name models by string, so `get_model('lenet_300_100')` is the usual entry
point; `register_model` adds new ones (e.g. from a notebook).

Conventions the pruning code relies on, kept by every registered model:
weight matrices and convolution kernels are leaves named `kernel` (biases
`bias`, BatchNorm `scale`/`bias` in params and `mean`/`var` in state); the
classifier is the submodule `output`, so its weights are `output/kernel`;
hidden layers have names whose sorted order is the model order.

Registered models and their input shapes (one example, no batch axis):
  mlp, lenet_300_100          (784,) by default, any shape is flattened
  mnist1d_mlp, mnist1d_cnn    (40,)
  conv2, conv4, conv6         (32, 32, 3)
  resnet20                    (32, 32, 3)
  gpt, llama                  (T,) int tokens -> (T, vocabulary) logits;
                              pure JAX decoders (`transformer`), no output
                              layer (tied embeddings), `num_classes` is
                              the vocabulary size
  pretrained                  the same, initialized to a pretrained model
                              (`source`: SmolLM2, a GGUF, an HF GPT-2 folder)

`hf_gpt2` and `gguf_llama` load pretrained decoders (a Hugging Face GPT-2
folder, a Llama GGUF file such as SmolLM2-135M) into `transformer` params.
"""
from collections.abc import Callable
import inspect

from ticketjax.core.types import Model
from ticketjax.models import convnets
from ticketjax.models import mlp as mlp_lib
from ticketjax.models import pretrained as pretrained_lib
from ticketjax.models import resnet
from ticketjax.models import transformer
from ticketjax.models.adapter import from_nnx

__all__ = (
    'MODELS',
    'Model',
    'from_nnx',
    'get_model',
    'register_model',
)

MODELS: dict[str, Callable[..., Model]] = {}


def register_model(
    name: str, fn: Callable[..., Model], *, overwrite: bool = False
) -> Callable[..., Model]:
  """Adds `fn` to `MODELS` under `name` and returns `fn`.

  Args:
    name: registry name used by `get_model` and in configs.
    fn: `fn(**hyperparameters) -> Model`.
    overwrite: replace an existing entry instead of raising.

  Raises:
    ValueError: `name` is taken (and `overwrite` is False), or not a
      non-empty string.
  """
  if not isinstance(name, str) or not name:
    raise ValueError(f'Model name must be a non-empty string, got {name!r}.')
  if not callable(fn):
    raise ValueError(f'Model {name!r}: constructor {fn!r} is not callable.')
  if name in MODELS and not overwrite:
    raise ValueError(
        f'Model {name!r} is already registered; pass overwrite=True to '
        'replace it.'
    )
  MODELS[name] = fn
  return fn


def get_model(name: str, **kwargs) -> Model:
  """Builds the registered model `name` with hyperparameters `kwargs`.

  Raises:
    ValueError: the name is not registered (the message lists the known
      names), a keyword is not accepted by that model (the message lists the
      accepted ones), or a value is invalid.
  """
  if name not in MODELS:
    raise ValueError(
        f'Unknown model {name!r}; known models: {", ".join(sorted(MODELS))}.'
    )
  fn = MODELS[name]
  try:
    signature = inspect.signature(fn)
  except (TypeError, ValueError):  # builtins without a signature
    signature = None
  if signature is not None:
    try:
      signature.bind(**kwargs)
    except TypeError as e:
      accepted = [
          p.name
          for p in signature.parameters.values()
          if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
      ]
      raise ValueError(
          f'Invalid arguments for model {name!r}: {e}. Accepted keywords: '
          f'{", ".join(accepted) or "none"}.'
      ) from e
  try:
    return fn(**kwargs)
  except ValueError as e:
    raise ValueError(f'Model {name!r}: {e}') from e


# The submodules stay attributes of this package (`ticketjax.models.mlp` is
# the module); the constructors are reached through `MODELS`/`get_model`.
for _fn in (
    mlp_lib.mlp,
    mlp_lib.lenet_300_100,
    mlp_lib.mnist1d_mlp,
    convnets.mnist1d_cnn,
    convnets.conv2,
    convnets.conv4,
    convnets.conv6,
    resnet.resnet20,
    transformer.gpt,
    transformer.llama,
    pretrained_lib.pretrained,
):
  register_model(_fn.__name__, _fn)
del _fn
