#include "models/factory.h"

#include "models/convnext.h"
#include "models/vit.h"

namespace vimoe::models {

namespace {

using Builder = std::shared_ptr<ImageModel> (*)(const std::string&, const nlohmann::json&);

struct Row {
  const char* name;
  const char* family;
  Builder build;
  const char* summary;
};

const std::vector<Row>& registry() {
  static const std::vector<Row> rows = {
      {"vit_s14", "vit", create_vit, "DINOv2 ViT-S/14: width 384, depth 12, 6 heads, 224x224"},
      {"vit_b14", "vit", create_vit, "DINOv2 ViT-B/14: width 768, depth 12, 12 heads, 224x224"},
      {"vit_l14", "vit", create_vit, "DINOv2 ViT-L/14: width 1024, depth 24, 16 heads, 224x224"},
      {"vit_tiny", "vit", create_vit, "width 64, depth 4, 4 heads, 28x28 grey images in 4x4 patches (CPU demos)"},
      {"vit", "vit", create_vit, "a ViT given entirely by its options (ViT-S/14's where unset)"},
      {"convnext_tiny", "convnext", create_convnext, "ConvNeXt-T: depths 3-3-9-3, widths 96-768, 224x224"},
      {"convnext_small", "convnext", create_convnext, "ConvNeXt-S: depths 3-3-27-3, widths 96-768, 224x224"},
      {"convnext_base", "convnext", create_convnext, "ConvNeXt-B: depths 3-3-27-3, widths 128-1024, 224x224"},
      {"convnext_cifar", "convnext", create_convnext,
       "depths 2-2-2-2, widths 32-256, a 2x2 stem for 32x32 images (CPU demos)"},
  };
  return rows;
}

const Row* find(const std::string& name) {
  for (const Row& r : registry())
    if (name == r.name) return &r;
  return nullptr;
}

}  // namespace

std::shared_ptr<ImageModel> create_model(const std::string& name, const nlohmann::json& options) {
  const Row* row = find(name);
  if (!row) {
    std::string known;
    for (const Row& r : registry()) known += (known.empty() ? "" : ", ") + std::string(r.name);
    VIMOE_FAIL("unknown model \"", name, "\" (known: ", known, ")");
  }
  return row->build(name, options);
}

std::shared_ptr<ImageModel> create_model_from_config(const nlohmann::json& config) {
  VIMOE_CHECK(config.is_object() && config.contains("name") && config.at("name").is_string(),
              "model configuration: expected a JSON object with a \"name\", found ", config.dump());
  return create_model(config.at("name").get<std::string>(), config);
}

std::vector<ModelEntry> model_names() {
  std::vector<ModelEntry> out;
  for (const Row& r : registry()) out.push_back({r.name, r.family, r.summary});
  return out;
}

bool is_model_name(const std::string& name) { return find(name) != nullptr; }

}  // namespace vimoe::models
