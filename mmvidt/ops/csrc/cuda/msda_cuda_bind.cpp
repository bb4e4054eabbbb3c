// Python bindings of the CUDA multi-scale deformable attention kernels (msda_cuda.cu).
#include <torch/extension.h>

#include <vector>

namespace mmvidt {
namespace msda {

at::Tensor msda_forward_cuda(const at::Tensor& value, std::vector<int64_t> spatial_shapes,
                             const at::Tensor& sampling_locations,
                             const at::Tensor& attention_weights);

std::vector<at::Tensor> msda_backward_cuda(const at::Tensor& grad_output, const at::Tensor& value,
                                           std::vector<int64_t> spatial_shapes,
                                           const at::Tensor& sampling_locations,
                                           const at::Tensor& attention_weights,
                                           int64_t max_buffer_bytes);

}  // namespace msda
}  // namespace mmvidt

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "mmvidt multi-scale deformable attention, CUDA kernels";
  m.def("msda_forward", &mmvidt::msda::msda_forward_cuda,
        "MSDA forward: (value, [H_0, W_0, H_1, ...], sampling_locations, attention_weights) -> "
        "output",
        py::arg("value"), py::arg("spatial_shapes"), py::arg("sampling_locations"),
        py::arg("attention_weights"));
  m.def("msda_backward", &mmvidt::msda::msda_backward_cuda,
        "MSDA backward: (grad_output, value, [H_0, W_0, ...], sampling_locations, "
        "attention_weights) -> [grad_value, grad_locations, grad_weights] (the last two in the "
        "op-math dtype); max_buffer_bytes bounds the float32 accumulator of a float16 / bfloat16 "
        "grad_value",
        py::arg("grad_output"), py::arg("value"), py::arg("spatial_shapes"),
        py::arg("sampling_locations"), py::arg("attention_weights"),
        py::arg("max_buffer_bytes") = int64_t(64) << 20);
}
