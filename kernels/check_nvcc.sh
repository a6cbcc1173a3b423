#!/usr/bin/env bash
# Compile every kernels/*.cu for sm_90 with nvcc, warnings as errors, into a throw-away folder.
# Exits non-zero on the first file that does not compile cleanly. Run by .ci/run.
# The files compile in parallel (they are independent); each one's output is printed if it fails.
# Without nvcc it says so and exits 0 (set TINYGAN_REQUIRE_NVCC=1 to make that an error).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v nvcc >/dev/null 2>&1; then
    echo "check_nvcc: nvcc not on PATH, kernels not compiled" >&2
    [ "${TINYGAN_REQUIRE_NVCC:-0}" = 1 ] && exit 1
    exit 0
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

pids=()
names=()
for cu in "$here"/*.cu; do
    name="$(basename "$cu" .cu)"
    nvcc -arch=sm_90 -std=c++17 -c -Werror all-warnings -Xcompiler -Wall,-Wextra \
        -I "$here" "$cu" -o "$out/$name.o" >"$out/$name.log" 2>&1 &
    pids+=("$!")
    names+=("$name")
done

status=0
for i in "${!pids[@]}"; do
    if wait "${pids[$i]}" && [ ! -s "$out/${names[$i]}.log" ]; then
        :
    else
        echo "check_nvcc: ${names[$i]}.cu failed:" >&2
        cat "$out/${names[$i]}.log" >&2
        status=1
    fi
done
[ "$status" -eq 0 ] && echo "check_nvcc: ${#names[@]} kernel files compile cleanly (sm_90)"
exit "$status"
