// bias_act.cu: fused bias + activation, its backward, and the bias gradient.
//
// Shapes: x, y, dy, dz : (N, C, S) contiguous, S = H*W for a conv output, S = 1 for a linear
// layer's (N, C) output; b, db : (C,).
//   forward   y  = act(x + b[c])                       one thread per element
//   backward  dz = dy * act'(y), from the saved output  one thread per element
//   bias grad db[c] = sum over n, s of dz[n, c, s]      one block per channel
// act: 0 identity, 1 relu, 2 leaky_relu(slope), 3 tanh, 4 sigmoid. The derivative is taken
// from y alone, which is exact for these activations when slope >= 0 (the caller checks).
//
// Launch: forward/backward a 1-D grid-stride loop, any 1-D grid and block; bias_grad grid = C
// blocks, block = a power of two <= TG_MAX_BLOCK.
// Bytes: forward reads 4*|x| + 4*C, writes 4*|y|; backward reads 8*|y|, writes 4*|y|;
// bias_grad reads 4*|dz|, writes 4*C.
#include "block_reduce.h"

__device__ __forceinline__ float activate(float v, int act, float slope) {
    switch (act) {
        case 1: return fmaxf(v, 0.0f);
        case 2: return v > 0.0f ? v : v * slope;
        case 3: return tanhf(v);
        case 4: return 1.0f / (1.0f + expf(-v));
        default: return v;
    }
}

// act'(x) written in terms of y = act(x).
__device__ __forceinline__ float activate_grad(float y, int act, float slope) {
    switch (act) {
        case 1: return y > 0.0f ? 1.0f : 0.0f;
        case 2: return y > 0.0f ? 1.0f : slope;
        case 3: return 1.0f - y * y;
        case 4: return y * (1.0f - y);
        default: return 1.0f;
    }
}

extern "C" __global__ void bias_act_forward(const float* __restrict__ x,
                                            const float* __restrict__ b, float* __restrict__ y,
                                            int N, int C, int S, int act, float slope) {
    const int total = N * C * S;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        const int c = i / S % C;
        y[i] = activate(x[i] + b[c], act, slope);
    }
}

extern "C" __global__ void bias_act_backward(const float* __restrict__ dy,
                                             const float* __restrict__ y,
                                             float* __restrict__ dz, int total, int act,
                                             float slope) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x)
        dz[i] = dy[i] * activate_grad(y[i], act, slope);
}

extern "C" __global__ void bias_grad(const float* __restrict__ dz, float* __restrict__ db,
                                     int N, int C, int S) {
    __shared__ float smem[TG_MAX_BLOCK];
    const int c = blockIdx.x;
    float sum = 0.0f;  // this thread's share of channel c, strided over (n, s)
    for (int j = threadIdx.x; j < N * S; j += blockDim.x) {
        const int n = j / S, s = j % S;
        sum += dz[(n * C + c) * S + s];
    }
    sum = block_sum(sum, smem);
    if (threadIdx.x == 0) db[c] = sum;
}
