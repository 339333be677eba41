#include "stages/export_source.h"

#include <fmt/format.h>

#include "dynamo/errors.h"
#include "dynamo/s3.h"
#include "stages/export_files.h"

namespace dynamorph::stages {
namespace {

class ExportPartition final : public PartitionReader {
 public:
  ExportPartition(std::shared_ptr<const ExportFiles> files, ExportPosition from, int page_size)
      : files_(std::move(files)), from_(from), page_size_(static_cast<std::size_t>(page_size)) {}

  ReadRequest next() override {
    ReadRequest r;
    // On the reader pool: decompress and parse the next page of lines into items_, which
    // parse() hands on (the graph orders the two calls).
    r.local = [this] {
      if (!reader_) reader_ = files_->reader(from_);
      items_.clear();
      last_ = reader_->read(page_size_, items_);
      return RawRead{};
    };
    return r;
  }

  SourcePage parse(RawRead&&) override {
    SourcePage page;
    page.items = std::move(items_);
    page.examined = static_cast<std::int64_t>(last_.items);
    if (!last_.finished) page.next = encode_position(reader_->position());
    return page;
  }

 private:
  std::shared_ptr<const ExportFiles> files_;
  ExportPosition from_;
  std::size_t page_size_;
  std::unique_ptr<ExportFileReader> reader_;  // opened by the first read
  std::vector<dynamo::Item> items_;
  ExportReadResult last_;
};

class ExportSource final : public Source {
 public:
  ExportSource(std::shared_ptr<const ExportFiles> files, int page_size)
      : files_(std::move(files)), page_size_(page_size) {}

  int partitions(int) const override { return static_cast<int>(files_->files().size()); }
  std::unique_ptr<PartitionReader> open(int partition, int, const std::optional<ResumeToken>& from) const override {
    ExportPosition start{static_cast<std::size_t>(partition), 1};
    if (from) {
      start = decode_position(*from);
      if (start.file != static_cast<std::size_t>(partition))
        throw ExportError(fmt::format("{}: checkpoint of partition {} points into data file {}",
                                      files_->location().describe(), partition, start.file));
    }
    return std::make_unique<ExportPartition>(files_, start, page_size_);
  }
  const std::optional<dynamo::TableDescription>& table() const override { return no_table_; }
  bool consumes_read_capacity() const override { return false; }
  std::string describe() const override {
    return fmt::format("export {} ({} data files)", files_->location().describe(), files_->files().size());
  }
  std::int64_t estimated_items() const override { return static_cast<std::int64_t>(files_->item_count()); }

 private:
  std::shared_ptr<const ExportFiles> files_;
  int page_size_;
  std::optional<dynamo::TableDescription> no_table_;
};

}  // namespace

std::unique_ptr<Source> make_export_source(const SourceContext& c) {
  const std::string& where = c.spec.source.export_location;
  ExportLocation location = ExportLocation::parse(where);
  std::shared_ptr<dynamo::S3Client> s3;
  if (location.is_s3()) {
    s3 = std::make_shared<dynamo::S3Client>(dynamo::s3_client_options_for(c.client.options()));
  }
  std::shared_ptr<const ExportFiles> files;
  try {
    files = ExportFiles::open(location, s3);
  } catch (const ExportError& e) {
    // Nothing is read or written yet: a bad export is refused like a bad file (exit 2).
    throw UsageError(fmt::format("{}: source.export: {}", c.spec.label, e.what()));
  }
  if (files->files().empty())
    throw UsageError(fmt::format("{}: source.export: {} lists no data files", c.spec.label, location.describe()));
  int page_size = c.spec.source.page_size > 0 ? c.spec.source.page_size : c.default_page_size;
  return std::make_unique<ExportSource>(std::move(files), page_size);
}

}  // namespace dynamorph::stages
