// Python bindings of mmcv's multi-scale deformable attention CUDA functions, so that
// benchmark_msda.py can time mmcv's CUDA op without building all of mmcv: compiled together with
// mmcv's own ms_deform_attn_cuda.cu (from an mmcv release, see benchmark_msda.py --mmcv-csrc).
#include <torch/extension.h>

at::Tensor ms_deform_attn_cuda_forward(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                       const at::Tensor& level_start_index,
                                       const at::Tensor& sampling_loc,
                                       const at::Tensor& attn_weight, const int im2col_step);

void ms_deform_attn_cuda_backward(const at::Tensor& value, const at::Tensor& spatial_shapes,
                                  const at::Tensor& level_start_index,
                                  const at::Tensor& sampling_loc, const at::Tensor& attn_weight,
                                  const at::Tensor& grad_output, at::Tensor& grad_value,
                                  at::Tensor& grad_sampling_loc, at::Tensor& grad_attn_weight,
                                  const int im2col_step);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "mmcv's MSDA CUDA kernels (benchmark baseline)";
  m.def("forward", &ms_deform_attn_cuda_forward,
        "(value, spatial_shapes, level_start_index, sampling_loc, attn_weight, im2col_step)");
  m.def("backward", &ms_deform_attn_cuda_backward,
        "(value, spatial_shapes, level_start_index, sampling_loc, attn_weight, grad_output, "
        "grad_value, grad_sampling_loc, grad_attn_weight, im2col_step): fills the gradients");
}
