// Multi-scale deformable attention on the CPU: forward and backward, parallelised with ATen's
// OpenMP thread pool (at::parallel_for).
//
// Layouts (all contiguous): value (B, S, M, D); sampling_locations (B, Q, M, L, P, 2);
// attention_weights (B, Q, M, L, P); output (B, Q, M * D). One "item" is a (b, q, m) triple:
// its output row, locations and weights are contiguous, and row ``item`` of the output is the
// D channels of head m.
//
// Precision: value / output / grad_output stay in their dtype (float64, float32, float16 or
// bfloat16); locations and weights are used in, and every sum is accumulated in, the op-math type
// (float64 for float64, float32 otherwise).
//
// Backward without races. grad_attention_weights and grad_sampling_locations of an item depend
// on that item only, so pass 1 runs over items like the forward. grad_value is a scatter: two
// queries can hit the same pixel. Pass 2 therefore splits grad_value into disjoint slices
// (b, m, channel chunk of one cache line) and gives each slice to one task, which walks every
// query of that (b, m) in order: no two tasks write the same element (nor the same cache line),
// no atomics, no per-thread copies of grad_value (a reduced-precision backward accumulates one
// slice at a time in float32), and the summation order is fixed, so the backward is
// deterministic. The price is recomputing the bilinear corners once per chunk.
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <torch/extension.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "../msda_common.h"

namespace mmvidt {
namespace msda {
namespace {

// Work per parallel_for grain: about at::internal::GRAIN_SIZE multiply-adds.
int64_t grain_for(int64_t work_per_item) {
  return std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(1, work_per_item));
}

// Calls visit(l, index_in_level, weight) for every in-map bilinear corner of every sample of
// one item, weight = attention weight x bilinear weight: the traversal shared by the forward
// gather and the grad_value scatter. Returns whether a sample poisons the item's output
// (msda_common.h); those samples visit nothing.
template <typename acc_t, typename Visit>
inline bool for_each_weighted_corner(const Levels& levels, int64_t L, int64_t P,
                                     const acc_t* loc, const acc_t* attn, Visit&& visit) {
  bool poisoned = false;
  for (int64_t l = 0; l < L; ++l) {
    for (int64_t p = 0; p < P; ++p) {
      const int64_t sample = l * P + p;
      Corners<acc_t> c;
      const Sample where = bilinear_corners(loc[2 * sample], loc[2 * sample + 1],
                                            levels.height[l], levels.width[l], c);
      if (where != Sample::kInside) {
        poisoned = poisoned || poisons_output(where, attn[sample]);
        continue;
      }
      for (int k = 0; k < 4; ++k) {
        if (c.index[k] >= 0) visit(l, c.index[k], attn[sample] * c.weight[k]);
      }
    }
  }
  return poisoned;
}

template <typename scalar_t>
void forward_kernel(const Sizes& s, const Levels& levels, const scalar_t* value,
                    const at::opmath_type<scalar_t>* locations,
                    const at::opmath_type<scalar_t>* weights, scalar_t* output) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t D = s.channels, L = s.num_levels, P = s.num_points;
  const int64_t row_stride = s.num_heads * D;  // between consecutive positions in S
  const int64_t num_items = s.batch * s.num_queries * s.num_heads;
  at::parallel_for(0, num_items, grain_for(L * P * 4 * D), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> acc(D);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / (s.num_queries * s.num_heads), m = item % s.num_heads;
      const acc_t* loc = locations + item * L * P * 2;
      const acc_t* attn = weights + item * L * P;
      std::fill(acc.begin(), acc.end(), acc_t(0));
      const bool poisoned =
          for_each_weighted_corner(levels, L, P, loc, attn, [&](int64_t l, int64_t index,
                                                                acc_t w) {
            const scalar_t* v =
                value + (b * s.num_value + levels.start[l] + index) * row_stride + m * D;
            for (int64_t d = 0; d < D; ++d) acc[d] += w * static_cast<acc_t>(v[d]);
          });
      if (poisoned) std::fill(acc.begin(), acc.end(), quiet_nan<acc_t>());
      scalar_t* out = output + item * D;
      for (int64_t d = 0; d < D; ++d) out[d] = static_cast<scalar_t>(acc[d]);
    }
  });
}

