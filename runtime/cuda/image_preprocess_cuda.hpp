// The CUDA image preprocessing kernel's host interface (no CUDA or torch headers needed to call
// it). Built only where nvcc is found (ACTORSERVE_WITH_CUDA); see runtime/image_preprocess.hpp
// for the transform, which this computes bit for bit like the CPU implementation in fp32.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/image_transform.hpp"

namespace actorserve::cuda {

/// Enqueues the transform of `n` images on `stream` (a cudaStream_t): `in` is device memory
/// holding uint8 [n, in_h, in_w, 3], `out` device memory for [n, 3, out_h, out_w] of `dtype`.
/// Returns an empty string, or the CUDA error's text when the launch failed.
std::string preprocess_images(const uint8_t* in, int n, const image_transform& t,
                              image_dtype dtype, void* out, void* stream);

/// The same from and to host memory, synchronously (tests and tools): allocates, copies,
/// launches, copies back. Returns an empty string or the CUDA error's text.
std::string preprocess_images_host(const uint8_t* in, int n, const image_transform& t,
                                   image_dtype dtype, void* out);

/// Number of CUDA devices the runtime sees (0 when there is no driver or no device).
int device_count();

} // namespace actorserve::cuda
