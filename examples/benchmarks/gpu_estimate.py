"""FLOPs and memory traffic of one energy + forces call, from the model's shapes (no GPU needed).

    python examples/benchmarks/gpu_estimate.py                    # euclidean2024, the suite's systems
    python examples/benchmarks/gpu_estimate.py --preset neurips2022

Counts per directed pair and per layer (forward), then doubles them for the backward pass that
gives the forces (input gradients only: as many multiply-adds as the forward matmuls). Memory
traffic counts the pair-sized float32 tensors each layer reads and writes (gathers, filter
outputs, products, messages and their gradients); atom-level work is small beside it and left
out. The GPU columns are lower bounds: FLOPs / peak and bytes / bandwidth, whichever is larger,
plus one kernel launch per operation. See GPU.md for what the numbers mean.
"""

import argparse

# (name, FP32 TFLOP/s without tensor cores, memory bandwidth TB/s), vendor data sheets
GPUS = (("A100 80GB", 19.5, 2.0), ("H100 SXM", 67.0, 3.35), ("RTX 4090", 82.6, 1.0))
LAUNCH_US = 5.0  # per CUDA kernel launch, eager PyTorch
KERNELS_PER_CALL = 600  # compute kernels per energy + forces call (torch.profiler on CPU, 3 layers, one pair chunk; views excluded)
SYSTEMS = (("aspirin", 21, 312), ("water-192", 192, 9_904), ("water-1536", 1536, 79_264), ("water-12000", 12_000, 619_250))


def per_pair(config):
    """(multiply-adds, bytes) per pair and layer, forward only."""
    f, k, r, s, n_l = config.features, config.num_radial, config.radial_hidden, config.sphc_hidden, len(config.degrees)
    m = sum(2 * l + 1 for l in config.degrees)
    filters = 2 * (k * r + r * f + n_l * s + s * f)  # feature and SPHC filter: radial and SPHC-distance MLPs
    attention = 6 * f + 4 * m  # q*w*k products, head sums, messages, SPHC messages
    # float32 pair tensors: hidden (2r) written and read, filter outputs (2f), five gathered
    # projections (5f), products (4f), messages (f + m), SPHC differences (m)
    floats = 2 * 2 * r + 2 * f + 5 * f + 4 * f + f + 2 * m
    return filters + attention, 4 * floats


def main():
    from so3k.config import model_config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="euclidean2024")
    args = parser.parse_args()
    config = model_config(args.preset, elements=["H", "C", "O"])
    macs, nbytes = per_pair(config)
    layers = config.layers
    # forward + backward (forces): about twice the forward; memory: gradients of each tensor too
    flops_pair = 2 * 2 * macs * layers
    bytes_pair = 3 * nbytes * layers
    print(f"{args.preset}: {macs:,} multiply-adds and {nbytes:,} bytes per pair and layer (forward); "
          f"{flops_pair / 1e3:.0f} kFLOP and {bytes_pair / 1e3:.0f} kB per pair per energy + forces call\n")
    head = "| system | atoms | pairs | GFLOP | GB moved | " + " | ".join(f"{g} (ms)" for g, _, _ in GPUS) + " |"
    print(head)
    print("|---|---:|---:|---:|---:|" + "---:|" * len(GPUS))
    for name, atoms, pairs in SYSTEMS:
        flops, moved = flops_pair * pairs, bytes_pair * pairs
        cells = []
        for _, tflops, bandwidth in GPUS:
            compute = max(flops / (tflops * 1e12), moved / (bandwidth * 1e12)) * 1e3
            cells.append(f"{compute + KERNELS_PER_CALL * LAUNCH_US * 1e-3:.1f} ({compute:.2f})")
        print(f"| {name} | {atoms:,} | {pairs:,} | {flops / 1e9:.2f} | {moved / 1e9:.2f} | " + " | ".join(cells) + " |")
    print(f"\nms with {KERNELS_PER_CALL} kernel launches of {LAUNCH_US} µs each; in brackets without them "
          "(the CUDA-graph bound).")


if __name__ == "__main__":
    main()
