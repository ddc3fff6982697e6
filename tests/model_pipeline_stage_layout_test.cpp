// Megatron's layer assignment: the layer ranges of DeepSeek-V2's and V3's
// uneven pipelines, chunks tiling the model in virtual-stage order, and which
// stage holds the embedding and the loss.
#include <gtest/gtest.h>

#include <string>

#include "moebench/core/error.h"
#include "moebench/model/pipeline_stage_layout.h"

namespace moebench::model {
namespace {

config::ParallelConfig pipeline(int stages, int chunks, int first, int last) {
  config::ParallelConfig p;
  p.pipeline = stages;
  p.virtual_stages = chunks;
  p.first_stage_layers = first;
  p.last_stage_layers = last;
  return p;
}

TEST(PipelineStageLayout, DeepSeekV2LayersOnSixteenStagesWithTwoChunks) {
  // 60 layers, PP_FIRST = PP_LAST = 2: 56 middle layers, 4 per middle stage.
  // Each chunk is one pass of 30 layers: stage 0 holds 1, stages 1..14 hold 2
  // each, stage 15 holds 1.
  const config::ParallelConfig p = pipeline(16, 2, 2, 2);
  EXPECT_EQ(pipeline_chunk_layers(p, 60, 0, 0), (LayerRange{0, 1}));
  EXPECT_EQ(pipeline_chunk_layers(p, 60, 0, 1), (LayerRange{30, 31}));
  EXPECT_EQ(pipeline_chunk_layers(p, 60, 1, 0), (LayerRange{1, 3}));
  EXPECT_EQ(pipeline_chunk_layers(p, 60, 7, 0), (LayerRange{13, 15}));
  EXPECT_EQ(pipeline_chunk_layers(p, 60, 14, 0), (LayerRange{27, 29}));
  EXPECT_EQ(pipeline_chunk_layers(p, 60, 14, 1), (LayerRange{57, 59}));
  EXPECT_EQ(pipeline_chunk_layers(p, 60, 15, 0), (LayerRange{29, 30}));
  EXPECT_EQ(pipeline_chunk_layers(p, 60, 15, 1), (LayerRange{59, 60}));
}

TEST(PipelineStageLayout, DeepSeekV3LayersOnSixteenStages) {
  // 61 layers, PP_FIRST = 4, PP_LAST = 1: 56 middle layers, 4 per middle stage.
  const config::ParallelConfig p = pipeline(16, 1, 4, 1);
  EXPECT_EQ(pipeline_chunk_layers(p, 61, 0, 0), (LayerRange{0, 4}));
  EXPECT_EQ(pipeline_chunk_layers(p, 61, 1, 0), (LayerRange{4, 8}));
  EXPECT_EQ(pipeline_chunk_layers(p, 61, 14, 0), (LayerRange{56, 60}));
  EXPECT_EQ(pipeline_chunk_layers(p, 61, 15, 0), (LayerRange{60, 61}));
  // PP_LAST = 1 cannot be cut into two chunks.
  EXPECT_THROW(pipeline_chunk_layers(pipeline(16, 2, 4, 1), 61, 0, 0), Error);
}

TEST(PipelineStageLayout, ChunkLayersTileTheModelInVirtualStageOrder) {
  // Virtual stage v = c * PP + s; walking v in order must visit every layer once.
  struct Case {
    int layers, stages, chunks, first, last;
  };
  for (const Case& c : {Case{60, 16, 2, 2, 2}, Case{61, 16, 1, 4, 1}, Case{24, 4, 3, 0, 0},
                        Case{28, 4, 2, 0, 4}, Case{26, 4, 2, 2, 0}, Case{8, 2, 4, 0, 0}}) {
    SCOPED_TRACE(std::to_string(c.layers) + " layers PP" + std::to_string(c.stages) + " VPP" +
                 std::to_string(c.chunks));
    const config::ParallelConfig p = pipeline(c.stages, c.chunks, c.first, c.last);
    int next = 0;
    for (int chunk = 0; chunk < c.chunks; ++chunk) {
      for (int stage = 0; stage < c.stages; ++stage) {
        const LayerRange range = pipeline_chunk_layers(p, c.layers, stage, chunk);
        EXPECT_EQ(range.begin, next) << "stage " << stage << " chunk " << chunk;
        EXPECT_EQ(range.size() * c.chunks, p.layers_per_stage(c.layers)[stage]);
        next = range.end;
      }
    }
    EXPECT_EQ(next, c.layers);
  }
}

TEST(PipelineStageLayout, FirstStageEmbedsAndLastStageComputesTheLoss) {
  // 8 layers, PP 2 x VPP 2: chunk c of stage s is virtual stage 2c + s.
  const config::ParallelConfig p = pipeline(2, 2, 0, 0);
  const PipelineStageLayout first = PipelineStageLayout::of_stage(p, 8, 0);
  const PipelineStageLayout last = PipelineStageLayout::of_stage(p, 8, 1);
  EXPECT_EQ(first.chunks, (std::vector<LayerRange>{{0, 2}, {4, 6}}));
  EXPECT_EQ(last.chunks, (std::vector<LayerRange>{{2, 4}, {6, 8}}));
  EXPECT_TRUE(first.has_embedding());
  EXPECT_FALSE(first.has_output_layer());
  EXPECT_TRUE(first.is_first_virtual_stage(0));
  EXPECT_FALSE(first.is_first_virtual_stage(1));
  EXPECT_FALSE(last.has_embedding());
  EXPECT_TRUE(last.is_last_virtual_stage(1));
  EXPECT_FALSE(last.is_last_virtual_stage(0));
  const PipelineStageLayout whole = PipelineStageLayout::whole_model(8);
  EXPECT_TRUE(whole.is_first_virtual_stage(0));
  EXPECT_TRUE(whole.is_last_virtual_stage(0));
  EXPECT_EQ(whole.chunks, (std::vector<LayerRange>{{0, 8}}));
}

}  // namespace
}  // namespace moebench::model
