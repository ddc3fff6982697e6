#include "moebench/data/gpt_microbatch_source.h"

#include <algorithm>
#include <string>

#include "moebench/core/error.h"

namespace moebench::data {

GptMicrobatchSource::GptMicrobatchSource(std::shared_ptr<const GptDataset> dataset, int64_t seq_length)
    : dataset_(std::move(dataset)), seq_length_(seq_length) {}

GptMicrobatchSource::GptMicrobatchSource(std::shared_ptr<const BlendedDataset> dataset, int64_t seq_length)
    : dataset_(std::move(dataset)), seq_length_(seq_length) {}

int64_t GptMicrobatchSource::size() const {
  return std::visit([](const auto& dataset) { return dataset->size(); }, dataset_);
}

GptSample GptMicrobatchSource::sample(int64_t index) const {
  return std::visit([index](const auto& dataset) { return dataset->sample(index); }, dataset_);
}

Microbatch GptMicrobatchSource::microbatch(int64_t first_sample, int64_t batch_size) const {
  const std::vector<int64_t> shape = {batch_size, seq_length_};
  Microbatch batch{Tensor::empty(shape, DType::I64), Tensor::empty(shape, DType::I64),
                   Tensor::empty(shape, DType::F32)};
  for (int64_t b = 0; b < batch_size; ++b) {
    const GptSample drawn = sample(first_sample + b);
    if (int64_t(drawn.loss_mask.size()) != seq_length_)
      throw Error("sample " + std::to_string(first_sample + b) + " holds " + std::to_string(drawn.loss_mask.size()) +
                  " input tokens, not the sequence length " + std::to_string(seq_length_) +
                  "; build the dataset with the model's --seq-length");
    std::ranges::copy(drawn.tokens(), batch.tokens.data<int64_t>() + b * seq_length_);
    std::ranges::copy(drawn.labels(), batch.labels.data<int64_t>() + b * seq_length_);
    std::ranges::copy(drawn.loss_mask, batch.loss_mask.data<float>() + b * seq_length_);
  }
  return batch;
}

}  // namespace moebench::data
