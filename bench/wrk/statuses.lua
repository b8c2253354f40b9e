-- Diagnostic wrk script, run only after a measured run saw errors: the same request, but counts the
-- response status codes and keeps the first body of every non-2xx status ("WRKSTATUS {...}" at the end).
wrk.method = "POST"
wrk.body = '{"data": [[1,2,3,4,5,6,7,8,9,10],[10,9,8,7,6,5,4,3,2,1]]}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH") or "Bearer none"

local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) counts = {}; samples = {} end
function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if status >= 300 and samples[status] == nil then samples[status] = string.sub(body or "", 1, 300) end
end
local function esc(s) return (string.gsub(s, '[%c"\\]', function(c) return string.format("\\u%04x", string.byte(c)) end)) end
function done(summary, latency, requests)
  local total, firsts = {}, {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do total[k] = (total[k] or 0) + v end
    for k, v in pairs(t:get("samples")) do firsts[k] = firsts[k] or v end
  end
  local parts, bodies = {}, {}
  for k, v in pairs(total) do table.insert(parts, string.format('"%d":%d', k, v)) end
  for k, v in pairs(firsts) do table.insert(bodies, string.format('"%d":"%s"', k, esc(v))) end
  io.write('WRKSTATUS {"counts":{' .. table.concat(parts, ",") .. '},"bodies":{' .. table.concat(bodies, ",") .. '}}\n')
end
