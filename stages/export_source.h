// source kind "export": a DynamoDB export to S3 in DYNAMODB_JSON format (manifest-summary.json,
// manifest-files.json, data/*.json.gz), read from a local folder or an s3:// URL through
// stages/export_files.h. One partition per data file; resume token = file and line; pages are
// read on the pipeline's reader pool (local reads), so neither a TBB worker nor the client's I/O
// thread waits on a file or S3. Consumes no read capacity of any table. Immutable; source.h has
// the threading rules.
#pragma once

#include "stages/source.h"

namespace dynamorph::stages {

// Opens and checks both manifests at plan time: a missing or malformed export is refused before
// anything is written (UsageError naming the file and line).
std::unique_ptr<Source> make_export_source(const SourceContext& context);

}  // namespace dynamorph::stages
