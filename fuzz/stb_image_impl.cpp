// stb_image compiled into the fuzz build from Debian's header (libstb-dev), so the decoder
// the image reader calls carries the fuzzer's coverage and the sanitizers' checks.
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
