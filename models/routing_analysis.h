// Routing analyses over an evaluation's per-image expert counts: the numbers behind the
// ViMoE study's token-routing table (distinct experts and activated parameters per image,
// Han et al. Table 5) and the Sweet-spot study's routing figures (expert-pair similarity,
// the distribution of patches per expert per image; Videau et al.). Plain numbers in and
// out: the apps tabulate and draw them.
#pragma once
#include <cstdint>
#include <vector>

#include "models/config.h"

namespace vimoe::models {

// One MoE layer's decisions over a set of images: at(i, e) is how many of image i's routed
// rows (its tokens or pixels; the image itself under image routing) expert e took, each of a
// row's k choices counted once and a choice that capacity dropped not at all.
struct ImageExpertCounts {
  int64_t experts = 0;
  std::vector<int32_t> counts;  // [images x experts], row-major

  explicit ImageExpertCounts(int64_t experts = 0) : experts(experts) {}
  int64_t images() const { return experts > 0 ? static_cast<int64_t>(counts.size()) / experts : 0; }
  int32_t at(int64_t image, int64_t expert) const { return counts[image * experts + expert]; }
  // Appends one image's counts (`experts` values).
  void add_image(const std::vector<int32_t>& image_counts);
};

// How many experts each image's rows reached (those with a count above 0), per image.
std::vector<int64_t> distinct_experts(const ImageExpertCounts& c);
double mean_distinct_experts(const ImageExpertCounts& c);  // 0 without images

// The Sweet-spot paper's expert-pair similarity: with c_i, c_j two experts' counts on one image,
//   S_ij = sum (c_i + c_j - |c_i - c_j|) / sum (c_i + c_j)
// over the images where either expert appears. The numerator is 2 min(c_i, c_j), so S_ij is a
// weighted Dice index in [0, 1]: 1 when the two take equally many rows of every image, 0 when
// no image has rows at both. Returns [experts x experts] row-major, symmetric, 1 on the
// diagonal of a used expert; NaN where neither expert ever appears.
std::vector<double> expert_pair_similarity(const ImageExpertCounts& c);

// Activated parameters per image when every expert an image's rows reach runs for it (the
// union of the experts used, as ViMoE's Table 5 counts token routing):
//   size.total_params - sum_l (N - distinct_l(image)) * size.expert_params[l]
// with `layers` in the order of size.expert_params (the model's MoE layers in depth order).
std::vector<int64_t> activated_params_per_image(const std::vector<ImageExpertCounts>& layers, const ModelSize& size);
// The same from an average alone: `routed_experts_per_image` distinct routed experts per image
// summed over the MoE layers (ViMoE Table 5: 14.3 for N = 8 in 2 layers), spread evenly over
// the layers. For `vimoe-eval params`, which has a measured figure but no images.
double activated_params_at(const ModelSize& size, int64_t experts, double routed_experts_per_image);

// The distribution of rows per expert per image: cdf[e][x] is the fraction of the images in
// which expert e took at most x rows, for x = 0..max_rows (a count above max_rows is an error:
// max_rows is the rows one image has).
std::vector<std::vector<double>> rows_per_expert_cdf(const ImageExpertCounts& c, int64_t max_rows);

// How much a layer's routing tells the classes apart: the normalised mutual information
// between the class of a routed row and its expert, over a [classes x experts] table of
// decision counts (EvalResult::routing_counts):
//   NMI = I(C; E) / ((H(C) + H(E)) / 2)
// (natural logs; the arithmetic normalisation, scikit-learn's default). 0 when routing is
// independent of the class, and also when every row goes to one expert (H(E) = 0: a
// collapsed layer specialises nothing, where a purity would score it 1); 1 when experts and
// classes are in one-to-one correspondence. With fewer experts than classes a perfect
// partition of the classes scores 2 H(E) / (H(C) + H(E)) < 1, so values compare layers of one
// model (or models of one N and dataset), not N against N. NaN for a table without counts.
double class_expert_nmi(const std::vector<std::vector<int64_t>>& class_expert_counts);

}  // namespace vimoe::models
