#include "apps/common/run_data.h"

#include <filesystem>

#include "data/cifar.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "data/segmentation.h"
#include "engine/error.h"

namespace vimoe::app {

namespace fs = std::filesystem;

Datasets open_datasets(const RunConfig& cfg) {
  Datasets d;
  const std::string& dir = cfg.data_dir;
  if (cfg.dataset == "fashion-mnist" || cfg.dataset == "mnist") {
    const bool fashion = cfg.dataset == "fashion-mnist";
    auto open = [&](const char* split) {
      if (fashion) return dir.empty() ? data::IdxDataset::fashion_mnist(split) : data::IdxDataset::fashion_mnist(split, dir);
      VIMOE_CHECK(!dir.empty(), "--dataset mnist needs --data-dir");
      return data::IdxDataset::mnist(split, dir);
    };
    d.train = std::make_shared<data::IdxDataset>(open("train"));
    d.val = std::make_shared<data::IdxDataset>(open("test"));
    d.channels = 1;
    d.native_size = 28;
  } else if (cfg.dataset == "cifar10" || cfg.dataset == "cifar100") {
    VIMOE_CHECK(!dir.empty(), "--dataset ", cfg.dataset, " needs --data-dir (the extracted binary archive)");
    if (cfg.dataset == "cifar10") {
      d.train = std::make_shared<data::CifarDataset>(data::CifarDataset::cifar10(dir, "train"));
      d.val = std::make_shared<data::CifarDataset>(data::CifarDataset::cifar10(dir, "test"));
    } else {
      d.train = std::make_shared<data::CifarDataset>(data::CifarDataset::cifar100(dir, "train"));
      d.val = std::make_shared<data::CifarDataset>(data::CifarDataset::cifar100(dir, "test"));
    }
    d.channels = 3;
    d.native_size = 32;
  } else if (cfg.dataset == "folder") {
    VIMOE_CHECK(!dir.empty() && !cfg.val_dir.empty(), "--dataset folder needs --data-dir and --val-dir");
    auto train = std::make_shared<data::ImageFolder>(dir);
    auto val = std::make_shared<data::ImageFolder>(cfg.val_dir);
    VIMOE_CHECK(train->class_names() == val->class_names(), "--data-dir and --val-dir have different class folders");
    d.train = train;
    d.val = val;
    d.channels = 3;
    // Small square images of one size (CIFAR as a folder) are kept at their size with the
    // small-image augmentation; larger ones, even pre-resized, get the ImageNet-style crops.
    constexpr int64_t kSmallImage = 64;
    const int64_t side = train->native_size();
    d.native_size = side == val->native_size() && side <= kSmallImage ? side : 0;
  } else if (cfg.dataset == "camvid" || cfg.dataset == "ade20k") {
    VIMOE_CHECK(!dir.empty(), "--dataset ", cfg.dataset, " needs --data-dir (the folder holding ",
                cfg.dataset == "camvid" ? "train/ and trainannot/" : "images/ and annotations/", ")");
    const bool camvid = cfg.dataset == "camvid";
    const auto layout = camvid ? data::SegmentationLayout::CamVid : data::SegmentationLayout::ADE20K;
    const std::string val_split = !cfg.val_split.empty() ? cfg.val_split : camvid ? "val" : "validation";
    d.train = std::make_shared<data::SegmentationFolder>(dir, camvid ? "train" : "training", layout);
    auto val = std::make_shared<data::SegmentationFolder>(dir, val_split, layout);
    for (int64_t i = 1; i < val->size() && d.val_one_size; ++i) d.val_one_size = val->image_size(i) == val->image_size(0);
    d.val = val;
    d.channels = 3;
  } else {
    VIMOE_FAIL("unknown --dataset \"", cfg.dataset, "\" (expected fashion-mnist, mnist, cifar10, cifar100, folder, "
               "camvid or ade20k)");
  }
  return d;
}

Normalization normalization(const RunConfig& cfg) {
  const auto imagenet = Normalization{{data::kImageNetMean.begin(), data::kImageNetMean.end()},
                                      {data::kImageNetStd.begin(), data::kImageNetStd.end()}};
  // The training sets' own statistics (torchvision's usual constants).
  const Normalization cifar10{{0.4914f, 0.4822f, 0.4465f}, {0.2470f, 0.2435f, 0.2616f}};
  const Normalization cifar100{{0.5071f, 0.4865f, 0.4409f}, {0.2673f, 0.2564f, 0.2762f}};
  const Normalization mnist{{0.1307f}, {0.3081f}}, fashion{{0.2860f}, {0.3530f}};
  std::string which = cfg.normalize;
  if (which == "auto") {
    // A pretrained backbone expects the statistics it was trained with; an image folder's
    // own are unknown, so photographs get ImageNet's (a CIFAR folder: say --normalize cifar10).
    if (cfg.init != "scratch" || cfg.dataset == "folder" || cfg.segmentation()) which = "imagenet";
    else which = cfg.dataset;
  }
  if (which == "imagenet") return imagenet;
  if (which == "cifar10") return cifar10;
  if (which == "cifar100") return cifar100;
  if (which == "mnist") return mnist;
  if (which == "fashion-mnist") return fashion;
  VIMOE_FAIL("--normalize must be auto, imagenet, cifar10, cifar100, mnist or fashion-mnist, found \"",
             cfg.normalize, "\"");
}

namespace {

// The dataset's statistics apply to its own channels; expanding grey to RGB replicates them.
Normalization for_channels(Normalization s, int64_t channels) {
  if (static_cast<int64_t>(s.mean.size()) == channels) return s;
  return {std::vector<float>(channels, s.mean[0]), std::vector<float>(channels, s.std[0])};
}

}  // namespace

data::Transform train_transform(const RunConfig& cfg, const Datasets& d, int64_t size, int64_t channels) {
  const Normalization s = for_channels(normalization(cfg), channels);
  if (d.native_size == size) {
    // Small native images: photographs (CIFAR, a folder of them) get the usual shift by up
    // to 1/8 of the side (4 pixels at 32: torchvision's RandomCrop(32, padding=4), drawn per
    // image) and flips; Fashion-MNIST's centred items flips only; digits nothing (they are
    // not mirror-symmetric). Zero padding is the default because it is RandomCrop's and the
    // one the common CIFAR recipes use; reflection keeps borders free of black bands, for
    // recipes that pad that way. Padding comes before normalisation, as in torchvision, so
    // a zero-padded pixel is black, not the mean colour. The shift keeps the native size: a
    // RandomResizedCrop at 32 x 32 (the photo pipeline below) throws away too much of an
    // image that small.
    std::vector<data::Transform> steps;
    const bool photos = cfg.dataset != "mnist" && cfg.dataset != "fashion-mnist";
    VIMOE_CHECK(cfg.crop_padding == "zero" || cfg.crop_padding == "reflect",
                "--crop-padding must be zero or reflect, found \"", cfg.crop_padding, "\"");
    const data::Padding pad = cfg.crop_padding == "reflect" ? data::Padding::Reflect : data::Padding::Zero;
    if (photos) steps.push_back(data::tf::random_crop(size, size, size / 8, pad));
    if (cfg.dataset != "mnist") steps.push_back(data::tf::random_hflip());
    steps.push_back(data::tf::channels(channels));
    steps.push_back(data::tf::normalize(s.mean, s.std));
    return data::tf::compose(steps);
  }
  return data::train_transform(size, channels, s.mean, s.std);
}

data::Transform eval_transform(const RunConfig& cfg, const Datasets& d, int64_t size, int64_t channels) {
  const Normalization s = for_channels(normalization(cfg), channels);
  if (d.native_size == size)
    return data::tf::compose({data::tf::channels(channels), data::tf::normalize(s.mean, s.std)});
  return data::eval_transform(size, size * 8 / 7, channels, s.mean, s.std);
}

data::LoaderOptions train_loader_options(const RunConfig& cfg, const Datasets& d, const models::InputSpec& input) {
  data::LoaderOptions o;
  o.batch_size = cfg.batch_size;
  o.shuffle = true;
  o.drop_last = true;
  o.seed = cfg.seed;
  o.num_workers = cfg.workers;
  if (!cfg.segmentation()) {
    o.transform = train_transform(cfg, d, input.image_size, input.channels);
    if (cfg.mixup > 0 || cfg.cutmix > 0) {
      data::MixConfig mix;
      mix.mixup_alpha = cfg.mixup;
      mix.cutmix_alpha = cfg.cutmix;
      mix.label_smoothing = cfg.label_smoothing;
      o.mix = mix;
    }
    return o;
  }
  const Normalization s = for_channels(normalization(cfg), input.channels);
  const auto [long_side, short_side] = cfg.segmentation_scale();
  const int64_t crop = input.image_size, ignore = d.train->ignore_index();
  std::vector<data::PairTransform> steps = {
      data::segtf::random_rescale(long_side, short_side, {cfg.seg_ratio[0], cfg.seg_ratio[1]}),
      data::segtf::random_crop(crop, crop, ignore, cfg.cat_max_ratio), data::segtf::random_hflip(0.5)};
  if (cfg.photometric) steps.push_back(data::segtf::photometric_distortion());
  steps.push_back(data::segtf::image_only(data::tf::channels(input.channels)));
  steps.push_back(data::segtf::normalize(s.mean, s.std));
  o.pair_transform = data::segtf::compose(steps);
  return o;
}

data::LoaderOptions eval_loader_options(const RunConfig& cfg, const Datasets& d, const models::InputSpec& input,
                                        int workers) {
  data::LoaderOptions o;
  o.batch_size = cfg.batch_size;
  o.shuffle = false;
  o.num_workers = workers;
  if (!cfg.segmentation()) {
    o.transform = eval_transform(cfg, d, input.image_size, input.channels);
    return o;
  }
  if (!d.val_one_size) o.batch_size = 1;
  const Normalization s = for_channels(normalization(cfg), input.channels);
  const auto [long_side, short_side] = cfg.segmentation_scale();
  o.pair_transform = data::segtf::compose({data::segtf::resize(long_side, short_side, /*resize_mask=*/false),
                                           data::segtf::image_only(data::tf::channels(input.channels)),
                                           data::segtf::normalize(s.mean, s.std)});
  return o;
}

std::optional<data::SuperclassMap> superclasses(const RunConfig& cfg, const Datasets& d) {
  if (cfg.superclasses.empty()) return std::nullopt;
  const std::vector<std::string>& names = d.train->class_names();
  data::SuperclassMap m;
  if (cfg.superclasses == "coarse") {
    VIMOE_CHECK(cfg.dataset == "cifar100", "--superclasses coarse reads CIFAR-100's coarse labels; --dataset is ",
                cfg.dataset, " (give a JSON map, or random)");
    m = data::cifar100_coarse_superclasses(cfg.data_dir);
  } else if (cfg.superclasses == "random") {
    m = data::random_superclasses(static_cast<int64_t>(names.size()), cfg.experts, cfg.seed);
  } else {
    m = data::read_superclasses(cfg.superclasses, names);
  }
  VIMOE_CHECK(m.groups() == cfg.experts, "--superclasses ", cfg.superclasses, " has ", m.groups(),
              " groups; the single router chooses among --experts ", cfg.experts, ": they must be equal");
  return m;
}

}  // namespace vimoe::app
