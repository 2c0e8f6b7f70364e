// vimoe-train's options: TOML config files are read strictly (an unknown key, a table or a
// syntax error is an error naming the file, the line and the closest option) and values
// that make no sense are refused before any work starts.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "apps/common/config_file.h"
#include "apps/common/trainer.h"
#include "models/factory.h"
#include "tests/test_data_util.h"
#include "tests/test_util.h"

using namespace vimoe;

namespace {

// Parses `toml` as vimoe-train would (a --config file, then `args`); returns the error
// CLI11_PARSE would print ("" when parsing succeeds).
std::string parse_error(const std::string& toml, std::vector<std::string> args = {}) {
  vimoe::testing::TempDir dir;
  const std::string path = dir / "run.toml";
  std::ofstream(path) << toml;
  app::RunConfig c;
  CLI::App cli;
  app::add_options(cli, c);
  std::vector<std::string> argv_s = {"vimoe-train", "--config", path};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<const char*> argv;
  for (const std::string& a : argv_s) argv.push_back(a.c_str());
  try {
    cli.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    return e.what();
  }
  return "";
}

void expect_parts(const std::string& msg, std::initializer_list<const char*> parts) {
  EXPECT_FALSE(msg.empty()) << "expected an error";
  for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << msg << "' lacks '" << p << "'";
}

}  // namespace

TEST(RunConfigFile, ValidFileParses) {
  EXPECT_EQ(parse_error("experts = 4\nmoe-last = 2\nshared-expert = true\nlr = 1e-3 # peak\n"), "");
}

TEST(RunConfigFile, UnknownKeyNamesLineAndClosestOption) {
  expect_parts(parse_error("lr = 0.001\nexpertz = 4\n"), {"run.toml", "line 2", "\"expertz\"", "did you mean \"experts\""});
}

TEST(RunConfigFile, UnderscoreSpellingSuggestsTheDashedOption) {
  expect_parts(parse_error("max_steps = 10\n"), {"line 1", "\"max_steps\"", "did you mean \"max-steps\""});
}

TEST(RunConfigFile, FarFromEveryOptionGetsNoGuess) {
  const std::string msg = parse_error("frobnicate = 1\n");
  expect_parts(msg, {"unknown option \"frobnicate\""});
  EXPECT_EQ(msg.find("did you mean"), std::string::npos) << msg;
}

TEST(RunConfigFile, TablesAreRefused) {
  expect_parts(parse_error("lr = 0.001\n\n[model]\nexperts = 4\n"), {"line 3", "[model] is a table", "top level"});
}

TEST(RunConfigFile, SyntaxErrorNamesLineAndColumn) {
  expect_parts(parse_error("lr = 0.001\nexperts = = 4\n"), {"run.toml", "line 2", "column"});
  expect_parts(parse_error("routing = \"image\n"), {"line 1", "column"});
}

TEST(RunConfigFile, CommandLineStillWinsOverTheFile) {
  vimoe::testing::TempDir dir;
  const std::string path = dir / "run.toml";
  std::ofstream(path) << "epochs = 3\n";
  app::RunConfig c;
  CLI::App cli;
  app::add_options(cli, c);
  const char* argv[] = {"vimoe-train", "--config", path.c_str(), "--epochs", "5"};
  cli.parse(5, argv);
  EXPECT_EQ(c.epochs, 5);
}

TEST(RunConfigFile, ClosestOption) {
  const std::vector<std::string> opts = {"experts", "max-steps", "moe-last", "lr", "min-lr"};
  EXPECT_EQ(app::closest_option("expert", opts), "experts");
  EXPECT_EQ(app::closest_option("MAX_STEPS", opts), "max-steps");
  EXPECT_EQ(app::closest_option("mn-lr", opts), "min-lr");
  EXPECT_EQ(app::closest_option("zzzzzzzz", opts), "");
}

