// Reverse-mode autograd over a dynamic graph.
//
// An op that wants gradients calls autograd::record(name, out, inputs, backward) after
// computing `out`. The backward closure maps d(loss)/d(out) to one gradient per input
// (an undefined Tensor where an input gets none) and is run under NoGradGuard, written
// with ordinary ops so it works on every device. Closures may capture inputs; to use
// the output, capture out.detach() (capturing `out` itself would make a cycle).
// An op with several differentiable outputs (a fused router: gate weights and a loss)
// uses record_multi: its closure receives one gradient per output, zeros standing in for
// outputs that no gradient reached.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace vimoe {

using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_out)>;
using MultiBackwardFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& grad_outs)>;

// Where a gradient goes: output `output_nr` of the node that produced an input, or the
// input itself if it is a leaf.
struct Edge {
  std::shared_ptr<Node> fn;
  int output_nr = 0;
  std::shared_ptr<TensorImpl> leaf;
  bool valid() const { return fn || leaf; }
};

class Node {
 public:
  struct TensorInfo {
    Shape shape;
    DType dtype;
    Device device;
  };

  Node(std::string name, std::vector<Edge> next, std::vector<TensorInfo> inputs,
       std::vector<TensorInfo> outputs, MultiBackwardFn fn)
      : name_(std::move(name)), next_(std::move(next)), inputs_(std::move(inputs)),
        outputs_(std::move(outputs)), fn_(std::move(fn)) {}

  // Destroys the chain of nodes only it owns iteratively: a graph of 10^5 ops would
  // overflow the stack if each node's destructor ran its predecessor's.
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  const std::string& name() const { return name_; }
  const std::vector<Edge>& next_edges() const { return next_; }
  size_t num_outputs() const { return outputs_.size(); }
  // Runs the closure (undefined output gradients become zeros) and checks that each input
  // gradient matches its input's shape; casts a gradient to its input's dtype when they differ.
  std::vector<Tensor> apply(std::vector<Tensor> grad_outs);
  // Frees the closure and what it captured; a later apply() throws.
  void release() { fn_ = nullptr; released_ = true; }

 private:
  std::string name_;
  std::vector<Edge> next_;
  std::vector<TensorInfo> inputs_, outputs_;
  MultiBackwardFn fn_;
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
// The same for an op with several outputs: all of them get the one node.
void record_multi(const char* name, const std::vector<Tensor*>& outs,
                  const std::vector<Tensor>& inputs, MultiBackwardFn fn);
// The engine behind Tensor::backward.
void backward(const Tensor& root, const Tensor& grad, bool retain_graph);

}  // namespace autograd
}  // namespace vimoe
