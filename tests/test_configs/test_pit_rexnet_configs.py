"""Every PiT / ReXNet config builds; small ones train one step and predict on CPU; detection
configs give the neck the channels and the anchors the strides the backbone produces."""
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS as DET_MODELS
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config
from mmpretrain.registry import MODELS as CLS_MODELS
from mmpretrain.structures import DataSample

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
CLS_CONFIGS = sorted(CONFIGS.glob('pit/*.py')) + sorted(CONFIGS.glob('rexnet/*.py'))
DET_CONFIGS = sorted(CONFIGS.glob('pit_det/*.py')) + sorted(CONFIGS.glob('rexnet_det/*.py'))
SMALL_CLS = [
    'pit/pit-ti_8xb128_in1k.py', 'pit/pit-ti-distilled_8xb128_in1k.py',
    'rexnet/rexnet-1.0_4xb128_in1k.py', 'rexnet/rexnet-lite-1.0_4xb128_in1k.py'
]
SHAPES_DET = [
    'pit_det/retinanet_pit-ti_fpn_shapes.py', 'rexnet_det/retinanet_rexnet-1.0_fpn_shapes.py'
]


def test_every_variant_has_a_config():
    names = {p.name for p in CLS_CONFIGS}
    for arch in ('ti', 'xs', 's', 'b'):
        assert f'pit-{arch}_8xb128_in1k.py' in names
        assert f'pit-{arch}-distilled_8xb128_in1k.py' in names
    for width in ('1.0', '1.3', '1.5', '2.0', '3.0'):
        assert f'rexnet-{width}_4xb128_in1k.py' in names
    for width in ('1.0', '1.3', '1.5', '2.0'):
        assert f'rexnet-lite-{width}_4xb128_in1k.py' in names


@pytest.mark.parametrize('path', CLS_CONFIGS, ids=lambda p: p.name)
def test_classification_config_builds(path):
    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports == dict(imports=['mmvidt'], allow_failed_imports=False)
    with torch.device('meta'):  # structure only; the small ones run below
        model = CLS_MODELS.build(cfg.model).eval()
    feats = model.extract_feat(torch.empty(1, 3, 224, 224, device='meta'))
    last = feats[-1][0] if isinstance(feats[-1], tuple) else feats[-1]
    assert last.shape == (1, cfg.model.head.in_channels)


def classification_batch(num_classes: int = 1000, size: int = 64) -> dict:
    inputs = [torch.randint(0, 256, (3, size, size), dtype=torch.uint8) for _ in range(2)]
    samples = [DataSample().set_gt_label(i) for i in (3, num_classes - 1)]
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize('name', SMALL_CLS)
def test_small_classifier_trains_and_predicts(name):
    cfg = Config.fromfile(str(CONFIGS / name))
    # As mmengine's Runner does: the top-level data_preprocessor (normalisation, num_classes for
    # Mixup / CutMix) goes into the model.
    cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    model = CLS_MODELS.build(cfg.model)
    model.init_weights()
    model.train()
    data = model.data_preprocessor(classification_batch(), training=True)  # Mixup/CutMix too
    losses = model(**data, mode='loss')
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in model.backbone.parameters() if p.requires_grad)

    model.eval()
    with torch.no_grad():
        data = model.data_preprocessor(classification_batch(), training=False)
        predictions = model(**data, mode='predict')
    assert len(predictions) == 2 and predictions[0].pred_score.shape == (1000, )


def _backbone_strides(backbone) -> list:
    if hasattr(backbone, 'strides'):  # PiT: patch stride x 1, 2, 4
        return [backbone.strides[i] for i in backbone.out_indices]
    rexnet_strides = [2, 4, 8, 16, 16, 32, 32]
    return [rexnet_strides[i] for i in backbone.out_indices]


@pytest.mark.parametrize('path', DET_CONFIGS, ids=lambda p: p.name)
def test_detection_config_builds_with_consistent_channels_and_strides(path):
    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports == dict(imports=['mmvidt'], allow_failed_imports=False)
    with torch.device('meta'):
        model = DET_MODELS.build(cfg.model).eval()
        feats = model.backbone(torch.empty(1, 3, 256, 320))
        neck_outs = model.neck(feats)
    assert [f.shape[1] for f in feats] == list(cfg.model.neck.in_channels)
    assert len(neck_outs) == cfg.model.neck.num_outs
    strides = _backbone_strides(model.backbone)
    prior = cfg.model.get('bbox_head', {}).get('anchor_generator')
    if prior is None and 'rpn_head' in cfg.model:
        prior = cfg.model.rpn_head.anchor_generator
    if prior is not None:
        # Anchor strides must be those of the maps (PiT-B: 7/14/28), extra levels x2 each.
        offset = cfg.model.neck.get('start_level', 0)
        assert list(prior.strides)[:len(strides) - offset] == strides[offset:]


@pytest.mark.parametrize('name', SHAPES_DET)
def test_shapes_detector_trains_and_predicts(name):
    cfg = Config.fromfile(str(CONFIGS / name))
    assert cfg.train_dataloader.dataset.data_root == 'data/shapes/'
    model = DET_MODELS.build(cfg.model)
    model.init_weights()
    packed = demo_mm_inputs(batch_size=2,
                            image_shapes=[(3, 96, 128), (3, 128, 96)],
                            num_items=[2, 3],
                            num_classes=4)
    model.train()
    data = model.data_preprocessor(packed, training=True)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    backbone = model.backbone
    first_conv = backbone.patch_embed.projection if hasattr(backbone, 'patch_embed') \
        else backbone.stem.conv
    assert first_conv.weight.grad is not None

    model.eval()
    with torch.no_grad():
        results = model(**model.data_preprocessor(packed, training=False), mode='predict')
    assert len(results) == 2
    assert results[0].pred_instances.bboxes.shape[-1] == 4
    labels = results[0].pred_instances.labels
    assert ((labels >= 0) & (labels < 4)).all()
