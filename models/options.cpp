#include "models/options.h"

namespace vimoe::models {

OptionReader::OptionReader(std::string model, const nlohmann::json& options)
    : model_(std::move(model)), j_(options.is_null() ? nlohmann::json::object() : options) {
  VIMOE_CHECK(j_.is_object(), model_, ": options must be a JSON object, found ", j_.dump());
}

void OptionReader::finish() const {
  std::string unknown, accepted;
  for (const auto& [key, value] : j_.items())
    if (!known_.count(key)) unknown += (unknown.empty() ? "" : ", ") + key;
  for (const std::string& k : known_) accepted += (accepted.empty() ? "" : ", ") + k;
  VIMOE_CHECK(unknown.empty(), model_, ": unknown option", unknown.find(',') == std::string::npos ? " " : "s ",
              unknown, " (this model takes: ", accepted, ")");
}

MoEConfig read_moe_fields(OptionReader& r, int64_t blocks, std::string& placement) {
  MoEConfig m;
  r.get("experts", m.experts);
  r.get("top_k", m.top_k);
  r.get("shared_expert", m.shared_expert);
  r.get("aux_alpha", m.aux_alpha);
  std::string routing = "image";
  r.get("routing", routing);
  VIMOE_CHECK(routing == "image" || routing == "token", r.model(), ": routing must be \"image\" or \"token\", found \"",
              routing, "\"");
  m.routing = routing == "image" ? RoutingLevel::Image : RoutingLevel::Token;
  int64_t last = 0;
  const int choices = r.get("blocks", m.blocks) + r.get("last", last) + r.get("placement", placement);
  r.finish();
  VIMOE_CHECK(m.experts >= 0, r.model(), ": experts must be >= 0 (0: dense), found ", m.experts);
  if (m.experts == 0) {
    VIMOE_CHECK(choices == 0 || (m.blocks.empty() && last == 0 && placement.empty()), r.model(),
                ": MoE blocks are given but experts is 0 (a dense model)");
    m.blocks.clear();
    placement.clear();
    return m;
  }
  VIMOE_CHECK(m.top_k >= 1 && m.top_k <= m.experts, r.model(), ": top_k must be between 1 and the number of experts (",
              m.experts, "), found ", m.top_k);
  VIMOE_CHECK(choices == 1, r.model(), ": an MoE model needs exactly one of blocks, last, placement; found ", choices);
  if (r.has("last")) m.blocks = last_blocks(blocks, last);
  return m;
}

nlohmann::json moe_to_json(const MoEConfig& m) {
  return {{"experts", m.experts},         {"top_k", m.top_k},
          {"shared_expert", m.shared_expert}, {"routing", m.routing == RoutingLevel::Image ? "image" : "token"},
          {"aux_alpha", m.aux_alpha},     {"blocks", m.blocks}};
}

}  // namespace vimoe::models
