#!/usr/bin/env bash
# The main job. Until the models and apps land, this builds the engine and runs its
# smallest end-to-end example: the autograd training test of a 2-layer MLP.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/test.sh -R ProofOfLife -V
