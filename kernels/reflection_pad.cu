// reflection_pad.cu: 2-D reflection padding (as in CycleGAN's generator) and its backward.
//
// Shapes: x, dx : (P, H, W) with P = N*C planes; y, dy : (P, OH, OW) with
// OH = top + H + bottom, OW = left + W + right; every pad < the size of its axis, so an
// index reflects at most once. Output row oh reads input row reflect(oh - top, H), where
// reflect(i, n) = -i for i < 0, 2(n-1) - i for i >= n, and i otherwise (the edge itself is
// not repeated); the same for columns.
//   forward   one thread per y element, a copy
//   backward  one thread per dx element, a gather: input row h receives output rows
//             top + h (always), top - h (h in [1, top]) and top + 2(H-1) - h (h in
//             [H-1-bottom, H-2]); the gradient sums the up to 3x3 (row, col) pairs.
// Launch: 1-D grid-stride loops, any 1-D grid and block.
// Bytes: forward reads 4*|x| (plus the reflected rims, from cache), writes 4*|y|; backward
// reads 4*|dy|, writes 4*|dx|.

__device__ __forceinline__ int reflect(int i, int n) {
    return i < 0 ? -i : (i >= n ? 2 * (n - 1) - i : i);
}

// The output positions (at most 3) along one axis that reflect onto input position i.
__device__ __forceinline__ int reflect_sources(int i, int n, int before, int out, int* src) {
    int count = 0;
    src[count++] = before + i;
    if (i >= 1 && i <= before) src[count++] = before - i;
    const int mirrored = before + 2 * (n - 1) - i;
    if (i <= n - 2 && mirrored < out) src[count++] = mirrored;
    return count;
}

extern "C" __global__ void reflection_pad2d_forward(const float* __restrict__ x,
                                                    float* __restrict__ y, int P, int H, int W,
                                                    int top, int left, int OH, int OW) {
    const int total = P * OH * OW;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        const int ow = i % OW;
        const int oh = i / OW % OH;
        const int p = i / (OW * OH);
        y[i] = x[(p * H + reflect(oh - top, H)) * W + reflect(ow - left, W)];
    }
}

extern "C" __global__ void reflection_pad2d_backward(const float* __restrict__ dy,
                                                     float* __restrict__ dx, int P, int H, int W,
                                                     int top, int left, int OH, int OW) {
    const int total = P * H * W;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        const int w = i % W;
        const int h = i / W % H;
        const int p = i / (W * H);
        int rows[3], cols[3];
        const int nr = reflect_sources(h, H, top, OH, rows);
        const int nc = reflect_sources(w, W, left, OW, cols);
        const float* dyp = dy + p * OH * OW;
        float sum = 0.0f;
        for (int a = 0; a < nr; ++a)
            for (int b = 0; b < nc; ++b) sum += dyp[rows[a] * OW + cols[b]];
        dx[i] = sum;
    }
}
