#include "engine/nn/module.h"

#include <sstream>

#include "engine/autograd.h"
#include "engine/io/safetensors.h"

namespace vimoe::nn {

void Module::check_new_name(const std::string& name) const {
  VIMOE_CHECK(!name.empty() && name.find('.') == std::string::npos, "Module: invalid name \"",
              name, "\" (non-empty, no dots)");
  auto taken = [&name](const auto& list) {
    for (const auto& [n, _] : list)
      if (n == name) return true;
    return false;
  };
  VIMOE_CHECK(!taken(params_) && !taken(buffers_) && !taken(children_), "Module: name \"", name,
              "\" registered twice");
}

void Module::register_parameter(const std::string& name, Tensor* t) {
  check_new_name(name);
  VIMOE_CHECK(t && t->defined(), "Module: parameter \"", name, "\" is undefined");
  VIMOE_CHECK(t->is_leaf(), "Module: parameter \"", name, "\" must be a leaf tensor");
  if (!t->requires_grad()) t->set_requires_grad(true);
  params_.emplace_back(name, t);
}

void Module::register_buffer(const std::string& name, Tensor* t) {
  check_new_name(name);
  VIMOE_CHECK(t && t->defined(), "Module: buffer \"", name, "\" is undefined");
  buffers_.emplace_back(name, t);
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  check_new_name(name);
  VIMOE_CHECK(m != nullptr, "Module: sub-module \"", name, "\" is null");
  children_.emplace_back(name, std::move(m));
}

// f(full_name, tensor_pointer, is_parameter) over the whole tree.
template <typename F>
void Module::visit(const std::string& prefix, F&& f) const {
  for (const auto& [n, t] : params_) f(prefix + n, t, true);
  for (const auto& [n, t] : buffers_) f(prefix + n, t, false);
  for (const auto& [n, m] : children_) m->visit(prefix + n + ".", f);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Tensor>> out;
  visit("", [&](const std::string& n, Tensor* t, bool param) {
    if (param) out.emplace_back(n, *t);
  });
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  visit("", [&](const std::string& n, Tensor* t, bool param) {
    if (!param) out.emplace_back(n, *t);
  });
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out{{"", this}};
  for (const auto& [n, m] : children_)
    for (auto& [sub, mod] : m->named_modules()) out.emplace_back(sub.empty() ? n : n + "." + sub, mod);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [n, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const Tensor& t : parameters()) n += t.numel();
  return n;
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> out;
  visit("", [&](const std::string& n, Tensor* t, bool) { out.emplace(n, t->detach()); });
  return out;
}

Module::LoadReport Module::load_state_dict(const std::map<std::string, Tensor>& dict, bool strict) {
  LoadReport report;
  std::map<std::string, Tensor*> targets;
  visit("", [&](const std::string& n, Tensor* t, bool) { targets.emplace(n, t); });
  for (const auto& [n, t] : targets)
    if (!dict.count(n)) report.missing.push_back(n);
  for (const auto& [n, t] : dict)
    if (!targets.count(n)) report.unexpected.push_back(n);
  if (strict && (!report.missing.empty() || !report.unexpected.empty())) {
    std::ostringstream os;
    os << "load_state_dict: " << report.missing.size() << " missing and "
       << report.unexpected.size() << " unexpected keys";
    for (const std::string& m : report.missing) os << "\n  missing: " << m;
    for (const std::string& u : report.unexpected) os << "\n  unexpected: " << u;
    VIMOE_FAIL(os.str());
  }
  // Check every shape before changing anything, so a bad dict leaves the module untouched.
  for (const auto& [n, src] : dict) {
    auto it = targets.find(n);
    if (it == targets.end()) continue;
    VIMOE_CHECK(src.shape() == it->second->shape(), "load_state_dict: \"", n, "\" has shape ",
                shape_str(src.shape()), " in the dict, ", shape_str(it->second->shape()),
                " in the module");
  }
  NoGradGuard no_grad;
  for (const auto& [n, src] : dict) {
    auto it = targets.find(n);
    if (it != targets.end()) it->second->copy_(src);
  }
  return report;
}

void Module::save(const std::string& path) const {
  const std::map<std::string, Tensor> sd = state_dict();
  io::save_safetensors(path, {sd.begin(), sd.end()});
}

Module::LoadReport Module::load(const std::string& path, bool strict) {
  const io::SafetensorsFile f = io::SafetensorsFile::open(path);
  std::map<std::string, Tensor> dict;
  for (const std::string& n : f.names()) dict.emplace(n, f.get(n));
  return load_state_dict(dict, strict);
}

void Module::to(Device device) {
  NoGradGuard no_grad;
  visit("", [&](const std::string&, Tensor* t, bool param) {
    if (t->device() == device) return;
    *t = t->to(device).detach();
    if (param) t->set_requires_grad(true);
  });
}

void Module::to(DType dtype) {
  NoGradGuard no_grad;
  visit("", [&](const std::string&, Tensor* t, bool param) {
    if (!is_floating(t->dtype()) || t->dtype() == dtype) return;
    *t = t->to(dtype).detach();
    if (param) t->set_requires_grad(true);
  });
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, m] : children_) m->train(on);
}

void Module::zero_grad() {
  visit("", [](const std::string&, Tensor* t, bool param) {
    if (param) t->zero_grad();
  });
}

}  // namespace vimoe::nn
