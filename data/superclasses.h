// Super-classes: a map from a dataset's classes to E groups, which Mobile V-MoE's single
// router is trained to predict (its super-class loss, Daxberger et al.). Three sources:
//   - a JSON file {"classes": {"<class name>": group, ...}, "group_names": [...]} (group_names
//     optional), naming every class of the dataset once, with groups 0..E-1 each used;
//   - a dataset's own coarse labels (CIFAR-100's 20 superclasses, read off its records);
//   - a fixed random map (the paper's random-super-class ablation): the classes shuffled by
//     a seed and dealt round-robin into E groups, so group sizes differ by at most one.
// The confusion-graph grouping (vimoe-eval superclasses) writes the JSON form.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vimoe::data {

struct SuperclassMap {
  std::vector<int64_t> group_of;         // [classes]: each class's group
  std::vector<std::string> group_names;  // [groups]
  int64_t groups() const { return static_cast<int64_t>(group_names.size()); }
};

// Throws vimoe::Error naming the file and the class or group at fault: a class of the
// dataset missing from the file or a name the dataset does not have, a group outside
// 0..E-1, an unused group, a group_names list of another length.
SuperclassMap read_superclasses(const std::string& path, const std::vector<std::string>& class_names);
// Atomic write of the JSON form (classes in the dataset's order).
void write_superclasses(const std::string& path, const SuperclassMap& map,
                        const std::vector<std::string>& class_names);
SuperclassMap random_superclasses(int64_t classes, int64_t groups, uint64_t seed);
// CIFAR-100's fine -> coarse map from the extracted "cifar-100-binary" folder (its test split's
// records carry both labels), with the coarse names from coarse_label_names.txt.
SuperclassMap cifar100_coarse_superclasses(const std::string& dir);

}  // namespace vimoe::data
