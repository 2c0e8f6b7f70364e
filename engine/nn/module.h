// nn::Module: a tree of named parameters, buffers and sub-modules.
//
// A module owns its tensors as ordinary members and registers their addresses, so that
// moving the module to another device or dtype, or loading a state dict, rebinds the members
// themselves. Modules are therefore neither copyable nor movable: hold them by shared_ptr.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace vimoe::nn {

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Parameters and buffers with dotted names ("blocks.0.mlp.fc1.weight"), depth first in
  // registration order.
  std::vector<std::pair<std::string, Tensor>> named_parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  std::vector<Tensor> parameters() const;
  // This module ("") and every sub-module with its dotted path ("blocks.3.attn"), depth
  // first in registration order: what initialisation by module type walks, as torch's
  // Module.apply.
  std::vector<std::pair<std::string, Module*>> named_modules();
  int64_t num_parameters() const;
  // Parameters and buffers together: what a checkpoint stores.
  std::map<std::string, Tensor> state_dict() const;

  struct LoadReport {
    std::vector<std::string> missing;     // in the module, not in the dict
    std::vector<std::string> unexpected;  // in the dict, not in the module
  };
  // Copies values into the registered tensors (converting dtype and device; shapes must match
  // exactly, else vimoe::Error naming the key and both shapes). With strict, any missing or
  // unexpected key is an error listing them all.
  LoadReport load_state_dict(const std::map<std::string, Tensor>& dict, bool strict = true);
  void save(const std::string& path) const;  // atomic safetensors write
  LoadReport load(const std::string& path, bool strict = true);

  // Moves every parameter and buffer (parameters stay leaves that require grad).
  void to(Device device);
  void to(DType dtype);  // floating tensors only; integer buffers keep their dtype
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();

 protected:
  // `t` must be a member of this module; it becomes a leaf that requires grad.
  void register_parameter(const std::string& name, Tensor* t);
  void register_buffer(const std::string& name, Tensor* t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  void check_new_name(const std::string& name) const;
  template <typename F> void visit(const std::string& prefix, F&& f) const;

  std::vector<std::pair<std::string, Tensor*>> params_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// An ordered list of sub-modules named "0", "1", ... ("blocks.3.attn.qkv.weight").
class ModuleList : public Module {
 public:
  template <typename M>
  std::shared_ptr<M> append(std::shared_ptr<M> m) {
    return register_module(std::to_string(size_++), std::move(m));
  }
  size_t size() const { return size_; }

 private:
  size_t size_ = 0;
};

}  // namespace vimoe::nn
