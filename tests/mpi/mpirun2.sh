#!/bin/sh
# Runs a program on 2 MPI ranks on this machine, as the tests do: under a timeout (so a hung test fails instead of
# hanging `make test`), allowed to run as root (containers and CI run as root), oversubscribed (2 ranks may share
# fewer cores), shared memory only (no network interface is probed), without the cross-memory-attach copy that
# container seccomp profiles block, and one thread per rank.
# usage: tests/mpi/mpirun2.sh <program> [args...]   (MPI_TEST_TIMEOUT: seconds, default 120)
exec timeout "${MPI_TEST_TIMEOUT:-120}" mpirun --allow-run-as-root --oversubscribe --bind-to none -np 2 \
    --mca btl self,vader --mca btl_vader_single_copy_mechanism none \
    -x STRATA_NUM_THREADS=1 -x OMP_NUM_THREADS=1 "$@"
