-- wrk script: replays raw HTTP/1.1 requests prepared by bench.py (one file each, cycled in
-- order; the arguments are the files) and prints the run's numbers as one JSON line.

local requests, next_index = {}, 0

function init(args)
  for _, name in ipairs(args) do
    local f = assert(io.open(name, "rb"))
    requests[#requests + 1] = f:read("*a")
    f:close()
  end
end

function request()
  next_index = next_index % #requests + 1
  return requests[next_index]
end

function done(summary, latency)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
