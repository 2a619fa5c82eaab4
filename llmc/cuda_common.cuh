/*
 cuda_common.cuh: what every GPU kernel header of the trainer shares.

   - error checks: cudaCheck / cublasCheck print ONE "error: ..." line naming the call site and the CUDA
     message, then exit(1) (utils.h's policy). cudaCheckLast() after every launch.
   - floatX: the storage type of parameters, gradients and activations (bf16). Accumulation is always fp32.
   - Packed128<T>: 16 bytes of T moved with one vector load/store (x128 = 8 bf16, f128 = 4 floats), with
     cache-hint variants (cs = streaming, read/written once; cg = bypass L1).
   - warp and block reductions. All of them combine values in a FIXED order (xor butterfly, then warp 0 over
     the per-warp results in warp order), so a kernel that uses them gives bit-identical results run to run.
   - two-stage deterministic sums: a fixed grid writes one fp32 partial per block, one block adds the partials
     in block order (global_norm.cuh, the loss sum).
   - stochastic rounding fp32 -> bf16 driven by a stateless integer hash of (element index, seed): the result
     depends only on the value, the index and the seed, never on scheduling, so it is deterministic.
*/
#pragma once

#include <stdio.h>
#include <stdint.h>
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include "utils.h"

// ----------------------------------------------------------------------------------------------------------
// error checking

static inline void cuda_check_(cudaError_t err, const char* what, const char* file, int line) {
    if (err != cudaSuccess) fail("CUDA: %s (%s) at %s:%d in %s", cudaGetErrorString(err), cudaGetErrorName(err), file, line, what);
}
#define cudaCheck(call) cuda_check_((call), #call, __FILE__, __LINE__)
// after a kernel launch: catches bad launch configurations at once (asynchronous faults surface at the next sync)
#define cudaCheckLast() cuda_check_(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

// free that tolerates NULL and checks
#define cudaFreeCheck(pp) do { if (*(pp) != NULL) { cudaCheck(cudaFree(*(pp))); *(pp) = NULL; } } while (0)

// cudaMalloc that fails with a readable message (how much was asked, how much is free)
static inline void* cuda_malloc_or_fail_(size_t bytes, const char* what, const char* file, int line) {
    void* p = NULL;
    cudaError_t err = cudaMalloc(&p, bytes == 0 ? 16 : bytes);
    if (err != cudaSuccess) {
        (void)cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        fail("out of GPU memory allocating %s: %.2f GiB asked, %.2f of %.2f GiB free (%s:%d); try a smaller -b",
             what, bytes / 1073741824.0, free_b / 1073741824.0, total_b / 1073741824.0, file, line);
    }
    return p;
}
#define cudaMallocOrFail(bytes, what) cuda_malloc_or_fail_((bytes), (what), __FILE__, __LINE__)

// ----------------------------------------------------------------------------------------------------------
// storage type

typedef __nv_bfloat16 floatX;
#define FLOATX_BYTES 2

static inline int ceil_div(int a, int b) { return (a + b - 1) / b; }
static inline size_t ceil_div_sz(size_t a, size_t b) { return (a + b - 1) / b; }

// ----------------------------------------------------------------------------------------------------------
// Packed128: 16 bytes as an array of T

template <class T>
struct alignas(16) Packed128 {
    static constexpr int size = 16 / sizeof(T);
    T v[size];

    __device__ __forceinline__ Packed128() {}
    __device__ __forceinline__ explicit Packed128(int4 bits) { memcpy(v, &bits, 16); }
    __device__ __forceinline__ static Packed128 constant(T value) {
        Packed128 r;
#pragma unroll
        for (int k = 0; k < size; k++) r.v[k] = value;
        return r;
    }
    __device__ __forceinline__ static Packed128 zeros() {
        int4 z = make_int4(0, 0, 0, 0);
        return Packed128(z);
    }
    __device__ __forceinline__ T& operator[](int k) { return v[k]; }
    __device__ __forceinline__ const T& operator[](int k) const { return v[k]; }
    __device__ __forceinline__ int4 bits() const {
        int4 b;
        memcpy(&b, v, 16);
        return b;
    }
};

typedef Packed128<floatX> x128; // 8 bf16
typedef Packed128<float> f128;  // 4 floats

// plain 16-byte load / store (address must be 16-byte aligned)
template <class T>
__device__ __forceinline__ Packed128<T> load128(const T* p) { return Packed128<T>(*reinterpret_cast<const int4*>(p)); }
// streaming load: data read once, do not keep it in cache
template <class T>
__device__ __forceinline__ Packed128<T> load128cs(const T* p) { return Packed128<T>(__ldcs(reinterpret_cast<const int4*>(p))); }
// load through L2 only (data another block of the same kernel may have just written is NOT covered by this)
template <class T>
__device__ __forceinline__ Packed128<T> load128cg(const T* p) { return Packed128<T>(__ldcg(reinterpret_cast<const int4*>(p))); }
template <class T>
__device__ __forceinline__ void store128(T* p, Packed128<T> x) { *reinterpret_cast<int4*>(p) = x.bits(); }
template <class T>
__device__ __forceinline__ void store128cs(T* p, Packed128<T> x) { __stcs(reinterpret_cast<int4*>(p), x.bits()); }
template <class T>
__device__ __forceinline__ void store128cg(T* p, Packed128<T> x) { __stcg(reinterpret_cast<int4*>(p), x.bits()); }

