"""Every config: its name tells the truth, it builds to the official model, it inherits cleanly.

Names follow ``{algo}_{backbone}_{N}xb{B}-{schedule}_{dataset}.py`` and are checked against the
config itself (batch per GPU, epochs, dataset, the effective batch of ``auto_scale_lr``); every
config builds (on the meta device: shapes only) with the parameter count of the official model
where one was published or counted; 150-epoch configs differ from their 50-epoch sibling in the
schedule only; every ``_base_`` resolves; no line is longer than 100 columns; the model index
(``model-index.yml`` and the metafiles mim reads) lists every config with its true parameter
count, epochs and batch.
"""
import ast
import copy
import functools
import importlib.util
import re
from pathlib import Path
from typing import Optional

import pytest
import torch
import yaml
from mmdet.registry import MODELS as DET_MODELS
from mmdet.testing import demo_mm_inputs
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmpretrain.registry import MODELS as CLS_MODELS
from mmpretrain.structures import DataSample

from official_counts import (EPFF_UNUSED_PARAMS, LEVEL_EMBED_PARAMS, PIT_COUNTS, REXNET_COUNTS,
                             VIDT_4DEC_COUNTS, VIDT_COAT_COUNTS, VIDT_COUNTS,
                             VIDT_PLUS_4DEC_COUNTS, VIDT_PLUS_BOX_COUNTS, VIDT_PLUS_FULL_COUNTS,
                             VIDT_WO_NECK_COUNTS, official_unused_param_count)

CONFIGS = Path(__file__).resolve().parents[2] / 'configs'
ALL_FILES = sorted(CONFIGS.rglob('*.py'))
#: Runnable configs (the _base_ files are building blocks).
LEAF_CONFIGS = [p for p in ALL_FILES if '_base_' not in p.parts]
CLASSIFICATION_FOLDERS = ('pit', 'rexnet')
NAME_PATTERN = re.compile(r'(?P<algo>[a-z0-9]+(?:-[a-z0-9.]+)*)_'
                          r'(?P<backbone>[a-z0-9.]+(?:-[a-z0-9.]+)*)_'
                          r'(?P<gpus>\d+)xb(?P<batch>\d+)(?P<tags>(?:-[a-z]+)*)-(?P<epochs>\d+)e_'
                          r'(?P<dataset>coco|coco-instance|in1k|shapes|shapes-simple)\.py')
REPO = CONFIGS.parent
#: config path (relative to the repository) -> its entry in the metafiles of model-index.yml
INDEXED = [model for metafile in yaml.safe_load((REPO / 'model-index.yml').read_text())['Import']
           for model in yaml.safe_load((REPO / metafile).read_text())['Models']]
INDEX = {model['Config']: model for model in INDEXED}
DATA_ROOTS = {'coco': 'data/coco/', 'coco-instance': 'data/coco/', 'in1k': 'data/imagenet',
              'shapes': 'data/shapes/', 'shapes-simple': 'data/shapes_simple/'}


@functools.lru_cache(maxsize=None)
def _load(path: Path) -> Config:
    return Config.fromfile(str(path))


def load(path: Path) -> Config:
    """The merged config of ``path`` (each file is parsed once per test session)."""
    return copy.deepcopy(_load(path))


def config_id(path: Path) -> str:
    return str(path.relative_to(CONFIGS))


def is_classification(path: Path) -> bool:
    return path.parent.name in CLASSIFICATION_FOLDERS


def build_without_weights(cfg: Config, classification: bool) -> torch.nn.Module:
    """The model of ``cfg`` with its own initialisation: no pretrained or teacher weights read."""
    init_default_scope('mmpretrain' if classification else 'mmdet')
    model_cfg = cfg.model.copy()
    model_cfg.backbone.pop('init_cfg', None)
    if 'teacher_ckpt' in model_cfg:
        model_cfg.teacher_ckpt = None  # the teacher is built, its checkpoint not read
    return (CLS_MODELS if classification else DET_MODELS).build(model_cfg)


def build_on_meta(cfg: Config, classification: bool) -> torch.nn.Module:
    """The model of ``cfg`` with shapes only: no memory, no weights loaded."""
    with torch.device('meta'):
        return build_without_weights(cfg, classification)


