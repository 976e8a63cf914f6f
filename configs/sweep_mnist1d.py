"""A sweep over search kinds on the MNIST-1D MLP: IMP, CS and Edge-Popup.

The three searches share the 40-100-100-10 MLP and run as separate jobs
(their programs differ), one after another, then one report compares
them (accuracy against weights remaining, per-layer density, IMP/CS mask
overlap):

  python -m launch.sweep --sweep=configs/sweep_mnist1d.py --workdir=/tmp/tj

Runtime on 2 CPU cores: the sum of the three configs' (IMP about 1.5
min, CS about 1 min 45 s, Edge-Popup about 45 s, as their docstrings
say). Variants: smoke (each job's smoke variant: about 80 s in all).
"""
from configs import common
from configs import cs_mnist1d
from configs import edgepopup_mnist1d
from configs import imp_mlp_mnist1d


def get_sweep(arg=None):
  opts = common.parse_arg(arg, smoke=False)
  variant = 'smoke' if opts['smoke'] else None
  return [imp_mlp_mnist1d.get_config(variant),
          cs_mnist1d.get_config(variant),
          edgepopup_mnist1d.get_config(variant)]
