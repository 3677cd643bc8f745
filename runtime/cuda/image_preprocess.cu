// The image preprocessing kernel: one thread per output element (image, channel, y, x), reading
// the uint8 HWC source and writing planar NCHW in one pass. Compiled with -fmad=false so that the
// arithmetic is exactly the shared transform_pixel's (explicit fmaf only).
#include "runtime/cuda/image_preprocess_cuda.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace actorserve::cuda {
namespace {

template <class T>
__device__ __forceinline__ T convert(float v);
template <>
__device__ __forceinline__ float convert<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half convert<__half>(float v) { return __float2half_rn(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 convert<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

template <class T>
__global__ void preprocess_kernel(const uint8_t* __restrict__ in, image_transform t, long total,
                                  T* __restrict__ out) {
  long k = static_cast<long>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (k >= total)
    return;
  int c, x, y;
  long i;
  if (t.out_nhwc) { // consecutive threads write consecutive channels of a pixel
    c = static_cast<int>(k % 3);
    long rest = k / 3;
    x = static_cast<int>(rest % t.out_w);
    rest /= t.out_w;
    y = static_cast<int>(rest % t.out_h);
    i = rest / t.out_h;
  } else {
    x = static_cast<int>(k % t.out_w);
    long rest = k / t.out_w;
    y = static_cast<int>(rest % t.out_h);
    rest /= t.out_h;
    c = static_cast<int>(rest % 3);
    i = rest / 3;
  }
  const uint8_t* img = in + i * static_cast<long>(t.in_h) * t.in_w * 3;
  out[k] = convert<T>(transform_pixel(img, t, c, y, x)); // k == output_index(t, i, c, y, x)
}

std::string text(cudaError_t e) {
  return e == cudaSuccess ? std::string() : std::string(cudaGetErrorName(e)) + ": "
                                              + cudaGetErrorString(e);
}

} // namespace

std::string preprocess_images(const uint8_t* in, int n, const image_transform& t,
                              image_dtype dtype, void* out, void* stream) {
  long total = static_cast<long>(n) * 3 * t.out_h * t.out_w;
  if (total == 0)
    return {};
  constexpr int threads = 256;
  auto blocks = static_cast<unsigned>((total + threads - 1) / threads);
  auto s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case image_dtype::f32:
      preprocess_kernel<float><<<blocks, threads, 0, s>>>(in, t, total, static_cast<float*>(out));
      break;
    case image_dtype::f16:
      preprocess_kernel<__half><<<blocks, threads, 0, s>>>(in, t, total, static_cast<__half*>(out));
      break;
    case image_dtype::bf16:
      preprocess_kernel<__nv_bfloat16>
        <<<blocks, threads, 0, s>>>(in, t, total, static_cast<__nv_bfloat16*>(out));
      break;
  }
  return text(cudaGetLastError());
}

std::string preprocess_images_host(const uint8_t* in, int n, const image_transform& t,
                                   image_dtype dtype, void* out) {
  size_t in_bytes = static_cast<size_t>(n) * t.in_h * t.in_w * 3;
  size_t out_bytes = static_cast<size_t>(n) * 3 * t.out_h * t.out_w
                     * (dtype == image_dtype::f32 ? 4 : 2);
  uint8_t* d_in = nullptr;
  void* d_out = nullptr;
  std::string err = text(cudaMalloc(&d_in, in_bytes));
  if (err.empty())
    err = text(cudaMalloc(&d_out, out_bytes));
  if (err.empty())
    err = text(cudaMemcpy(d_in, in, in_bytes, cudaMemcpyHostToDevice));
  if (err.empty())
    err = preprocess_images(d_in, n, t, dtype, d_out, nullptr);
  if (err.empty())
    err = text(cudaMemcpy(out, d_out, out_bytes, cudaMemcpyDeviceToHost));
  cudaFree(d_in);
  cudaFree(d_out);
  return err;
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError(); // clear the sticky "no driver" state
    return 0;
  }
  return n;
}

} // namespace actorserve::cuda