// Pass 1: gradients of the locations and weights, one item at a time.
template <typename scalar_t>
void backward_locations_weights(const Sizes& s, const Levels& levels, const scalar_t* value,
                                const at::opmath_type<scalar_t>* locations,
                                const at::opmath_type<scalar_t>* weights,
                                const scalar_t* grad_output, at::opmath_type<scalar_t>* grad_loc,
                                at::opmath_type<scalar_t>* grad_attn) {
  using acc_t = at::opmath_type<scalar_t>;
  const int64_t D = s.channels, L = s.num_levels, P = s.num_points;
  const int64_t row_stride = s.num_heads * D;
  const int64_t num_items = s.batch * s.num_queries * s.num_heads;
  at::parallel_for(0, num_items, grain_for(L * P * 4 * D), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> grad(D);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / (s.num_queries * s.num_heads), m = item % s.num_heads;
      const acc_t* loc = locations + item * L * P * 2;
      const acc_t* attn = weights + item * L * P;
      for (int64_t d = 0; d < D; ++d) grad[d] = static_cast<acc_t>(grad_output[item * D + d]);
      for (int64_t l = 0; l < L; ++l) {
        const scalar_t* level_value = value + (b * s.num_value + levels.start[l]) * row_stride +
                                      m * D;
        for (int64_t p = 0; p < P; ++p) {
          const int64_t sample = l * P + p;
          acc_t d_attn = 0, d_x = 0, d_y = 0;
          Corners<acc_t> c;
          const Sample where = bilinear_corners(loc[2 * sample], loc[2 * sample + 1],
                                                levels.height[l], levels.width[l], c);
          if (where == Sample::kNonFinite) {
            d_attn = d_x = d_y = quiet_nan<acc_t>();
          } else if (where == Sample::kInside) {
            for (int k = 0; k < 4; ++k) {
              if (c.index[k] < 0) continue;
              const scalar_t* v = level_value + c.index[k] * row_stride;
              acc_t dot = 0;  // <grad_output, neighbour value>
              for (int64_t d = 0; d < D; ++d) dot += grad[d] * static_cast<acc_t>(v[d]);
              d_attn += c.weight[k] * dot;
              d_x += c.dweight_dx[k] * dot;
              d_y += c.dweight_dy[k] * dot;
            }
          }
          grad_attn[item * L * P + sample] = d_attn;
          // x = loc_x * W - 0.5, so d/d loc_x = W * d/dx.
          grad_loc[(item * L * P + sample) * 2] = attn[sample] * levels.width[l] * d_x;
          grad_loc[(item * L * P + sample) * 2 + 1] = attn[sample] * levels.height[l] * d_y;
        }
      }
    }
  });
}

// Pass 2: grad_value, each task owning the slice (b, :, m, chunk) of it (see the file comment).
// float32 / float64 values accumulate straight into grad_value; float16 / bfloat16 ones into a
// float32 buffer of the task's slice (S x chunk), converted when the task is done, so that no
// float32 copy of the whole grad_value is ever held.
template <typename scalar_t>
void backward_value(const Sizes& s, const Levels& levels,
                    const at::opmath_type<scalar_t>* locations,
                    const at::opmath_type<scalar_t>* weights, const scalar_t* grad_output,
                    scalar_t* grad_value) {
  using acc_t = at::opmath_type<scalar_t>;
  constexpr bool kDirect = std::is_same<acc_t, scalar_t>::value;
  const int64_t D = s.channels, L = s.num_levels, P = s.num_points, M = s.num_heads;
  const int64_t row_stride = M * D;
  const int64_t chunk = std::min<int64_t>(D, 64 / sizeof(acc_t));  // one cache line
  const int64_t num_chunks = (D + chunk - 1) / chunk;
  const int64_t num_tasks = s.batch * M * num_chunks;
  const int64_t work_per_task = s.num_queries * L * P * 4 * chunk;
  at::parallel_for(0, num_tasks, grain_for(work_per_task), [&](int64_t begin, int64_t end) {
    std::vector<acc_t> buffer(kDirect ? 0 : s.num_value * chunk);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t b = task / (M * num_chunks), m = (task / num_chunks) % M;
      const int64_t c0 = (task % num_chunks) * chunk, c1 = std::min(D, c0 + chunk);
      scalar_t* slice = grad_value + b * s.num_value * row_stride + m * D + c0;
      // position i, channel c0 + d of the slice lives at target + i * stride + d
      acc_t* target = kDirect ? reinterpret_cast<acc_t*>(slice) : buffer.data();
      const int64_t stride = kDirect ? row_stride : chunk;
      if (!kDirect) std::fill(buffer.begin(), buffer.end(), acc_t(0));
      for (int64_t q = 0; q < s.num_queries; ++q) {
        const int64_t item = (b * s.num_queries + q) * M + m;
        const acc_t* loc = locations + item * L * P * 2;
        const acc_t* attn = weights + item * L * P;
        const scalar_t* grad = grad_output + item * D + c0;
        for_each_weighted_corner(levels, L, P, loc, attn, [&](int64_t l, int64_t index, acc_t w) {
          acc_t* gv = target + (levels.start[l] + index) * stride;
          for (int64_t d = 0; d < c1 - c0; ++d) gv[d] += w * static_cast<acc_t>(grad[d]);
        });
      }
      if (!kDirect) {
        for (int64_t i = 0; i < s.num_value; ++i) {
          for (int64_t d = 0; d < c1 - c0; ++d) {
            slice[i * row_stride + d] = static_cast<scalar_t>(buffer[i * chunk + d]);
          }
        }
      }
    }
  });
}

