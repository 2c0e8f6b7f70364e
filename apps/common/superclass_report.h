// Super-classes from a trained model's confusion matrix (vimoe-eval superclasses): the
// symmetric confusion graph clustered into E groups (models/confusion_graph.h), written as
// the JSON map vimoe-train --superclasses reads, and as tables and pictures to look at.
#pragma once
#include <string>
#include <vector>

#include "data/superclasses.h"

namespace vimoe::app {

// Writes the confusion matrix (row-normalised rates) as confusion.{csv,png}, the grouping as
// superclasses.json, superclasses.csv (class, group, the group's classes) and
// superclasses.png (the confusion graph with classes ordered by group), into out_dir.
// Returns the map.
data::SuperclassMap write_superclass_report(const std::vector<std::vector<int64_t>>& confusion,
                                            const std::vector<std::string>& class_names, int64_t groups,
                                            const std::string& out_dir, uint64_t seed = 0);

// confusion.{csv,png} alone (rows: true class, columns: prediction, each row's rates).
void write_confusion(const std::vector<std::vector<int64_t>>& confusion, const std::vector<std::string>& class_names,
                     const std::string& out_dir, const std::string& title);

}  // namespace vimoe::app
