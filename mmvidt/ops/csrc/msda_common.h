// Multi-scale deformable attention: pieces shared by the CPU and the CUDA kernels.
//
// Semantics (Deformable DETR, Zhu et al. 2021, Eq. 3): a sample at normalised (loc_x, loc_y) of a level of
// size H x W reads the pixel-centre coordinates x = loc_x * W - 0.5, y = loc_y * H - 0.5; it is
// skipped unless -1 < x < W and -1 < y < H, and each of its four bilinear neighbours outside the
// map contributes zero (grid_sample with padding_mode='zeros', align_corners=False).
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>

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

template <typename acc_t>
MSDA_HOST_DEVICE acc_t floor_value(acc_t v) {
#if defined(__CUDA_ARCH__)
  return floor(v);
#else
  return std::floor(v);
#endif
}

// Fills ``c`` and returns true when the sample touches the map (see the header comment).
template <typename acc_t>
MSDA_HOST_DEVICE bool bilinear_corners(acc_t loc_x, acc_t loc_y, int height, int width,
                                       Corners<acc_t>& c) {
  const acc_t x = loc_x * width - acc_t(0.5);
  const acc_t y = loc_y * height - acc_t(0.5);
  // Written as a negation so that NaN locations are skipped as well.
  if (!(x > acc_t(-1) && y > acc_t(-1) && x < acc_t(width) && y < acc_t(height))) {
    return false;
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
  return true;
}

// Sizes of one call, read from the (already validated) input tensors.
struct Sizes {
  int64_t batch, num_value, num_heads, channels, num_queries, num_levels, num_points;
};

// Checks the layout contract of the kernels (the Python API gives friendlier messages first) and
// returns the sizes. ``spatial_shapes`` (L, 2) int64 holds (H_l, W_l); levels are concatenated in
// ``value`` in that order, so their start offsets follow from the shapes.
inline Sizes check_inputs(const at::Tensor& value, const at::Tensor& spatial_shapes,
                          const at::Tensor& sampling_locations,
                          const at::Tensor& attention_weights) {
  TORCH_CHECK(value.dim() == 4, "msda: value must be (B, S, M, D), got ", value.sizes());
  TORCH_CHECK(spatial_shapes.dim() == 2 && spatial_shapes.size(1) == 2,
              "msda: spatial_shapes must be (L, 2), got ", spatial_shapes.sizes());
  Sizes s{value.size(0), value.size(1), value.size(2), value.size(3), 0,
          spatial_shapes.size(0), 0};
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
              "msda: value, sampling_locations and attention_weights must be on one device");
  TORCH_CHECK(at::isFloatingType(value.scalar_type()) &&
                  at::isFloatingType(sampling_locations.scalar_type()) &&
                  at::isFloatingType(attention_weights.scalar_type()),
              "msda: value, sampling_locations and attention_weights must be floating point");
  // Positions inside a level are 32-bit ints in the kernels.
  TORCH_CHECK(s.num_value < (int64_t(1) << 31), "msda: too many value positions: ", s.num_value);
  return s;
}

}  // namespace msda
}  // namespace mmvidt
