-- wrk script: POSTs one KServe v2 infer request (body from the file in $BODY: JSON, or with
-- $JSON_LENGTH set, a JSON header of that many bytes followed by binary tensors) and tallies the
-- batch sizes the server reports in each response's parameters.batch_requests.
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
local json_length = os.getenv("JSON_LENGTH")
if json_length and json_length ~= "" then
  wrk.headers["Content-Type"] = "application/octet-stream"
  wrk.headers["Inference-Header-Content-Length"] = json_length
else
  wrk.headers["Content-Type"] = "application/json"
end

local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) hist = {}; bad = 0 end
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1; return end
  local n = tonumber(string.match(body, '"batch_requests":(%d+)'))
  if n then hist[n] = (hist[n] or 0) + 1 end
end
function done(summary, latency, requests)
  local total, answered, rows = {}, 0, 0
  local errors = 0
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("hist")) do total[k] = (total[k] or 0) + v end
    errors = errors + t:get("bad")
  end
  local sizes = {}
  for k, v in pairs(total) do table.insert(sizes, k); answered = answered + v; rows = rows + k * v end
  table.sort(sizes)
  io.write(string.format("RESULT requests_per_s=%.0f p50_us=%d p90_us=%d p99_us=%d max_us=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, errors + summary.errors.status + summary.errors.connect
    + summary.errors.read + summary.errors.write + summary.errors.timeout))
  local parts = {}
  for _, k in ipairs(sizes) do table.insert(parts, string.format("%d:%.1f%%", k, 100 * total[k] / answered)) end
  io.write(string.format("BATCHES mean_requests_per_batch_seen_by_a_request=%.2f share_by_size=%s\n",
    rows / math.max(answered, 1), table.concat(parts, " ")))
end
