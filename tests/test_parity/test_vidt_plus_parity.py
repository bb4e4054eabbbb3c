"""ViDT+ parity with the official vidt-plus branch and the ViDT / ViDT+ checkpoint converter."""
import numpy as np
import pytest
from mmdet.registry import MODELS
from mmengine.registry import init_default_scope

from mmvidt.utils.state_dict import StateDictMismatchError, check_state_dict
from mmvidt.official.vidt_plus import convert_vidt_checkpoint, vidt_plus_model_from_official_args
from mmvidt.official.parity import check_fixture, fixture_matches
from mmvidt.official.parity.vidt_plus import build_vidt_plus_from_fixture, postprocess_outputs

FIXTURE = 'vidt_plus_full.pt'
TRAINING_KEYS = ('iou_embed.', 'vector_embed.', 'transformer.enc_output', 'transformer.token_embed')
DETECTION_ONLY = dict(iou_aware=False, token_label=False, with_vector=False, masks=False)


def test_fixture_matches_every_recorded_output(fixtures_dir):
    rows = check_fixture(str(fixtures_dir / FIXTURE))
    assert fixture_matches(rows), [r.format() for r in rows if r.status != 'ok']
    names = {row.name for row in rows}
    for name in ('losses.unweighted.loss_iouaware_3', 'losses.unweighted.loss_vector',
                 'losses.unweighted.loss_token_focal', 'losses.unweighted.loss_token_dice',
                 'outputs.enc_tokens.pred_logits.3', 'postprocess.1.masks_packed',
                 'postprocess.0.masks_shape.3', 'outputs.intermediate.neck_srcs.0'):
        assert name in names


def test_masks_decoded_from_official_vectors_are_exact(load_fixture):
    fixture = load_fixture(FIXTURE)
    produced = postprocess_outputs(build_vidt_plus_from_fixture(fixture), fixture)
    for index, ref in enumerate(fixture['postprocess']):
        shape = ref['masks_shape']
        official = np.unpackbits(ref['masks_packed'].numpy())[:np.prod(shape)].reshape(shape)
        mine = np.unpackbits(produced[f'postprocess.{index}.masks_packed'].numpy())
        assert np.array_equal(mine[:official.size].reshape(shape), official)
        assert official.any()  # the comparison is not between empty masks


def test_converter_reports_the_components_of_the_full_layout(load_fixture):
    converted = convert_vidt_checkpoint(load_fixture(FIXTURE)['state_dict'])
    assert converted.components == ('epff', 'iou_aware', 'token_label', 'mask_vector')
    assert converted.dropped == ()


def detection_only_model(fixture):
    init_default_scope('mmdet')
    args = dict(fixture['meta']['args'], **DETECTION_ONLY)
    cfg = vidt_plus_model_from_official_args(args, fixture['meta']['backbone_override'],
                                             class_logit_indices=None)
    assert cfg['bbox_head']['type'] == 'ViDTHead' and 'fusion' in cfg['neck']
    return MODELS.build(cfg)


def test_box_eval_layout_loads_into_a_detection_only_config(load_fixture):
    fixture = load_fixture(FIXTURE)
    box_eval = {k: v for k, v in fixture['state_dict'].items()
                if not k.startswith(TRAINING_KEYS)}
    converted = convert_vidt_checkpoint(box_eval)
    assert converted.components == ('epff', )
    model = detection_only_model(fixture)
    check_state_dict(converted.state_dict, model.state_dict(), 'box-eval layout')
    # a full training checkpoint gives the same weights once its training heads are dropped
    full = convert_vidt_checkpoint(fixture['state_dict'], keep_training_heads=False)
    assert full.dropped == ('iou_aware', 'token_label', 'mask_vector')
    assert full.state_dict.keys() == converted.state_dict.keys()
    model.load_state_dict(full.state_dict, strict=True)


def test_plain_vidt_checkpoints_convert_too(load_fixture):
    converted = convert_vidt_checkpoint(load_fixture('vidt_main_boxrefine.pt')['state_dict'])
    assert converted.components == ()
    assert not any(k.startswith('neck.fusion') for k in converted.state_dict)


def test_converter_rejects_unshared_vector_heads(load_fixture):
    state = dict(load_fixture(FIXTURE)['state_dict'])
    key = 'vector_embed.3.layers.0.weight'
    state[key] = state[key] + 1
    with pytest.raises(StateDictMismatchError, match='vector_embed.3.layers.0.weight differs'):
        convert_vidt_checkpoint(state)


def test_unsupported_vector_loss_normalisation_is_rejected(load_fixture):
    args = dict(load_fixture(FIXTURE)['meta']['args'], no_vector_loss_norm=True)
    with pytest.raises(ValueError, match='no_vector_loss_norm'):
        vidt_plus_model_from_official_args(args)

