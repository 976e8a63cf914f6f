"""Numbers over seeds and plot titles as the reports print them."""
from ticketjax.core import stats


def test_mean_and_std_and_one_value_without_a_spread():
  two = stats.mean_std([0.5, 0.7])
  assert (two['n'], two['values']) == (2, [0.5, 0.7])
  assert stats.format_mean_std(two) == '60.0 ± 10.0'  # population std
  assert stats.format_mean_std(two, scale=1, digits=2) == '0.60 ± 0.10'
  # one seed (or one healthy member) has no spread to show: not '± 0.0'
  assert stats.format_mean_std(stats.mean_std([0.25])) == '25.0'
  assert stats.format_mean_std(stats.mean_std([])) == 'n/a'
  assert stats.seeds(1) == '1 seed' and stats.seeds(4) == '4 seeds'


def test_plot_titles_wrap_between_phrases():
  from ticketjax.reports import plots  # pylint: disable=g-import-not-at-top
  text = ('Learning curves, IMP gpt on shakespeare: layerwise_magnitude '
          'pruning at rates dense 0.2 / output 0.1, rewound to init, 2 seeds')
  # a phrase longer than a line breaks after its colon; the phrases after
  # it join its last line while they fit
  assert plots.title(text, width=80).splitlines() == [
      'Learning curves, IMP gpt on shakespeare:',
      'layerwise_magnitude pruning at rates dense 0.2 / output 0.1, rewound '
      'to init,', '2 seeds', f'({plots.BAND})']
  # without a colon it fills its line and goes on in the next
  assert plots.title('a, ' + 'word ' * 20 + 'end, b', width=30,
                     note='').splitlines() == [
                         'a, word word word word word', 'word word word word '
                         'word word', 'word word word word word word',
                         'word word word end, b']
  assert plots.title('40 steps, 2 seeds', note='') == '40 steps, 2 seeds'
  assert plots.title('a, b', width=3, note='') == 'a,\nb'
  assert plots.title('') == f'({plots.BAND})'
