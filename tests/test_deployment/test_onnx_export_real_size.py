"""ONNX export of a real-size ViDT-nano (COCO config, 91 logit columns), run by onnxruntime and
compared with ``predict(rescale=False)`` within the contract's tolerances (slow: about a minute
to export and check)."""
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvidt.deployment import DeployableDetector
from mmvidt.deployment.onnx_export import export_onnx, run_onnx
from mmvidt.engine import synthetic_detection_batch
from test_onnx_export import assert_matches_predict, predict_detections
from tool_utils import REPO_ROOT

NANO = 'configs/vidt/vidt_swin-nano_8xb2-50e_coco.py'


@pytest.mark.slow
def test_nano_dynamic_graph_matches_predict(tmp_path):
    """The model's own initialisation (no ImageNet weights read), exported dynamic at 480x640,
    checked by the export at 2x512x576 and compared with predict at an official-rule size."""
    cfg = Config.fromfile(REPO_ROOT / NANO)
    cfg.model.backbone.pop('init_cfg', None)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    deployable = DeployableDetector(model.eval())
    path = tmp_path / 'nano.onnx'
    images, _ = synthetic_detection_batch(2, 480, 640, 4)
    export_onnx(deployable, images, str(path), dynamic=True, check_shapes=[(2, 512, 576)])
    other, _ = synthetic_detection_batch(1, 800, 928, 4, seed=4)
    assert_matches_predict(run_onnx(str(path), other), model, predict_detections(model, other))