def official_param_count(path: Path, cfg: Config) -> Optional[int]:
    """What the official model of this config counts, minus the parameters mmvidt drops (the
    official models keep some no forward uses); None where no official model exists."""
    folder, backbone = path.parent.name, cfg.model.backbone
    arch = backbone.get('arch')
    if folder == 'pit':
        return PIT_COUNTS[(arch, backbone.get('distilled', False))][0]
    if folder == 'rexnet':
        return REXNET_COUNTS[arch][0]
    if folder == 'vidt_coat':
        return VIDT_COAT_COUNTS[arch] - LEVEL_EMBED_PARAMS
    if folder.endswith('_det') or not isinstance(arch, str):
        return None  # mmdet detectors with mmvidt backbones, the shrunk shapes demos
    embed_dims = DET_MODELS.get('SwinRAM').arch_zoo[arch]['embed_dims']
    if folder == 'vidt_wo_neck':
        return VIDT_WO_NECK_COUNTS[arch] - official_unused_param_count(embed_dims,
                                                                       last_merge=False)
    dropped = official_unused_param_count(embed_dims) + LEVEL_EMBED_PARAMS
    if folder in ('vidt', 'vidt_distil'):  # the distiller's teacher is not a parameter
        return VIDT_COUNTS[arch] - dropped
    if folder == 'vidt_plus':
        table = VIDT_PLUS_FULL_COUNTS if 'instance' in path.name else VIDT_PLUS_BOX_COUNTS
        return table[arch] - dropped - EPFF_UNUSED_PARAMS
    if folder == 'vidt_layer_drop':
        if path.name.startswith('vidt-plus'):
            return VIDT_PLUS_4DEC_COUNTS[arch] - dropped - EPFF_UNUSED_PARAMS
        return VIDT_4DEC_COUNTS[arch] - dropped
    raise AssertionError(f'{config_id(path)}: no rule for the official parameter count')


def test_every_family_has_its_configs():
    names = {config_id(p) for p in LEAF_CONFIGS}
    for arch in ('nano', 'tiny', 'small', 'base'):
        for epochs in (50, 150):
            assert f'vidt/vidt_swin-{arch}_8xb2-{epochs}e_coco.py' in names
            for kind in ('coco', 'coco-instance'):
                assert f'vidt_plus/vidt-plus_swin-{arch}_8xb2-{epochs}e_{kind}.py' in names
    for arch in ('ti', 'xs', 's', 'b'):
        assert f'pit/pit_{arch}_8xb128-300e_in1k.py' in names
        assert f'pit/pit_{arch}-distilled_8xb128-300e_in1k.py' in names
    for arch in ('1.0', '1.3', '1.5', '2.0', '3.0', 'lite-1.0', 'lite-1.3', 'lite-1.5',
                 'lite-2.0'):
        assert f'rexnet/rexnet_{arch}_4xb128-400e_in1k.py' in names


def test_model_index_lists_every_config_once():
    configs = [model['Config'] for model in INDEXED]
    assert len(configs) == len(set(configs))
    assert set(configs) == {str(p.relative_to(REPO)) for p in LEAF_CONFIGS}
    for model in INDEXED:
        assert model['Name'] == Path(model['Config']).stem
        assert (REPO / 'configs' / Path(model['Config']).parent.name / 'README.md').is_file()


@pytest.mark.parametrize('path', ALL_FILES, ids=config_id)
def test_lines_within_100_columns(path):
    long_lines = [i for i, line in enumerate(path.read_text().splitlines(), 1) if len(line) > 100]
    assert not long_lines, f'{config_id(path)}: lines {long_lines} exceed 100 columns'


