// The native distributed checkpoint on one process: slices, flat ranges, a
// tensor saved under one sharding and read back under others, and the
// failures (missing or cut-off rank file, bad metadata, wrong shape) that
// must be clear errors leaving no half-written checkpoint visible.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "moebench/ckpt/checkpoint_directory.h"
#include "moebench/ckpt/native_checkpoint.h"
#include "moebench/core/error.h"

namespace moebench::ckpt {
namespace {

namespace fs = std::filesystem;

fs::path fresh_directory(const std::string& name) {
  const fs::path path = fs::temp_directory_path() / ("moebench_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(path);
  return path;
}

// Element i of the global tensor is i: every read is checkable by position.
Tensor iota(const std::vector<int64_t>& shape) {
  std::vector<float> values(size_t(TensorSlice::whole(shape).numel()));
  std::iota(values.begin(), values.end(), 0.0f);
  return Tensor::from_vector(values, shape);
}

ShardedTensor piece(const std::string& name, const Tensor& global, const TensorSlice& slice) {
  return {name, global.shape(), slice, view_of_region(global, TensorSlice::whole(global.shape()), slice).clone()};
}

// Writes one rank file per entry of `ranks` and commits them as `iteration`.
void save(const fs::path& root, std::optional<int64_t> iteration, const std::vector<std::vector<ShardedTensor>>& ranks) {
  for (size_t r = 0; r < ranks.size(); ++r)
    write_rank_file(staging_directory(root, checkpoint_name(iteration)), int(r), ranks[r]);
  CheckpointMetadata metadata;
  metadata.iteration = iteration;
  metadata.model_args = {"--num-layers", "1"};
  commit_checkpoint(root, metadata, int(ranks.size()));
}

void expect_equal(const Tensor& actual, const Tensor& expected) {
  ASSERT_EQ(actual.shape(), expected.shape());
  const Tensor a = actual.contiguous(), e = expected.contiguous();
  for (int64_t i = 0; i < a.numel(); ++i) ASSERT_EQ(a.data<float>()[i], e.data<float>()[i]) << "element " << i;
}

TEST(TensorSlice, IntersectsAndDescribes) {
  const TensorSlice a{{0, 2}, {4, 4}}, b{{2, 0}, {4, 3}};
  const auto common = intersect(a, b);
  ASSERT_TRUE(common);
  EXPECT_EQ(*common, (TensorSlice{{2, 2}, {2, 1}}));
  EXPECT_EQ(common->describe(), "[2:4, 2:3]");
  EXPECT_FALSE(intersect(a, TensorSlice{{4, 0}, {1, 8}}));
}

TEST(TensorSlice, FlatRangesBecomeRectanglesThatCoverExactlyTheRange) {
  const std::vector<int64_t> shape = {3, 4, 5};
  for (int64_t begin = 0; begin < 60; begin += 7)
    for (int64_t end = begin + 1; end <= 60; end += 5) {
      std::vector<int> hits(60, 0);
      const auto slices = flat_range_slices(shape, begin, end);
      EXPECT_LE(slices.size(), 5u);
      for (const TensorSlice& s : slices) {
        ASSERT_TRUE(s.fits(shape)) << s.describe();
        for (int64_t i = 0; i < s.sizes[0]; ++i)
          for (int64_t j = 0; j < s.sizes[1]; ++j)
            for (int64_t k = 0; k < s.sizes[2]; ++k)
              ++hits[size_t(((s.offsets[0] + i) * 4 + s.offsets[1] + j) * 5 + s.offsets[2] + k)];
      }
      for (int64_t i = 0; i < 60; ++i) ASSERT_EQ(hits[size_t(i)], i >= begin && i < end ? 1 : 0) << begin << ":" << end;
    }
}

// Saved as 4 row shards (TP-style) plus flat ranges of another tensor
// (distributed-optimizer-style), read back as 3 uneven column shards, a
// block crossing every shard, and the whole.
TEST(NativeCheckpoint, ReadsAnySliceFromShardsOfAnotherMapping) {
  const fs::path root = fresh_directory("ckpt_reshard");
  const Tensor weight = iota({8, 6});
  const Tensor moments = iota({5, 7});
  std::vector<std::vector<ShardedTensor>> ranks(4);
  for (int r = 0; r < 4; ++r) ranks[r].push_back(piece("w", weight, {{2 * r, 0}, {2, 6}}));
  const int64_t bounds[] = {0, 9, 20, 31, 35};
  for (int r = 0; r < 4; ++r)
    for (const TensorSlice& s : flat_range_slices({5, 7}, bounds[r], bounds[r + 1]))
      ranks[r].push_back(piece("m", moments, s));
  save(root, 10, ranks);

  EXPECT_EQ(read_tracker(root), "10");
  const NativeCheckpoint checkpoint(root);
  EXPECT_EQ(checkpoint.directory(), root / "iter_0000010");
  EXPECT_EQ(checkpoint.metadata().tensors.at("w").shards.size(), 4u);
  for (const TensorSlice& target : {TensorSlice{{0, 0}, {8, 1}}, TensorSlice{{0, 1}, {8, 3}}, TensorSlice{{0, 4}, {8, 2}},
                                    TensorSlice{{1, 2}, {6, 3}}}) {
    ShardedTensor wanted{"w", {8, 6}, target, Tensor::empty(target.sizes, DType::F32)};
    checkpoint.read(wanted);
    expect_equal(wanted.local, view_of_region(weight, TensorSlice::whole({8, 6}), target));
  }
  // Into a strided destination, converting to bf16 on the way.
  Tensor transposed = Tensor::zeros({7, 5}, DType::BF16).transpose(0, 1);
  checkpoint.read({"m", {5, 7}, TensorSlice::whole({5, 7}), transposed});
  expect_equal(transposed.to(DType::F32), moments);
  expect_equal(checkpoint.read_whole("m"), moments);
  fs::remove_all(root);
}

TEST(NativeCheckpoint, ReleaseCheckpointAndResave) {
  const fs::path root = fresh_directory("ckpt_release");
  const Tensor weight = iota({4});
  save(root, std::nullopt, {{whole_tensor("w", weight)}});
  EXPECT_EQ(read_tracker(root), "release");
  EXPECT_TRUE(is_native_checkpoint(root));
  // Saving the same name again swaps the new checkpoint in.
  const Tensor doubled = Tensor::from_vector<float>({0, 2, 4, 6});
  save(root, std::nullopt, {{whole_tensor("w", doubled)}});
  expect_equal(NativeCheckpoint(root).read_whole("w"), doubled);
  EXPECT_EQ(std::distance(fs::directory_iterator(root), fs::directory_iterator()), 2);  // release/ + tracker
  fs::remove_all(root);
}

std::string error_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(NativeCheckpoint, MissingRankFileAtCommitLeavesNothingVisible) {
  const fs::path root = fresh_directory("ckpt_partial");
  const Tensor weight = iota({4, 2});
  write_rank_file(staging_directory(root, "iter_0000005"), 0, std::vector{piece("w", weight, {{0, 0}, {2, 2}})});
  CheckpointMetadata metadata;
  metadata.iteration = 5;
  EXPECT_NE(error_of([&] { commit_checkpoint(root, metadata, 2); }).find("rank 1 wrote no rank_00001.safetensors"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(root / "iter_0000005"));
  EXPECT_FALSE(read_tracker(root));
  // A rank that saved only half of a tensor is caught as well.
  write_rank_file(staging_directory(root, "iter_0000005"), 1, std::vector<ShardedTensor>{});
  EXPECT_NE(error_of([&] { commit_checkpoint(root, metadata, 2); }).find("hold 4 of its 8 elements"), std::string::npos);
  EXPECT_FALSE(fs::exists(root / "iter_0000005"));
  fs::remove_all(root);
}

TEST(NativeCheckpoint, DamagedCheckpointsAreClearErrors) {
  const fs::path root = fresh_directory("ckpt_damaged");
  const Tensor weight = iota({64, 8});
  save(root, 3, {{piece("w", weight, {{0, 0}, {32, 8}})}, {piece("w", weight, {{32, 0}, {32, 8}})}});
  const fs::path directory = root / "iter_0000003";

  // Wrong global shape: the model does not match.
  const std::string mismatch = error_of([&] {
    NativeCheckpoint(root).read({"w", {64, 4}, TensorSlice::whole({64, 4}), Tensor::empty({64, 4}, DType::F32)});
  });
  EXPECT_NE(mismatch.find("is [64, 8] there but the model expects [64, 4]"), std::string::npos) << mismatch;
  EXPECT_NE(error_of([&] { NativeCheckpoint(root).read_whole("v"); }).find("has no tensor 'v'"), std::string::npos);

  // A cut-off rank file.
  fs::resize_file(directory / "rank_00001.safetensors", fs::file_size(directory / "rank_00001.safetensors") - 100);
  EXPECT_NE(error_of([&] { NativeCheckpoint{root}; }).find("truncated"), std::string::npos);
  // A missing one.
  fs::remove(directory / "rank_00001.safetensors");
  EXPECT_NE(error_of([&] { NativeCheckpoint{root}; }).find("missing its rank file rank_00001.safetensors"),
            std::string::npos);
  // Bad metadata.
  std::ofstream(directory / "metadata.json") << "{\"format\": \"moebench-native\", \"version\": 1}";
  EXPECT_NE(error_of([&] { NativeCheckpoint{root}; }).find("is malformed"), std::string::npos);
  // A tracker naming a checkpoint that is not there.
  write_tracker(root, 7);
  EXPECT_NE(error_of([&] { NativeCheckpoint{root}; }).find("names 'iter_0000007'"), std::string::npos);
  fs::remove_all(root);
}

}  // namespace
}  // namespace moebench::ckpt