// check_inputs has already put every tensor on value's device.
void check_cpu(const at::Tensor& value) {
  TORCH_CHECK(value.device().is_cpu(), "msda_cpu: tensors must be on the CPU, got ",
              value.device());
}

at::Tensor msda_forward(const at::Tensor& value, std::vector<int64_t> spatial_shapes,
                        const at::Tensor& sampling_locations,
                        const at::Tensor& attention_weights) {
  Levels levels;
  const Sizes s =
      check_inputs(value, spatial_shapes, sampling_locations, attention_weights, &levels);
  check_cpu(value);
  const at::ScalarType acc_type = at::toOpMathType(value.scalar_type());
  const at::Tensor value_c = value.contiguous();
  const at::Tensor loc = sampling_locations.to(acc_type).contiguous();
  const at::Tensor attn = attention_weights.to(acc_type).contiguous();
  at::Tensor output = at::empty({s.batch, s.num_queries, s.num_heads * s.channels},
                                value.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, value.scalar_type(),
                                  "msda_forward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    forward_kernel<scalar_t>(s, levels, value_c.data_ptr<scalar_t>(), loc.data_ptr<acc_t>(),
                             attn.data_ptr<acc_t>(), output.data_ptr<scalar_t>());
  });
  return output;
}

// Returns (grad_value in value's dtype, grad_sampling_locations and grad_attention_weights in
// the op-math type; the autograd formula casts those back to the inputs' dtypes).
std::vector<at::Tensor> msda_backward(const at::Tensor& grad_output, const at::Tensor& value,
                                      std::vector<int64_t> spatial_shapes,
                                      const at::Tensor& sampling_locations,
                                      const at::Tensor& attention_weights) {
  Levels levels;
  const Sizes s =
      check_inputs(value, spatial_shapes, sampling_locations, attention_weights, &levels);
  check_grad_output(s, value, grad_output);
  check_cpu(value);
  const at::ScalarType acc_type = at::toOpMathType(value.scalar_type());
  const at::Tensor value_c = value.contiguous();
  const at::Tensor loc = sampling_locations.to(acc_type).contiguous();
  const at::Tensor attn = attention_weights.to(acc_type).contiguous();
  const at::Tensor grad_out = grad_output.to(value.scalar_type()).contiguous();
  // float32 / float64 accumulate in place (zeros); reduced precision writes every element once.
  at::Tensor grad_value = acc_type == value.scalar_type()
                              ? at::zeros(value.sizes(), value.options())
                              : at::empty(value.sizes(), value.options());
  at::Tensor grad_loc = at::empty(loc.sizes(), loc.options());
  at::Tensor grad_attn = at::empty(attn.sizes(), attn.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, value.scalar_type(),
                                  "msda_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    backward_locations_weights<scalar_t>(s, levels, value_c.data_ptr<scalar_t>(),
                                         loc.data_ptr<acc_t>(), attn.data_ptr<acc_t>(),
                                         grad_out.data_ptr<scalar_t>(), grad_loc.data_ptr<acc_t>(),
                                         grad_attn.data_ptr<acc_t>());
    backward_value<scalar_t>(s, levels, loc.data_ptr<acc_t>(), attn.data_ptr<acc_t>(),
                             grad_out.data_ptr<scalar_t>(), grad_value.data_ptr<scalar_t>());
  });
  return {grad_value, grad_loc, grad_attn};
}

}  // namespace
}  // namespace msda
}  // namespace mmvidt

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "mmvidt multi-scale deformable attention, CPU kernels";
  m.def("msda_forward", &mmvidt::msda::msda_forward,
        "MSDA forward: (value, [H_0, W_0, H_1, ...], sampling_locations, attention_weights) -> "
        "output",
        py::arg("value"), py::arg("spatial_shapes"), py::arg("sampling_locations"),
        py::arg("attention_weights"));
  m.def("msda_backward", &mmvidt::msda::msda_backward,
        "MSDA backward: (grad_output, value, [H_0, W_0, ...], sampling_locations, "
        "attention_weights) -> [grad_value, grad_locations, grad_weights] (the last two in the "
        "op-math dtype)",
        py::arg("grad_output"), py::arg("value"), py::arg("spatial_shapes"),
        py::arg("sampling_locations"), py::arg("attention_weights"));
}
