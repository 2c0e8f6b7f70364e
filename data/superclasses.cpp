#include "data/superclasses.h"

#include <algorithm>
#include <fstream>
#include <map>
#include <numeric>
#include <random>

#include <nlohmann/json.hpp>

#include "data/cifar.h"
#include "engine/error.h"
#include "engine/io/atomic_file.h"

namespace vimoe::data {

namespace {

std::vector<std::string> numbered_groups(int64_t groups) {
  std::vector<std::string> names;
  for (int64_t g = 0; g < groups; ++g) names.push_back("group " + std::to_string(g));
  return names;
}

}  // namespace

SuperclassMap read_superclasses(const std::string& path, const std::vector<std::string>& class_names) {
  std::ifstream in(path);
  VIMOE_CHECK(in.good(), "super-classes: cannot read ", path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    VIMOE_FAIL("super-classes ", path, ": not valid JSON (", e.what(), ")");
  }
  VIMOE_CHECK(j.is_object() && j.contains("classes") && j["classes"].is_object(), "super-classes ", path,
              ": expected {\"classes\": {\"<class name>\": group, ...}}");
  std::map<std::string, int64_t> index;
  for (size_t c = 0; c < class_names.size(); ++c) index[class_names[c]] = static_cast<int64_t>(c);
  SuperclassMap m;
  m.group_of.assign(class_names.size(), -1);
  int64_t top = -1;
  for (const auto& [name, group] : j["classes"].items()) {
    const auto it = index.find(name);
    VIMOE_CHECK(it != index.end(), "super-classes ", path, ": class \"", name, "\" is not a class of the dataset (",
                class_names.size(), " classes, e.g. \"", class_names.empty() ? "" : class_names.front(), "\")");
    VIMOE_CHECK(group.is_number_integer() && group.get<int64_t>() >= 0, "super-classes ", path, ": class \"", name,
                "\" has group ", group.dump(), "; expected an integer >= 0");
    m.group_of[it->second] = group.get<int64_t>();
    top = std::max(top, group.get<int64_t>());
  }
  for (size_t c = 0; c < class_names.size(); ++c)
    VIMOE_CHECK(m.group_of[c] >= 0, "super-classes ", path, ": class \"", class_names[c], "\" has no group");
  for (int64_t g = 0; g <= top; ++g)
    VIMOE_CHECK(std::count(m.group_of.begin(), m.group_of.end(), g) > 0, "super-classes ", path, ": group ", g,
                " has no class (groups must be 0..", top, ", each used)");
  m.group_names = numbered_groups(top + 1);
  if (j.contains("group_names")) {
    VIMOE_CHECK(j["group_names"].is_array() && static_cast<int64_t>(j["group_names"].size()) == top + 1,
                "super-classes ", path, ": group_names must list ", top + 1, " names, found ", j["group_names"].dump());
    for (int64_t g = 0; g <= top; ++g) m.group_names[g] = j["group_names"][g].get<std::string>();
  }
  return m;
}

void write_superclasses(const std::string& path, const SuperclassMap& map,
                        const std::vector<std::string>& class_names) {
  VIMOE_CHECK(map.group_of.size() == class_names.size(), "write_superclasses: ", map.group_of.size(),
              " groups for ", class_names.size(), " classes");
  nlohmann::ordered_json j;
  j["groups"] = map.groups();
  j["group_names"] = map.group_names;
  nlohmann::ordered_json classes = nlohmann::ordered_json::object();
  for (size_t c = 0; c < class_names.size(); ++c) classes[class_names[c]] = map.group_of[c];
  j["classes"] = classes;
  io::write_file_atomic(path, j.dump(2) + "\n", "super-classes");
}

SuperclassMap random_superclasses(int64_t classes, int64_t groups, uint64_t seed) {
  VIMOE_CHECK(groups >= 1 && groups <= classes, "random super-classes: expected 1..", classes, " groups for ",
              classes, " classes, found ", groups);
  std::vector<int64_t> order(classes);
  std::iota(order.begin(), order.end(), 0);
  // std::mt19937_64's sequence is fixed by the standard; the shuffle is spelled out (a
  // Fisher-Yates on it) so the map does not depend on the library's std::shuffle.
  std::mt19937_64 rng(seed);
  for (int64_t i = classes - 1; i > 0; --i) std::swap(order[i], order[rng() % static_cast<uint64_t>(i + 1)]);
  SuperclassMap m;
  m.group_of.assign(classes, 0);
  for (int64_t i = 0; i < classes; ++i) m.group_of[order[i]] = i % groups;
  m.group_names = numbered_groups(groups);
  return m;
}

SuperclassMap cifar100_coarse_superclasses(const std::string& dir) {
  const CifarDataset fine = CifarDataset::cifar100(dir, "test", CifarLabels::Fine);
  const CifarDataset coarse = CifarDataset::cifar100(dir, "test", CifarLabels::Coarse);
  SuperclassMap m;
  m.group_of.assign(fine.num_classes(), -1);
  for (int64_t i = 0; i < fine.size(); ++i) {
    const int64_t f = fine.label(i), c = coarse.label(i);
    VIMOE_CHECK(m.group_of[f] < 0 || m.group_of[f] == c, "CIFAR-100 in ", dir, ": class ", fine.class_names()[f],
                " has records with coarse labels ", m.group_of[f], " and ", c);
    m.group_of[f] = c;
  }
  for (int64_t f = 0; f < fine.num_classes(); ++f)
    VIMOE_CHECK(m.group_of[f] >= 0, "CIFAR-100 in ", dir, ": class ", fine.class_names()[f], " has no test record");
  m.group_names = coarse.class_names();
  return m;
}

}  // namespace vimoe::data
