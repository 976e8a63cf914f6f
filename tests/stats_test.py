"""Numbers over seeds as the reports print them."""
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
