// Multi-scale deformable attention on CUDA: forward and backward kernels.
//
// Layouts (contiguous): value (B, S, M, D); sampling_locations (B, Q, M, L, P, 2);
// attention_weights (B, Q, M, L, P); output (B, Q, M * D). An "item" is a (b, q, m) triple.
//
// Thread layout: a group of G consecutive lanes (G a power of two <= 32, so a group never spans
// two warps) serves one item. The D channels of a head are cut into vectors of VEC channels
// (16-byte loads: 4 x float32, 8 x float16/bfloat16, 2 x float64, or VEC = 1 when D or the
// pointers do not allow it); lane j of the group owns vectors j, j + G, ... (VPT vectors per
// pass, usually a single pass). No batch chunking: the whole (B, Q, M) range is one launch.
//
// Precision: value / output / grad_output keep their dtype; locations, weights and every sum are
// in the op-math type (float32 for float16/bfloat16/float32, float64 for float64).
//
// Backward: the gradients of an item's locations and weights are sums over its D channels; each
// lane computes its partial sums and the group adds them with warp shuffles, then lane 0 writes
// them: no atomics there. grad_value is a scatter (any query may hit any pixel) and uses atomic
// adds into a float32 (float64) buffer; on sm_90+ they are 16-byte vector atomics.
#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "../msda_common.h"