// ----------------------------------------------------------------------------------------------------------
// reductions (fixed combination order)

__device__ __forceinline__ float warp_sum(float x) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) x += __shfl_xor_sync(0xffffffffu, x, off);
    return x;
}

__device__ __forceinline__ float warp_max(float x) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, off));
    return x;
}

// Sum over the whole block; every thread gets the result. blockDim.x must be a multiple of 32 and <= 1024.
// `scratch` is 32 floats of shared memory; the function synchronizes before reusing it, so it may be called
// several times in a row with the same scratch.
__device__ __forceinline__ float block_sum(float x, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    x = warp_sum(x);
    __syncthreads(); // previous users of scratch are done
    if (lane == 0) scratch[warp] = x;
    __syncthreads();
    float y = lane < nwarps ? scratch[lane] : 0.0f;
    return warp_sum(y);
}

__device__ __forceinline__ float block_max(float x, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    x = warp_max(x);
    __syncthreads();
    if (lane == 0) scratch[warp] = x;
    __syncthreads();
    float y = lane < nwarps ? scratch[lane] : -INFINITY;
    return warp_max(y);
}

// Stage 2 of a two-stage sum: one block adds n fp32 partials in a fixed order and writes (or adds) out[0].
// Each thread sums a fixed strided subset, then block_sum combines them in thread order.
__global__ void sum_partials_kernel(float* out, const float* partials, int n, int accumulate) {
    __shared__ float scratch[32];
    float acc = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) acc += partials[i];
    float total = block_sum(acc, scratch);
    if (threadIdx.x == 0) out[0] = accumulate ? out[0] + total : total;
}

// out[0] (=|+=) sum of in[0..n), one block, fixed order: e.g. the per-token losses -> one number
static inline void deterministic_sum(float* out, const float* in, int n, bool accumulate, cudaStream_t stream) {
    sum_partials_kernel<<<1, 1024, 0, stream>>>(out, in, n, accumulate ? 1 : 0);
    cudaCheck(cudaGetLastError());
}

// ----------------------------------------------------------------------------------------------------------
// stochastic rounding

// A 32-bit integer hash (xorshift-multiply rounds); good avalanche, cheap. Our own choice of constants.
__host__ __device__ __forceinline__ uint32_t hash_u32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

// random bits for element `idx` under `seed`
__host__ __device__ __forceinline__ uint32_t hash_idx_seed(uint32_t idx, uint32_t seed) {
    return hash_u32(idx ^ hash_u32(seed + 0x9e3779b9u));
}

// fp32 -> bf16, rounding up in magnitude with probability (dropped low 16 bits) / 2^16: unbiased on average.
// Adding 16 uniform random bits to the low half and truncating does exactly that. NaN/inf pass through.
__device__ __forceinline__ __nv_bfloat16 float_to_bf16_stochastic(float x, uint32_t random_bits) {
    uint32_t u = __float_as_uint(x);
    if ((u & 0x7f800000u) == 0x7f800000u) return __float2bfloat16_rn(x); // inf / nan
    u += (random_bits & 0xffffu);
    u &= 0xffff0000u;
    return __ushort_as_bfloat16((unsigned short)(u >> 16));
}

// host-side seed sequence (xorshift64*) for per-step, per-tensor stochastic rounding seeds
static inline uint32_t seed_next(uint64_t* state) {
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1Dull) >> 32);
}

// ----------------------------------------------------------------------------------------------------------
// device info used by launchers

typedef struct {
    int device;
    int num_sms;
    int max_threads_per_sm;
    size_t max_smem_optin; // per block, after cudaFuncSetAttribute
    size_t l2_bytes;
    int cc_major, cc_minor;
    char name[256];
} DeviceInfo;

static DeviceInfo g_device_info = {-1, 0, 0, 0, 0, 0, 0, {0}};

static inline const DeviceInfo* device_info() {
    if (g_device_info.device < 0) {
        int dev = 0;
        cudaCheck(cudaGetDevice(&dev));
        cudaDeviceProp p;
        cudaCheck(cudaGetDeviceProperties(&p, dev));
        g_device_info.device = dev;
        g_device_info.num_sms = p.multiProcessorCount;
        g_device_info.max_threads_per_sm = p.maxThreadsPerMultiProcessor;
        g_device_info.max_smem_optin = p.sharedMemPerBlockOptin;
        g_device_info.l2_bytes = (size_t)p.l2CacheSize;
        g_device_info.cc_major = p.major;
        g_device_info.cc_minor = p.minor;
        snprintf(g_device_info.name, sizeof(g_device_info.name), "%s", p.name);
    }
    return &g_device_info;
}
