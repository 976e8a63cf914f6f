"""Continuous Sparsification (Savarese et al. 2020) as pure functions.

CS learns a mask logit s per prunable weight together with the weights. The
forward pass uses the soft mask c * sigmoid(beta * s), c = 1/sigmoid(s_init),
so the mask is exactly 1 at init; the loss adds lambda * sum(soft masks), a
smooth surrogate of lambda * ||m||_0. beta (an inverse temperature) grows
epoch by epoch from 1 to beta_max within a round, so sigmoid(beta * s)
hardens towards the step function 1[s > 0], which is the final mask.
Between rounds s <- min(beta * s, s_init) and beta resets to 1 (positive
logits restart at s_init, pruned ones stay negative), and the weights rewind
to the rewind point. The recipe is the official repo's
(lolemacs/continuous-sparsification).

The search reuses `train.Trainer` unchanged (`wrap_model`):
  params       {'weights': model params, 'logits': s}; `logits` has the
               structure of the weights, with s for prunable leaves and a
               scalar placeholder (unused) for the others;
  model_state  {'inner': the model's own state, 'beta': f32, 'lam': f32};
beta and lambda live in the model state, so every member of the vmapped
member axis (lambda values x seeds) carries its own lambda, and the driver
sets beta between epochs without recompiling.
"""
import dataclasses
import math

import jax
import jax.numpy as jnp
import optax

from ticketjax.core import masks as masks_lib
from ticketjax.core import optim
from ticketjax.core.types import Model, PyTree


CONTROLS = ('shuffle', 'reinit', 'invert')
# fold_in tags off a member's init key: its shuffle and reinit controls
SHUFFLE_TAG = 3_000_017
REINIT_TAG = 3_000_019


@dataclasses.dataclass(frozen=True)
class CsConfig:
  """The `cs` section of a config.

  Attributes:
    lambdas: penalty weights lambda >= 0, one search member per value and
      seed, all in one compiled program; larger lambda, sparser ticket.
    s_init: initial mask logit (the repo's default 0; higher = denser).
    beta_max: beta at the last epoch of a round (>= 1).
    rounds: search rounds.
    epochs_per_round: epochs of one round (>= 2: beta needs two ends).
    rewind_epoch: the weights rewind to their values after this many epochs
      of round 0 (the repo rewinds to epoch 2), before every later round
      and for the final ticket.
    mask_optimizer: the logits' optimizer kind (`optim.OPTIMIZERS`); '' =
      the weights' kind. Schedule as the weights', never weight decay. The
      repo uses SGD with momentum for both; with Adam the logits move by
      about the learning rate per step whatever their gradient's size.
    mask_learning_rate: learning rate of the logits' optimizer; 0 = the
      weights'.
    hard_mask_scale: keep the factor c on the hard mask (the repo's quirk:
      surviving weights are multiplied by c = 1/sigmoid(s_init)).
    prune_exclude: path substrings of kernels that get no mask logit.
    controls: sanity-check branches trained next to the tickets, from
      CONTROLS: 'shuffle' (each layer's mask shuffled, same counts),
      'reinit' (the mask on a fresh init of the same distribution),
      'invert' (each layer keeps as many weights, those of the lowest
      logits).
    compare_imp: path of an IMP run folder (or its summary.json) whose
      ticket curve the CS plot shows; not part of the run's hash.
  """
  lambdas: tuple[float, ...] = (1e-8,)
  s_init: float = 0.0
  beta_max: float = 200.0
  rounds: int = 3
  epochs_per_round: int = 85
  rewind_epoch: int = 2
  mask_optimizer: str = ''
  mask_learning_rate: float = 0.0
  hard_mask_scale: bool = False
  prune_exclude: tuple[str, ...] = ()
  compare_imp: str = ''
  controls: tuple[str, ...] = ()

  def validate(self) -> None:
    if not self.lambdas:
      raise ValueError('cs.lambdas must list at least one value')
    for lam in self.lambdas:
      if not float(lam) >= 0:
        raise ValueError(f'cs.lambdas must be >= 0, got {lam}')
    if not self.beta_max >= 1:
      raise ValueError(f'cs.beta_max must be >= 1, got {self.beta_max}')
    if int(self.rounds) < 1:
      raise ValueError(f'cs.rounds must be >= 1, got {self.rounds}')
    if int(self.epochs_per_round) < 2:
      raise ValueError('cs.epochs_per_round must be >= 2, got '
                       f'{self.epochs_per_round}')
    if not 0 <= int(self.rewind_epoch) < int(self.epochs_per_round):
      raise ValueError(
          f'cs.rewind_epoch must be in [0, epochs_per_round = '
          f'{self.epochs_per_round}), got {self.rewind_epoch}')
    if self.mask_optimizer and self.mask_optimizer not in optim.OPTIMIZERS:
      raise ValueError(f'unknown cs.mask_optimizer {self.mask_optimizer!r}; '
                       f"valid are {list(optim.OPTIMIZERS)} or '' (the "
                       "weights' optimizer)")
    bad = [c for c in self.controls if c not in CONTROLS]
    if bad or len(set(self.controls)) != len(self.controls):
      raise ValueError(
          f'cs.controls {list(self.controls)}: '
          + (f'unknown {bad}' if bad else 'a name repeats')
          + f'; valid controls are {list(CONTROLS)}, each at most once')
    if not self.mask_learning_rate >= 0:
      raise ValueError('cs.mask_learning_rate must be >= 0 (0 = the '
                       f'weights\' rate), got {self.mask_learning_rate}')

  @property
  def prunable(self):
    return masks_lib.make_filter(exclude=self.prune_exclude)


