"""Frankle & Carbin's Conv-4 lottery ticket protocol on CIFAR-10.

Adam 3e-4, batch 60, 25_000 iterations per level, layerwise pruning (conv
10%, fc 20%, output 10%), rewind to init, controls at every level
(F&C Figure 2). CIFAR-10 must be prepared in the TFDS data dir.

  python -m launch.main --config=configs/imp_conv4_cifar10.py --workdir=/tmp/tj

Expected (F&C): best test-accuracy gain about +3.4pp, tickets above dense
while more than 2% of weights remain. Runtime: hours on 2 CPU cores; use a
GPU. Variants: seeds=N, levels=N, smoke (2 seeds, 1 level of 4
steps).
"""
from configs import imp_common


def get_config(arg=None):
  return imp_common.conv_cifar10(arg, model='conv4', learning_rate=3e-4,
                                 steps=25_000, conv_rate=0.1)