// Values that make no sense are refused, naming the option and the value.
TEST(RunConfigValues, NonsenseValuesAreRefused) {
  auto refused = [](auto set, std::initializer_list<const char*> parts) {
    app::RunConfig c;
    set(c);
    try {
      c.validate();
      ADD_FAILURE() << "accepted; expected an error with " << *parts.begin();
    } catch (const Error& e) {
      expect_parts(e.what(), parts);
    }
  };
  refused([](app::RunConfig& c) { c.weight_decay = -0.05; }, {"--weight-decay", ">= 0", "-0.05"});
  refused([](app::RunConfig& c) { c.clip_grad = -1; }, {"--clip-grad", "-1"});
  refused([](app::RunConfig& c) { c.lr = 0; }, {"--lr", "> 0"});
  refused([](app::RunConfig& c) { c.min_lr = 1; }, {"--min-lr", "--lr"});
  refused([](app::RunConfig& c) { c.label_smoothing = 1; }, {"--label-smoothing", "[0, 1)"});
  refused([](app::RunConfig& c) { c.drop_path = 1.5; }, {"--drop-path", "1.5"});
  refused([](app::RunConfig& c) { c.layer_decay = 0; }, {"--layer-decay", "(0, 1]"});
  refused([](app::RunConfig& c) { c.batch_size = 0; }, {"--batch-size"});
  refused([](app::RunConfig& c) { c.accum_steps = -2; }, {"--accum-steps", "-2"});
  EXPECT_NO_THROW(app::RunConfig().validate());
}

TEST(RunConfigValues, SegmentationTaskDefaultsAndChecks) {
  app::RunConfig c;
  c.dataset = "camvid";
  app::apply_task_defaults(c);
  EXPECT_EQ(c.task, "segmentation");
  EXPECT_EQ(c.head, "patches");
  EXPECT_DOUBLE_EQ(c.aux_alpha, 0.001);  // the ViMoE paper's alpha for segmentation
  EXPECT_DOUBLE_EQ(c.label_smoothing, 0.0);
  EXPECT_NO_THROW(c.validate());
  EXPECT_EQ(c.segmentation_scale(), (std::pair<int64_t, int64_t>{480, 360}));
  c.dataset = "ade20k";
  EXPECT_EQ(c.segmentation_scale(), (std::pair<int64_t, int64_t>{2048, 512}));
  // What the command line sets stays.
  app::RunConfig given;
  given.dataset = "ade20k";
  given.aux_alpha = 0.01;
  given.given = {"dataset", "aux_alpha"};
  app::apply_task_defaults(given);
  EXPECT_DOUBLE_EQ(given.aux_alpha, 0.01);
  EXPECT_EQ(given.head, "patches");
  // A classification run keeps its defaults.
  app::RunConfig cls;
  app::apply_task_defaults(cls);
  EXPECT_EQ(cls.task, "classification");
  EXPECT_EQ(cls.head, "cls");
  EXPECT_DOUBLE_EQ(cls.aux_alpha, 0.01);

  auto refused = [](auto set, std::initializer_list<const char*> parts) {
    app::RunConfig r;
    set(r);
    try {
      r.validate();
      (void)r.model_options(11, 3);
      ADD_FAILURE() << "accepted; expected an error with " << *parts.begin();
    } catch (const Error& e) {
      expect_parts(e.what(), parts);
    }
  };
  refused([](app::RunConfig& r) { r.task = "segmentation"; r.dataset = "cifar10"; }, {"--task", "cifar10"});
  refused([](app::RunConfig& r) { r.dataset = "camvid"; r.mixup = 0.8; }, {"--mixup", "label maps"});
  refused([](app::RunConfig& r) { r.dataset = "camvid"; r.seg_eval = "tiles"; }, {"--seg-eval", "tiles"});
  refused([](app::RunConfig& r) { r.dataset = "camvid"; r.seg_scale = {480}; }, {"--seg-scale", "LONG,SHORT"});
  refused([](app::RunConfig& r) { r.dataset = "camvid"; r.head = "cls"; }, {"--head cls", "segmentation"});
  refused([](app::RunConfig& r) { r.head = "patches"; }, {"--head patches", "classification"});
}

TEST(RunConfigValues, MoeOptionsMustAgree) {
  app::RunConfig c;
  c.moe_last = 2;  // but --experts 0
  EXPECT_VIMOE_ERROR(c.moe_options(), "--moe-last", "--experts > 0");
  c = {};
  c.shared_expert = true;
  EXPECT_VIMOE_ERROR(c.moe_options(), "--shared-expert", "dense");
  c = {};
  c.experts = 4;
  c.moe_last = 2;
  c.top_k = 5;
  EXPECT_VIMOE_ERROR(c.moe_options(), "--top-k", "1 and the number of experts (4)", "5");
  c.top_k = 0;
  EXPECT_VIMOE_ERROR(c.moe_options(), "--top-k", "0");
  c.top_k = 4;
  EXPECT_EQ(c.moe_options().at("top_k"), 4);
  c.moe_placement = "last2";  // a second placement
  EXPECT_VIMOE_ERROR(c.moe_options(), "exactly one of", "--moe-placement", "found 2");
  c.moe_last = 0;
  EXPECT_EQ(c.moe_options().at("placement"), "last2");
  c.experts = -1;
  EXPECT_VIMOE_ERROR(c.moe_options(), "--experts", "-1");
}

