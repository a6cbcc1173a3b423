// cuda_host_shim.h: compile the kernels in this folder with g++ (C++20) and run them on the CPU.
//
// Force-included (g++ -include) in front of a .cu file, it supplies what CUDA C normally
// provides: the built-in index variables, the __global__/__device__/__shared__ qualifiers,
// __syncthreads(), the few device math functions the kernels use, atomicAdd, and a launcher
// that walks the grid. The point is to test the exact kernel text on a machine without a GPU,
// not speed: a block runs as one std::thread per CUDA thread, so keep test launches small.
//
// Execution model (the parts of CUDA's that the kernels may rely on):
//   * blocks run one after another, so function-static storage is a faithful __shared__;
//   * threads of a block run concurrently and meet at __syncthreads() (a std::barrier);
//   * a thread that returns leaves the barrier (arrive_and_drop), as exited threads stop
//     counting in CUDA, so an early `return` for out-of-range threads cannot deadlock.
// No warp-level behaviour is emulated: the kernels use no warp intrinsics.
#pragma once

#include <barrier>
#include <cmath>
#include <cstdint>
#include <math.h>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

// ---- qualifiers ---------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static  // one block at a time, so one copy per kernel is enough

// ---- built-in index variables -------------------------------------------------------------
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
using uint3 = dim3;

inline thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

// ---- device functions ---------------------------------------------------------------------
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }

namespace tg_host {
inline thread_local std::barrier<>* block_barrier = nullptr;  // this thread's block
inline std::mutex atomic_mutex;  // one lock for all atomics: correct, and slow is fine here
inline std::mutex launch_mutex;  // one launch at a time: __shared__ statics are per kernel
}  // namespace tg_host

inline void __syncthreads() { tg_host::block_barrier->arrive_and_wait(); }

inline float atomicAdd(float* address, float value) {
    std::lock_guard<std::mutex> lock(tg_host::atomic_mutex);
    const float old = *address;
    *address = old + value;
    return old;
}

// ---- the launcher -------------------------------------------------------------------------
namespace tg_host {

// Run kernel<<<grid, block>>>(args...) and return when every block has finished.
// One OS thread per CUDA thread of a block; the same threads then walk the blocks in order,
// meeting at `step` between blocks, whose completion step gives the next block a fresh
// __syncthreads barrier (threads that returned early dropped out of the old one).
template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, Args... args) {
    std::lock_guard<std::mutex> lock(launch_mutex);
    const unsigned nthreads = block.x * block.y * block.z;
    const unsigned long long nblocks = 1ull * grid.x * grid.y * grid.z;
    if (nthreads == 0 || nblocks == 0) return;

    std::optional<std::barrier<>> sync;
    sync.emplace(nthreads);
    auto fresh_barrier = [&]() noexcept { sync.emplace(nthreads); };
    std::barrier<decltype(fresh_barrier)> step(nthreads, fresh_barrier);

    auto cuda_thread = [&](unsigned t) {
        threadIdx = dim3(t % block.x, t / block.x % block.y, t / (block.x * block.y));
        blockDim = block;
        gridDim = grid;
        for (unsigned long long b = 0; b < nblocks; ++b) {
            blockIdx = dim3(b % grid.x, b / grid.x % grid.y, b / (1ull * grid.x * grid.y));
            block_barrier = &*sync;
            kernel(args...);
            sync->arrive_and_drop();
            step.arrive_and_wait();
        }
    };
    std::vector<std::jthread> threads;
    threads.reserve(nthreads);
    for (unsigned t = 0; t < nthreads; ++t) threads.emplace_back(cuda_thread, t);
}

}  // namespace tg_host
