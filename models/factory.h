// Models by name, as timm's create_model: a preset name and JSON options (a preset's fields
// overridden by name; each family's builder documents its keys and refuses unknown ones)
// give an ImageModel with its default PyTorch-style initialisation; call init_weights(seed)
// for the family's from-scratch recipe. Adding a model means a builder and a row in
// factory.cpp: no app changes.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/model.h"

namespace vimoe::models {

// Throws for an unknown name (listing the known ones) or bad options.
std::shared_ptr<ImageModel> create_model(const std::string& name, const nlohmann::json& options = {});
// From a model's config() (its "name" and fields): the same shape and parameter names.
std::shared_ptr<ImageModel> create_model_from_config(const nlohmann::json& config);

struct ModelEntry {
  std::string name, family, summary;
};
std::vector<ModelEntry> model_names();
bool is_model_name(const std::string& name);

}  // namespace vimoe::models
