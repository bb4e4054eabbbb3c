// Multi-scale deformable attention: pieces shared by the CPU and the CUDA kernels.
//
// Semantics (Deformable DETR, Zhu et al., ICLR 2021, Eq. 3; see also the docstring of
// mmvidt/ops/multi_scale_deform_attn.py): a sample at normalised (loc_x, loc_y) of a level of
// size H x W reads the pixel-centre coordinates x = loc_x * W - 0.5, y = loc_y * H - 0.5; it
// touches the map when -1 < x < W and -1 < y < H, and each of its four bilinear neighbours
// outside the map contributes zero (grid_sample, padding_mode='zeros', align_corners=False).
//
// Non-finite input propagates as in the PyTorch reference: a sample whose location is NaN or
// infinite makes the output of its (b, q, m) NaN, and so does a sample off the map whose attention
// weight is not finite (the reference adds weight * 0 for it); such samples add nothing to
// grad_value, and their location gradient is NaN.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#if defined(__CUDACC__)
#define MSDA_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define MSDA_HOST_DEVICE inline
#endif

namespace mmvidt {
namespace msda {

// The four bilinear neighbours of one sample, in the order (y0, x0), (y0, x1), (y1, x0), (y1, x1).
template <typename acc_t>
struct Corners {
  int index[4];      // row-major position h * W + w inside the level, -1 when off the map
  acc_t weight[4];   // bilinear weight of each neighbour
  acc_t dweight_dx[4];  // d weight / d x (pixel units), for the location gradient
  acc_t dweight_dy[4];  // d weight / d y
};

// Where a sample falls.
enum class Sample { kOutside, kInside, kNonFinite };

template <typename acc_t>
MSDA_HOST_DEVICE acc_t floor_value(acc_t v) {
#if defined(__CUDA_ARCH__)
  return floor(v);
#else
  return std::floor(v);
#endif
}

template <typename acc_t>
MSDA_HOST_DEVICE bool is_finite(acc_t v) {
#if defined(__CUDA_ARCH__)
  return isfinite(v);
#else
  return std::isfinite(v);
#endif
}

template <typename acc_t>
MSDA_HOST_DEVICE acc_t quiet_nan() {
  return std::numeric_limits<acc_t>::quiet_NaN();
}

// Classifies a sample and, when it touches the map, fills ``c`` (see the header comment).
template <typename acc_t>
MSDA_HOST_DEVICE Sample bilinear_corners(acc_t loc_x, acc_t loc_y, int height, int width,
                                         Corners<acc_t>& c) {
  if (!is_finite(loc_x) || !is_finite(loc_y)) return Sample::kNonFinite;
  const acc_t x = loc_x * width - acc_t(0.5);
  const acc_t y = loc_y * height - acc_t(0.5);
  if (!(x > acc_t(-1) && y > acc_t(-1) && x < acc_t(width) && y < acc_t(height))) {
    return Sample::kOutside;
  }
  const acc_t x_floor = floor_value(x);
  const acc_t y_floor = floor_value(y);
  const int x0 = static_cast<int>(x_floor);
  const int y0 = static_cast<int>(y_floor);
  const acc_t lx = x - x_floor, ly = y - y_floor;  // fractional parts
  const acc_t hx = acc_t(1) - lx, hy = acc_t(1) - ly;
  const bool x0_in = x0 >= 0, x1_in = x0 + 1 < width;
  const bool y0_in = y0 >= 0, y1_in = y0 + 1 < height;
  c.index[0] = (y0_in && x0_in) ? y0 * width + x0 : -1;
  c.index[1] = (y0_in && x1_in) ? y0 * width + x0 + 1 : -1;
  c.index[2] = (y1_in && x0_in) ? (y0 + 1) * width + x0 : -1;
  c.index[3] = (y1_in && x1_in) ? (y0 + 1) * width + x0 + 1 : -1;
  c.weight[0] = hy * hx;
  c.weight[1] = hy * lx;
  c.weight[2] = ly * hx;
  c.weight[3] = ly * lx;
  c.dweight_dx[0] = -hy;
  c.dweight_dx[1] = hy;
  c.dweight_dx[2] = -ly;
  c.dweight_dx[3] = ly;
  c.dweight_dy[0] = -hx;
  c.dweight_dy[1] = -lx;
  c.dweight_dy[2] = hx;
  c.dweight_dy[3] = lx;
  return Sample::kInside;
}

// True when a sample that does not touch the map still poisons its output (header comment).
template <typename acc_t>
MSDA_HOST_DEVICE bool poisons_output(Sample where, acc_t attention) {
  return where == Sample::kNonFinite || (where == Sample::kOutside && !is_finite(attention));
}

// Sizes of one call, read from the (already validated) input tensors.
struct Sizes {
  int64_t batch, num_value, num_heads, channels, num_queries, num_levels, num_points;
};

// (H_l, W_l) and the start of each level in S, on the host: levels are concatenated in ``value``
// in order, so their start offsets follow from the shapes.
struct Levels {
  std::vector<int> height, width;
  std::vector<int64_t> start;
};

// The layout contract of the kernels, checked identically by the CPU and the CUDA bindings (the
// Python API checks the same first, with the same wording). ``spatial_shapes`` holds
// H_0, W_0, H_1, W_1, ... as host integers; nothing here reads device memory.
inline Sizes check_inputs(const at::Tensor& value, at::IntArrayRef spatial_shapes,
                          const at::Tensor& sampling_locations,
                          const at::Tensor& attention_weights, Levels* levels) {
  TORCH_CHECK(value.dim() == 4, "msda: value must be (B, S, M, D), got ", value.sizes());
  TORCH_CHECK(spatial_shapes.size() % 2 == 0 && !spatial_shapes.empty(),
              "msda: spatial_shapes must hold (H, W) for at least one level, got ",
              spatial_shapes);
  Sizes s{value.size(0), value.size(1), value.size(2), value.size(3), 0,
          static_cast<int64_t>(spatial_shapes.size() / 2), 0};
  TORCH_CHECK(sampling_locations.dim() == 6 && sampling_locations.size(0) == s.batch &&
                  sampling_locations.size(2) == s.num_heads &&
                  sampling_locations.size(3) == s.num_levels && sampling_locations.size(5) == 2,
              "msda: sampling_locations must be (B, Q, M, L, P, 2), got ",
              sampling_locations.sizes());
  s.num_queries = sampling_locations.size(1);
  s.num_points = sampling_locations.size(4);
  TORCH_CHECK(attention_weights.sizes() == sampling_locations.sizes().slice(0, 5),
              "msda: attention_weights must be (B, Q, M, L, P), got ", attention_weights.sizes());
  TORCH_CHECK(value.device() == sampling_locations.device() &&
                  value.device() == attention_weights.device(),
              "msda: value, sampling_locations and attention_weights must be on one device, got ",
              value.device(), ", ", sampling_locations.device(), " and ",
              attention_weights.device());
  TORCH_CHECK(at::isFloatingType(value.scalar_type()) &&
                  at::isFloatingType(sampling_locations.scalar_type()) &&
                  at::isFloatingType(attention_weights.scalar_type()),
              "msda: value, sampling_locations and attention_weights must be floating point, got ",
              value.scalar_type(), ", ", sampling_locations.scalar_type(), " and ",
              attention_weights.scalar_type());
  int64_t start = 0;
  for (int64_t l = 0; l < s.num_levels; ++l) {
    const int64_t h = spatial_shapes[2 * l], w = spatial_shapes[2 * l + 1];
    TORCH_CHECK(h > 0 && w > 0, "msda: spatial_shapes level ", l, " is (", h, ", ", w,
                "); every level needs H > 0 and W > 0");
    levels->height.push_back(static_cast<int>(h));
    levels->width.push_back(static_cast<int>(w));
    levels->start.push_back(start);
    start += h * w;
  }
  TORCH_CHECK(start == s.num_value, "msda: spatial_shapes cover ", start,
              " positions but value has S=", s.num_value);
  // Positions inside a level are 32-bit ints in the kernels.
  TORCH_CHECK(s.num_value < (int64_t(1) << 31), "msda: too many value positions: ", s.num_value);
  return s;
}

// grad_output of the backward: (B, Q, M * D) on value's device.
inline void check_grad_output(const Sizes& s, const at::Tensor& value,
                              const at::Tensor& grad_output) {
  TORCH_CHECK(grad_output.dim() == 3 && grad_output.size(0) == s.batch &&
                  grad_output.size(1) == s.num_queries &&
                  grad_output.size(2) == s.num_heads * s.channels,
              "msda: grad_output must be (B, Q, M * D) = (", s.batch, ", ", s.num_queries, ", ",
              s.num_heads * s.channels, "), got ", grad_output.sizes());
  TORCH_CHECK(grad_output.device() == value.device(), "msda: grad_output must be on ",
              value.device(), " like value, got ", grad_output.device());
  TORCH_CHECK(at::isFloatingType(grad_output.scalar_type()),
              "msda: grad_output must be floating point, got ", grad_output.scalar_type());
}

}  // namespace msda
}  // namespace mmvidt
