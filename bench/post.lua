-- wrk script: POST one JSON body (the same to both servers), bounded in count as well as time.
--   BENCH_BODY          the JSON body
--   BENCH_MAX_REQUESTS  stop a thread after this many responses (a safety bound; -d is the other)
--   BENCH_DELAY_MS      wait this long before each next request on a connection (paced load)
--   BENCH_STAGGER       with a delay, this many connections start spread evenly over one delay
-- done() prints one line "BENCH-JSON {...}" with the counts and latency percentiles in µs.

wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or '{"prompt": "hello", "emotion": "happy"}'
wrk.headers["Content-Type"] = "application/json"

local max_requests = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "0")
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
local stagger = tonumber(os.getenv("BENCH_STAGGER") or "0")
local answered = 0
local started = 0

function response(status, headers, body)
  answered = answered + 1
  if max_requests > 0 and answered >= max_requests then
    wrk.thread:stop()
  end
end

if delay_ms > 0 then
  -- wrk asks for a delay before every request, a connection's first included: the first
  -- `stagger` calls give the connections phases spread over one period, so that they do not
  -- all send at the same instant, every period, for the whole run.
  function delay()
    if started < stagger then
      started = started + 1
      return math.floor(delay_ms * started / stagger)
    end
    return delay_ms
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH-JSON {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
