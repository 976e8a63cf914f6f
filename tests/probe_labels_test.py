"""Who member i of a saved checkpoint is, as `launch.probe` prints it: each
method's `member_label` against the order its job trains its members in."""
import json

import pytest

from configs import cs_mnist1d, early_bird_mnist1d, edgepopup_mnist1d
from configs import pai_mnist1d
from configs import transfer_lenet300_fashion_mnist_to_mnist_5k as transfer
from ticketjax.methods import registry


def _label(module, arg, checkpoint, member):
  config = module.get_config(arg)
  if config.job == 'transfer':  # (a run names its source run)
    config.transfer.source_run = '/runs/imp-0123456789ab'
  config = json.loads(config.to_json())  # as config.json
  return registry.get(config['job']).member_label(config, checkpoint, member)


@pytest.mark.parametrize('module,arg,checkpoint,member,label', [
    # branch-major, then density, then seed (2 seeds, densities 0.5, 0.1)
    (pai_mnist1d, 'smoke,controls=shuffle', 'final', 1,
     'magnitude at density 0.5, seed 1'),
    (pai_mnist1d, 'smoke,controls=shuffle', 'final', 6,
     'shuffle of magnitude at density 0.1, seed 0'),
    (pai_mnist1d, 'smoke', 'final', 4, ''),  # past the last member
    (pai_mnist1d, 'smoke,at=trained', 'dense', 1, 'dense, seed 1'),
    # early-bird, then full, each density; dense last
    (early_bird_mnist1d, 'smoke', 'final', 7, 'full at density 0.5, seed 1'),
    (early_bird_mnist1d, 'smoke', 'final', 13, 'dense, seed 1'),
    (early_bird_mnist1d, 'smoke,levels=2', 'final', 3,
     'early_bird level 2, seed 1'),
    (early_bird_mnist1d, 'smoke', 'search', 0, ''),
    # lambda-major, then seed; with controls the tickets first
    (cs_mnist1d, 'smoke', 'ticket', 3, 'ticket of lambda 0.001, seed 1'),
    (cs_mnist1d, 'smoke,controls=shuffle', 'ticket', 5,
     'shuffle of lambda 1e-05, seed 1'),
    (edgepopup_mnist1d, 'smoke', 'dense', 1, 'dense, seed 1'),
    # level-major, then branch, then seed (level 1; 2 seeds)
    (transfer, 'smoke', 'final', 3, 'reinit ticket of level 1, seed 1'),
    (transfer, 'smoke', 'final', 6, ''),
    (edgepopup_mnist1d, 'smoke', 'edgepopup', 0, ''),
])
def test_member_labels_follow_the_training_order(module, arg, checkpoint,
                                                 member, label):
  assert _label(module, arg, checkpoint, member) == label


def test_lmc_copies_are_network_major_then_seed_then_copy():
  from configs import lmc_mnist1d  # pylint: disable=g-import-not-at-top
  config = lmc_mnist1d.get_config('smoke,mlp')  # 2 seeds, 2 copies
  config.lmc.imp_levels = (3,)
  config.lmc.random_masks = True  # dense, level_003, level_003_random
  config = json.loads(config.to_json())
  label = lambda name, i: registry.get('lmc').member_label(config, name, i)
  assert label('copies_k000030', 3) == 'dense, seed 1, copy 1'
  assert label('copies_k000030', 9) == 'level_003_random, seed 0, copy 1'
  assert label('copies_k000030', 12) == ''
  assert label('rewind_k000000', 1) == 'seed 1'
