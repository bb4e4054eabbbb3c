"""ONNX export of ViDT detectors, run by onnxruntime and compared with ``predict(rescale=False)``.

The graphs come from random-weight pico models (seconds to export); the same input goes through
onnxruntime and through the PyTorch model's own ``predict``. Tolerances of the deployment
contract: scores 1e-4, boxes 1e-3 px, labels equal, masks equal but for <= 0.1% of the pixels.
"""
import numpy as np
import onnx
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvidt.deployment import DeployableDetector
from mmvidt.deployment import onnx_export
from mmvidt.deployment.onnx_export import ExportCheckError, export_onnx, run_onnx
from mmvidt.engine import synthetic_detection_batch
from mmvidt.ops import available_msda_backends
from tool_utils import REPO_ROOT

VIDT = 'configs/vidt/vidt_swin-pico_1xb4-40e_shapes.py'
VIDT_PLUS = 'configs/vidt_plus/vidt-plus_swin-pico_1xb4-40e_shapes.py'
WO_NECK = 'configs/vidt_wo_neck/vidt-wo-neck_swin-nano_8xb2-50e_coco.py'
#: the pico body of the shapes configs, for the without-neck config (which has only COCO sizes)
PICO_BODY = dict(arch=dict(embed_dims=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8)),
                 det_token_num=20, init_cfg=None)


def build_detector(config: str, coco_columns: bool = False) -> torch.nn.Module:
    """A random-weight detector of ``config``; without neck: the pico body and 4 classes, or
    with ``coco_columns`` its 91 COCO-id logit columns (11 of which are no class)."""
    cfg = Config.fromfile(REPO_ROOT / config)
    if config == WO_NECK:
        cfg.model.backbone.update(PICO_BODY)
        if not coco_columns:
            cfg.model.bbox_head.update(num_classes=4, class_logit_indices=None)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    return MODELS.build(cfg.model).eval()


def predict_detections(model, images: torch.Tensor):
    """``model.predict(rescale=False)`` of unpadded images: one InstanceData per image."""
    _, samples = synthetic_detection_batch(len(images), *images.shape[-2:], 4)
    with torch.no_grad():
        return [sample.pred_instances for sample in model.predict(images, samples, rescale=False)]


def assert_matches_predict(outputs: dict, model, predicted: list) -> None:
    """The graph's detections are ``predict``'s (one InstanceData per image in ``predicted``):
    ViDT / ViDT+ keep the first n of the graph's K (predict drops the columns that are no
    dataset class); without neck ``predict`` keeps the rows of the tokens whose best column is
    a dataset class, in token order."""
    for index, expected in enumerate(predicted):
        scores = torch.from_numpy(outputs['scores'][index])
        labels = torch.from_numpy(outputs['labels'][index])
        boxes = torch.from_numpy(outputs['bboxes'][index])
        if type(model).__name__ == 'ViDTWoNeck':
            # the rows predict keeps: greedy subsequence match on the boxes (token order)
            rows, row = [], 0
            for box in expected.bboxes:
                while not torch.allclose(boxes[row], box, atol=1e-3, rtol=0):
                    row += 1
                rows.append(row)
                row += 1
            rows = torch.tensor(rows, dtype=torch.long)
        else:
            rows = torch.arange(len(expected.scores))
        assert labels.dtype == torch.int64
        assert torch.equal(labels[rows], expected.labels)
        torch.testing.assert_close(scores[rows], expected.scores, atol=1e-4, rtol=0)
        torch.testing.assert_close(boxes[rows], expected.bboxes, atol=1e-3, rtol=0)
        if 'masks' in outputs:
            masks = torch.from_numpy(outputs['masks'][index])[rows]
            assert masks.dtype == torch.bool
            assert (masks != expected.masks).float().mean() <= 1e-3


def graph_operators(path) -> set:
    return {(node.domain or 'ai.onnx', node.op_type) for node in onnx.load(path).graph.node}


@pytest.mark.parametrize('config, msda_backend', [
    (VIDT, 'cpu'),
    (VIDT_PLUS, 'pytorch'),
    (WO_NECK, 'pytorch'),
])
def test_static_graph_matches_predict(config, msda_backend, tmp_path):
    if msda_backend not in available_msda_backends():
        pytest.skip(f'the {msda_backend} MSDA kernel is not built')
    model = build_detector(config)
    deployable = DeployableDetector(model, msda_backend)
    images, _ = synthetic_detection_batch(1, 128, 160, 4)
    path = tmp_path / 'model.onnx'
    diffs = export_onnx(deployable, images, str(path))
    assert set(diffs['1x3x128x160']) == set(deployable.output_names)

    operators = graph_operators(path)
    assert {domain for domain, _ in operators} == {'ai.onnx'}  # standard operators only
    if config != WO_NECK:  # MSDA as standard GridSample, whatever backend the model ran
        assert ('ai.onnx', 'GridSample') in operators
    other, _ = synthetic_detection_batch(1, 128, 160, 4, seed=5)
    outputs = run_onnx(str(path), other)
    assert list(outputs) == list(deployable.output_names)
    num = deployable.num_detections
    assert outputs['scores'].shape == (1, num) and outputs['bboxes'].shape == (1, num, 4)
    assert_matches_predict(outputs, model, predict_detections(model, other))


