"""Config variants: values given after ':' win over `smoke`'s shrinking."""
import pytest

from configs import common
from configs import dense_mnist1d
from configs import dst_lenet300_fashion_mnist
from configs import early_bird_mnist1d
from configs import edgepopup_mnist
from configs import edgepopup_mnist1d
from configs import imp_gpt_austen
from configs import imp_gpt_shakespeare
from configs import imp_mlp_mnist1d
from configs import imp_resnet20_cifar10
from configs import lmc_mnist1d
from configs import pai_lenet300_fashion_mnist
from ticketjax.methods import registry
from ticketjax.methods.imp import report as imp_report
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


@pytest.mark.parametrize('module', [edgepopup_mnist1d, edgepopup_mnist])
def test_smoke_keeps_given_k_and_steps(module):
  c = module.get_config('smoke')
  assert (c.edgepopup.k, c.train.steps) == ((0.3, 0.7), 40)
  c = module.get_config('smoke,k=0.5,steps=100')
  assert (c.edgepopup.k, c.train.steps) == ((0.5,), 100)
  with pytest.raises(ValueError, match='edgepopup.k'):  # not replaced
    registry.get('edgepopup').check(module.get_config('smoke,k=1.5'))


def test_lmc_smoke_keeps_given_copies_and_rewind_steps():
  c = lmc_mnist1d.get_config('smoke')
  assert (c.lmc.copies, c.lmc.rewind_steps) == (2, (0, 30))
  c = lmc_mnist1d.get_config('smoke,copies=3,rewind=0/20/40')
  assert (c.lmc.copies, c.lmc.rewind_steps) == (3, (0, 20, 40))
  # a rewind step past the smoke run's 60 steps is refused, not dropped
  c = lmc_mnist1d.get_config('smoke,rewind=0/50/100')
  assert c.lmc.rewind_steps == (0, 50, 100)
  with pytest.raises(ValueError, match=r'lie in \[0, train.steps = 60\)'):
    registry.get('lmc').check(c)
  # a value that reads as false is still given: rewind=0 is k = 0 alone
  assert lmc_mnist1d.get_config('smoke,rewind=0').lmc.rewind_steps == (0,)
  assert lmc_mnist1d.get_config('rewind=0').lmc.rewind_steps == (0,)


def test_fashion_mnist_smoke_keeps_given_steps_and_update_interval():
  c = dst_lenet300_fashion_mnist.get_config('smoke')
  assert (c.train.steps, c.dst.update_every) == (20, 5)
  c = dst_lenet300_fashion_mnist.get_config('smoke,steps=100,every=50')
  assert (c.train.steps, c.dst.update_every) == (100, 50)
  assert pai_lenet300_fashion_mnist.get_config('smoke').train.steps == 20
  assert pai_lenet300_fashion_mnist.get_config(
      'smoke,steps=100').train.steps == 100


def test_early_bird_densities_given_are_used_or_refused():
  check = registry.get('early_bird').check
  with pytest.raises(ValueError, match=r'early_bird.densities \[0.0\] lie '):
    check(early_bird_mnist1d.get_config('smoke,densities=0'))  # not dropped
  with pytest.raises(ValueError, match='levels=3 and densities=0.5 conflict'):
    early_bird_mnist1d.get_config('levels=3,densities=0.5')
  assert early_bird_mnist1d.get_config(
      'densities=0.3').early_bird.densities == (0.3,)


@pytest.mark.parametrize('arg, message', [
    ('smoke,seeds=abc', 'config variant seeds=abc must be an integer, e.g. '
     'seeds=3'),
    ('seeds=2.5', 'config variant seeds=2.5 must be an integer'),
    ('cnn=1', "config variant cnn=1 is a flag: write 'cnn' alone"),
    ('smoke,seeds', "config variant 'seeds' needs a value, e.g. seeds=3"),
])
def test_a_variant_of_the_wrong_type_is_named(arg, message):
  with pytest.raises(ValueError, match=message):
    dense_mnist1d.get_config(arg)
  assert dense_mnist1d.get_config('cnn=False').model.name == 'mnist1d_mlp'


def test_slash_lists_name_bad_text():
  with pytest.raises(ValueError, match="'abc' is not integers joined by"):
    lmc_mnist1d.get_config('rewind=abc')
  with pytest.raises(ValueError, match="'x' is not numbers joined by"):
    imp_mlp_mnist1d.get_config('lr=x')


@pytest.mark.parametrize('arg', ['k=0/100/500,smoke', 'smoke,k=0/100/500'])
def test_smoke_with_a_rewind_grid_builds(arg):
  """The paper's k are past a smoke run's end: smoke spreads as many k over
  its own steps, and the whole config passes every check."""
  c = imp_mlp_mnist1d.get_config(arg)
  assert c.grid.rewind_step == (0, 13, 26) and c.imp.rewind == 'step'
  built = setup_lib.build(c)
  assert built.grid.size == 3
  registry.get('imp').check(c)


