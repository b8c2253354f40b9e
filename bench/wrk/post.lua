-- wrk script for every benchmark run: POST the sample body with the endpoint's key, and at the end
-- print one line "WRKJSON {...}" with throughput, latency percentiles (us) and error counts.
--
-- env: BENCH_AUTH  the whole Authorization header value ("Bearer <key>")
--      BENCH_DEPLOYMENT  optional: the azureml-model-deployment header (a deployment chosen by name)
--      BENCH_RATE  optional: total requests/s to pace at (fixed-rate runs). wrk 4 has no -R; wrk calls
--                  delay() (ms, whole numbers) before each request, so delay() hands out slots of one
--                  global schedule (start + n/rate) and returns how long until this request's slot.
--                  The rate is kept as long as connections x (1000/rate ms) exceeds the latency.
--                  Latency is measured from when the request is written (after the delay), so it is
--                  service time at that offered rate, not time spent waiting for a slot.
wrk.method = "POST"
wrk.body = '{"data": [[1,2,3,4,5,6,7,8,9,10],[10,9,8,7,6,5,4,3,2,1]]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH") or "Bearer none"
-- BENCH_DEPLOYMENT: pin every request to that deployment (azureml-model-deployment), as Azure clients do.
local deployment = os.getenv("BENCH_DEPLOYMENT")
if deployment and deployment ~= "" then wrk.headers["azureml-model-deployment"] = deployment end

local rate = tonumber(os.getenv("BENCH_RATE") or "")
if rate and rate > 0 then
  local ffi = require("ffi")
  ffi.cdef[[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clk_id, bench_timespec *tp);
  ]]
  local ts = ffi.new("bench_timespec")
  local function now_ms()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
  end
  local interval = 1000 / rate
  local slot = nil
  function delay()
    local now = now_ms()
    if slot == nil then slot = now end
    local d = slot - now
    slot = slot + interval
    if d <= 0 then return 0 end
    return math.floor(d + 0.5)
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    'WRKJSON {"requests":%d,"secs":%.3f,"rps":%.1f,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d}\n',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
