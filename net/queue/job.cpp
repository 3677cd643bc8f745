#include "net/queue/job.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <string_view>
#include <unordered_set>

#include "runtime/error.hpp"

namespace actorserve {

namespace {

template <class T>
bool parse_number(const std::string& text, T& out) {
  auto res = std::from_chars(text.data(), text.data() + text.size(), out);
  return res.ec == std::errc{} && res.ptr == text.data() + text.size() && !text.empty();
}

/// A field value in an error message: quoted, cut at 64 bytes.
std::string shown(const std::string& v) {
  return "\"" + (v.size() > 64 ? v.substr(0, 64) + "..." : v) + "\"";
}

/// Whether an entry may have its answer added to `stream` (and the stream trimmed).
bool reply_allowed(const std::string& stream, const queue_config& q) {
  auto& prefixes = q.reply_to_prefixes;
  if (prefixes.empty()) // (a queue_config not read from a file: its reply stream)
    return stream.rfind(q.reply_stream, 0) == 0;
  return std::any_of(prefixes.begin(), prefixes.end(),
                     [&](const std::string& p) { return stream.rfind(p, 0) == 0; });
}

std::string allowed_replies(const queue_config& q) {
  auto& prefixes = q.reply_to_prefixes;
  if (prefixes.empty())
    return shown(q.reply_stream);
  std::string out;
  for (std::size_t i = 0; i < prefixes.size(); ++i)
    out += (i == 0 ? "" : i + 1 == prefixes.size() ? " or " : ", ") + shown(prefixes[i]);
  return out;
}

/// What is wrong with an entry's reply_to, or nullopt.
std::optional<std::string> reply_to_problem(const std::string& value, const queue_config& q) {
  if (value.empty())
    return std::string("field \"reply_to\" is empty (leave it out for the queue's reply_stream)");
  if (value == q.stream)
    return std::string("field \"reply_to\" names the request stream itself");
  if (!reply_allowed(value, q))
    return "field \"reply_to\" " + shown(value) + " does not start with " + allowed_replies(q)
           + " (the queue's reply_to_prefixes)";
  return std::nullopt;
}

} // namespace

queue_job read_job(stream_entry&& entry, const queue_config& q) {
  queue_job job;
  job.entry_id = std::move(entry.id);
  job.reply_to = q.reply_stream;
  job.model = q.model;
  std::vector<std::string> problems;
  bool has_body = false, has_model = false;
  std::unordered_set<std::string_view> seen; // (one pass: an entry may have any number of fields)
  for (auto& [key, value] : entry.fields) {
    if (!seen.insert(key).second) {
      problems.push_back("field " + shown(key) + " is given twice");
      continue;
    }
    if (key == "body") {
      has_body = true;
      if (value.size() > q.max_entry_bytes) {
        job.problem = make_error(errc::payload_too_large,
                                 "field \"body\": " + std::to_string(value.size())
                                   + " bytes, more than the queue's max_entry_bytes ("
                                   + std::to_string(q.max_entry_bytes) + ")");
      } else {
        job.body = std::move(value);
      }
    } else if (key == "model") {
      has_model = true;
      job.model = std::move(value);
      if (job.model.empty())
        problems.push_back("field \"model\" is empty");
    } else if (key == "version") {
      job.version = std::move(value);
    } else if (key == "reply_to") {
      if (auto wrong = reply_to_problem(value, q))
        problems.push_back(std::move(*wrong));
      else
        job.reply_to = std::move(value);
    } else if (key == "header_length") {
      std::size_t n = 0;
      if (!parse_number(value, n))
        problems.push_back("field \"header_length\": expected a non-negative integer, got "
                           + shown(value));
      else
        job.header_length = n;
    } else if (key == "deadline_ms") {
      int64_t ms = 0;
      if (!parse_number(value, ms) || ms < 0)
        problems.push_back("field \"deadline_ms\": expected Unix time in milliseconds, got "
                           + shown(value));
      else
        job.deadline_ms = ms;
    } else if (key == "traceparent") {
      job.traceparent = std::move(value);
    } else {
      problems.push_back("unknown field " + shown(key)
                         + " (expected body, model, version, reply_to, header_length, "
                           "deadline_ms, traceparent)");
    }
  }
  if (!has_body)
    problems.push_back("field \"body\" is missing (the KServe v2 inference request)");
  if (!has_model && job.model.empty())
    problems.push_back("field \"model\" is missing (queue '" + q.name
                       + "' has no default model)");
  if (!problems.empty() && !job.problem) {
    std::string all = "entry " + job.entry_id + " of stream '" + q.stream + "': ";
    constexpr std::size_t listed = 8; // (an entry may have thousands of wrong fields)
    for (std::size_t i = 0; i < std::min(problems.size(), listed); ++i)
      all += (i ? "; " : "") + problems[i];
    if (problems.size() > listed)
      all += "; and " + std::to_string(problems.size() - listed) + " more";
    job.problem = make_error(errc::invalid_input, std::move(all));
  }
  return job;
}

stream_fields dead_letter_fields(const queue_job& job, uint64_t deliveries,
                                 const std::string& reason) {
  stream_fields out{{"entry", job.entry_id},
                    {"deliveries", std::to_string(deliveries)},
                    {"reason", reason},
                    {"model", job.model}};
  if (!job.version.empty())
    out.emplace_back("version", job.version);
  out.emplace_back("reply_to", job.reply_to);
  if (job.header_length)
    out.emplace_back("header_length", std::to_string(*job.header_length));
  out.emplace_back("body", job.body);
  return out;
}

stream_fields answer_fields(const queue_job& job, unsigned status, std::string body,
                            std::optional<std::size_t> header_length) {
  stream_fields out;
  out.emplace_back("request", job.entry_id);
  out.emplace_back("model", job.model);
  out.emplace_back("status", std::to_string(status));
  out.emplace_back("body", std::move(body));
  if (header_length)
    out.emplace_back("header_length", std::to_string(*header_length));
  if (!job.traceparent.empty())
    out.emplace_back("traceparent", job.traceparent);
  return out;
}

} // namespace actorserve
