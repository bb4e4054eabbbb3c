"""The whole ViDT detector reproduces every recorded output of the official fixtures."""
import subprocess
import sys

import pytest

from mmvidt.official.parity import check_fixture, fixture_matches, recorded_outputs
from tool_utils import REPO_ROOT

VIDT_FIXTURES = ['vidt_main_boxrefine.pt', 'vidt_main_plain.pt']


@pytest.mark.parametrize('name', VIDT_FIXTURES)
def test_every_recorded_output_is_produced_and_matches(name, fixtures_dir, load_fixture):
    rows = check_fixture(str(fixtures_dir / name))
    assert [row.name for row in rows] == list(recorded_outputs(load_fixture(name)))
    assert fixture_matches(rows), '\n'.join(r.format() for r in rows if r.status != 'ok')
    names = {row.name for row in rows}
    # spot-check that the groups the issue names are all compared
    for key in ('outputs.intermediate.backbone_features.3', 'outputs.intermediate.neck_srcs.0',
                'outputs.intermediate.hs', 'outputs.intermediate.inter_references',
                'outputs.pred_logits', 'postprocess.1.boxes', 'losses.unweighted.loss_giou',
                'losses.matching.final.0.pred_idx', 'losses.total_weighted'):
        assert key in names, key


def test_check_parity_command(fixtures_dir, tmp_path):
    paths = [str(fixtures_dir / name) for name in VIDT_FIXTURES]
    proc = subprocess.run([sys.executable, 'tools/misc/check_parity.py', *paths,
                           str(tmp_path / 'missing.pt')], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    lines = proc.stdout.strip().splitlines()
    assert proc.returncode == 1 and lines[-1] == 'parity: 2/3 fixtures match'
    row = next(line for line in lines if ' outputs.pred_boxes ' in line).split()
    assert row[0] == 'vidt_main_boxrefine.pt' and row[4] == 'ok'
    assert float(row[2]) <= float(row[3])
    assert any(line.startswith('missing.pt - - - FAIL') for line in lines)
