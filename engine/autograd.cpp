#include "engine/autograd.h"

#include <deque>
#include <unordered_map>
#include <unordered_set>

#include "engine/autocast.h"
#include "engine/ops/elementwise.h"
#include "engine/profiler.h"

namespace vimoe {

namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }

Node::~Node() {
  std::vector<std::shared_ptr<Node>> orphans;
  auto unlink = [&orphans](Node& n) {
    n.fn_ = nullptr;  // captured inputs let go of their grad_fn first
    for (Edge& e : n.next_)
      if (e.fn && e.fn.use_count() == 1) orphans.push_back(std::move(e.fn));
  };
  unlink(*this);
  while (!orphans.empty()) {
    std::shared_ptr<Node> n = std::move(orphans.back());
    orphans.pop_back();
    unlink(*n);  // n is destroyed at the end of this iteration, with no sole-owned children
  }
}

std::vector<Tensor> Node::apply(std::vector<Tensor> grad_outs) {
  VIMOE_CHECK(!released_, "backward: node '", name_,
              "' was already used by a backward pass and its saved tensors were freed; "
              "pass retain_graph=true to the first backward to run it twice");
  for (size_t i = 0; i < outputs_.size(); ++i)
    if (!grad_outs[i].defined())
      grad_outs[i] = Tensor::zeros(outputs_[i].shape, TensorOptions(outputs_[i].dtype, outputs_[i].device));
  std::vector<Tensor> grads = fn_(grad_outs);
  VIMOE_CHECK(grads.size() == inputs_.size(), "backward of '", name_, "' returned ", grads.size(),
              " gradients for ", inputs_.size(), " inputs");
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!grads[i].defined()) continue;
    VIMOE_CHECK(grads[i].shape() == inputs_[i].shape, "backward of '", name_, "': gradient ", i,
                " has shape ", shape_str(grads[i].shape()), ", its input has ",
                shape_str(inputs_[i].shape));
    if (grads[i].dtype() != inputs_[i].dtype) grads[i] = grads[i].to(inputs_[i].dtype);
  }
  return grads;
}

