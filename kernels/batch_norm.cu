// batch_norm.cu: batch normalisation (Ioffe & Szegedy 2015) over (N, S) per channel, NCHW.
//
// Shapes: x, y, dy, dx : (N, C, S) contiguous with S = H*W (S = 1 for BatchNorm1d on (N, C));
// per-channel arrays mean, var, invstd, gamma, beta, sum_dy, sum_dy_xhat : (C,). M = N*S.
//   batch_norm_stats        mean = sum(x)/M;  var = sum((x-mean)^2)/M (biased, two-pass);
//                           invstd = 1/sqrt(var + eps)                     one block per channel
//   batch_norm_forward      y = gamma*(x-mean)*invstd + beta               one thread per element
//                           (eval mode: the caller passes running mean and its invstd)
//   batch_norm_backward_reduce  sum_dy = sum(dy), sum_dy_xhat = sum(dy*xhat), one fused pass;
//                           these are also dbeta and dgamma                one block per channel
//   batch_norm_backward_dx  dx = gamma*invstd*(dy - sum_dy/M - xhat*sum_dy_xhat/M)
//                                                                          one thread per element
// Launch: the per-channel kernels take grid = C, block = a power of two <= TG_MAX_BLOCK; the
// elementwise ones a 1-D grid-stride loop with any 1-D grid and block.
// Bytes: stats reads x twice (8*|x|); forward reads 4*|x|, writes 4*|y|; backward_reduce reads
// 8*|x|; backward_dx reads 8*|x| and writes 4*|x| (plus O(C) each).
#include "block_reduce.h"

extern "C" __global__ void batch_norm_stats(const float* __restrict__ x, float* __restrict__ mean,
                                            float* __restrict__ var, float* __restrict__ invstd,
                                            int N, int C, int S, float eps) {
    __shared__ float smem[TG_MAX_BLOCK];
    const int c = blockIdx.x;
    const int M = N * S;
    // Pass 1: the mean.
    float sum = 0.0f;
    for (int j = threadIdx.x; j < M; j += blockDim.x) sum += x[(j / S * C + c) * S + j % S];
    const float mu = block_sum(sum, smem) / M;
    // Pass 2: squared deviations from it (no cancellation, unlike E[x^2] - E[x]^2).
    float sq = 0.0f;
    for (int j = threadIdx.x; j < M; j += blockDim.x) {
        const float d = x[(j / S * C + c) * S + j % S] - mu;
        sq += d * d;
    }
    const float v = block_sum(sq, smem) / M;
    if (threadIdx.x == 0) {
        mean[c] = mu;
        var[c] = v;
        invstd[c] = rsqrtf(v + eps);
    }
}

extern "C" __global__ void batch_norm_forward(const float* __restrict__ x,
                                              const float* __restrict__ mean,
                                              const float* __restrict__ invstd,
                                              const float* __restrict__ gamma,
                                              const float* __restrict__ beta,
                                              float* __restrict__ y, int N, int C, int S) {
    const int total = N * C * S;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        const int c = i / S % C;
        y[i] = gamma[c] * (x[i] - mean[c]) * invstd[c] + beta[c];
    }
}

extern "C" __global__ void batch_norm_backward_reduce(
    const float* __restrict__ dy, const float* __restrict__ x, const float* __restrict__ mean,
    const float* __restrict__ invstd, float* __restrict__ sum_dy,
    float* __restrict__ sum_dy_xhat, int N, int C, int S) {
    __shared__ float smem_a[TG_MAX_BLOCK];
    __shared__ float smem_b[TG_MAX_BLOCK];
    const int c = blockIdx.x;
    const float mu = mean[c], is = invstd[c];
    float a = 0.0f, b = 0.0f;  // both sums in the same sweep over the channel
    for (int j = threadIdx.x; j < N * S; j += blockDim.x) {
        const int i = (j / S * C + c) * S + j % S;
        a += dy[i];
        b += dy[i] * (x[i] - mu) * is;
    }
    block_sum2(a, b, smem_a, smem_b);
    if (threadIdx.x == 0) {
        sum_dy[c] = a;
        sum_dy_xhat[c] = b;
    }
}

extern "C" __global__ void batch_norm_backward_dx(
    const float* __restrict__ dy, const float* __restrict__ x, const float* __restrict__ mean,
    const float* __restrict__ invstd, const float* __restrict__ gamma,
    const float* __restrict__ sum_dy, const float* __restrict__ sum_dy_xhat,
    float* __restrict__ dx, int N, int C, int S) {
    const int total = N * C * S;
    const float inv_m = 1.0f / (N * S);
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        const int c = i / S % C;
        const float xhat = (x[i] - mean[c]) * invstd[c];
        dx[i] = gamma[c] * invstd[c] * (dy[i] - sum_dy[c] * inv_m - xhat * sum_dy_xhat[c] * inv_m);
    }
}
