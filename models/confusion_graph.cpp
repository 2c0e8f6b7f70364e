#include "models/confusion_graph.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <random>

#include "engine/error.h"

namespace vimoe::models {

namespace {

// Squared distance between row r of `points` and a centre.
double dist2(const Eigen::MatrixXd& points, Eigen::Index r, const Eigen::RowVectorXd& centre) {
  return (points.row(r) - centre).squaredNorm();
}

struct KMeans {
  std::vector<int64_t> label;
  double inertia = std::numeric_limits<double>::infinity();
};

KMeans kmeans_once(const Eigen::MatrixXd& x, int64_t k, std::mt19937_64& rng) {
  const Eigen::Index n = x.rows();
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  // k-means++ seeding: each next centre drawn with probability proportional to d^2.
  std::vector<Eigen::RowVectorXd> centres = {x.row(static_cast<Eigen::Index>(rng() % static_cast<uint64_t>(n)))};
  std::vector<double> d(n);
  while (static_cast<int64_t>(centres.size()) < k) {
    double total = 0;
    for (Eigen::Index r = 0; r < n; ++r) {
      d[r] = std::numeric_limits<double>::infinity();
      for (const auto& c : centres) d[r] = std::min(d[r], dist2(x, r, c));
      total += d[r];
    }
    Eigen::Index pick = 0;
    if (total > 0) {
      double u = unit(rng) * total;
      while (pick < n - 1 && u >= d[pick]) u -= d[pick++];
    } else {
      pick = static_cast<Eigen::Index>(rng() % static_cast<uint64_t>(n));
    }
    centres.push_back(x.row(pick));
  }
  KMeans out;
  out.label.assign(n, 0);
  for (int iter = 0; iter < 100; ++iter) {
    bool changed = iter == 0;
    for (Eigen::Index r = 0; r < n; ++r) {
      int64_t best = 0;
      for (int64_t c = 1; c < k; ++c)
        if (dist2(x, r, centres[c]) < dist2(x, r, centres[best])) best = c;
      changed |= out.label[r] != best;
      out.label[r] = best;
    }
    // Exactly k groups: an empty group takes the point farthest from its own centre (from a
    // group of more than one).
    for (int64_t c = 0; c < k; ++c) {
      if (std::count(out.label.begin(), out.label.end(), c) > 0) continue;
      Eigen::Index far = -1;
      double worst = -1;
      for (Eigen::Index r = 0; r < n; ++r) {
        const int64_t own = out.label[r];
        if (std::count(out.label.begin(), out.label.end(), own) < 2) continue;
        const double dd = dist2(x, r, centres[own]);
        if (dd > worst) worst = dd, far = r;
      }
      out.label[far] = c;
      changed = true;
    }
    for (int64_t c = 0; c < k; ++c) {
      Eigen::RowVectorXd sum = Eigen::RowVectorXd::Zero(x.cols());
      int64_t count = 0;
      for (Eigen::Index r = 0; r < n; ++r)
        if (out.label[r] == c) sum += x.row(r), ++count;
      centres[c] = sum / static_cast<double>(count);
    }
    if (!changed) break;
  }
  out.inertia = 0;
  for (Eigen::Index r = 0; r < n; ++r) out.inertia += dist2(x, r, centres[out.label[r]]);
  return out;
}

}  // namespace

Matrix confusion_graph(const std::vector<std::vector<int64_t>>& confusion) {
  const size_t K = confusion.size();
  Matrix rate(K, std::vector<double>(K, 0.0));
  for (size_t i = 0; i < K; ++i) {
    VIMOE_CHECK(confusion[i].size() == K, "confusion_graph: expected a square [", K, " x ", K, "] matrix, row ", i,
                " has ", confusion[i].size(), " entries");
    double total = 0;
    for (int64_t c : confusion[i]) {
      VIMOE_CHECK(c >= 0, "confusion_graph: negative count ", c, " in row ", i);
      total += static_cast<double>(c);
    }
    if (total > 0)
      for (size_t j = 0; j < K; ++j) rate[i][j] = static_cast<double>(confusion[i][j]) / total;
  }
  Matrix w(K, std::vector<double>(K, 0.0));
  for (size_t i = 0; i < K; ++i)
    for (size_t j = 0; j < K; ++j)
      if (i != j) w[i][j] = (rate[i][j] + rate[j][i]) / 2;
  return w;
}

std::vector<int64_t> spectral_clusters(const Matrix& graph, int64_t groups, uint64_t seed) {
  const auto K = static_cast<int64_t>(graph.size());
  VIMOE_CHECK(groups >= 1 && groups <= K, "spectral_clusters: expected 1..", K, " groups for ", K,
              " nodes, found ", groups);
  Eigen::MatrixXd w(K, K);
  for (int64_t i = 0; i < K; ++i) {
    VIMOE_CHECK(static_cast<int64_t>(graph[i].size()) == K, "spectral_clusters: the graph must be square [", K, " x ",
                K, "]; row ", i, " has ", graph[i].size(), " entries");
    for (int64_t j = 0; j < K; ++j) w(i, j) = graph[i][j];
  }
  double asymmetry = 0, lowest = 0, highest = 0;
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < K; ++j) {
      asymmetry = std::max(asymmetry, std::abs(w(i, j) - w(j, i)));
      lowest = std::min(lowest, w(i, j));
      highest = std::max(highest, w(i, j));
    }
  VIMOE_CHECK(asymmetry <= 1e-12 && lowest >= 0,
              "spectral_clusters: the graph must be symmetric with non-negative weights; found an asymmetry of ",
              asymmetry, " and a smallest weight of ", lowest);
  // A node no class is confused with would have degree 0 (D^-1/2 undefined): a faint uniform
  // link keeps every node connected without moving the others' structure.
  const double faint = 1e-9 * std::max(1.0, highest);
  w.array() += faint;
  w.diagonal().setZero();
  const Eigen::VectorXd inv_sqrt_degree = w.rowwise().sum().cwiseSqrt().cwiseInverse();
  const Eigen::MatrixXd laplacian = Eigen::MatrixXd::Identity(K, K) -
                                    inv_sqrt_degree.asDiagonal() * w * inv_sqrt_degree.asDiagonal();
  const Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(laplacian);
  VIMOE_CHECK(eig.info() == Eigen::Success, "spectral_clusters: the eigensolver did not converge");
  // Eigenvalues come in increasing order: the first `groups` columns, rows to unit length.
  Eigen::MatrixXd embed = eig.eigenvectors().leftCols(groups);
  for (int64_t r = 0; r < K; ++r) {
    const double n = embed.row(r).norm();
    if (n > 0) embed.row(r) /= n;
  }
  std::mt19937_64 rng(seed);
  KMeans best;
  for (int restart = 0; restart < 20; ++restart) {
    KMeans k = kmeans_once(embed, groups, rng);
    if (k.inertia < best.inertia - 1e-12) best = std::move(k);
  }
  // Number the groups by their smallest member.
  std::map<int64_t, int64_t> renumber;
  std::vector<int64_t> out(K);
  for (int64_t i = 0; i < K; ++i) {
    const auto it = renumber.emplace(best.label[i], static_cast<int64_t>(renumber.size())).first;
    out[i] = it->second;
  }
  return out;
}

}  // namespace vimoe::models