// The options given on the command line (or in a --config file) are recorded by field name.
TEST(RunConfigResume, GivenOptionsAreRecorded) {
  app::RunConfig c;
  CLI::App cli;
  app::add_options(cli, c);
  const char* argv[] = {"vimoe-train", "--epochs", "5", "--max-steps", "9", "--no-final-eval", "--resume", "x"};
  cli.parse(8, argv);
  EXPECT_EQ(c.given, (std::set<std::string>{"epochs", "max_steps", "final_eval", "resume"}));
}

TEST(RunConfigResume, RunOptionsChangeAndSaySo) {
  app::RunConfig saved;
  saved.experts = 4;
  saved.moe_last = 2;
  saved.epochs = 3;
  saved.out = "runs/a";
  app::RunConfig want;
  want.given = {"epochs", "out", "log_every", "resume", "experts"};
  want.epochs = 5;
  want.out = "runs/b";
  want.log_every = saved.log_every;  // given, but the same: no change
  want.experts = 4;                  // likewise
  want.resume = "runs/a/last.safetensors";
  std::vector<std::string> changes;
  const app::RunConfig r = app::resume_config(want, saved, changes);
  EXPECT_EQ(r.epochs, 5);
  EXPECT_EQ(r.out, "runs/b");
  EXPECT_EQ(r.experts, 4);
  EXPECT_EQ(r.moe_last, 2);  // not given: the checkpoint's
  EXPECT_EQ(r.resume, want.resume);
  EXPECT_EQ(changes, (std::vector<std::string>{"epochs: 3 -> 5", "out: \"runs/a\" -> \"runs/b\""}));
}

TEST(RunConfigResume, FixedOptionsConflictNamingEach) {
  app::RunConfig saved;
  saved.experts = 4;
  saved.moe_last = 2;
  app::RunConfig want;
  want.given = {"experts", "dataset", "lr", "resume"};
  want.experts = 8;
  want.dataset = "cifar10";
  want.lr = saved.lr;  // the same: fine
  want.resume = "ckpt.safetensors";
  std::vector<std::string> changes;
  EXPECT_VIMOE_ERROR(app::resume_config(want, saved, changes), "--resume ckpt.safetensors", "cannot change",
                     "experts: the checkpoint has 4, the command asks for 8", "dataset: the checkpoint has");
  // Built in code (nothing recorded as given): fields that differ from the defaults count.
  app::RunConfig coded;
  coded.moe_last = 1;
  EXPECT_VIMOE_ERROR(app::resume_config(coded, saved, changes), "moe_last");
}

// A checkpoint from before the model factory stored a ViT's fields without a name; the run's
// model name and MoE options complete it, and the factory rebuilds that model.
TEST(RunConfigValues, LegacyModelMetadataRebuildsTheViT) {
  app::RunConfig run;
  run.model = "vit_tiny";
  run.experts = 2;
  run.moe_last = 1;
  const nlohmann::json legacy = {{"image_size", 28}, {"patch_size", 4}, {"in_channels", 1}, {"width", 32},
                                 {"depth", 2}, {"heads", 2}, {"mlp_hidden", 64}, {"registers", 0},
                                 {"pos_grid", 7}, {"layer_scale_init", 0.1}, {"ln_eps", 1e-6},
                                 {"drop_path", 0.0}, {"num_classes", 10}, {"head_input", "cls"}};
  const auto model = models::create_model_from_config(app::stored_model_config(legacy, run));
  EXPECT_EQ(model->config().at("name"), "vit_tiny");
  EXPECT_EQ(model->config().at("width"), 32);
  EXPECT_EQ(model->moe_config().blocks, (std::vector<int64_t>{1}));
  const nlohmann::json current = model->config();
  EXPECT_EQ(app::stored_model_config(current, run), current) << "a named configuration is taken as it is";
}

