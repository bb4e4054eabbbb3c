"""ViDT+ building blocks: DCT mask coder, mask pasting, EPFF, token labels, IoU-aware loss."""
import numpy as np
import pytest
import scipy.fft
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align as tv_roi_align

from mmvidt.models.layers.dct_mask_coder import DCTMaskCoder, paste_masks, zigzag_indices
from mmvidt.models.layers.token_label_branch import TokenLabelBranch, token_validity
from mmvidt.models.losses import IoUAwareLoss, TokenLabelLoss
from mmvidt.models.losses.token_label_loss import token_label_map, token_soft_targets
from mmvidt.models.necks.epff import EPFF


def test_zigzag_order():
    idx = zigzag_indices(128, 256)
    cells = [(int(i) // 128, int(i) % 128) for i in idx]
    assert cells[:12] == [(0, 0), (0, 1), (1, 0), (2, 0), (1, 1), (0, 2), (0, 3), (1, 2),
                          (2, 1), (3, 0), (4, 0), (3, 1)]
    # official zigzag order: anti-diagonals 0..21 complete, then (22, 0), (21, 1), (20, 2)
    assert cells[-3:] == [(22, 0), (21, 1), (20, 2)]
    assert len(set(cells)) == 256
    with pytest.raises(ValueError, match='cannot keep'):
        zigzag_indices(4, 17)


def test_encode_matches_scipy_dctn():
    coder = DCTMaskCoder(num_coeffs=40, mask_size=16)
    masks = (torch.rand(3, 16, 16) > 0.5).float()
    ref = scipy.fft.dctn(masks.numpy().astype(np.float64), type=2, norm='ortho', axes=(1, 2))
    ref = ref.reshape(3, -1)[:, zigzag_indices(16, 40).numpy()]
    torch.testing.assert_close(coder.encode(masks), torch.from_numpy(ref).float(), atol=1e-5,
                               rtol=1e-5)


def test_decode_inverts_encode_with_all_coefficients():
    coder = DCTMaskCoder(num_coeffs=64, mask_size=8)
    masks = (torch.rand(4, 8, 8) > 0.5).float()
    masks[:, 0, 0], masks[:, 0, 1] = 1, 0  # every mask has both values
    assert torch.equal(coder.decode(coder.encode(masks)), masks)


def test_decode_keeps_the_shape_of_a_smooth_mask():
    coder = DCTMaskCoder(num_coeffs=256, mask_size=128)
    yy, xx = torch.meshgrid(torch.arange(128.), torch.arange(128.), indexing='ij')
    disc = (((yy - 60)**2 + (xx - 70)**2) < 40**2).float()
    agreement = (coder.decode(coder.encode(disc[None]))[0] == disc).float().mean()
    assert agreement > 0.98


def test_encode_instances_uses_aligned_roi_align():
    coder = DCTMaskCoder(num_coeffs=16, mask_size=8)
    masks = torch.rand(2, 30, 40) > 0.4
    boxes = torch.tensor([[3.2, 4.0, 25.5, 20.0], [0.0, 0.0, 40.0, 30.0]])
    rois = torch.cat([torch.arange(2.)[:, None], boxes], 1)
    crops = tv_roi_align(masks[:, None].float(), rois, (8, 8), 1.0, 0, aligned=True)[:, 0]
    expected = coder.encode((crops >= 0.5).float())
    torch.testing.assert_close(coder.encode_instances(masks, boxes), expected)
    assert coder.encode_instances(masks[:0], boxes[:0]).shape == (0, 16)
    with pytest.raises(ValueError, match='2 masks but 1 boxes'):
        coder.encode_instances(masks, boxes[:1])


def test_paste_masks_fills_the_box():
    masks = torch.ones(2, 8, 8)
    boxes = torch.tensor([[2.0, 3.0, 10.0, 7.0], [-5.0, -5.0, 4.0, 2.0]])
    pasted = paste_masks(masks, boxes, (12, 16))
    expected = torch.zeros(2, 12, 16, dtype=torch.bool)
    expected[0, 3:7, 2:10] = True
    expected[1, 0:2, 0:4] = True
    assert torch.equal(pasted, expected)


def test_epff_order_shapes_and_gradients():
    epff = EPFF(in_channels=(16, 32, 64, 24), out_channels=32)
    sizes = [(20, 24), (10, 12), (5, 6), (3, 3)]
    feats = [torch.randn(2, c, *s) for c, s in zip((16, 32, 64, 24), sizes)]
    out = epff(feats)
    assert [tuple(o.shape) for o in out] == [(2, 32, *s) for s in reversed(sizes)]
    sum(o.sum() for o in out).backward()
    assert all(p.grad is not None for p in epff.parameters()), 'EPFF keeps no unused parameter'
    with pytest.raises(ValueError, match='expects 4 feature maps, got 3'):
        epff(feats[:3])


def test_token_validity_follows_the_official_proposal_test():
    mask = torch.zeros(1, 60, 8, dtype=torch.bool)
    mask[:, :, 6:] = True  # 6 valid columns
    keep = token_validity(mask, level=0)
    # 6 valid columns (< 50): all kept; 60 valid rows (>= 50): the first and last row dropped
    assert keep[0, 1].tolist() == [True] * 6 + [False] * 2
    assert not keep[0, 0].any() and not keep[0, 59].any()
    assert not token_validity(mask, level=5).any()  # nominal size 1.6 is outside (0.01, 0.99)


def test_token_branch_zeroes_padding():
    branch = TokenLabelBranch(embed_dims=8, num_classes=5)
    memory = [torch.randn(1, 8, 4, 4)]
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    mask[:, :, 3] = True
    logits = branch(memory, [mask])[0]
    constant = branch.cls(branch.norm(branch.proj(torch.zeros(8))))
    torch.testing.assert_close(logits[0, :, 3], constant.expand(4, 5))
    assert not torch.allclose(logits[0, :, 0], constant.expand(4, 5))


def official_token_targets(masks, labels, shape, num_classes, size):
    """The official construction: first-object-wins, one-hot of every pixel, flipped column 0."""
    height, width = shape
    label_map = torch.zeros(height, width, dtype=torch.long)
    taken = torch.zeros(height, width, dtype=torch.bool)
    for mask, label in zip(masks, labels):
        padded = F.pad(mask, (0, width - mask.shape[1], 0, height - mask.shape[0]))
        label_map[padded & ~taken] = label
        taken |= padded
    onehot = F.one_hot(label_map, num_classes).float()
    onehot[..., 0] = 1 - onehot[..., 0]
    return F.adaptive_avg_pool2d(onehot.permute(2, 0, 1)[None], size)[0].permute(1, 2, 0)


def test_token_targets_match_the_official_construction():
    masks = torch.rand(3, 13, 17) > 0.5
    labels = torch.tensor([3, 1, 3])
    label_map = token_label_map(masks, labels, (15, 20))
    assert label_map[13:].eq(0).all() and label_map[:, 17:].eq(0).all()
    first = masks[0]
    assert label_map[:13, :17][first].eq(3).all()  # overlaps go to the first object
    targets = token_soft_targets(label_map[None], 6, [(4, 5), (2, 3)])
    for target, size in zip(targets, [(4, 5), (2, 3)]):
        expected = official_token_targets(masks, labels, (15, 20), 6, size)
        torch.testing.assert_close(target[0], expected)
    with pytest.raises(ValueError, match='larger than the padded input'):
        token_label_map(masks, labels, (10, 20))


def test_token_label_loss_matches_the_official_formula():
    logits = [torch.randn(2, 3, 4, 5), torch.randn(2, 2, 2, 5)]
    targets = [torch.rand(2, 3, 4, 5), torch.rand(2, 2, 2, 5)]
    loss = TokenLabelLoss(focal_weight=2.0, dice_weight=3.0)(logits, targets, avg_factor=4)
    focal = dice = 0
    for x, t in zip(logits, targets):
        x, t = x.flatten(1, 2), t.flatten(1, 2)
        p = x.sigmoid()
        ce = F.binary_cross_entropy_with_logits(x, t, reduction='none')
        p_t = p * t + (1 - p) * (1 - t)
        focal += ((0.25 * t + 0.75 * (1 - t)) * ce * (1 - p_t)**2).mean(1).sum() / 4
        p, t = p.flatten(1), t.flatten(1)
        dice += (1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)).sum() / 4
    torch.testing.assert_close(loss['loss_token_focal'], 2 * focal)
    torch.testing.assert_close(loss['loss_token_dice'], 3 * dice)


def test_iou_aware_loss_value_and_target_gradient():
    logits = torch.tensor([0.3, -1.0], requires_grad=True)
    pred = torch.tensor([[0., 0., 10., 10.], [5., 5., 15., 25.]], requires_grad=True)
    gt = torch.tensor([[0., 0., 10., 20.], [5., 5., 15., 25.]])
    loss = IoUAwareLoss(loss_weight=2.0)(logits, pred, gt, avg_factor=2)
    expected = F.binary_cross_entropy_with_logits(logits, torch.tensor([0.5, 1.0]),
                                                  reduction='sum')
    torch.testing.assert_close(loss, expected)  # 2 * sum / 2
    loss.backward()
    assert pred.grad.abs().sum() > 0  # official: the IoU target is not detached
    pred.grad = None
    IoUAwareLoss(detach_target=True)(logits, pred, gt, avg_factor=2).backward()
    assert pred.grad is None
    with pytest.raises(ValueError, match='IoUAwareLoss'):
        IoUAwareLoss()(logits[:1], pred, gt)
