"""The Colab quickstart notebook runs top to bottom (nbclient, CPU)."""
import os

import nbclient
import nbformat

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(REPO, 'colabs', 'quickstart.ipynb')


def _text(cell) -> str:
  out = []
  for o in cell.get('outputs', []):
    out.append(o.get('text', ''))
    out.append(o.get('data', {}).get('text/markdown', ''))
  return ''.join(out)


def test_quickstart_notebook_runs_top_to_bottom(tmp_path, monkeypatch):
  monkeypatch.setenv('TICKETJAX_WORKDIR', str(tmp_path))
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nbclient.NotebookClient(
      nb, timeout=600, kernel_name='python3',
      resources={'metadata': {'path': REPO}}).execute()
  text = '\n'.join(_text(c) for c in nb.cells if c.cell_type == 'code')
  assert 'Traceback' not in text
  assert '| 2 | ' in text  # the IMP table reached level 2
  assert 'error barrier between seed 0' in text
  images = sum('image/png' in o.get('data', {}) for c in nb.cells
               if c.cell_type == 'code' for o in c.get('outputs', []))
  assert images == 2  # accuracy.png and probe.png
  assert os.path.exists(tmp_path / 'probe' / 'probe.json')
