#!/bin/bash
# The checks to run where a CUDA GPU is: the cuda and CUDA-graph tests (one
# line per test, so a cut run still says which passed), the search step on
# the GPU at batch 16 and 64, eager and replayed from CUDA graphs (side by
# side with the authors' code when AUTHORS_CODE names a checkout of
# jayaneetha/emoDARTS), a checkpoint's time on the device, and, with MAPS set
# to a feature cache of the paper's maps, one paper-preset fold end to end.
#
# A 15-minute lease does not hold everything: the paper fold's search alone
# took 8.6 minutes on an H200 (docs/benchmarks.md). Start the fold first in a
# call of its own (paper_fold.py resumes with the same --out on a warm
# machine), the tests and benchmarks after it.
#
#     bash benchmarks/gpu_checks.sh            # from the repository root
#     AUTHORS_CODE=../emoDARTS MAPS=results/features/emodb-mfcc-<key>.npy bash benchmarks/gpu_checks.sh
set -u
PYTHON=${PYTHON:-python3}
"$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')" || exit 1
"$PYTHON" -m pytest tests/test_cuda.py tests/test_graphed.py -v -p no:cacheprovider -rs
"$PYTHON" benchmarks/search_step.py --device cuda --batch-sizes 16 64 --second-order --repeats 3 \
  ${AUTHORS_CODE:+--authors-code "$AUTHORS_CODE"}
"$PYTHON" benchmarks/checkpoint.py --device cuda
if [ -n "${MAPS:-}" ]; then
  "$PYTHON" benchmarks/paper_fold.py --maps "$MAPS" --device cuda --out "${OUT_DIR:-paper-fold}" --no-progress
fi