def soft_mask(s, beta, s_init: float):
  """sigmoid(beta * s) / sigmoid(s_init): exactly 1.0 where beta=1, s=s_init.

  (Dividing by the same float32 sigmoid, rather than multiplying by a
  rounded c = 1/sigmoid(s_init), makes the initial mask exactly 1.)
  """
  return jax.nn.sigmoid(beta * s) / jax.nn.sigmoid(jnp.float32(s_init))


def scale(s_init: float) -> float:
  """c = 1/sigmoid(s_init) = 1 + exp(-s_init)."""
  return 1.0 + math.exp(-s_init)


def beta_at(epoch, epochs_per_round: int, beta_max: float):
  """beta in epoch `epoch` of a round: 1 at epoch 0, beta_max at the last.

  beta_max ** (e / (E - 1)): the repo's beta <- beta * beta_max^(1/(E-1))
  applied once per epoch e >= 1.
  """
  return beta_max ** (epoch / (epochs_per_round - 1))


def _is_prunable(weights: PyTree, prunable) -> PyTree:
  return masks_lib.prunable_tree(weights, prunable)


def init_logits(weights: PyTree, s_init: float, prunable) -> PyTree:
  """s = s_init for prunable leaves, a scalar placeholder elsewhere."""
  return jax.tree.map(
      lambda w, p: (jnp.full(w.shape, s_init, jnp.float32) if p
                    else jnp.zeros((), jnp.float32)),
      weights, _is_prunable(weights, prunable))


def soft_masks(logits: PyTree, weights: PyTree, beta, s_init: float,
               prunable) -> list[jax.Array]:
  """c * sigmoid(beta * s) of every prunable leaf, in flattening order."""
  flags = jax.tree.leaves(_is_prunable(weights, prunable))
  return [soft_mask(s, beta, s_init)
          for s, p in zip(jax.tree.leaves(logits), flags) if p]


def effective_weights(weights: PyTree, logits: PyTree, beta, s_init: float,
                      prunable) -> PyTree:
  """w * c * sigmoid(beta * s) on prunable leaves, w elsewhere."""
  return jax.tree.map(
      lambda w, s, p: w * soft_mask(s, beta, s_init) if p else w,
      weights, logits, _is_prunable(weights, prunable))


def hard_mask(logits: PyTree, weights: PyTree, prunable) -> PyTree:
  """The ticket's mask: s > 0 on prunable leaves, all True elsewhere."""
  return jax.tree.map(
      lambda w, s, p: s > 0 if p else jnp.ones(w.shape, jnp.bool_),
      weights, logits, _is_prunable(weights, prunable))


def next_round_logits(logits: PyTree, beta, s_init: float) -> PyTree:
  """s <- min(beta * s, s_init): the reset between rounds."""
  return jax.tree.map(lambda s: jnp.minimum(beta * s, s_init), logits)


def wrap_model(model: Model, cfg: CsConfig) -> Model:
  """The search model: params {'weights', 'logits'}, state {inner, beta, lam}.

  `init(key)` gives lambda 0 and beta 1; the driver sets both per member.
  """
  prunable = cfg.prunable

  def init(key):
    weights, inner = model.init(key)
    params = {'weights': weights,
              'logits': init_logits(weights, cfg.s_init, prunable)}
    return params, {'inner': inner, 'beta': jnp.float32(1.0),
                    'lam': jnp.float32(0.0)}

  def apply(params, state, x, *, train, key=None):
    eff = effective_weights(params['weights'], params['logits'],
                            state['beta'], cfg.s_init, prunable)
    logits, inner = model.apply(eff, state['inner'], x, train=train, key=key)
    return logits, {**state, 'inner': inner}

  return Model(init, apply, f'cs_{model.name}')


def make_penalty(cfg: CsConfig):
  """penalty(params, state) = lambda * sum of the soft masks."""
  prunable = cfg.prunable

  def penalty(params, state):
    soft = soft_masks(params['logits'], params['weights'], state['beta'],
                      cfg.s_init, prunable)
    return state['lam'] * sum(jnp.sum(m) for m in soft)

  return penalty


def make_optimizer(weights_cfg: optim.OptimizerConfig, total_steps: int,
                   mask_learning_rate: float = 0.0, mask_optimizer: str = ''
                   ) -> optax.GradientTransformationExtraArgs:
  """Weights: `weights_cfg`; logits: own kind and state, no weight decay."""
  logits_cfg = dataclasses.replace(
      weights_cfg, weight_decay=0.0,
      name=mask_optimizer or weights_cfg.name,
      learning_rate=mask_learning_rate or weights_cfg.learning_rate)

  def labels(params):
    return {k: jax.tree.map(lambda _, k=k: k, v) for k, v in params.items()}

  return optim.masked(optax.multi_transform(
      {'weights': optim.make_base(weights_cfg, total_steps),
       'logits': optim.make_base(logits_cfg, total_steps)}, labels))
