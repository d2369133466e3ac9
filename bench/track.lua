-- wrk script shared by bench/soak.sh and bench/compare/ingest.sh: Segment
-- `POST /v1/track` calls with unique messageIds (each stores a touch and
-- re-evaluates its person), optionally mixed with GETs.
--
-- Environment (read by every wrk thread):
--   TRACK_TOKEN        bearer token (admin or marketing), required
--   TRACK_RUN          a string unique to the run, part of every messageId
--   TRACK_PEOPLE       how many distinct userIds the calls spread over (500)
--   TRACK_GET_EVERY    every Nth request is a GET instead (0: none, the default)
--   TRACK_INTERVAL_MS  pace: each thread sends one request per this many ms
--                      (threads * 1000 / rate); connections take the thread's
--                      next free slot after each answer, and a slot missed
--                      because every connection was busy is dropped, not
--                      caught up, so the achieved rate shows a shortfall
--   TRACK_DELAY_MS     without TRACK_INTERVAL_MS: a fixed wait per connection
--                      between requests (0 or unset: none)
--
-- done() prints `TRACK key value` lines: requests, non_2xx, socket_errors,
-- seconds, latency_p50_ms … latency_max_ms (wrk measures from sending a
-- request to its answer; the pacing wait is not part of it).
local token = os.getenv("TRACK_TOKEN")
local run = os.getenv("TRACK_RUN") or tostring(os.time())
local people = tonumber(os.getenv("TRACK_PEOPLE") or "500")
local get_every = tonumber(os.getenv("TRACK_GET_EVERY") or "0")
local interval = tonumber(os.getenv("TRACK_INTERVAL_MS") or "")
local fixed_delay = tonumber(os.getenv("TRACK_DELAY_MS") or "0")
local threads = {}
local counter = 0
failures = 0 -- global: done() reads it per thread with thread:get
local gets = {"/api/v1/people?limit=20", "/api/v1/metrics/funnel", "/api/v1/touches?limit=20", "/healthz"}
local hdr = {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}

-- A monotonic clock in ms (wrk's Lua is LuaJIT; os.clock is CPU time).
local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } track_timespec;
  int clock_gettime(int clk, track_timespec *ts);
]]
local ts = ffi.new("track_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local next_slot = nil

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

if interval or fixed_delay > 0 then
  function delay()
    if not interval then
      return fixed_delay
    end
    local t = now_ms()
    local slot = (next_slot or t) + interval
    if slot < t then
      slot = t
    end
    next_slot = slot
    return math.floor(slot - t + 0.5)
  end
end

function request()
  counter = counter + 1
  if get_every > 0 and counter % get_every == 0 then
    return wrk.format("GET", gets[(counter / get_every) % #gets + 1], hdr)
  end
  local user = "track-" .. ((counter * 31 + tid) % people)
  local body = string.format(
    '{"userId":"%s","event":"Webinar","messageId":"track-%s-%d-%d"}', user, run, tid, counter)
  return wrk.format("POST", "/v1/track", hdr, body)
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    failures = failures + 1
    if failures <= 3 then io.stderr:write("HTTP " .. status .. ": " .. body .. "\n") end
  end
end

function done(summary, latency, requests)
  local f = 0
  for _, t in ipairs(threads) do f = f + t:get("failures") end
  local e = summary.errors
  io.write(string.format("TRACK requests %d\n", summary.requests))
  io.write(string.format("TRACK seconds %.3f\n", summary.duration / 1e6))
  io.write(string.format("TRACK non_2xx %d\n", f))
  io.write(string.format("TRACK socket_errors %d\n", e.connect + e.read + e.write + e.timeout))
  for _, p in ipairs({50, 90, 99}) do
    io.write(string.format("TRACK latency_p%d_ms %.2f\n", p, latency:percentile(p) / 1000))
  end
  io.write(string.format("TRACK latency_max_ms %.2f\n", latency.max / 1000))
end
