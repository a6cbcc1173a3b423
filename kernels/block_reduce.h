// block_reduce.h: sums over the threads of one block, through shared memory, no warp intrinsics.
//
// Included by the reduction kernels (bias_act.cu, batch_norm.cu, instance_norm.cu). The block
// is one-dimensional, its size a power of two no larger than TG_MAX_BLOCK (the Python launch
// geometry guarantees it). Every thread of the block must call these functions (they contain
// __syncthreads), and every thread gets the block's total back. The tree order is fixed, so a
// sum is bitwise reproducible from run to run.
#pragma once

#define TG_MAX_BLOCK 256

// Sum v over the block; smem holds at least blockDim.x floats.
__device__ __forceinline__ float block_sum(float v, float* smem) {
    const unsigned t = threadIdx.x;
    smem[t] = v;
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (t < half) smem[t] += smem[t + half];
        __syncthreads();
    }
    const float total = smem[0];
    __syncthreads();  // everyone has read smem[0] before the caller reuses smem
    return total;
}

// Two sums at once (one set of barriers for both): a and b are replaced by their totals.
__device__ __forceinline__ void block_sum2(float& a, float& b, float* smem_a, float* smem_b) {
    const unsigned t = threadIdx.x;
    smem_a[t] = a;
    smem_b[t] = b;
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (t < half) {
            smem_a[t] += smem_a[t + half];
            smem_b[t] += smem_b[t + half];
        }
        __syncthreads();
    }
    a = smem_a[0];
    b = smem_b[0];
    __syncthreads();
}
