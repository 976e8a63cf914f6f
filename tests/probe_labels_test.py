"""Who member i of a saved checkpoint is, as `launch.probe` prints it: each
method's `member_label` against the order its job trains its members in."""
import json

import pytest

from configs import cs_mnist1d, early_bird_mnist1d, edgepopup_mnist1d
from configs import pai_mnist1d
from ticketjax.methods import registry


def _label(module, arg, checkpoint, member):
  config = json.loads(module.get_config(arg).to_json())  # as config.json
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
    (edgepopup_mnist1d, 'smoke', 'edgepopup', 0, ''),
])
def test_member_labels_follow_the_training_order(module, arg, checkpoint,
                                                 member, label):
  assert _label(module, arg, checkpoint, member) == label
