// Trainer checkpoints: the model, the optimiser state, the loader position and the random
// streams, written atomically; loading restores them all.
#include <filesystem>

#include "apps/common/trainer.h"
#include "engine/io/safetensors.h"
#include "engine/ops/random.h"

namespace vimoe::app {

namespace fs = std::filesystem;

void Trainer::save_checkpoint(const std::string& path) const {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [n, t] : model_->state_dict()) tensors.emplace_back("model." + n, t);
  for (const auto& [n, t] : optimizer_->state_dict()) tensors.emplace_back("optim." + n, t);
  const Generator::State g = default_generator().state();
  const data::LoaderPosition pos = train_loader_->position();
  io::save_safetensors(path, tensors,
                       {{"format", "vimoe-checkpoint-1"},
                        {"config", to_json(cfg_).dump()},
                        {"model", model_->config().dump()},
                        {"step", std::to_string(step_)},
                        {"epoch", std::to_string(pos.epoch)},
                        {"batch", std::to_string(pos.batch)},
                        {"generator_seed", std::to_string(g.seed)},
                        {"generator_calls", std::to_string(g.calls)}});
}

void Trainer::load_checkpoint(const std::string& path) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(path);
  VIMOE_CHECK(f.metadata().count("format") && f.metadata().at("format") == "vimoe-checkpoint-1", path,
              ": not a vimoe training checkpoint");
  std::map<std::string, Tensor> model_state, optim_state;
  for (const std::string& n : f.names()) {
    if (n.rfind("model.", 0) == 0) model_state.emplace(n.substr(6), f.get(n));
    else if (n.rfind("optim.", 0) == 0) optim_state.emplace(n.substr(6), f.get(n));
  }
  model_->load_state_dict(model_state);
  optimizer_->load_state_dict(optim_state);
  const auto& meta = f.metadata();
  step_ = std::stoll(meta.at("step"));
  train_loader_->seek(std::stoll(meta.at("epoch")), std::stoll(meta.at("batch")));
  default_generator().set_state({std::stoull(meta.at("generator_seed")), std::stoull(meta.at("generator_calls"))});
  std::fprintf(stderr, "resumed %s at step %lld\n", path.c_str(), static_cast<long long>(step_));
}

}  // namespace vimoe::app
