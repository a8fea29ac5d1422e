#!/usr/bin/env bash
# Regenerates every shipped data set, from the repository root: `bash so3k/datasets/make.sh`.
# Needs the data extra (pip install -e '.[data]'). Each run writes <name>.provenance.json with
# the command, settings, software versions, wall time and statistics. Seeds make it reproducible.
set -euo pipefail
export OMP_NUM_THREADS=1
d=so3k/datasets
so3k data md --molecule aspirin --frames 1000 --seed 0 -o $d/aspirin.extxyz.xz --overwrite
so3k data md --molecule ethanol --frames 1000 --seed 0 -o $d/ethanol.extxyz.xz --overwrite
so3k data cumulene --frames 1500 --seed 0 -o $d/cumulene.extxyz.xz --overwrite
so3k data scan --seed 0 -o $d/cumulene-scan.extxyz.xz --overwrite
so3k data water --molecules 32 --frames 200 --seed 0 -o $d/water.extxyz.xz --overwrite
so3k data relabel $d/ethanol.extxyz.xz --every 16 -o $d/ethanol-dft.extxyz.xz --overwrite
