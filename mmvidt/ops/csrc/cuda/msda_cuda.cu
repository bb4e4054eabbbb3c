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
// adds: straight into grad_value for float32 / float64, into a float32 buffer for float16 /
// bfloat16, which covers a few heads at a time when the whole one would be large (the launch is
// repeated per head chunk), so that the peak memory stays close to grad_value's own size.
//
// Host side: the level shapes arrive as host integers and travel to the kernels inside the
// launch parameters, so a call never copies to or synchronises with the device.
//
// Supported toolchains: CUDA >= 11.8, any architecture from sm_60 (a CAS loop replaces the
// float64 atomicAdd that older ones lack). 8- / 16-byte vector float atomics need sm_90 and
// CUDA >= 12.1; elsewhere the scalar loop runs. MSDA_EMULATE_CUDA_BEFORE_12_1 and
// MSDA_EMULATE_BEFORE_SM60 force those fallbacks on any toolchain, so that CI compiles (and a GPU
// can run) the branches an old setup would take.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "../msda_common.h"

#if defined(__CUDACC_VER_MAJOR__) && \
    (__CUDACC_VER_MAJOR__ < 11 || (__CUDACC_VER_MAJOR__ == 11 && __CUDACC_VER_MINOR__ < 8))
#error "mmvidt's CUDA MSDA kernels need CUDA >= 11.8 (or build without them: MMVIDT_WITH_CUDA=0)"
#endif

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900 && !defined(MSDA_EMULATE_CUDA_BEFORE_12_1) && \
    (__CUDACC_VER_MAJOR__ > 12 || (__CUDACC_VER_MAJOR__ == 12 && __CUDACC_VER_MINOR__ >= 1))
#define MSDA_VECTOR_ATOMICS 1
#else
#define MSDA_VECTOR_ATOMICS 0
#endif

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ < 600 || defined(MSDA_EMULATE_BEFORE_SM60))
#define MSDA_CAS_DOUBLE_ATOMICS 1
#else
#define MSDA_CAS_DOUBLE_ATOMICS 0
#endif

namespace mmvidt {
namespace msda {
namespace {

constexpr int kThreads = 256;  // a multiple of 32, so groups align with warps
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kMaxLevels = 32;  // level shapes travel in the launch parameters

template <typename T, int N>
struct alignas(sizeof(T) * N) Pack {
  T val[N];
};

template <int N>
__device__ __forceinline__ void atomic_add_each(float* dst, const float (&v)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) atomicAdd(dst + i, v[i]);
}

// Adds v[0..N) to dst[0..N) atomically; dst is aligned to N elements.
template <int N>
__device__ __forceinline__ void atomic_add(float* dst, const float (&v)[N]) {
#if MSDA_VECTOR_ATOMICS
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
  } else {
    atomic_add_each(dst, v);
  }
#else
  atomic_add_each(dst, v);
#endif
}

__device__ __forceinline__ void atomic_add_double(double* dst, double v) {
#if MSDA_CAS_DOUBLE_ATOMICS
  // compare-and-swap on the 64-bit pattern until no other thread wrote in between
  unsigned long long* bits = reinterpret_cast<unsigned long long*>(dst);
  unsigned long long seen = *bits, expected;
  do {
    expected = seen;
    seen = atomicCAS(bits, expected, __double_as_longlong(v + __longlong_as_double(expected)));
  } while (seen != expected);
#else
  atomicAdd(dst, v);
#endif
}

template <int N>
__device__ __forceinline__ void atomic_add(double* dst, const double (&v)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) atomic_add_double(dst + i, v[i]);
}

// Per-launch constants.
struct Params {
  int64_t num_items;  // B * Q * heads of this launch
  int64_t num_value;  // S
  int num_heads, channels, num_queries, num_levels, num_points;
  int head_begin, head_count;  // backward: the heads of this launch
  int group_log2;     // G = 1 << group_log2 lanes per item
  int passes;         // ceil(D / (VEC * VPT * G))
  int height[kMaxLevels], width[kMaxLevels];
};

template <typename scalar_t, int VEC, int VPT>
__global__ void __launch_bounds__(kThreads)
    msda_forward_kernel(const scalar_t* __restrict__ value,
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
    bool poisoned = false;
    int64_t level_start = 0;
    for (int l = 0; l < prm.num_levels; ++l) {
      const int height = prm.height[l], width = prm.width[l];
      const scalar_t* level_value = head_value + level_start * row_stride;
      for (int p = 0; p < prm.num_points; ++p) {
        const int sample = l * prm.num_points + p;
        Corners<acc_t> c;
        const acc_t a = attn[sample];
        const Sample where = bilinear_corners(loc[2 * sample], loc[2 * sample + 1], height,
                                              width, c);
        if (where != Sample::kInside) {
          poisoned = poisoned || poisons_output(where, a);
          continue;
        }
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
      for (int e = 0; e < VEC; ++e) {
        out.val[e] = static_cast<scalar_t>(poisoned ? quiet_nan<acc_t>() : acc[u][e]);
      }
      *reinterpret_cast<pack_t*>(output + item * prm.channels + vec * VEC) = out;
    }
  }
}

