"""AutocastOptimWrapper: bfloat16 autocast training where mmengine's AmpOptimWrapper refuses."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper
from torch import nn

import mmvidt  # noqa: F401  (registers the wrapper)


def build(model: nn.Module, **kwargs):
    return build_optim_wrapper(
        model, dict(type='AutocastOptimWrapper', optimizer=dict(type='SGD', lr=0.1), **kwargs))


def test_forward_runs_in_bfloat16_and_the_step_updates_float32_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 1))
    wrapper = build(model, device_type='cpu')
    inputs, target = torch.randn(32, 8), torch.randn(32, 1)
    losses = []
    for _ in range(20):
        with wrapper.optim_context(model):
            output = model(inputs)
            loss = (output.float() - target).pow(2).mean()
        assert output.dtype == torch.bfloat16
        wrapper.update_params(loss)
        losses.append(loss.item())
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert losses[-1] < 0.7 * losses[0]


def test_gradient_clipping_of_the_base_wrapper_still_applies():
    model = nn.Linear(4, 1)
    wrapper = build(model, device_type='cpu', clip_grad=dict(max_norm=1e-3))
    with wrapper.optim_context(model):
        loss = model(torch.full((2, 4), 100.)).float().sum()
    wrapper.backward(loss)
    wrapper.step()
    norm = torch.cat([p.grad.flatten() for p in model.parameters()]).norm()
    assert norm <= 1e-3 * 1.001


def test_float16_is_refused_with_the_alternative():
    with pytest.raises(ValueError, match="dtype must be 'bfloat16', got 'float16'"):
        build(nn.Linear(2, 2), dtype='float16')