namespace autograd {

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!grad_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record_multi(const char* name, const std::vector<Tensor*>& outs,
                  const std::vector<Tensor>& inputs, MultiBackwardFn fn) {
  if (!needs_grad(inputs)) return;
  std::vector<Edge> edges;
  std::vector<Node::TensorInfo> in_infos, out_infos;
  edges.reserve(inputs.size());
  in_infos.reserve(inputs.size());
  for (const Tensor& t : inputs) {
    Edge e;
    if (t.defined() && t.requires_grad()) {
      if (t.grad_fn()) {
        e.fn = t.grad_fn();
        e.output_nr = t.impl_ptr()->output_nr;
      } else {
        e.leaf = t.impl_shared();
      }
    }
    edges.push_back(std::move(e));
    in_infos.push_back(t.defined() ? Node::TensorInfo{t.shape(), t.dtype(), t.device()}
                                   : Node::TensorInfo{{}, DType::F32, Device::cpu()});
  }
  for (const Tensor* o : outs) out_infos.push_back({o->shape(), o->dtype(), o->device()});
  auto node = std::make_shared<Node>(name, std::move(edges), std::move(in_infos),
                                     std::move(out_infos), std::move(fn));
  for (size_t i = 0; i < outs.size(); ++i) {
    outs[i]->impl_shared()->grad_fn = node;
    outs[i]->impl_shared()->output_nr = static_cast<int>(i);
  }
}

void record(const char* name, Tensor& out, const std::vector<Tensor>& inputs, BackwardFn fn) {
  if (!needs_grad(inputs)) return;
  record_multi(name, {&out}, inputs,
               [fn = std::move(fn)](const std::vector<Tensor>& g) { return fn(g[0]); });
}

namespace {

void accumulate_into_leaf(TensorImpl& leaf, const Tensor& g) {
  VIMOE_PROFILE_SCOPE("autograd:leaf_grad");
  VIMOE_CHECK(g.shape() == leaf.shape, "backward: gradient of shape ", shape_str(g.shape()),
              " for a leaf of shape ", shape_str(leaf.shape));
  Tensor add = g.dtype() == leaf.dtype ? g : g.to(leaf.dtype);
  if (!leaf.grad) {
    // A fresh copy: the incoming gradient may alias other gradients or user tensors, and
    // optimisers are free to modify .grad in place.
    leaf.grad = add.clone().impl_shared();
  } else {
    leaf.grad = (Tensor(leaf.grad) + add).impl_shared();
  }
}

}  // namespace

void backward(const Tensor& root, const Tensor& grad_in, bool retain_graph) {
  VIMOE_CHECK(root.requires_grad(), "backward: the tensor does not require grad (no recorded op "
              "leads to it from a tensor with requires_grad)");
  Tensor grad = grad_in;
  if (!grad.defined()) {
    VIMOE_CHECK(root.numel() == 1, "backward: a gradient must be given for a non-scalar "
                "output, found shape ", shape_str(root.shape()));
    grad = Tensor::ones(root.shape(), TensorOptions(root.dtype(), root.device()));
  }
  VIMOE_CHECK(grad.shape() == root.shape(), "backward: gradient shape ", shape_str(grad.shape()),
              " does not match the output shape ", shape_str(root.shape()));
  NoGradGuard no_grad;
  // Backward ops run in the types their forward saved, never re-cast.
  AutocastGuard no_autocast(DType::BF16, /*enabled=*/false);
  if (!root.grad_fn()) {
    accumulate_into_leaf(*root.impl_ptr(), grad);
    return;
  }

  // Count, for each reachable node, how many edges lead into it, so a node runs only
  // after every consumer has contributed its gradient.
  std::unordered_map<Node*, int> pending;
  {
    std::vector<Node*> stack{root.grad_fn().get()};
    std::unordered_set<Node*> seen{root.grad_fn().get()};
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      for (const Edge& e : n->next_edges()) {
        if (!e.fn) continue;
        ++pending[e.fn.get()];
        if (seen.insert(e.fn.get()).second) stack.push_back(e.fn.get());
      }
    }
  }

  // Gradients waiting for each node, one slot per output.
  std::unordered_map<Node*, std::vector<Tensor>> grads;
  std::deque<Node*> ready{root.grad_fn().get()};
  grads[root.grad_fn().get()].resize(root.grad_fn()->num_outputs());
  grads[root.grad_fn().get()][root.impl_ptr()->output_nr] = grad;
  while (!ready.empty()) {
    Node* node = ready.front();
    ready.pop_front();
    std::vector<Tensor> g = std::move(grads[node]);
    grads.erase(node);
    g.resize(node->num_outputs());
    // A node that received no gradient at all still runs its bookkeeping, so that nodes
    // further up, which may get gradient along other paths, are released in order.
    bool any = false;
    for (const Tensor& t : g) any = any || t.defined();
    std::vector<Tensor> input_grads;
    if (any) {
      VIMOE_PROFILE_SCOPE("backward:", node->name());
      input_grads = node->apply(std::move(g));
    } else {
      input_grads.resize(node->next_edges().size());
    }
    const std::vector<Edge>& edges = node->next_edges();
    for (size_t i = 0; i < edges.size(); ++i) {
      const Edge& e = edges[i];
      if (!e.valid()) continue;
      if (e.leaf) {
        if (input_grads[i].defined()) accumulate_into_leaf(*e.leaf, input_grads[i]);
        continue;
      }
      Node* next = e.fn.get();
      std::vector<Tensor>& slots = grads[next];
      slots.resize(next->num_outputs());
      Tensor& slot = slots[e.output_nr];
      if (input_grads[i].defined()) {
        if (slot.defined()) {
          VIMOE_PROFILE_SCOPE("autograd:accumulate");
          slot = slot + input_grads[i];
        } else {
          slot = input_grads[i];
        }
      }
      if (--pending[next] == 0) ready.push_back(next);
    }
    if (!retain_graph) node->release();
  }
}

}  // namespace autograd
}  // namespace vimoe
