// im2col.cu: unfold image patches into columns (im2col) and fold them back (col2im), NCHW.
//
// Layout, shared with the NumPy path of conv2d:
//   x    : (N, C, H, W)
//   cols : (N, C, KH, KW, OH, OW) contiguous, i.e. per sample a (C*KH*KW, OH*OW) matrix,
//   cols[n, c, kh, kw, oh, ow] = x[n, c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW]  (0 outside).
// OH and OW are passed in (not recomputed), so the caller can choose them, e.g. the input
// size of a transposed convolution with output_padding.
//
// Launch: 1-D grid-stride loops, one thread per output element (cols for im2col, x for
// col2im), any 1-D grid and block.
// Bytes: im2col writes 4*|cols| and reads x (4*|x| from DRAM, the KH*KW-fold reuse is served
// by the cache); col2im reads 4*|cols| and writes 4*|x|.
//
// col2im is a gather: the thread for x[n, c, h, w] finds the (kh, kw, oh, ow) whose window
// covers (h, w) and sums those columns itself, so no two threads write the same address and
// no atomics are needed.

extern "C" __global__ void im2col_kernel(const float* __restrict__ x, float* __restrict__ cols,
                                         int N, int C, int H, int W, int KH, int KW, int OH,
                                         int OW, int SH, int SW, int PH, int PW, int DH, int DW) {
    const int total = N * C * KH * KW * OH * OW;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        // Unravel i over (n, c, kh, kw, oh, ow), last axis fastest.
        int r = i;
        const int ow = r % OW; r /= OW;
        const int oh = r % OH; r /= OH;
        const int kw = r % KW; r /= KW;
        const int kh = r % KH; r /= KH;
        const int nc = r;  // n * C + c
        const int h = oh * SH - PH + kh * DH;
        const int w = ow * SW - PW + kw * DW;
        const bool inside = h >= 0 && h < H && w >= 0 && w < W;
        cols[i] = inside ? x[(nc * H + h) * W + w] : 0.0f;
    }
}

extern "C" __global__ void col2im_kernel(const float* __restrict__ cols, float* __restrict__ x,
                                         int N, int C, int H, int W, int KH, int KW, int OH,
                                         int OW, int SH, int SW, int PH, int PW, int DH, int DW) {
    const int total = N * C * H * W;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        const int w = i % W;
        const int h = i / W % H;
        const int nc = i / (W * H);
        const float* col = cols + nc * KH * KW * OH * OW;  // this (n, c)'s columns
        float sum = 0.0f;  // taps (kh, kw) whose window covers (h, w)
        for (int kh = 0; kh < KH; ++kh) {
            const int th = h + PH - kh * DH;  // = oh * SH if this tap reaches (h, .)
            if (th < 0 || th % SH != 0 || th / SH >= OH) continue;
            const int oh = th / SH;
            for (int kw = 0; kw < KW; ++kw) {
                const int tw = w + PW - kw * DW;
                if (tw < 0 || tw % SW != 0 || tw / SW >= OW) continue;
                sum += col[((kh * KW + kw) * OH + oh) * OW + tw / SW];
            }
        }
        x[i] = sum;
    }
}