namespace mmvidt {
namespace msda {
namespace {

constexpr int kThreads = 256;  // a multiple of 32, so groups align with warps
constexpr unsigned kFullMask = 0xffffffffu;

template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T val[N];
};

// Adds v[0..N) to dst[0..N) atomically; dst is aligned to N elements. sm_90+ has 8- and
// 16-byte float atomics; elsewhere (and for odd N) the dangling `else` runs the scalar loop.
template <int N>
__device__ __forceinline__ void atomic_add(float* dst, const float (&v)[N]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if constexpr (N % 4 == 0) {
#pragma unroll
    for (int i = 0; i < N; i += 4) {
      atomicAdd(reinterpret_cast<float4*>(dst + i),
                make_float4(v[i], v[i + 1], v[i + 2], v[i + 3]));
    }
  } else if constexpr (N % 2 == 0) {
#pragma unroll
    for (int i = 0; i < N; i += 2) {
      atomicAdd(reinterpret_cast<float2*>(dst + i), make_float2(v[i], v[i + 1]));
    }
  } else
#endif
  {
#pragma unroll
    for (int i = 0; i < N; ++i) atomicAdd(dst + i, v[i]);
  }
}

template <int N>
__device__ __forceinline__ void atomic_add(double* dst, const double (&v)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) atomicAdd(dst + i, v[i]);
}

// Per-launch constants.
struct Params {
  int64_t num_items;  // B * Q * M
  int64_t num_value;  // S
  int num_heads, channels, num_queries, num_levels, num_points;
  int group_log2;     // G = 1 << group_log2 lanes per item
  int passes;         // ceil(D / (VEC * VPT * G))
};

template <typename scalar_t, int VEC, int VPT>
__global__ void __launch_bounds__(kThreads)
    msda_forward_kernel(const scalar_t* __restrict__ value, const int64_t* __restrict__ shapes,
                        const at::opmath_type<scalar_t>* __restrict__ locations,
                        const at::opmath_type<scalar_t>* __restrict__ weights,
                        scalar_t* __restrict__ output, const Params prm) {
  using acc_t = at::opmath_type<scalar_t>;
  using pack_t = Pack<scalar_t, VEC>;
  const int64_t thread = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  const int64_t item = thread >> prm.group_log2;
  if (item >= prm.num_items) return;  // no shuffles in the forward: leaving early is safe
  const int group = 1 << prm.group_log2;
  const int lane = static_cast<int>(thread & (group - 1));
  const int num_vecs = prm.channels / VEC;
  const int num_samples = prm.num_levels * prm.num_points;
  const int64_t b = item / (int64_t(prm.num_queries) * prm.num_heads);
  const int m = static_cast<int>(item % prm.num_heads);
  const int64_t row_stride = int64_t(prm.num_heads) * prm.channels;
  const scalar_t* head_value = value + b * prm.num_value * row_stride + m * prm.channels;
  const acc_t* loc = locations + item * num_samples * 2;
  const acc_t* attn = weights + item * num_samples;

  for (int pass = 0; pass < prm.passes; ++pass) {
    const int first_vec = pass * group * VPT + lane;  // this lane's vectors: first_vec + u * G
    acc_t acc[VPT][VEC];
#pragma unroll
    for (int u = 0; u < VPT; ++u) {
#pragma unroll
      for (int e = 0; e < VEC; ++e) acc[u][e] = acc_t(0);
    }
    int64_t level_start = 0;
    for (int l = 0; l < prm.num_levels; ++l) {
      const int height = static_cast<int>(shapes[2 * l]);
      const int width = static_cast<int>(shapes[2 * l + 1]);
      const scalar_t* level_value = head_value + level_start * row_stride;
      for (int p = 0; p < prm.num_points; ++p) {
        const int sample = l * prm.num_points + p;
        Corners<acc_t> c;
        if (!bilinear_corners(loc[2 * sample], loc[2 * sample + 1], height, width, c)) continue;
        const acc_t a = attn[sample];
#pragma unroll
        for (int k = 0; k < 4; ++k) {
          if (c.index[k] < 0) continue;
          const acc_t w = a * c.weight[k];
          const scalar_t* row = level_value + c.index[k] * row_stride;
#pragma unroll
          for (int u = 0; u < VPT; ++u) {
            const int vec = first_vec + u * group;
            if (vec >= num_vecs) continue;
            const pack_t pk = *reinterpret_cast<const pack_t*>(row + vec * VEC);
#pragma unroll
            for (int e = 0; e < VEC; ++e) acc[u][e] += w * static_cast<acc_t>(pk.val[e]);
          }
        }
      }
      level_start += int64_t(height) * width;
    }
#pragma unroll
    for (int u = 0; u < VPT; ++u) {
      const int vec = first_vec + u * group;
      if (vec >= num_vecs) continue;
      pack_t out;
#pragma unroll
      for (int e = 0; e < VEC; ++e) out.val[e] = static_cast<scalar_t>(acc[u][e]);
      *reinterpret_cast<pack_t*>(output + item * prm.channels + vec * VEC) = out;
    }
  }
}

template <typename scalar_t, int VEC, int VPT>
__global__ void __launch_bounds__(kThreads)
    msda_backward_kernel(const scalar_t* __restrict__ value, const int64_t* __restrict__ shapes,
                         const at::opmath_type<scalar_t>* __restrict__ locations,
                         const at::opmath_type<scalar_t>* __restrict__ weights,
                         const scalar_t* __restrict__ grad_output,
                         at::opmath_type<scalar_t>* __restrict__ grad_value,
                         at::opmath_type<scalar_t>* __restrict__ grad_locations,
                         at::opmath_type<scalar_t>* __restrict__ grad_weights, const Params prm) {
  using acc_t = at::opmath_type<scalar_t>;
  using pack_t = Pack<scalar_t, VEC>;
  const int64_t thread = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  // Lanes past the last item stay to the end: every lane of a warp must join the shuffles.
  const bool active = (thread >> prm.group_log2) < prm.num_items;
  const int64_t item = active ? (thread >> prm.group_log2) : 0;
  const int group = 1 << prm.group_log2;
  const int lane = static_cast<int>(thread & (group - 1));
  const int num_vecs = prm.channels / VEC;
  const int num_samples = prm.num_levels * prm.num_points;
  const int64_t b = item / (int64_t(prm.num_queries) * prm.num_heads);
  const int m = static_cast<int>(item % prm.num_heads);
  const int64_t row_stride = int64_t(prm.num_heads) * prm.channels;
  const int64_t head_offset = b * prm.num_value * row_stride + m * prm.channels;
  const acc_t* loc = locations + item * num_samples * 2;
  const acc_t* attn = weights + item * num_samples;

  for (int pass = 0; pass < prm.passes; ++pass) {
    const int first_vec = pass * group * VPT + lane;
    acc_t grad[VPT][VEC];
#pragma unroll
    for (int u = 0; u < VPT; ++u) {
      const int vec = first_vec + u * group;
      if (active && vec < num_vecs) {
        const pack_t pk =
            *reinterpret_cast<const pack_t*>(grad_output + item * prm.channels + vec * VEC);
#pragma unroll
        for (int e = 0; e < VEC; ++e) grad[u][e] = static_cast<acc_t>(pk.val[e]);
      } else {
#pragma unroll
        for (int e = 0; e < VEC; ++e) grad[u][e] = acc_t(0);
      }
    }
    int64_t level_start = 0;
    for (int l = 0; l < prm.num_levels; ++l) {
      const int height = static_cast<int>(shapes[2 * l]);
      const int width = static_cast<int>(shapes[2 * l + 1]);
      const int64_t level_offset = head_offset + level_start * row_stride;
      for (int p = 0; p < prm.num_points; ++p) {
        const int sample = l * prm.num_points + p;
        acc_t d_attn = 0, d_x = 0, d_y = 0;  // this lane's share of the channel sums
        Corners<acc_t> c;
        // Uniform over a group (same location); may differ between the groups of a warp.
        const bool hit =
            active && bilinear_corners(loc[2 * sample], loc[2 * sample + 1], height, width, c);
        const acc_t a = hit ? attn[sample] : acc_t(0);
        if (hit) {
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            if (c.index[k] < 0) continue;
            const int64_t row = level_offset + c.index[k] * row_stride;
            const acc_t w = a * c.weight[k];
            acc_t dot = 0;  // <grad_output, neighbour value> over this lane's channels
#pragma unroll
            for (int u = 0; u < VPT; ++u) {
              const int vec = first_vec + u * group;
              if (vec >= num_vecs) continue;
              const pack_t pk = *reinterpret_cast<const pack_t*>(value + row + vec * VEC);
              acc_t scattered[VEC];
#pragma unroll
              for (int e = 0; e < VEC; ++e) {
                dot += grad[u][e] * static_cast<acc_t>(pk.val[e]);
                scattered[e] = w * grad[u][e];
              }
              atomic_add<VEC>(grad_value + row + vec * VEC, scattered);
            }
            d_attn += c.weight[k] * dot;
            d_x += c.dweight_dx[k] * dot;
            d_y += c.dweight_dy[k] * dot;
          }
        }
        for (int offset = group >> 1; offset > 0; offset >>= 1) {
          d_attn += __shfl_xor_sync(kFullMask, d_attn, offset);
          d_x += __shfl_xor_sync(kFullMask, d_x, offset);
          d_y += __shfl_xor_sync(kFullMask, d_y, offset);
        }
        if (hit && lane == 0) {  // the single writer of this sample: plain stores
          const int64_t out = item * num_samples + sample;
          grad_weights[out] += d_attn;
          // x = loc_x * W - 0.5, so d/d loc_x = W * d/dx (same for y).
          grad_locations[2 * out] += a * width * d_x;
          grad_locations[2 * out + 1] += a * height * d_y;
        }
      }
      level_start += int64_t(height) * width;
    }
  }
}