// The routing options reach the model's MoE configuration, need an MoE model, and agree.
TEST(RunConfigValues, RoutingOptionsReachTheMoEConfiguration) {
  app::RunConfig c;
  CLI::App cli;
  app::add_options(cli, c);
  const char* argv[] = {"vimoe-train", "--experts", "4", "--moe-last", "2", "--top-k", "2", "--gate", "cosine",
                        "--gate-dim", "8", "--renormalize-gates", "--capacity-factor", "1.25", "--bpr",
                        "--balance", "importance_load"};
  cli.parse(17, argv);
  const nlohmann::json m = c.moe_options();
  EXPECT_EQ(m.at("gate"), "cosine");
  EXPECT_EQ(m.at("gate_dim"), 8);
  EXPECT_EQ(m.at("renormalize"), true);
  EXPECT_EQ(m.at("capacity_factor"), 1.25);
  EXPECT_EQ(m.at("bpr"), true);
  EXPECT_EQ(m.at("balance"), "importance_load");
  const auto model = models::create_model("vit_tiny", c.model_options(10, 1));
  const models::MoEConfig& moe = model->moe_config();
  EXPECT_EQ(moe.gate, models::GateKind::Cosine);
  EXPECT_EQ(moe.gate_dim, 8);
  EXPECT_TRUE(moe.renormalize);
  EXPECT_EQ(moe.capacity_factor, 1.25);
  EXPECT_TRUE(moe.bpr);
  EXPECT_EQ(moe.balance, models::BalanceLoss::ImportanceLoad);
  EXPECT_NE(model->describe().find("cosine gate, renormalised, capacity 1.25 BPR, balance importance_load"),
            std::string::npos)
      << model->describe();
  // The stored configuration rebuilds the same model.
  EXPECT_EQ(models::create_model_from_config(model->config())->config(), model->config());
  // The defaults: dropless, probabilities as they are, the switch loss, a linear gate.
  app::RunConfig d;
  d.experts = 4;
  d.moe_last = 1;
  d.top_k = 2;
  const auto plain = models::create_model("vit_tiny", d.model_options(10, 1));
  EXPECT_FALSE(plain->moe_config().renormalize);
  EXPECT_EQ(plain->moe_config().capacity_factor, 0);
  EXPECT_EQ(plain->moe_config().gate, models::GateKind::Linear);

  app::RunConfig bad;
  bad.capacity_factor = 1;  // a dense model
  EXPECT_VIMOE_ERROR(bad.moe_options(), "--capacity-factor", "--experts > 0");
  bad = {};
  bad.experts = 4;
  bad.moe_last = 1;
  bad.bpr = true;
  EXPECT_VIMOE_ERROR(bad.moe_options(), "--bpr", "--capacity-factor > 0");
  EXPECT_VIMOE_ERROR(models::create_model("vit_tiny", {{"moe", {{"experts", 4}, {"last", 1}, {"gate", "dot"}}}}),
                     "unknown router gate \"dot\"");
  EXPECT_VIMOE_ERROR(models::create_model("vit_tiny", {{"moe", {{"experts", 4}, {"last", 1}, {"balance", "aux"}}}}),
                     "unknown load-balancing loss \"aux\"", "switch, importance_load, none");
}

// Runs and models stored before --renormalize-gates renormalised whenever top-k > 1: they
// keep doing so, while new runs default to the probabilities as they are.
TEST(RunConfigValues, StoredRunsKeepTheirGateRenormalisation) {
  nlohmann::json old_run = app::to_json(app::RunConfig{});
  old_run.erase("renormalize_gates");
  old_run["top_k"] = 2;
  EXPECT_TRUE(app::from_json(old_run).renormalize_gates);
  old_run["top_k"] = 1;
  EXPECT_FALSE(app::from_json(old_run).renormalize_gates);
  nlohmann::json new_run = app::to_json(app::RunConfig{});
  new_run["top_k"] = 2;
  EXPECT_FALSE(app::from_json(new_run).renormalize_gates);

  app::RunConfig run;
  run.experts = 4;
  run.moe_last = 1;
  run.top_k = 2;
  nlohmann::json stored = models::create_model("vit_tiny", run.model_options(10, 1))->config();
  stored["moe"].erase("renormalize");
  const nlohmann::json restored = app::stored_model_config(stored, run);
  EXPECT_EQ(restored.at("moe").at("renormalize"), true);
  EXPECT_TRUE(models::create_model_from_config(restored)->moe_config().renormalize);
}
