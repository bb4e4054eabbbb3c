// Python bindings of the CUDA multi-scale deformable attention kernels (msda_cuda.cu).
#include <torch/extension.h>

#include <vector>

namespace mmvidt {
namespace msda {

at::Tensor msda_forward_cuda(const at::Tensor& value, const at::Tensor& spatial_shapes,
                             const at::Tensor& sampling_locations,
                             const at::Tensor& attention_weights);

std::vector<at::Tensor> msda_backward_cuda(const at::Tensor& value,
                                           const at::Tensor& spatial_shapes,
                                           const at::Tensor& sampling_locations,
                                           const at::Tensor& attention_weights,
                                           const at::Tensor& grad_output);

}  // namespace msda
}  // namespace mmvidt

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "mmvidt multi-scale deformable attention, CUDA kernels";
  m.def("msda_forward", &mmvidt::msda::msda_forward_cuda,
        "MSDA forward: (value, spatial_shapes, sampling_locations, attention_weights) -> output");
  m.def("msda_backward", &mmvidt::msda::msda_backward_cuda,
        "MSDA backward: (..., grad_output) -> [grad_value, grad_locations, grad_weights] "
        "(the last two in the op-math dtype)");
}