// Launch geometry for one call.
struct Config {
  bool vectorised;  // VEC = 16 bytes of scalar_t, else VEC = 1
  int vpt;          // vectors per lane and pass: 1, or 2 for wide heads
  Params prm;
  int64_t blocks;
};

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

template <typename scalar_t>
Config make_config(const Sizes& s, bool pointers_aligned) {
  constexpr int kVec = 16 / sizeof(scalar_t);
  Config cfg;
  cfg.vectorised = pointers_aligned && s.channels % kVec == 0;
  const int vec = cfg.vectorised ? kVec : 1;
  const int num_vecs = static_cast<int>(s.channels / vec);
  cfg.vpt = num_vecs > 32 ? 2 : 1;
  const int lanes = std::min(32, (num_vecs + cfg.vpt - 1) / cfg.vpt);
  int group_log2 = 0;
  while ((1 << group_log2) < lanes) ++group_log2;
  const int group = 1 << group_log2;
  cfg.prm.num_items = s.batch * s.num_queries * s.num_heads;
  cfg.prm.num_value = s.num_value;
  cfg.prm.num_heads = static_cast<int>(s.num_heads);
  cfg.prm.channels = static_cast<int>(s.channels);
  cfg.prm.num_queries = static_cast<int>(s.num_queries);
  cfg.prm.num_levels = static_cast<int>(s.num_levels);
  cfg.prm.num_points = static_cast<int>(s.num_points);
  cfg.prm.group_log2 = group_log2;
  cfg.prm.passes = (num_vecs + group * cfg.vpt - 1) / (group * cfg.vpt);
  cfg.blocks = (cfg.prm.num_items * group + kThreads - 1) / kThreads;
  return cfg;
}

// Calls f(integral_constant<VEC>, integral_constant<VPT>) for the configuration chosen.
template <typename scalar_t, typename F>
void with_vector_sizes(const Config& cfg, F&& f) {
  constexpr int kVec = 16 / sizeof(scalar_t);
  using One = std::integral_constant<int, 1>;
  using Two = std::integral_constant<int, 2>;
  using Wide = std::integral_constant<int, kVec>;
  if (cfg.vectorised) {
    cfg.vpt == 2 ? f(Wide{}, Two{}) : f(Wide{}, One{});
  } else {
    cfg.vpt == 2 ? f(One{}, Two{}) : f(One{}, One{});
  }
}