def base_paths(path: Path) -> list:
    """The ``_base_`` entries of a config file, read without running it."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets):
            value = ast.literal_eval(node.value)
            return [value] if isinstance(value, str) else list(value)
    return []


@pytest.mark.parametrize('path', ALL_FILES, ids=config_id)
def test_every_base_resolves(path):
    for base in base_paths(path):
        resolved, _ = Config._get_cfg_path(base, str(path))
        assert Path(resolved).is_file(), f'{config_id(path)}: _base_ {base!r} not found'
    load(path)  # the whole chain parses and merges


@pytest.mark.parametrize('path', LEAF_CONFIGS, ids=config_id)
def test_name_tells_the_truth(path):
    match = NAME_PATTERN.fullmatch(path.name)
    assert match, f'{config_id(path)} does not follow {{algo}}_{{backbone}}_{{N}}xb{{B}}-' \
                  '{schedule}_{dataset}.py'
    cfg = load(path)
    gpus, batch = int(match['gpus']), int(match['batch'])
    assert cfg.train_dataloader.batch_size == batch
    assert cfg.train_cfg.max_epochs == int(match['epochs'])
    indexed = INDEX[str(path.relative_to(REPO))]['Metadata']
    assert (indexed['Epochs'], indexed['Batch Size']) == (int(match['epochs']), gpus * batch)
    dataset = match['dataset']
    assert cfg.train_dataloader.dataset.data_root == DATA_ROOTS[dataset]
    if dataset.startswith('shapes'):
        assert gpus == 1  # the bundled CPU examples
        return
    if dataset.startswith('coco'):
        assert ('segm' in cfg.val_evaluator.metric) == (dataset == 'coco-instance')
    # the official recipe's effective batch is what --auto-scale-lr scales from
    assert cfg.auto_scale_lr.base_batch_size == gpus * batch


@pytest.mark.parametrize('path', LEAF_CONFIGS, ids=config_id)
def test_config_builds_to_the_official_model(path):
    cfg = load(path)
    assert cfg.custom_imports == dict(imports=['mmvidt'], allow_failed_imports=False)
    model = build_on_meta(cfg, is_classification(path))
    count = sum(p.numel() for p in model.parameters())
    assert INDEX[str(path.relative_to(REPO))]['Metadata']['Parameters'] == count
    expected = official_param_count(path, cfg)
    if expected is not None:
        assert count == expected


def flops_input_size(path: Path) -> tuple:
    """(H, W) at which the model index gives FLOPs (its header says the same)."""
    if is_classification(path):
        return 224, 224
    return (160, 160) if '_shapes' in path.name else (800, 1333)


@functools.lru_cache(maxsize=None)
def flops_tool():
    spec = importlib.util.spec_from_file_location(
        'get_flops_tool', REPO / 'tools' / 'analysis_tools' / 'get_flops.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('path', [
    path if is_classification(path) or '_shapes' in path.name else pytest.param(
        path, marks=pytest.mark.slow) for path in LEAF_CONFIGS
], ids=config_id)
def test_model_index_flops_are_what_get_flops_counts(path):
    """FLOPs (multiply-adds) of one inference forward, attention and deformable sampling in."""
    model = build_without_weights(load(path), is_classification(path))
    tool = flops_tool()
    inputs, samples = tool.synthetic_detection_batch(1, *flops_input_size(path), 1)
    macs = sum(tool.count_flops(model, inputs, samples).values()) // 2
    assert INDEX[str(path.relative_to(REPO))]['Metadata']['FLOPs'] == macs


def flatten(value, prefix: str = '') -> dict:
    if isinstance(value, dict):
        items = {}
        for key, item in value.items():
            items.update(flatten(item, f'{prefix}{key}.'))
        return items
    return {prefix.rstrip('.'): value}


LONG_SCHEDULES = [p for p in LEAF_CONFIGS if '-150e_' in p.name]


@pytest.mark.parametrize('path', LONG_SCHEDULES, ids=config_id)
def test_150_epochs_differ_from_50_only_in_schedule(path):
    sibling = path.with_name(path.name.replace('-150e_', '-50e_'))
    if not sibling.is_file():
        # e.g. layer drop on a 150-epoch model: then it must take the schedule from that model
        base = (path.parent / base_paths(path)[0]).resolve()
        assert len(base_paths(path)) == 1 and base in LONG_SCHEDULES, \
            f'{config_id(path)} has no 50-epoch sibling and is not derived from a 150e config'
        return
    long, short = (flatten(load(p).to_dict()) for p in (path, sibling))
    changed = {k for k in long.keys() | short.keys() if long.get(k) != short.get(k)}
    assert changed == {'max_epochs', 'train_cfg.max_epochs', 'param_scheduler.T_max',
                       'param_scheduler.end'}
    assert all(long[k] == 150 for k in changed)


def classification_batch(num_classes: int = 1000, size: int = 64) -> dict:
    inputs = [torch.randint(0, 256, (3, size, size), dtype=torch.uint8) for _ in range(2)]
    samples = [DataSample().set_gt_label(i) for i in (3, num_classes - 1)]
    return dict(inputs=inputs, data_samples=samples)


SMALL_CLASSIFIERS = ['pit/pit_ti_8xb128-300e_in1k.py', 'pit/pit_ti-distilled_8xb128-300e_in1k.py',
                     'rexnet/rexnet_1.0_4xb128-400e_in1k.py',
                     'rexnet/rexnet_lite-1.0_4xb128-400e_in1k.py']


@pytest.mark.parametrize('name', SMALL_CLASSIFIERS)
def test_small_classifier_trains_and_predicts(name):
    cfg = load(CONFIGS / name)
    # As mmengine's Runner does: the top-level data_preprocessor (normalisation, num_classes for
    # Mixup / CutMix) goes into the model.
    cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    init_default_scope('mmpretrain')
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


MMDET_DETECTORS = [p for p in LEAF_CONFIGS
                   if p.parent.name in ('pit_det', 'rexnet_det', 'swin_ram_det')]


@pytest.mark.parametrize('path', MMDET_DETECTORS, ids=config_id)
def test_detector_gets_the_backbone_channels_and_strides(path):
    cfg = load(path)
    model = build_on_meta(cfg, classification=False).eval()
    with torch.device('meta'):
        feats = model.backbone(torch.empty(1, 3, 256, 320))
        neck_outs = model.neck(feats)
    assert [f.shape[1] for f in feats] == list(model.backbone.out_channels)
    assert len(neck_outs) == cfg.model.neck.num_outs
    strides = list(model.backbone.strides)
    prior = cfg.model.get('bbox_head', {}).get('anchor_generator')
    if prior is None and 'rpn_head' in cfg.model:
        prior = cfg.model.rpn_head.anchor_generator
    prior_strides = prior.strides if prior is not None else cfg.model.get('bbox_head', {}).get(
        'strides')  # FCOS points
    if prior_strides is not None:
        # Prior strides must be those of the maps (PiT-B: 7/14/28), extra levels x2 each.
        offset = cfg.model.neck.get('start_level', 0)
        assert list(prior_strides)[:len(strides) - offset] == strides[offset:]
    roi_head = cfg.model.get('roi_head')
    if roi_head is not None:
        assert list(roi_head.bbox_roi_extractor.featmap_strides)[:len(strides)] == strides


@pytest.fixture
def one_thread():
    """One intra-op thread: these small steps are much slower when threads contend."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize('path', MMDET_DETECTORS, ids=config_id)
