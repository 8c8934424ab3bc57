-- wrk script of the lab test: counts the answers by status and body (each
-- pod says its name) over all threads, and prints them with the error
-- counts, one fact a line:
--   answer COUNT STATUS BODY
--   requests N errors connect C read R write W status S timeout T

answers = {}
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function response(status, headers, body)
  local key = status .. " " .. (string.gsub(body or "", "%s+$", ""))
  answers[key] = (answers[key] or 0) + 1
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for key, count in pairs(thread:get("answers")) do
      io.write(string.format("answer %d %s\n", count, key))
    end
  end
  local e = summary.errors
  io.write(string.format("requests %d errors connect %d read %d write %d status %d timeout %d\n",
    summary.requests, e.connect, e.read, e.write, e.status, e.timeout))
end
