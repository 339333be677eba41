// source kind "stream": a table's DynamoDB Stream replayed as changes (stages/source.h Change).
// Its partitions are lanes: each shard belongs to one lane (a hash of its id), a lane reads its
// shards' pages one at a time (serial pages: a page is read only once the previous one is
// written and checkpointed), and a child shard is adopted only once its parent is done, in
// whatever lane. The resume token is the lane's shards with their sequence numbers (text, read
// by this file only). The source's one mutable part is the lineage its lanes share (which shard
// is whose, which are done, how far each lane has applied), under a mutex; everything else is
// immutable. Reads are blocking Streams calls run as local reads on the pipeline's reader
// threads, never on a TBB worker.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "stages/source.h"

namespace dynamorph::stages {

std::unique_ptr<Source> make_stream_source(const SourceContext& context);

// The view of `table`'s stream (NEW_IMAGE or NEW_AND_OLD_IMAGES). UsageError naming the table
// and enable_stream when it has no enabled stream, or one that carries no new image.
std::string require_stream_view(const dynamo::TableDescription& table, std::string_view label);

// Where a replay must start, taken before the backfill's first Scan: every shard closed by now
// is done (the scan sees what it holds), every open one starts after its newest record (read to
// its end now). One token per lane. Throws Error when the stream cannot be read.
std::vector<ResumeToken> stream_start_tokens(dynamo::Client& client, const std::string& table,
                                             std::string_view label);

// The time (epoch ms, the server's clock) up to which a lane token's shards are known to be
// applied: the newest applied record's ApproximateCreationDateTime, or when a read found a
// shard's end. 0 when unknown. The replay's lag is now minus the smallest over its lanes.
std::int64_t stream_token_applied_until_ms(const ResumeToken& token);

// Lineage, for tests: which shards of `shards` the lane `lane` of `lanes` may start now, given
// those known already (started or done) and those done.
struct ShardInfo {
  std::string id, parent;
};
std::vector<std::string> adoptable_shards(const std::vector<ShardInfo>& shards,
                                          const std::vector<std::string>& known,
                                          const std::vector<std::string>& done, int lane,
                                          int lanes);
int lane_of_shard(std::string_view shard_id, int lanes);

}  // namespace dynamorph::stages
