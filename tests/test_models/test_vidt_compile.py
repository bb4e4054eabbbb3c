"""torch.compile of ViDT and ViDT+: one graph, no breaks, and the compiled model computes the same.

The forward used to break into 10 graphs (host reads of the level shapes, an unregistered
operator); a break is a host round trip that also stops torch.export.
"""
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmvidt.engine import synthetic_detection_batch
from tool_utils import REPO_ROOT, python_tool, run_tool

VIDT = 'configs/vidt/vidt_swin-pico_1xb4-40e_shapes.py'
VIDT_PLUS = 'configs/vidt_plus/vidt-plus_swin-pico_1xb4-40e_shapes.py'
#: real size: inductor once generated a relative-position-bias backward for it that wrote out of
#: bounds (the bias is now gathered by rows of its table)
NANO = 'configs/vidt/vidt_swin-nano_8xb2-50e_coco.py'


def build(config: str, train: bool) -> torch.nn.Module:
    init_default_scope('mmdet')
    torch.manual_seed(0)
    return MODELS.build(Config.fromfile(REPO_ROOT / config).model).train(train)


@pytest.mark.parametrize('config, train', [
    (VIDT, False),
    (VIDT_PLUS, True),
    pytest.param(VIDT, True, marks=pytest.mark.slow),
    pytest.param(VIDT_PLUS, False, marks=pytest.mark.slow),
])
def test_forward_is_one_graph_without_breaks(config, train):
    model = build(config, train)
    inputs, samples = synthetic_detection_batch(2, 96, 128, 4)
    samples[1].set_metainfo(dict(img_shape=(80, 100)))  # padding: masks in the graph too
    with torch.set_grad_enabled(train):
        explained = torch._dynamo.explain(model)(inputs, samples, mode='tensor')
    reasons = [reason.reason.splitlines()[0] for reason in explained.break_reasons]
    assert (explained.graph_count, explained.graph_break_count, reasons) == (1, 0, [])


def test_head_training_graph_compiles_with_inductor():
    """The box branches add a (B, N, 2) centre reference to level 0; written as mmdet's in-place
    slice addition, the backward kernel inductor generates for it on CPU does not compile."""
    head = build(VIDT, train=True).bbox_head
    states = torch.randn(len(head.reg_branches), 2, 5, head.embed_dims, requires_grad=True)
    references = [torch.rand(2, 5, 2, requires_grad=True)] + [
        torch.rand(2, 5, 4, requires_grad=True) for _ in range(len(head.reg_branches) - 1)]

    def outputs_and_grads(forward):
        logits, boxes = forward(states, references)
        inputs = [states, *references]
        return [logits, boxes, *torch.autograd.grad((logits.sum() + boxes.sum()), inputs)]

    eager = outputs_and_grads(head)
    compiled = outputs_and_grads(torch.compile(head, backend='inductor'))
    for got, want in zip(compiled, eager, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def smooth_relu(input: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """GELU in ReLU's place (its signature, ``nn.ReLU`` calls it): no kink at 0."""
    return torch.nn.functional.gelu(input)


@pytest.mark.slow
@pytest.mark.parametrize('backend', ['aot_eager', 'inductor'])
@pytest.mark.parametrize('config', [VIDT, VIDT_PLUS, NANO])
def test_compiled_training_forward_and_gradients_match_eager(config, backend, monkeypatch):
    """The compiled training graph (default options) gives eager's outputs and gradients.

    The models' ReLUs (decoder FFN, box MLPs, EPFF) are made smooth for this check: a
    pre-activation within float32 rounding of 0 takes the other side of the kink when the
    compiled kernels round differently, which moves every gradient upstream of it by that unit's
    whole contribution. Both sides are valid subgradients, not a compile error. Measured on pico
    ViDT+ (even with ``aot_eager``, eager kernels in another layout): one of 25,600 layer-0 FFN
    pre-activations at 6e-8 flipped under a 7e-7 forward difference, and ``det_token``'s gradient
    moved by 1.7 of 1.7e3.
    """
    monkeypatch.setattr(torch.nn.functional, 'relu', smooth_relu)
    model = build(config, train=True)
    inputs, samples = synthetic_detection_batch(2, 96, 96, 4)

    def outputs_and_grads(forward):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # same dropout draws
        outputs = forward(inputs, samples, mode='tensor')
        sum(o.float().sum() for o in outputs if isinstance(o, torch.Tensor)).backward()
        return ([o for o in outputs if isinstance(o, torch.Tensor)],
                [p.grad.clone() for p in model.parameters() if p.grad is not None])

    eager_out, eager_grads = outputs_and_grads(model)
    # fallback_random: inductor draws dropout / drop-path masks with eager's generator
    with torch._inductor.config.patch(fallback_random=True):
        compiled_out, compiled_grads = outputs_and_grads(torch.compile(model, backend=backend))
    # normwise: reordered float32 reductions move single elements of a gradient by a few 1e-6
    # of the tensor's largest (eager float32 is as far from float64)
    names = [f'output {i}' for i in range(len(eager_out))] + [
        name for name, p in model.named_parameters() if p.grad is not None]
    for name, got, want in zip(names, compiled_out + compiled_grads, eager_out + eager_grads,
                               strict=True):
        error, scale = (got - want).abs().max().item(), want.abs().max().item()
        assert error <= 1e-4 * scale + 1e-6, f'{name}: off by {error:.3g} (largest {scale:.3g})'


@pytest.mark.slow
def test_mmengine_compile_switch_trains(shapes_root, tmp_path):
    """mmengine's ``compile`` switch (it compiles ``train_step``) trains ViDT with inductor.

    ``dynamic=False``: the images differ in size, and torch 2.11's inductor fails to lower the
    dynamic-shape graph it recompiles for the second size (it cannot order the symbolic strides
    of the Swin patch maps' channels-last view: ``64*(...) < 64``)."""
    output = run_tool(python_tool('train.py', REPO_ROOT / VIDT, '--work-dir', tmp_path,
                                  '--cfg-options', 'compile.dynamic=False',
                                  'train_dataloader.dataset.indices=4',
                                  'train_dataloader.batch_size=2', 'train_cfg.max_epochs=1',
                                  'train_cfg.val_interval=10'),
                      cwd=shapes_root, timeout=900)
    assert 'Model has been "compiled"' in output and 'Epoch(train) [1][2/2]' in output
