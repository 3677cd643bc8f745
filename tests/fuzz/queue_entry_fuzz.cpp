// The Redis stream entry reader (an entry's fields become a job, or a problem naming them) on any
// bytes, split into field names and values at NUL bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "net/queue/job.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  using namespace actorserve;
  std::vector<std::string> parts(1);
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0)
      parts.emplace_back();
    else
      parts.back() += static_cast<char>(data[i]);
  }
  stream_entry entry;
  entry.id = "1700000000000-0";
  for (std::size_t i = 0; i + 1 < parts.size(); i += 2)
    entry.fields.emplace_back(parts[i], parts[i + 1]);
  queue_config q;
  q.name = q.stream = "jobs";
  q.reply_stream = "jobs:replies";
  q.max_entry_bytes = 4096;
  auto job = read_job(std::move(entry), q);
  if (!job.problem && job.reply_to.rfind("jobs:replies", 0) != 0) // only allowed reply streams
    __builtin_trap();
  return 0;
}
