// vimoe-train: fine-tune or train a ViT / ViMoE. See `vimoe-train --help`.
#include "apps/common/main_guard.h"
#include "apps/common/trainer.h"
#include "engine/cpu/host_allocator.h"

int main(int argc, char** argv) {
  vimoe::cpu::tune_host_allocator();
  CLI::App app{"vimoe-train: train a Vision Transformer or Vision Mixture-of-Experts"};
  vimoe::app::RunConfig cfg;
  vimoe::app::add_options(app, cfg);
  return vimoe::app::guarded_main("vimoe-train", [&] {
    CLI11_PARSE(app, argc, argv);
    vimoe::app::Trainer trainer(cfg);
    return trainer.run();
  });
}