def test_mmdet_detector_trains_one_iteration_and_predicts(path, one_thread):
    """One iteration as the Runner runs it (preprocess, loss, backward, the config's optimizer
    step), then prediction, on two tiny random images (no weights are downloaded)."""
    cfg = load(path)
    cfg.model.backbone.pop('init_cfg', None)
    if 'num_queries' in cfg.model:  # DETRs: fewer queries than the tiny images have tokens
        cfg.model.num_queries = 20
    init_default_scope('mmdet')
    model = DET_MODELS.build(cfg.model)
    model.init_weights()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    packed = demo_mm_inputs(batch_size=2,
                            image_shapes=[(3, 64, 96), (3, 80, 64)],
                            num_items=[2, 3],
                            num_classes=4)
    trainable = {n: p.detach().clone() for n, p in model.backbone.named_parameters()
                 if p.requires_grad and not n.startswith('det_')}
    model.train()
    losses = model.train_step(packed, optim_wrapper)
    assert all(torch.isfinite(v) for v in losses.values())
    changed = [n for n, p in model.backbone.named_parameters() if n in trainable
               and not torch.equal(p.detach(), trainable[n])]
    assert len(changed) > len(trainable) // 2, 'the optimizer step did not reach the backbone'

    model.eval()
    with torch.no_grad():
        results = model.val_step(packed)
    assert len(results) == 2
    assert results[0].pred_instances.bboxes.shape[-1] == 4
