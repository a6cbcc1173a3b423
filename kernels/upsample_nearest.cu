// upsample_nearest.cu: nearest-neighbour upsampling by integer factors, and its backward.
//
// Shapes: x, dx : (P, H, W) with P = N*C planes; y, dy : (P, H*FH, W*FW).
//   forward   y[p, oh, ow] = x[p, oh / FH, ow / FW]            one thread per y element
//   backward  dx[p, h, w] = sum of dy over the FH x FW block  one thread per dx element
//             (a gather over the block that copied x[p, h, w], no atomics)
// Launch: 1-D grid-stride loops, any 1-D grid and block.
// Bytes: forward reads 4*|x| (each value FH*FW times, from cache) and writes 4*|y|; backward
// reads 4*|dy| and writes 4*|dx|.

extern "C" __global__ void upsample_nearest2d_forward(const float* __restrict__ x,
                                                      float* __restrict__ y, int P, int H, int W,
                                                      int FH, int FW) {
    const int OH = H * FH, OW = W * FW;
    const int total = P * OH * OW;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        const int ow = i % OW;
        const int oh = i / OW % OH;
        const int p = i / (OW * OH);
        y[i] = x[(p * H + oh / FH) * W + ow / FW];
    }
}

extern "C" __global__ void upsample_nearest2d_backward(const float* __restrict__ dy,
                                                       float* __restrict__ dx, int P, int H,
                                                       int W, int FH, int FW) {
    const int OW = W * FW;
    const int total = P * H * W;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        const int w = i % W;
        const int ph = i / W;  // p * H + h
        const float* block = dy + (ph * FH) * OW + w * FW;  // row h*FH of plane p, column w*FW
        float sum = 0.0f;
        for (int a = 0; a < FH; ++a)
            for (int b = 0; b < FW; ++b) sum += block[a * OW + b];
        dx[i] = sum;
    }
}
