"""Config variants: values given after ':' win over `smoke`'s shrinking."""
import pytest

from configs import common
from configs import dense_mnist1d
from configs import imp_mlp_mnist1d
from configs import imp_resnet20_cifar10
from ticketjax.methods import registry
from ticketjax.run import setup as setup_lib


def test_smoke_keeps_given_seeds_and_levels():
  assert dense_mnist1d.get_config('smoke').num_seeds == 2
  assert dense_mnist1d.get_config('smoke,seeds=3').num_seeds == 3
  assert dense_mnist1d.get_config('seeds=3,smoke').num_seeds == 3
  c = imp_mlp_mnist1d.get_config('smoke,seeds=3,levels=4')
  assert (c.num_seeds, c.imp.levels) == (3, 4)
  c = imp_resnet20_cifar10.get_config('smoke,levels=2,seeds=1')
  assert (c.num_seeds, c.imp.levels) == (1, 2)
  assert imp_resnet20_cifar10.get_config('smoke').imp.levels == 1


@pytest.mark.parametrize('arg', ['k=0/100/500,smoke', 'smoke,k=0/100/500'])
def test_smoke_with_a_rewind_grid_builds(arg):
  """The paper's k are past a smoke run's end: smoke spreads as many k over
  its own steps, and the whole config passes every check."""
  c = imp_mlp_mnist1d.get_config(arg)
  assert c.grid.rewind_step == (0, 13, 26) and c.imp.rewind == 'step'
  built = setup_lib.build(c)
  assert built.grid.size == 3
  registry.get('imp').check(c)


def test_global_rule_variant():
  c = imp_mlp_mnist1d.get_config('rule=global')
  assert (c.imp.rule, c.imp.rates) == ('global_magnitude', 0.2)
  registry.get('imp').check(imp_mlp_mnist1d.get_config('smoke,rule=global'))
  with pytest.raises(ValueError, match="unknown rule variant 'foo'"):
    imp_mlp_mnist1d.get_config('rule=foo')


def test_variant_records_what_was_given():
  opts = common.parse_arg('smoke,levels=3', seeds=4, levels=10, smoke=False)
  assert opts.given == {'smoke', 'levels'}
  assert opts['seeds'] == 2 and opts.or_smoke('levels', 1) == 3
