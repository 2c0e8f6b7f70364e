// Super-classes from a classifier's mistakes (Mobile V-MoE's recipe, after Jin et al. 2017's
// confusion graph): classes a trained dense model confuses with each other go to one group.
//
//   confusion  C [K, K] counts: C[i][j] validation images of class i predicted as j;
//   graph      W[i][j] = (P[i][j] + P[j][i]) / 2 for i != j, with P the row-normalised C (the
//              rate at which i is taken for j, so large classes do not dominate), W[i][i] = 0;
//   clusters   exactly E groups by normalised spectral clustering (Ng, Jordan and Weiss 2001):
//              the E eigenvectors of the smallest eigenvalues of L = I - D^-1/2 W D^-1/2,
//              rows scaled to unit length, then k-means (k-means++ seeding from a fixed seed,
//              the best of several restarts by inertia; a group left empty takes the point
//              farthest from its centre).
//
// Spectral clustering rather than the community detection Jin et al. use (Louvain-style
// modularity, e.g. igraph's): the router has exactly E experts, and modularity chooses its own
// number of communities. The eigenproblem is Eigen's SelfAdjointEigenSolver (Debian's
// libeigen3-dev); K is at most a few hundred, so a dense solve is instant.
#pragma once
#include <cstdint>
#include <vector>

namespace vimoe::models {

using Matrix = std::vector<std::vector<double>>;

// W as above from counts [K][K]; a class with no validation images gets a zero row of P.
Matrix confusion_graph(const std::vector<std::vector<int64_t>>& confusion);
// Groups 0..E-1 for each of W's K nodes, each group non-empty (1 <= E <= K), deterministic in
// `seed`. Groups are numbered by their smallest member, so the same partition always gets
// the same numbers. Throws vimoe::Error for a W that is not square, symmetric and >= 0.
std::vector<int64_t> spectral_clusters(const Matrix& graph, int64_t groups, uint64_t seed = 0);

}  // namespace vimoe::models
