#include "models/options.h"

#include "models/gates.h"

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
  std::string gate = gate_name(m.gate), balance = balance_name(m.balance);
  r.get("gate", gate);
  m.gate = parse_gate(gate);
  r.get("gate_dim", m.gate_dim);
  r.get("balance", balance);
  m.balance = parse_balance(balance);
  r.get("renormalize", m.renormalize);
  r.get("capacity_factor", m.capacity_factor);
  r.get("bpr", m.bpr);
  r.get("single_router", m.single_router);
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
  VIMOE_CHECK(m.aux_alpha >= 0, r.model(), ": aux_alpha must be >= 0, found ", m.aux_alpha);
  VIMOE_CHECK(m.gate_dim >= 0, r.model(), ": gate_dim must be >= 0 (0: the gate's default), found ", m.gate_dim);
  VIMOE_CHECK(m.capacity_factor >= 0, r.model(), ": capacity_factor must be >= 0 (0: dropless), found ",
              m.capacity_factor);
  VIMOE_CHECK(!m.bpr || m.capacity_factor > 0, r.model(), ": bpr (Batch Prioritized Routing) orders rows for a "
              "capacity; it needs capacity_factor > 0");
  VIMOE_CHECK(!m.single_router || m.routing == RoutingLevel::Image, r.model(), ": single_router (one per-image "
              "router for every MoE layer) needs image routing, found token routing");
  if (r.has("last")) m.blocks = last_blocks(blocks, last);
  return m;
}

nlohmann::json moe_to_json(const MoEConfig& m) {
  return {{"experts", m.experts},
          {"top_k", m.top_k},
          {"shared_expert", m.shared_expert},
          {"routing", m.routing == RoutingLevel::Image ? "image" : "token"},
          {"aux_alpha", m.aux_alpha},
          {"balance", balance_name(m.balance)},
          {"gate", gate_name(m.gate)},
          {"gate_dim", m.gate_dim},
          {"renormalize", m.renormalize},
          {"capacity_factor", m.capacity_factor},
          {"bpr", m.bpr},
          {"single_router", m.single_router},
          {"blocks", m.blocks}};
}

}  // namespace vimoe::models
