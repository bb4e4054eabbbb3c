"""The Swin-RAM block's alternative paths give the same numbers: fused vs written-out window
attention, chunked vs whole FFN, shared stochastic depth vs mmcv's DropPath on the joint
sequence; and the padding-mask resize equals F.interpolate."""
import itertools

import pytest
import torch
import torch.nn.functional as F
from mmcv.cnn.bricks.drop import DropPath

from mmvidt.models.backbones.swin_ram import SwinRAM
from mmvidt.models.layers import swin_ram_block
from mmvidt.models.layers.padding_mask import resize_padding_mask
from mmvidt.models.layers.swin_ram_block import shared_drop_path

SMALL_ARCH = dict(embed_dims=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4))


def padded_batch(sizes):
    H, W = max(h for h, _ in sizes), max(w for _, w in sizes)
    images = torch.zeros(len(sizes), 3, H, W)
    mask = torch.ones(len(sizes), H, W, dtype=torch.bool)
    for i, (h, w) in enumerate(sizes):
        images[i, :, :h, :w] = torch.randn(3, h, w)
        mask[i, :h, :w] = False
    return images, mask


@pytest.mark.parametrize('chunk', [None, 4096])
def test_inference_path_equals_autograd_path(monkeypatch, chunk):
    """No grad: fused SDPA with the mask only on shifted border windows and the chunked FFN;
    with grad: the written-out attention (bias gradient) and the whole FFN."""
    if chunk is not None:  # many chunks, the last one partial
        monkeypatch.setattr(swin_ram_block, 'FFN_CHUNK_ELEMENTS', chunk)
    torch.manual_seed(0)
    model = SwinRAM(arch=SMALL_ARCH, det_token_num=5, cross_indices=(2, 3)).eval()
    images, mask = padded_batch([(96, 120), (70, 100)])
    with torch.no_grad():
        fast = model.forward_ram(images, mask)
    slow = model.forward_ram(images, mask)
    assert slow.det_tokens.requires_grad
    for a, b in zip(fast.patch_maps + (fast.det_tokens, ), slow.patch_maps + (slow.det_tokens, )):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_written_out_attention_trains_the_bias_table():
    model = SwinRAM(arch=SMALL_ARCH, det_token_num=5).train()
    images, mask = padded_batch([(64, 64)])
    out = model.forward_ram(images, mask)
    (sum(m.square().mean() for m in out.patch_maps) + out.det_tokens.mean()).backward()
    for block in (0, 1):  # unshifted and shifted block
        grad = model.stages[0].blocks[block].attn.relative_position_bias_table.grad
        assert grad is not None and grad.abs().sum() > 0


def test_shared_drop_path_equals_mmcv_drop_path_on_the_joint_sequence():
    drop = DropPath(0.4).train()
    patch, det = torch.randn(6, 10, 8), torch.randn(6, 3, 8)
    torch.manual_seed(3)
    joint = drop(torch.cat([patch, det], 1))
    torch.manual_seed(3)
    shared = shared_drop_path(drop, patch, det)
    torch.testing.assert_close(torch.cat(shared, 1), joint, rtol=1e-6, atol=1e-6)
    assert (joint.flatten(1) == 0).all(1).any()  # some samples dropped, both kinds alike
    assert shared_drop_path(drop.eval(), patch, det) == (patch, det)


@pytest.mark.parametrize('size,target', [((800, 928), (200, 232)), ((800, 928), (25, 29)),
                                         ((797, 1333), (13, 21)), ((37, 41), (100, 7)),
                                         ((5, 3), (5, 3))])
def test_resize_padding_mask_equals_interpolate(size, target):
    generator = torch.Generator().manual_seed(sum(size))
    mask = torch.rand(2, *size, generator=generator) > 0.5
    expected = F.interpolate(mask[:, None].float(), size=target, mode='nearest')[:, 0].bool()
    assert torch.equal(resize_padding_mask(mask, target), expected)


def test_resize_padding_mask_over_many_sizes():
    mask = torch.zeros(1, 640, 640, dtype=torch.bool)
    mask[:, 301:, :] = True
    mask[:, :, 477:] = True
    for h, w in itertools.product(range(1, 130, 7), range(3, 700, 61)):
        expected = F.interpolate(mask[:, None].float(), size=(h, w), mode='nearest')[:, 0].bool()
        assert torch.equal(resize_padding_mask(mask, (h, w)), expected), (h, w)
