"""tools/dist_train.sh: two CPU processes (gloo) train in lockstep on different images."""
import json
import socket
import sys

from tool_utils import REPO_ROOT, TINY_CONFIG, run_tool


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def test_two_cpu_processes_end_with_identical_weights(shapes_root, tmp_path):
    config = tmp_path / 'tiny_digest.py'
    config.write_text(f"_base_ = '{TINY_CONFIG}'\n"
                      "custom_imports = dict(imports=['mmvidt', 'param_digest_hook'], "
                      "allow_failed_imports=False)\n"
                      "custom_hooks = [dict(type='ParamDigestHook')]\n")
    work_dir = tmp_path / 'work'
    output = run_tool([
        'bash',
        str(REPO_ROOT / 'tools' / 'dist_train.sh'),
        str(config), '2', '--work-dir',
        str(work_dir), '--cfg-options', 'train_cfg.val_interval=10'
    ],
                      cwd=shapes_root,
                      timeout=240,
                      PYTHON=sys.executable,
                      PORT=str(_free_port()))
    assert 'Distributed training: True' in output and "'backend': 'gloo'" in output

    ranks = [json.loads((work_dir / f'digest_rank{r}.json').read_text()) for r in range(2)]
    # 8 training images, 2 per batch, 2 processes: 2 iterations each, on disjoint images
    assert [r['iters'] for r in ranks] == [2, 2]
    img_ids = ranks[0]['img_ids'] + ranks[1]['img_ids']
    assert len(img_ids) == len(set(img_ids)) == 8
    # training changed the weights, identically on both ranks (gradients were all-reduced)
    assert ranks[0]['before'] == ranks[1]['before']
    assert ranks[0]['after'] != ranks[0]['before']
    assert ranks[0]['after'] == ranks[1]['after']
    assert (work_dir / 'epoch_1.pth').is_file()
