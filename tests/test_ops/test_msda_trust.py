"""backend='auto' trusts a compiled backend only after it agreed with the reference: tested with
deliberately broken backends registered for the CPU."""
import re
import warnings

import pytest
import torch

from mmvidt.ops import (msda_backend_info, multi_scale_deformable_attn, register_msda_backend,
                        resolve_msda_backend)
from mmvidt.ops.msda_reference import msda_reference
from mmvidt.ops.msda_trust import check_msda_backend

from msda_inputs import make_inputs, registry_snapshot


@pytest.fixture(autouse=True)
def restore_registry():
    """Each test registers its own CPU backend; put back the real one and its verdicts."""
    with registry_snapshot():
        yield


class GradScale(torch.autograd.Function):
    """Identity forward; backward multiplied by ``scale``."""

    @staticmethod
    def forward(ctx, tensor, scale):
        ctx.scale = scale
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def reference_counting(calls):

    def backend(value, shapes, locations, weights):
        calls.append(value.dtype)
        return msda_reference(value, shapes, locations, weights)

    return backend


def wrong_output(value, shapes, locations, weights):
    return msda_reference(value, shapes, locations, weights) * 1.01


def wrong_location_gradient(value, shapes, locations, weights):
    return msda_reference(value, shapes, GradScale.apply(locations, -1.0), weights)


def nan_as_zero(value, shapes, locations, weights):
    """What the CPU kernel used to do: skip NaN locations instead of propagating them."""
    return msda_reference(value, shapes, locations.nan_to_num(-10.0, -10.0, -10.0), weights)


def no_kernel_image(value, shapes, locations, weights):
    raise RuntimeError('CUDA error: no kernel image is available for execution on the device\n'
                       'details on the next line')


def wrong_dtype(value, shapes, locations, weights):
    return msda_reference(value, shapes, locations, weights).double()


def broken_for_bfloat16(value, shapes, locations, weights):
    out = msda_reference(value, shapes, locations, weights)
    return out * 2 if value.dtype == torch.bfloat16 else out


@pytest.mark.parametrize('dtype', [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_the_reference_passes_its_own_check(dtype):
    assert check_msda_backend(msda_reference, 'cpu', dtype) is None


@pytest.mark.parametrize('backend, expected', [
    (wrong_output, r'^output max abs error'),
    (wrong_location_gradient, r'^grad_sampling_locations max abs error'),
    (nan_as_zero, r'^output with non-finite inputs is NaN in \d+ element'),
    (no_kernel_image, r'^raised RuntimeError: CUDA error: no kernel image is available for '
     r'execution on the device$'),
    (wrong_dtype, r'^output is \(2, 6, 16\) torch.float64, expected \(2, 6, 16\) torch.float32'),
])
def test_each_kind_of_breakage_is_named(backend, expected):
    mismatch = check_msda_backend(backend, 'cpu', torch.float32)
    assert mismatch is not None and re.search(expected, mismatch), mismatch


def test_a_broken_backend_is_replaced_by_the_reference_with_one_warning():
    register_msda_backend('cpu', wrong_location_gradient, 'deliberately broken test kernel')
    value, shapes, start, locations, weights = make_inputs([(4, 5), (2, 3)])
    with pytest.warns(RuntimeWarning) as record:
        out = multi_scale_deformable_attn(value, shapes, start, locations, weights)
    assert len(record) == 1
    message = str(record[0].message)
    assert 'deliberately broken test kernel' in message
    assert 'grad_sampling_locations max abs error' in message
    assert "backend='auto' uses the PyTorch reference for cpu float32 tensors" in message
    torch.testing.assert_close(out, msda_reference(value, [(4, 5), (2, 3)], locations, weights))
    info = msda_backend_info()['cpu']
    assert info['checks']['float32']['backend'] == 'pytorch'
    assert 'grad_sampling_locations' in info['checks']['float32']['reason']
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # once per process and (device, dtype)
        multi_scale_deformable_attn(value, shapes, start, locations, weights)
    # asking for the kernel explicitly runs it, unchecked
    assert resolve_msda_backend('cpu', 'cpu', torch.float32) == 'cpu'


def test_a_good_backend_is_used_after_its_check():
    calls = []
    register_msda_backend('cpu', reference_counting(calls), 'counting test kernel')
    value, shapes, start, locations, weights = make_inputs([(4, 5), (2, 3)])
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        multi_scale_deformable_attn(value, shapes, start, locations, weights)
    checks = len(calls)
    assert checks >= 3  # the check ran it (two problems and the NaN case)...
    multi_scale_deformable_attn(value, shapes, start, locations, weights)
    assert len(calls) == checks + 1  # ...and 'auto' runs it, without checking again
    assert msda_backend_info()['cpu']['checks']['float32'] == {
        'backend': 'cpu',
        'reason': 'agrees with the PyTorch reference'
    }


def test_verdicts_are_per_dtype_and_reset_by_a_new_registration():
    register_msda_backend('cpu', broken_for_bfloat16, 'bf16-broken test kernel')
    assert resolve_msda_backend('auto', 'cpu', torch.float32) == 'cpu'
    with pytest.warns(RuntimeWarning, match='for bfloat16: output max abs error'):
        assert resolve_msda_backend('auto', 'cpu', torch.bfloat16) == 'pytorch'
    assert set(msda_backend_info()['cpu']['checks']) == {'float32', 'bfloat16'}
    register_msda_backend('cpu', msda_reference, 'fixed test kernel')
    assert msda_backend_info()['cpu']['checks'] == {}
    assert resolve_msda_backend('auto', 'cpu', torch.bfloat16) == 'cpu'


def test_the_check_leaves_the_callers_state_alone():
    """No global RNG draw, and it runs whatever the context: no_grad, inference mode, autocast,
    deterministic algorithms."""
    register_msda_backend('cpu', msda_reference, 'test kernel')
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    deterministic = torch.are_deterministic_algorithms_enabled()
    try:
        torch.use_deterministic_algorithms(True)
        with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16):
            assert resolve_msda_backend('auto', 'cpu', torch.float16) == 'cpu'
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(deterministic)
    assert torch.equal(torch.rand(3), expected_draw)


def test_compile_traces_the_choice_without_a_graph_break():
    """Under torch.compile the check runs eagerly (once) and the reference is traced instead of
    the broken kernel."""
    register_msda_backend('cpu', wrong_output, 'deliberately broken test kernel')
    value, shapes, start, locations, weights = make_inputs([(4, 5), (2, 3)])
    shape_list = [(4, 5), (2, 3)]

    def attend(v, loc, w):
        return multi_scale_deformable_attn(v, shape_list, None, loc, w)

    with pytest.warns(RuntimeWarning, match='deliberately broken test kernel'):
        out = torch.compile(attend, fullgraph=True, backend='eager')(value, locations, weights)
    torch.testing.assert_close(out, msda_reference(value, shape_list, locations, weights))
