// api.js - kiln's HTTP API as the pages use it.  URLs are relative to the
// page (every page is one level under the UI's root), so the UI works under
// a proxy's path prefix or --web.route-prefix without knowing it.

export class ApiError extends Error {
  constructor(msg, type, status) {
    super(msg);
    this.type = type;
    this.status = status;
  }
}

// GET (or POST when params are long) api/v1/<path>; resolves to the whole
// envelope {status, data, warnings, infos}; rejects with ApiError.
export async function api(path, params, opts = {}) {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (Array.isArray(v)) v.forEach((x) => body.append(k, x));
    else if (v !== undefined && v !== null && v !== "") body.append(k, String(v));
  }
  const qs = body.toString();
  let res;
  try {
    if (qs.length > 1500) {
      res = await fetch("api/v1/" + path, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: qs,
        signal: opts.signal,
      });
    } else {
      res = await fetch("api/v1/" + path + (qs ? "?" + qs : ""), { signal: opts.signal });
    }
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError("cannot reach kiln: " + e.message, "network", 0);
  }
  let j;
  try {
    j = await res.json();
  } catch (e) {
    throw new ApiError(`unexpected answer (HTTP ${res.status})`, "bad_response", res.status);
  }
  if (j.status !== "success") throw new ApiError(j.error || `HTTP ${res.status}`, j.errorType || "error", res.status);
  return j;
}

// Cached lookups for completion: a promise per key, kept for a minute.
const cache = new Map();
export function cached(key, fn) {
  const hit = cache.get(key);
  if (hit && Date.now() - hit.t < 60000) return hit.p;
  const p = fn().catch(() => []);
  cache.set(key, { t: Date.now(), p });
  return p;
}
