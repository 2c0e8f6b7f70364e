// The configuration reader: a --config TOML file, checked strictly (toml++ parse, top-level
// keys only, each an option) and then read by CLI11 into typed options of every kind the
// programs use (integers, floats, strings, lists, flags). A CLI11 parse error is a rejection
// as a vimoe::Error is.
#include <CLI/CLI.hpp>

#include "apps/common/config_file.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = vimoe::fuzz::write_input(".toml", data, size);
  CLI::App app{"fuzz"};
  app.set_config("--config");
  int64_t experts = 0, epochs = 10;
  double lr = 1e-3, drop_path = 0;
  std::string model = "vit_tiny", dataset;
  std::vector<int64_t> moe_blocks;
  bool shared_expert = false;
  app.add_option("--experts", experts);
  app.add_option("--epochs", epochs);
  app.add_option("--lr", lr);
  app.add_option("--drop-path", drop_path);
  app.add_option("--model", model);
  app.add_option("--dataset", dataset);
  app.add_option("--moe-blocks", moe_blocks)->delimiter(',');
  app.add_flag("--shared-expert", shared_expert);
  vimoe::app::check_config_strictly(app);
  const char* argv[] = {"fuzz", "--config", path.c_str()};
  vimoe::fuzz::reject_only_with_vimoe_errors([&] {
    try {
      app.parse(3, argv);
    } catch (const CLI::ParseError&) {
    }
  });
  return 0;
}