def test_without_neck_keeps_one_row_per_token_with_coco_columns():
    """91 COCO-id logit columns, 11 of which are no class: the wrapper gives one row per token
    in token order (best dataset class), and the head's ``predict`` post-processing keeps
    exactly the rows of the tokens whose best column is a dataset class."""
    model = build_detector(WO_NECK, coco_columns=True)
    deployable = DeployableDetector(model)
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 40, 92, generator=generator) * 3  # 40 tokens, 92 = 91 + no-object
    boxes = torch.rand(1, 40, 4, generator=generator) * 0.5 + 0.25
    scores, labels, pixels = deployable._per_token(logits, boxes, 96, 128)
    assert scores.shape == labels.shape == (1, 40) and pixels.shape == (1, 40, 4)
    assert set(labels.flatten().tolist()) <= set(range(80))
    expected = model.bbox_head._predict_by_feat_single(logits[0], boxes[0],
                                                       dict(img_shape=(96, 128)), rescale=False)
    assert 0 < len(expected) < 40  # some tokens dropped by predict, some kept
    assert_matches_predict(dict(scores=scores.numpy(), labels=labels.numpy(),
                                bboxes=pixels.numpy()), model, [expected])


@pytest.mark.parametrize('backend, message', [
    ('auto', "msda_backend='auto' cannot be exported: choose one of"),
    ('cuda', "'cuda'"),
    ('fast', "msda_backend='fast' cannot be exported"),
])
def test_a_backend_that_cannot_be_exported_is_refused(backend, message):
    with pytest.raises(ValueError, match=message) as error:
        DeployableDetector(build_detector(WO_NECK), backend)
    assert '\n' not in str(error.value)


def test_a_wrong_graph_is_removed_and_fails(tmp_path, monkeypatch):
    """The verification compares onnxruntime with PyTorch: a graph whose scores are off by more
    than 1e-4 is deleted and the export raises."""
    real_run = onnx_export.run_onnx

    def off_by_2e_4(path, images):
        outputs = real_run(path, images)
        outputs['scores'] = outputs['scores'] + np.float32(2e-4)
        return outputs

    monkeypatch.setattr(onnx_export, 'run_onnx', off_by_2e_4)
    deployable = DeployableDetector(build_detector(WO_NECK))
    path = tmp_path / 'wrong.onnx'
    with pytest.raises(ExportCheckError, match="output 'scores' differs from PyTorch by 0.0002"):
        export_onnx(deployable, torch.randn(1, 3, 96, 96), str(path))
    assert not path.exists()


def test_bad_export_settings_are_refused(tmp_path):
    deployable = DeployableDetector(build_detector(WO_NECK))
    with pytest.raises(ValueError, match=r'opset 15 is too old.*GridSample \(opset >= 16\)'):
        export_onnx(deployable, torch.randn(1, 3, 96, 96), str(tmp_path / 'a.onnx'), opset=15)
    with pytest.raises(ValueError, match='batch >= 2'):
        export_onnx(deployable, torch.randn(1, 3, 96, 96), str(tmp_path / 'a.onnx'), dynamic=True)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize('config', [VIDT, VIDT_PLUS])
def test_dynamic_graph_matches_predict_at_other_sizes(config, tmp_path):
    """One graph for every batch and image size: exported on 2 x 256 x 288, checked by the export
    on 3 x 225 x 360, compared with predict at 1 x 240 x 320 here."""
    model = build_detector(config)
    deployable = DeployableDetector(model)
    path = tmp_path / 'dynamic.onnx'
    images, _ = synthetic_detection_batch(2, 256, 288, 4)
    diffs = export_onnx(deployable, images, str(path), dynamic=True, check_shapes=[(3, 225, 360)])
    assert set(diffs) == {'2x3x256x288', '3x3x225x360'}
    other, _ = synthetic_detection_batch(1, 240, 320, 4, seed=2)
    assert_matches_predict(run_onnx(str(path), other), model, predict_detections(model, other))


def test_torch_export_with_dynamic_sizes_round_trips(tmp_path):
    """``torch.export`` of the wrapper with dynamic B / H / W, the compiled MSDA kept as the
    ``mmvidt::msda`` operator, saved and loaded, runs another size like the eager wrapper."""
    backend = 'cpu' if 'cpu' in available_msda_backends() else 'pytorch'
    deployable = DeployableDetector(build_detector(VIDT), backend)
    images, _ = synthetic_detection_batch(2, 256, 288, 4)
    program = onnx_export.export_program(deployable, images, dynamic=True)
    targets = {str(node.target) for node in program.graph.nodes}
    assert ('mmvidt.msda.default' in targets) == (backend == 'cpu')
    torch.export.save(program, tmp_path / 'vidt.pt2')
    loaded = torch.export.load(tmp_path / 'vidt.pt2')
    other, _ = synthetic_detection_batch(3, 232, 300, 4, seed=3)
    with torch.no_grad():
        got, expected = loaded.module()(other), deployable(other)
    for name, value, reference in zip(deployable.output_names, got, expected, strict=True):
        assert value.shape == reference.shape, name
        torch.testing.assert_close(value, reference, atol=1e-4, rtol=0, msg=name)