// Before the device guard, which needs a CUDA device.
void check_cuda(const at::Tensor& value) {
  TORCH_CHECK(value.is_cuda(), "msda_cuda: tensors must be on a CUDA device, got ",
              value.device());
}

struct Prepared {
  Sizes s;
  at::Tensor value, shapes, locations, weights;
};

Prepared prepare(const at::Tensor& value, const at::Tensor& spatial_shapes,
                 const at::Tensor& sampling_locations, const at::Tensor& attention_weights) {
  const Sizes s = check_inputs(value, spatial_shapes, sampling_locations, attention_weights);
  TORCH_CHECK(s.num_queries < (int64_t(1) << 31) && s.channels < (int64_t(1) << 31),
              "msda_cuda: sizes too large");
  const at::ScalarType acc_type = at::toOpMathType(value.scalar_type());
  return {s, value.contiguous(), spatial_shapes.to(value.device(), at::kLong).contiguous(),
          sampling_locations.to(acc_type).contiguous(),
          attention_weights.to(acc_type).contiguous()};
}

}  // namespace

at::Tensor msda_forward_cuda(const at::Tensor& value, const at::Tensor& spatial_shapes,
                             const at::Tensor& sampling_locations,
                             const at::Tensor& attention_weights) {
  check_cuda(value);
  const c10::cuda::CUDAGuard guard(value.device());
  const Prepared in = prepare(value, spatial_shapes, sampling_locations, attention_weights);
  const Sizes& s = in.s;
  at::Tensor output =
      at::empty({s.batch, s.num_queries, s.num_heads * s.channels}, value.options());
  if (output.numel() == 0) return output;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, value.scalar_type(),
                                  "msda_forward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const Config cfg = make_config<scalar_t>(
        s, aligned16(in.value.data_ptr()) && aligned16(output.data_ptr()));
    with_vector_sizes<scalar_t>(cfg, [&](auto vec, auto vpt) {
      msda_forward_kernel<scalar_t, decltype(vec)::value, decltype(vpt)::value>
          <<<static_cast<unsigned>(cfg.blocks), kThreads, 0, stream>>>(
              in.value.data_ptr<scalar_t>(), in.shapes.data_ptr<int64_t>(),
              in.locations.data_ptr<acc_t>(), in.weights.data_ptr<acc_t>(),
              output.data_ptr<scalar_t>(), cfg.prm);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return output;
}

std::vector<at::Tensor> msda_backward_cuda(const at::Tensor& value,
                                           const at::Tensor& spatial_shapes,
                                           const at::Tensor& sampling_locations,
                                           const at::Tensor& attention_weights,
                                           const at::Tensor& grad_output) {
  check_cuda(value);
  const c10::cuda::CUDAGuard guard(value.device());
  const Prepared in = prepare(value, spatial_shapes, sampling_locations, attention_weights);
  const Sizes& s = in.s;
  TORCH_CHECK(grad_output.numel() == s.batch * s.num_queries * s.num_heads * s.channels,
              "msda_cuda: grad_output must be (B, Q, M * D), got ", grad_output.sizes());
  const at::Tensor grad_out = grad_output.to(value.scalar_type()).contiguous();
  // Accumulators in the op-math type; zero-filled since the kernel only adds.
  at::Tensor grad_value = at::zeros(value.sizes(), in.locations.options());
  at::Tensor grad_loc = at::zeros(in.locations.sizes(), in.locations.options());
  at::Tensor grad_attn = at::zeros(in.weights.sizes(), in.weights.options());
  if (grad_out.numel() > 0 && s.num_value > 0) {
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, value.scalar_type(),
                                    "msda_backward_cuda", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const Config cfg = make_config<scalar_t>(
          s, aligned16(in.value.data_ptr()) && aligned16(grad_out.data_ptr()));
      with_vector_sizes<scalar_t>(cfg, [&](auto vec, auto vpt) {
        msda_backward_kernel<scalar_t, decltype(vec)::value, decltype(vpt)::value>
            <<<static_cast<unsigned>(cfg.blocks), kThreads, 0, stream>>>(
                in.value.data_ptr<scalar_t>(), in.shapes.data_ptr<int64_t>(),
                in.locations.data_ptr<acc_t>(), in.weights.data_ptr<acc_t>(),
                grad_out.data_ptr<scalar_t>(), grad_value.data_ptr<acc_t>(),
                grad_loc.data_ptr<acc_t>(), grad_attn.data_ptr<acc_t>(), cfg.prm);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  }
  return {grad_value.to(value.scalar_type()), grad_loc, grad_attn};
}

}  // namespace msda
}  // namespace mmvidt
