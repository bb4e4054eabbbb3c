"""Test-only hook: every rank records a digest of its weights and the images it trained on."""
import hashlib
import json
import os.path as osp

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


@HOOKS.register_module()
class ParamDigestHook(Hook):
    """Writes ``WORK_DIR/digest_rank{R}.json``: weight digests before / after training, iterations
    run and the ids of the images this rank trained on."""

    def __init__(self) -> None:
        self.record = dict(img_ids=[])

    @staticmethod
    def _digest(runner) -> str:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        digest = hashlib.sha256()
        for name, tensor in sorted(model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def before_train(self, runner) -> None:
        self.record['before'] = self._digest(runner)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.record['img_ids'] += [s.img_id for s in data_batch['data_samples']]

    def after_train(self, runner) -> None:
        self.record.update(after=self._digest(runner), iters=runner.iter)
        with open(osp.join(runner.work_dir, f'digest_rank{get_rank()}.json'), 'w') as f:
            json.dump(self.record, f)
