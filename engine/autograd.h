// Reverse-mode autograd over a dynamic graph.
//
// An op that wants gradients calls autograd::record(name, out, inputs, backward) after
// computing `out`. The backward closure maps d(loss)/d(out) to one gradient per input
// (an undefined Tensor where an input gets none) and is run under NoGradGuard, written
// with ordinary ops so it works on every device. Closures may capture inputs; to use
// the output, capture out.detach() (capturing `out` itself would make a cycle).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace vimoe {

using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out)>;

// Where a gradient goes: the node that produced an input, or the input itself if it is a leaf.
struct Edge {
  std::shared_ptr<Node> fn;
  std::shared_ptr<TensorImpl> leaf;
  bool valid() const { return fn || leaf; }
};

class Node {
 public:
  struct InputInfo {
    Shape shape;
    DType dtype;
    Device device;
  };

  Node(std::string name, std::vector<Edge> next, std::vector<InputInfo> inputs, BackwardFn fn)
      : name_(std::move(name)), next_(std::move(next)), inputs_(std::move(inputs)),
        fn_(std::move(fn)) {}

  // Destroys the chain of nodes only it owns iteratively: a graph of 10^5 ops would
  // overflow the stack if each node's destructor ran its predecessor's.
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const std::string& name() const { return name_; }
  const std::vector<Edge>& next_edges() const { return next_; }
  // Runs the closure and checks that each gradient matches its input's shape; casts a
  // gradient to its input's dtype when they differ.
  std::vector<Tensor> apply(const Tensor& grad_out);
  // Frees the closure and what it captured; a later apply() throws.
  void release() { fn_ = nullptr; released_ = true; }

 private:
  std::string name_;
  std::vector<Edge> next_;
  std::vector<InputInfo> inputs_;
  BackwardFn fn_;
  bool released_ = false;
};

// Gradient recording is on by default; NoGradGuard turns it off for its scope (per thread).
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

namespace autograd {

// True when grad mode is on and any defined input requires grad.
bool needs_grad(const std::vector<Tensor>& inputs);
// Attaches a node to `out` if needs_grad(inputs); otherwise does nothing.
void record(const char* name, Tensor& out, const std::vector<Tensor>& inputs, BackwardFn fn);
// The engine behind Tensor::backward.
void backward(const Tensor& root, const Tensor& grad, bool retain_graph);

}  // namespace autograd
}  // namespace vimoe