// grad_value points at the accumulator of this launch's heads: (B, S, head_count, D) in the
// op-math type.
template <typename scalar_t, int VEC, int VPT>
__global__ void __launch_bounds__(kThreads)
    msda_backward_kernel(const scalar_t* __restrict__ value,
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
  const int64_t local = active ? (thread >> prm.group_log2) : 0;  // (b, q, head of this launch)
  const int group = 1 << prm.group_log2;
  const int lane = static_cast<int>(thread & (group - 1));
  const int num_vecs = prm.channels / VEC;
  const int num_samples = prm.num_levels * prm.num_points;
  const int64_t bq = local / prm.head_count;  // b * Q + q
  const int64_t b = bq / prm.num_queries;
  const int m_local = static_cast<int>(local % prm.head_count);
  const int m = prm.head_begin + m_local;
  const int64_t item = bq * prm.num_heads + m;  // index of (b, q, m) among all heads
  const int64_t row_stride = int64_t(prm.num_heads) * prm.channels;
  const int64_t grad_row_stride = int64_t(prm.head_count) * prm.channels;
  const int64_t head_offset = b * prm.num_value * row_stride + m * prm.channels;
  const int64_t grad_head_offset = b * prm.num_value * grad_row_stride + m_local * prm.channels;
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
      const int height = prm.height[l], width = prm.width[l];
      const int64_t level_offset = head_offset + level_start * row_stride;
      const int64_t grad_level_offset = grad_head_offset + level_start * grad_row_stride;
      for (int p = 0; p < prm.num_points; ++p) {
        const int sample = l * prm.num_points + p;
        acc_t d_attn = 0, d_x = 0, d_y = 0;  // this lane's share of the channel sums
        Corners<acc_t> c;
        // Uniform over a group (same location); may differ between the groups of a warp.
        const Sample where = active ? bilinear_corners(loc[2 * sample], loc[2 * sample + 1],
                                                       height, width, c)
                                    : Sample::kOutside;
        const acc_t a = active ? attn[sample] : acc_t(0);
        if (where == Sample::kNonFinite) {
          d_attn = d_x = d_y = quiet_nan<acc_t>();
        } else if (where == Sample::kInside) {
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            if (c.index[k] < 0) continue;
            const int64_t row = level_offset + c.index[k] * row_stride;
            const int64_t grad_row = grad_level_offset + c.index[k] * grad_row_stride;
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
              atomic_add<VEC>(grad_value + grad_row + vec * VEC, scattered);
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
        if (active && lane == 0) {  // the single writer of this sample: plain stores
          const int64_t out = item * num_samples + sample;
          grad_weights[out] += d_attn;
          // x = loc_x * W - 0.5, so d/d loc_x = W * d/dx (same for y); a sample off the map
          // gives a * W * 0, NaN for a non-finite weight as in the reference.
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
};

bool aligned16(const void* ptr) { return reinterpret_cast<uintptr_t>(ptr) % 16 == 0; }

int64_t num_blocks(const Params& prm) {
  return (prm.num_items * (int64_t(1) << prm.group_log2) + kThreads - 1) / kThreads;
}

template <typename scalar_t>
Config make_config(const Sizes& s, const Levels& levels, bool pointers_aligned) {
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
  cfg.prm.head_begin = 0;
  cfg.prm.head_count = static_cast<int>(s.num_heads);
  cfg.prm.group_log2 = group_log2;
  cfg.prm.passes = (num_vecs + group * cfg.vpt - 1) / (group * cfg.vpt);
  for (int64_t l = 0; l < s.num_levels; ++l) {
    cfg.prm.height[l] = levels.height[l];
    cfg.prm.width[l] = levels.width[l];
  }
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

struct Prepared {
  at::Tensor value, locations, weights;
};

// After the checks shared with the CPU kernel (check_inputs, check_grad_output: host integers
// only), the CUDA-specific ones and the layouts the kernels read.
Prepared prepare(const Sizes& s, const at::Tensor& value, const at::Tensor& sampling_locations,
                 const at::Tensor& attention_weights) {
  TORCH_CHECK(value.is_cuda(), "msda_cuda: tensors must be on a CUDA device, got ",
              value.device());
  TORCH_CHECK(s.num_levels <= kMaxLevels, "msda_cuda: at most ", kMaxLevels,
              " levels are supported, got ", s.num_levels);
  TORCH_CHECK(s.num_queries < (int64_t(1) << 31) && s.channels < (int64_t(1) << 31),
              "msda_cuda: sizes too large");
  const at::ScalarType acc_type = at::toOpMathType(value.scalar_type());
  return {value.contiguous(), sampling_locations.to(acc_type).contiguous(),
          attention_weights.to(acc_type).contiguous()};
}

}  // namespace

at::Tensor msda_forward_cuda(const at::Tensor& value, std::vector<int64_t> spatial_shapes,
                             const at::Tensor& sampling_locations,
                             const at::Tensor& attention_weights) {
  Levels levels;
  const Sizes s =
      check_inputs(value, spatial_shapes, sampling_locations, attention_weights, &levels);
  const Prepared in = prepare(s, value, sampling_locations, attention_weights);
  const c10::cuda::CUDAGuard guard(value.device());
  at::Tensor output =
      at::empty({s.batch, s.num_queries, s.num_heads * s.channels}, value.options());
  if (output.numel() == 0) return output;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, value.scalar_type(),
                                  "msda_forward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const Config cfg = make_config<scalar_t>(
        s, levels, aligned16(in.value.data_ptr()) && aligned16(output.data_ptr()));
    with_vector_sizes<scalar_t>(cfg, [&](auto vec, auto vpt) {
      msda_forward_kernel<scalar_t, decltype(vec)::value, decltype(vpt)::value>
          <<<static_cast<unsigned>(num_blocks(cfg.prm)), kThreads, 0, stream>>>(
              in.value.data_ptr<scalar_t>(), in.locations.data_ptr<acc_t>(),
              in.weights.data_ptr<acc_t>(), output.data_ptr<scalar_t>(), cfg.prm);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return output;
}

// Returns grad_value in value's dtype, the location and weight gradients in the op-math dtype.
// ``max_buffer_bytes`` bounds the float32 accumulator of a float16 / bfloat16 grad_value (the
// launch is repeated over chunks of heads when the whole one would be larger).
std::vector<at::Tensor> msda_backward_cuda(const at::Tensor& grad_output, const at::Tensor& value,
                                           std::vector<int64_t> spatial_shapes,
                                           const at::Tensor& sampling_locations,
                                           const at::Tensor& attention_weights,
                                           int64_t max_buffer_bytes) {
  Levels levels;
  const Sizes s =
      check_inputs(value, spatial_shapes, sampling_locations, attention_weights, &levels);
  check_grad_output(s, value, grad_output);
  const Prepared in = prepare(s, value, sampling_locations, attention_weights);
  at::globalContext().alertNotDeterministic("msda_backward_cuda (atomic adds into grad_value)");
  const c10::cuda::CUDAGuard guard(value.device());
  const at::Tensor grad_out = grad_output.to(value.scalar_type()).contiguous();
  const at::ScalarType acc_type = in.locations.scalar_type();
  const bool direct = acc_type == value.scalar_type();
  // float32 / float64: the kernel adds straight into grad_value, so it starts at zero.
  at::Tensor grad_value = direct ? at::zeros(value.sizes(), value.options())
                                 : at::empty(value.sizes(), value.options());
  at::Tensor grad_loc = at::zeros(in.locations.sizes(), in.locations.options());
  at::Tensor grad_attn = at::zeros(in.weights.sizes(), in.weights.options());
  if (grad_out.numel() == 0 || s.num_value == 0) {
    if (!direct) grad_value.zero_();
    return {grad_value, grad_loc, grad_attn};
  }
  // heads per launch: all of them unless a float32 accumulator of all would exceed the budget
  const int64_t bytes_per_head = s.batch * s.num_value * s.channels * 4;
  const int64_t heads_per_launch =
      direct ? s.num_heads
             : std::max<int64_t>(1, std::min<int64_t>(s.num_heads,
                                                      max_buffer_bytes / bytes_per_head));
  at::Tensor buffer;
  if (!direct) {
    buffer = at::empty({s.batch, s.num_value, heads_per_launch, s.channels},
                       value.options().dtype(acc_type));
  }
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, value.scalar_type(),
                                  "msda_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    Config cfg = make_config<scalar_t>(
        s, levels, aligned16(in.value.data_ptr()) && aligned16(grad_out.data_ptr()));
    for (int64_t head_begin = 0; head_begin < s.num_heads; head_begin += heads_per_launch) {
      const int64_t head_count = std::min(heads_per_launch, s.num_heads - head_begin);
      cfg.prm.head_begin = static_cast<int>(head_begin);
      cfg.prm.head_count = static_cast<int>(head_count);
      cfg.prm.num_items = s.batch * s.num_queries * head_count;
      at::Tensor target = grad_value;
      if (!direct) {  // the front of the buffer, laid out (B, S, head_count, D)
        target = buffer.view(-1)
                     .narrow(0, 0, s.batch * s.num_value * head_count * s.channels)
                     .view({s.batch, s.num_value, head_count, s.channels});
        target.zero_();
      }
      with_vector_sizes<scalar_t>(cfg, [&](auto vec, auto vpt) {
        msda_backward_kernel<scalar_t, decltype(vec)::value, decltype(vpt)::value>
            <<<static_cast<unsigned>(num_blocks(cfg.prm)), kThreads, 0, stream>>>(
                in.value.data_ptr<scalar_t>(), in.locations.data_ptr<acc_t>(),
                in.weights.data_ptr<acc_t>(), grad_out.data_ptr<scalar_t>(),
                target.data_ptr<acc_t>(), grad_loc.data_ptr<acc_t>(),
                grad_attn.data_ptr<acc_t>(), cfg.prm);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
      if (!direct) grad_value.narrow(2, head_begin, head_count).copy_(target);
    }
  });
  return {grad_value, grad_loc, grad_attn};
}

}  // namespace msda
}  // namespace mmvidt
