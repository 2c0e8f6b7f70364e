// vimoe-eval's routing analyses per MoE layer (models/routing_analysis.h), as CSV + PNG beside
// write_eval_report's tables:
//   expert_similarity_block<b>   the Sweet-spot expert-pair similarity over per-image counts
//                                (when an image's rows can reach several experts: token /
//                                pixel routing, or k > 1);
// and under token / pixel routing:
//   experts_per_image            per image: distinct experts per layer, their sum (routed
//                                experts per image, ViMoE Table 5) and the activated
//                                parameters (the union of the experts used); PNG: the mean
//                                distinct experts per layer;
//   rows_per_expert_cdf_block<b> the CDF over images of each expert's tokens (pixels) per image;
//   routing_map_block<b>         a few validation images with each patch tinted by its top expert.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/common/evaluate.h"

namespace vimoe::app {

// Writes the files above into out_dir, appending their names to `files`. Returns the figures
// for summary.json: "layers" (per MoE layer, "mean_distinct_experts") and, under token /
// pixel routing, "routed_experts_per_image" and "activated_params_per_image" (means over the
// images).
nlohmann::json write_routing_analyses(const EvalResult& r, const std::vector<std::string>& class_names,
                                      const models::ImageModel& model, const std::string& out_dir,
                                      std::vector<std::string>& files);

}  // namespace vimoe::app
