"""Parity of distillation, ViDT without neck and ViDT with a CoaT body on the official fixtures."""
import subprocess
import sys
from pathlib import Path

import pytest

from mmvidt.official.parity import check_fixture, fixture_matches
from mmvidt.official.parity.vidt_handlers import is_vidt_coat_fixture

REPO = Path(__file__).resolve().parents[2]
FIXTURES = ['vidt_main_distil.pt', 'vidt_main_wo_neck.pt', 'vidt_main_coat.pt']
#: Rows each fixture must contain (so a silently skipped family fails the test).
REQUIRED_ROWS = {
    'vidt_main_distil.pt': ('outputs.distil_tokens.neck_det_token',
                            'teacher_outputs.distil_tokens.patch_token.3',
                            'teacher_outputs.pred_logits', 'losses.unweighted.loss_distil',
                            'losses.total_weighted'),
    'vidt_main_wo_neck.pt': ('outputs.pred_logits', 'outputs.intermediate.input_proj_out',
                             'losses.unweighted.loss_ce', 'losses.matching.final.1.pred_idx',
                             'postprocess.1.labels'),
    'vidt_main_coat.pt': ('outputs.intermediate.backbone_features.3', 'outputs.intermediate.hs',
                          'outputs.aux_outputs.0.pred_boxes', 'losses.unweighted.loss_giou_5',
                          'postprocess.0.boxes'),
}


@pytest.mark.parametrize('name', FIXTURES)
def test_every_recorded_output_matches(name, fixtures_dir):
    rows = check_fixture(str(fixtures_dir / name))
    bad = [row.format() for row in rows if row.status != 'ok']
    assert not bad, '\n'.join(bad)
    assert fixture_matches(rows)
    names = {row.name for row in rows}
    assert set(REQUIRED_ROWS[name]) <= names


def test_coat_fixture_has_its_own_handler(load_fixture):
    assert is_vidt_coat_fixture(load_fixture('vidt_main_coat.pt')['meta'])
    assert not is_vidt_coat_fixture(load_fixture('vidt_main_wo_neck.pt')['meta'])


def test_check_parity_tool(fixtures_dir):
    paths = [str(fixtures_dir / name) for name in FIXTURES]
    result = subprocess.run([sys.executable, str(REPO / 'tools' / 'misc' / 'check_parity.py'),
                             *paths], capture_output=True, text=True, check=False, cwd=REPO)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert 'parity: 3/3 fixtures match' in result.stdout
