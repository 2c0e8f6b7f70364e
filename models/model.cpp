#include "models/model.h"

#include <cmath>
#include <cstdio>
#include <map>

#include "models/gates.h"

namespace vimoe::models {

std::string ImageModel::load_pretrained(const std::string& path) {
  VIMOE_FAIL("model \"", config().value("name", std::string("?")), "\" has no importer for pretrained weights (",
             path, ")");
}

bool ImageModel::decays(const std::string& name, const Tensor& p) const {
  const bool is_bias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
  return p.dim() >= 2 && !is_bias;
}

std::vector<optim::ParamGroup> param_groups(const ImageModel& model, double weight_decay, double layer_decay) {
  const int64_t top = model.num_layers();
  std::map<std::pair<int64_t, bool>, optim::ParamGroup> groups;
  for (const auto& [name, p] : model.named_parameters()) {
    const int64_t layer = model.layer_of(name);
    VIMOE_CHECK(layer >= 0 && layer <= top, "param_groups: parameter ", name, " is in layer ", layer,
                ", outside 0..", top);
    const bool decay = model.decays(name, p);
    optim::ParamGroup& g = groups[{layer, decay}];
    g.lr_scale = std::pow(layer_decay, static_cast<double>(top - layer));
    g.weight_decay = decay ? weight_decay : 0.0;
    g.params.push_back(p);
  }
  std::vector<optim::ParamGroup> out;
  for (auto& [key, g] : groups) out.push_back(std::move(g));
  return out;
}

std::string describe_moe(const MoEConfig& m, const std::string& unit) {
  if (!m.enabled()) return "dense";
  std::string routing = unit == "images" ? "image" : unit == "tokens" ? "token" : "pixel";
  // The defaults (linear gate, switch loss, dropless, probabilities as they are) say nothing.
  std::string extra;
  if (m.shared_expert) extra += ", shared";
  if (m.single_router) extra += ", single router";
  if (m.gate != GateKind::Linear) extra += ", " + gate_name(m.gate) + " gate";
  if (m.renormalize) extra += ", renormalised";
  if (m.capacity_factor > 0) {
    char c[48];
    std::snprintf(c, sizeof c, ", capacity %g%s", m.capacity_factor, m.bpr ? " BPR" : "");
    extra += c;
  }
  if (m.balance != BalanceLoss::Switch) extra += ", balance " + balance_name(m.balance);
  return std::to_string(m.experts) + " experts (top-" + std::to_string(m.top_k) + ", " + routing + " routing" +
         extra + ") in " + std::to_string(m.blocks.size()) + " blocks";
}

}  // namespace vimoe::models