def test_smoke_keeps_a_rewind_to_init_and_a_late_rewind_apart():
  # k past the smoke run's 40 steps: a positive k stays a rewind step
  assert imp_mlp_mnist1d.get_config(
      'smoke,k=100').grid.rewind_step == (20,)
  assert imp_mlp_mnist1d.get_config(
      'smoke,k=0/500/100').grid.rewind_step == (0, 26, 13)
  # a k that fits stays; those past the end spread above it
  assert imp_mlp_mnist1d.get_config(
      'smoke,k=0/10/100').grid.rewind_step == (0, 10, 25)
  # and when there is no room for them, the variant says so (it made a
  # grid that repeats 39, which the user never gave)
  with pytest.raises(ValueError, match=(
      r"smoke: the rewind steps \[100\] lie past the smoke run's 40 steps "
      'and have no distinct stand-ins after 39')):
    imp_mlp_mnist1d.get_config('smoke,k=0/39/100')
  # a repeated step is named as the step it is
  c = imp_mlp_mnist1d.get_config('k=10/10')
  with pytest.raises(ValueError, match=r'repeats a value: \(10, 10\)'):
    setup_lib.build(c)


def test_smoke_keeps_a_rewind_grid_that_fits():
  c = imp_mlp_mnist1d.get_config('smoke,k=0/10/25')
  assert c.grid.rewind_step == (0, 10, 25)


def test_imp_titles_say_what_a_grid_sets():
  describe = lambda arg: imp_report.describe(imp_mlp_mnist1d.get_config(arg))
  assert describe('smoke') == ('layerwise_magnitude pruning at rates dense '
                               '0.2 / output 0.1, rewound to init')
  assert describe('smoke,rate=0.2/0.4') == (
      "layerwise_magnitude pruning at the grid's rates 0.2 / 0.4, rewound "
      'to init')
  assert describe('smoke,k=0/10/25,rule=global') == (
      "global_magnitude pruning at rates 0.2, rewound to the grid's steps "
      '0 / 10 / 25')
  # a structure, and what it does not apply to
  assert describe('smoke,structure=2:4') == (
      'layerwise_magnitude (2:4; the shuffle and random controls '
      'unstructured) pruning at rates dense 0.2 / output 0.1, rewound to init')
  assert describe('smoke,structure=channels,controls=reinit') == (
      'layerwise_magnitude (channels; output layer kept) pruning at rates '
      'dense 0.2, rewound to init')  # (the output's rate goes unused)
  # a dense stage, and a search from pretrained weights
  austen = lambda arg: imp_report.describe(imp_gpt_austen.get_config(arg))
  assert austen('stage=pretrain') == 'dense training only (no pruning level)'
  assert austen('source=/elsewhere/finetuned/').endswith(
      'rewound to the source weights (finetuned)')


def test_the_shakespeare_config_takes_a_tokenizer_file():
  assert 'tokenizer' not in imp_gpt_shakespeare.get_config('smoke').data
  c = imp_gpt_shakespeare.get_config('smoke,tokenizer=/tmp/bpe.json')
  assert c.data.tokenizer == '/tmp/bpe.json'


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


@pytest.mark.parametrize('file, arg, field, smoke_value, given', [
    ('imp_lenet300_mnist_5k', 'steps=50', 'train.steps', 20, 50),
    ('imp_lenet300_mnist_5k', 'levels=2', 'imp.levels', 1, 2),
    ('imp_lenet300_fashion_mnist', 'steps=30', 'train.steps', 20, 30),
    ('imp_conv2_fashion_mnist', 'levels=2', 'imp.levels', 1, 2),
    ('transfer_lenet300_fashion_mnist_to_mnist_5k', 'steps=50',
     'train.steps', 20, 50),
    ('oneshot_smollm2_austen', 'calib=32', 'oneshot.calibration_windows',
     4, 32),
    ('oneshot_smollm2_austen', 'eval=8', 'oneshot.evaluation_windows', 2, 8),
    ('oneshot_smollm2_austen', 'context=128', 'oneshot.context', 64, 128),
    ('imp_gpt_shakespeare', 'k=5', 'imp.rewind_step', 0, 5),
])
def test_smoke_keeps_a_value_given_with_it(file, arg, field, smoke_value,
                                           given):
  def value(variant):
    c = common.from_file(f'configs/{file}.py:{variant}')
    for name in field.split('.'):
      c = c[name]
    return c
  assert value('smoke') == smoke_value
  assert value(f'smoke,{arg}') == given == value(f'{arg},smoke')
