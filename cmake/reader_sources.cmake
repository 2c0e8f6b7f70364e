# The engine and data sources the file readers (safetensors, IDX, CIFAR, image folders) need,
# CPU-only: what the sanitized reader tests (tests/CMakeLists.txt) and the fuzz targets
# (fuzz/CMakeLists.txt) compile with their own instrumentation. Paths are under VIMOE_ROOT,
# the repository root, which the includer sets. A link error naming an engine
# or data symbol there means this list needs its source.
set(VIMOE_READER_ENGINE_SOURCES
    io/safetensors.cpp tensor.cpp storage.cpp dtype.cpp shape.cpp autograd.cpp autocast.cpp
    profiler.cpp ops/common.cpp ops/elementwise.cpp ops/reduce.cpp
    cpu/copy.cpp cpu/elementwise.cpp cpu/reduce.cpp cpu/parallel.cpp
    cuda/allocator.cpp cuda/runtime.cpp)  # the CUDA plumbing's CPU-only stubs
list(TRANSFORM VIMOE_READER_ENGINE_SOURCES PREPEND ${VIMOE_ROOT}/engine/)
set(VIMOE_READER_DATA_SOURCES cifar.cpp dataset.cpp file_io.cpp idx.cpp image_folder.cpp)
list(TRANSFORM VIMOE_READER_DATA_SOURCES PREPEND ${VIMOE_ROOT}/data/)
