#!/bin/bash
# emu_mpi.sh PROG ROOT WORKDIR — the CUDA program built with --mpi
# (tests/e2e/resume.mmnet, on the CPU emulation of the CUDA runtime with
# NCCL emulated over MPI) under mpirun with 2 ranks, one emulated GPU each,
# against one process at the same global batch: the same step kinds, and
# losses, learning speeds and last.ckpt within 1e-5 relative
# (tests/mpi_close.py); and two ranks on one GPU refused, naming the count.
set -u
PROG=$1; ROOT=$2; W=$3
rm -rf "$W"; mkdir -p "$W"
. "$(dirname "$0")/lib.sh"
command -v mpirun > /dev/null || { say "SKIP: no mpirun"; exit 77; }
MPI="mpirun --oversubscribe --allow-run-as-root"
RUN="train --quiet --epochs 2 --batch 19 --policy guided --warmup 0"   # 96 = 5 x 19 + 1: shards of 9-10, and an empty one
"$PROG" $RUN --out "$W/one" > "$W/one.err" 2>&1 || { bad "one process"; tail -5 "$W/one.err"; }
MMNET_EMU_DEVICES=2 timeout 300 $MPI -np 2 -x MMNET_EMU_DEVICES "$PROG" $RUN --out "$W/two" > "$W/two.err" 2>&1 \
    || { bad "2 ranks"; tail -5 "$W/two.err"; }
say "2 ranks: $(python3 "$ROOT/tests/mpi_close.py" "$W/one" "$W/two" 1e-5 2>&1 || bad "2 ranks on the emulated GPUs differ from one process")"
expect 1 "2 ranks on this machine but 1 GPU" timeout 120 $MPI -np 2 "$PROG" $RUN --out "$W/shared"
exit $fail
