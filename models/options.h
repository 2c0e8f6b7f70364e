// Reading a model's JSON options (models/factory.h) strictly: every key is parsed with an
// error that names the model, the key and what was expected, and a key the model does not
// know is an error listing the keys it does, so a misspelt option never passes silently.
#pragma once
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "models/config.h"

namespace vimoe::models {

class OptionReader {
 public:
  // `options` must be a JSON object (or null: no options).
  OptionReader(std::string model, const nlohmann::json& options);

  // Sets `out` from the key when present; returns whether it was.
  template <typename T>
  bool get(const std::string& key, T& out) {
    known_.insert(key);
    if (!j_.contains(key) || j_.at(key).is_null()) return false;
    try {
      j_.at(key).get_to(out);
    } catch (const nlohmann::json::exception&) {
      VIMOE_FAIL(model_, ": option \"", key, "\" has the wrong type: ", j_.at(key).dump());
    }
    return true;
  }
  bool has(const std::string& key) const { return j_.contains(key) && !j_.at(key).is_null(); }
  // A key the model accepts but ignores (a field of the stored configuration it derives).
  void allow(const std::string& key) { known_.insert(key); }
  const nlohmann::json& json() const { return j_; }
  const std::string& model() const { return model_; }
  // Throws when a key was never asked for.
  void finish() const;

 private:
  std::string model_;
  nlohmann::json j_;
  std::set<std::string> known_;
};

// The "moe" object of a model's options: experts, top_k, shared_expert, routing ("image" or
// "token"), aux_alpha, balance ("switch", "importance_load", "none"), gate ("linear",
// "cosine", "l2") and gate_dim, renormalize (default false), capacity_factor (0: dropless)
// and bpr, single_router (image routing only), and where the MoE layers go, by exactly one of
//   "blocks": [i, ...]   block indices counted over all stages from 0;
//   "last": L            the last L blocks;
//   "placement": name    a named placement that `place` resolves for the family (returns the
//                        blocks, or throws naming the placements the family has).
// `blocks` is the model's number of blocks. Absent or experts 0: a dense model.
template <typename Place>
MoEConfig read_moe(OptionReader& parent, int64_t blocks, Place&& place);
MoEConfig read_moe_fields(OptionReader& r, int64_t blocks, std::string& placement);  // all but the placement
nlohmann::json moe_to_json(const MoEConfig& m);

template <typename Place>
MoEConfig read_moe(OptionReader& parent, int64_t blocks, Place&& place) {
  nlohmann::json j;
  parent.get("moe", j);
  OptionReader r(parent.model() + " moe", j);
  std::string placement;
  MoEConfig m = read_moe_fields(r, blocks, placement);
  if (!placement.empty()) m.blocks = place(placement);
  for (int64_t b : m.blocks)
    VIMOE_CHECK(b >= 0 && b < blocks, parent.model(), ": MoE block ", b, " is outside the model's blocks 0..",
                blocks - 1);
  return m;
}

}  // namespace vimoe::models
