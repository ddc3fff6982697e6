#pragma once
// The trainer's view of a GptDataset or a BlendedDataset: microbatch samples
// first .. first + B - 1 stacked into tokens, labels and loss mask.
#include <cstdint>
#include <memory>
#include <variant>

#include "moebench/data/blended_dataset.h"
#include "moebench/data/gpt_dataset.h"
#include "moebench/data/microbatch.h"

namespace moebench::data {

class GptMicrobatchSource final : public MicrobatchSource {
 public:
  GptMicrobatchSource(std::shared_ptr<const GptDataset> dataset, int64_t seq_length);
  GptMicrobatchSource(std::shared_ptr<const BlendedDataset> dataset, int64_t seq_length);

  int64_t size() const;
  GptSample sample(int64_t index) const;
  // tokens and labels int64 [B, S], loss_mask float32 [B, S]; S = seq_length.
  Microbatch microbatch(int64_t first_sample, int64_t batch_size) const override;

 private:
  std::variant<std::shared_ptr<const GptDataset>, std::shared_ptr<const BlendedDataset>> dataset_;
  int64_t seq_length_;
};

}  // namespace moebench::data
