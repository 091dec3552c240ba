// coo-llm admin dashboard. Plain JavaScript, no dependencies, no network but this gateway's
// admin API. The admin key lives in this tab's sessionStorage and travels only as
// "Authorization: Bearer" (see app/dashboard/__init__.py for why). Data is written into the
// page as text nodes, never as HTML.
"use strict";

(() => {
  const KEY_NAME = "coo-llm-admin-key";
  const API = "/admin/v1";
  const REFRESH_MS = 3000;
  const SPARK_POINTS = 40;
  const SVG_NS = "http://www.w3.org/2000/svg";

  const $ = (id) => document.getElementById(id);
  let adminKey = sessionStorage.getItem(KEY_NAME);
  let timer = null;
  let generation = 0; // bumped on sign-out, so late answers of an old session are dropped
  const rpsHistory = [];
  let canRevoke = false;

  // ------------------------------------------------------------------ formatting

  const fmtInt = (n) => (n === null || n === undefined ? "–" : Math.round(n).toLocaleString("en-US"));
  const fmtRate = (n) => (n === null || n === undefined ? "–" : n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
  const fmtPct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(x > 0 && x < 0.001 ? 2 : 1) + "%");
  const fmtMs = (ms) => (ms === null || ms === undefined ? "–" : ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : ms.toFixed(ms >= 100 ? 0 : 1) + " ms");
  const fmtSeconds = (s) => (s >= 60 ? Math.floor(s / 60) + "m " + String(Math.round(s % 60)).padStart(2, "0") + "s" : Math.ceil(s) + "s");
  function fmtUsd(x) {
    if (x === null || x === undefined) return "–";
    if (x === 0) return "$0";
    if (Math.abs(x) >= 1) return "$" + x.toFixed(2);
    return "$" + String(Number(x.toPrecision(3))); // 0.36, 0.054, 0.000123
  }
  const fmtTime = (unix) => new Date(unix * 1000).toLocaleTimeString("en-GB", { hour12: false });
  const plural = (n, word) => `${fmtInt(n)} ${word}${n === 1 ? "" : "s"}`;
  const fmtLimit = (used, limit) => fmtInt(used) + " / " + (limit === null || limit === undefined ? "∞" : fmtInt(limit));

  // ------------------------------------------------------------------ DOM helpers (text only)

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else if (name === "onclick") node.addEventListener("click", value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    return node;
  }

  const setText = (id, text) => { $(id).textContent = text; };

  function setRows(id, rows, columns, emptyText) {
    const body = $(id);
    if (!rows.length) {
      body.replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: columns }, emptyText)));
      return;
    }
    body.replaceChildren(...rows);
  }

  // A usage bar: used against a limit (no limit: an empty bar), and the figures beside it.
  function bar(used, limit) {
    const fill = el("span", { class: "fill" });
    const share = limit ? Math.min(1, used / limit) : 0;
    fill.style.width = (100 * share).toFixed(1) + "%";
    if (share >= 0.9) fill.classList.add("hot");
    else if (share >= 0.7) fill.classList.add("warm");
    return el("span", { class: "meter" }, fill);
  }

  const meter = (used, limit, text) => el("div", { class: "meter-cell" }, bar(used, limit), el("span", { class: "meter-text" }, text));

  // Hand-drawn charts: a line of the last values, and bars of per-minute counts.
  function drawLine(target, values) {
    const width = 160, height = 36;
    target.replaceChildren();
    if (values.length < 2) return;
    const top = Math.max(...values, 0.001);
    const step = width / (SPARK_POINTS - 1);
    const start = width - step * (values.length - 1);
    const points = values.map((v, i) => `${(start + i * step).toFixed(1)},${(height - 2 - (v / top) * (height - 4)).toFixed(1)}`);
    target.append(svg("polyline", { points: points.join(" "), class: "spark-line" }));
  }

  function minuteBars(history, nowSeconds) {
    const minutes = 60, width = 120, height = 26;
    const chart = svg("svg", { class: "bars", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img" });
    const current = Math.floor(nowSeconds / 60) * 60;
    const counts = new Map(history.map((point) => [point.minute, point.requests]));
    const values = [];
    for (let i = minutes - 1; i >= 0; i--) values.push(counts.get(current - 60 * i) || 0);
    const top = Math.max(...values, 1);
    const barWidth = width / minutes;
    values.forEach((value, i) => {
      if (!value) return;
      const h = Math.max(1, (value / top) * (height - 2));
      chart.append(svg("rect", { x: (i * barWidth).toFixed(2), y: (height - h).toFixed(2), width: Math.max(0.6, barWidth - 0.4).toFixed(2), height: h.toFixed(2), class: "bar" }));
    });
    const title = svg("title", {});
    title.textContent = `${values.reduce((a, b) => a + b, 0)} requests in the last hour, at most ${top} a minute`;
    chart.prepend(title);
    return chart;
  }

  // ------------------------------------------------------------------ the admin API

  class SignedOut extends Error {}

  async function call(path, options = {}) {
    const response = await fetch(API + path, {
      ...options,
      headers: { authorization: "Bearer " + adminKey, accept: "application/json" },
      cache: "no-store",
      credentials: "omit",
    });
    if (response.status === 401) throw new SignedOut();
    return response;
  }

  async function readJson(path) {
    const response = await call(path);
    if (!response.ok) return { status: response.status, body: null, message: await errorMessage(response) };
    return { status: response.status, body: await response.json() };
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      return (body.error && body.error.message) || `HTTP ${response.status}`;
    } catch (_) {
      return `HTTP ${response.status}`;
    }
  }

  // ------------------------------------------------------------------ panels

  function renderOverview(result) {
    if (!result.body) {
      showAlert(`Overview unavailable: ${result.message}`);
      return;
    }
    const o = result.body;
    const m = o.last_minute;
    setText("ov-rps", fmtRate(m.requests_per_s));
    rpsHistory.push(m.requests_per_s);
    if (rpsHistory.length > SPARK_POINTS) rpsHistory.shift();
    drawLine($("ov-rps-chart"), rpsHistory);
    setText("ov-errors", fmtPct(m.error_rate));
    setText("ov-errors-sub", `${fmtInt(m.errors)} of ${fmtInt(m.requests)} in ${Math.round(m.window_s)} s` + (m.server_errors ? ` (${fmtInt(m.server_errors)} 5xx)` : ""));
    setText("ov-p50", fmtMs(m.latency_ms.p50));
    setText("ov-p99", fmtMs(m.latency_ms.p99));
    setText("ov-cache", fmtPct(m.cache.hit_rate));
    const today = o.today;
    if (today) {
      setText("ov-tokens", fmtInt(today.tokens));
      setText("ov-tokens-sub", `${fmtInt(today.prompt_tokens)} in, ${fmtInt(today.completion_tokens)} out, ${fmtInt(today.requests)} requests`);
      setText("ov-usd", fmtUsd(today.cost_usd));
      setText("ov-usd-sub", today.saved_usd ? `${fmtUsd(today.saved_usd)} saved by the cache` : "since 00:00 UTC");
      setText("ov-cache-sub", `last minute; today ${fmtPct(today.cache_hit_rate)} of requests`);
    } else {
      for (const id of ["ov-tokens", "ov-usd"]) setText(id, "–");
      setText("ov-tokens-sub", "roll-ups unavailable");
      setText("ov-usd-sub", "roll-ups unavailable");
      setText("ov-cache-sub", "last minute");
    }
    const store = o.store;
    const scope = store.shared ? "whole gateway" : "this process";
    setText("overview-scope", `last minute, ${scope}; today from the roll-ups`);
    const badge = $("store-badge");
    badge.textContent = `${store.type} · ${scope}` + (store.degraded ? " · DEGRADED" : "");
    badge.classList.toggle("bad", store.degraded);
    if (store.degraded) showAlert("The shared store is unreachable: figures are this process's only until it is back.");
  }

  function keyHealth(key) {
    if (key.cooldown_left_s > 0) return el("span", { class: "pill bad" }, "cooling");
    if (key.failures > 0) return el("span", { class: "pill warn" }, `failing (${key.failures})`);
    return el("span", { class: "pill ok" }, "ok");
  }

  function renderKeys(result) {
    if (!result.body) {
      setText("keys-note", `Keys unavailable: ${result.message}`);
      return;
    }
    const now = Date.now() / 1000;
    const rows = result.body.data.map((key) => {
      const resting = key.cooldown_left_s > 0 || key.failures > 0;
      const reset = el("button", { type: "button", class: "small", disabled: !resting, dataset: { action: "reset", key: key.id }, title: "Lift the cooldown and clear the failure count" }, "Reset");
      reset.addEventListener("click", () => resetKey(key.id, reset));
      return el("tr", { dataset: { key: key.id } },
        el("td", { class: "mono" }, key.id),
        el("td", {}, key.provider),
        el("td", {}, keyHealth(key)),
        el("td", { class: "num" }, key.cooldown_left_s > 0 ? fmtSeconds(key.cooldown_left_s) : "–"),
        el("td", {}, meter(key.window.requests, key.limits.requests, fmtLimit(key.window.requests, key.limits.requests))),
        el("td", {}, meter(key.window.tokens, key.limits.tokens, fmtLimit(key.window.tokens, key.limits.tokens))),
        el("td", { class: "num" }, fmtInt(key.window.inflight)),
        el("td", { class: "num" }, fmtPct(key.error_rate)),
        el("td", { class: "num" }, key.latency_s ? fmtMs(1000 * key.latency_s) : "–"),
        el("td", {}, minuteBars(key.history, now)),
        el("td", {}, reset));
    });
    setRows("keys-rows", rows, 11, "No provider keys are configured.");
    setText("keys-note", "");
  }

  function budgetOf(budgets, word) {
    for (const [name, value] of Object.entries(budgets || {})) if (name.toLowerCase().includes(word) && typeof value === "number") return value;
    return null;
  }

  function pairs(object) {
    const entries = Object.entries(object || {}).filter(([, v]) => v !== null && v !== undefined);
    return entries.length ? entries.map(([k, v]) => `${k} ${v}`).join(", ") : "–";
  }

  function clientStatus(client) {
    if (client.revoked) return el("span", { class: "pill bad" }, "revoked");
    if (client.expires_at && Date.parse(client.expires_at) <= Date.now()) return el("span", { class: "pill warn" }, "expired");
    return el("span", { class: "pill ok" }, client.expires_at ? `until ${new Date(client.expires_at).toISOString().slice(0, 10)}` : "active");
  }

  const spendCell = (spent, budget) => (budget === null ? fmtUsd(spent) : meter(spent, budget, `${fmtUsd(spent)} / ${fmtUsd(budget)}`));

  function renderClients(result) {
    if (result.status === 404) {
      setRows("clients-rows", [], 10, "No runtime client keys.");
      setText("clients-note", "This gateway has no runtime client keys API (GET /admin/v1/clients): its clients are the config's api_keys; their usage is under GET /admin/v1/usage?group_by=client.");
      return;
    }
    if (!result.body) {
      setText("clients-note", `Clients unavailable: ${result.message}`);
      return;
    }
    const list = Array.isArray(result.body) ? result.body : result.body.data || [];
    const rows = list.map((client) => {
      const spend = client.spend || {};
      let revoke = null;
      if (canRevoke) {
        revoke = el("button", { type: "button", class: "small danger", disabled: !!client.revoked, dataset: { action: "revoke", client: client.id, label: "Revoke" } }, "Revoke");
        revoke.addEventListener("click", () => armed(revoke, "Confirm revoke", () => revokeClient(client.id, revoke)));
      }
      return el("tr", { dataset: { client: client.id } },
        el("td", {}, client.name || "–"),
        el("td", { class: "mono" }, client.id),
        el("td", { class: "mono" }, client.key_hint || "–"),
        el("td", {}, spendCell(spend.usd_today || 0, budgetOf(client.budgets, "day"))),
        el("td", {}, spendCell(spend.usd_this_month || 0, budgetOf(client.budgets, "month"))),
        el("td", { class: "num" }, fmtInt(spend.requests_today)),
        el("td", { class: "num" }, fmtInt(spend.tokens_today)),
        el("td", { class: "small" }, pairs(client.limits)),
        el("td", {}, clientStatus(client)),
        el("td", {}, revoke));
    });
    setRows("clients-rows", rows, 10, "No runtime client keys yet.");
    setText("clients-note", "");
  }

  function renderQueue(result) {
    if (!result.body) {
      setText("queue-backend", `Queue unavailable: ${result.message}`);
      return;
    }
    const q = result.body;
    setText("q-ready", fmtInt(q.ready));
    setText("q-deferred", fmtInt(q.deferred));
    setText("q-in-progress", fmtInt(q.in_progress));
    setText("queue-backend", q.backend === "arq" ? `arq on Redis (${q.queue}), ${plural(q.depth, "job")}` : `in-process scheduler, ${plural(q.depth, "job")}`);
    setText("q-worker", q.backend === "arq" ? (q.worker || "no worker heartbeat: is `coo-llm worker` running?") : "jobs run inside each web process (no Redis queue)");
    const jobs = (q.jobs || []).slice(0, 10).map((job) => el("tr", {},
      el("td", { class: "mono" }, job.id), el("td", {}, job.function || "–"), el("td", {}, job.state),
      el("td", {}, job.run_at ? new Date(job.run_at).toLocaleTimeString("en-GB", { hour12: false }) : "–"), el("td", { class: "num" }, job.try ?? "–")));
    setRows("jobs-rows", jobs, 5, "Nothing waiting.");
    const functions = new Set([...Object.keys(q.outcomes || {}), ...Object.keys(q.crons || {})]);
    const outcomes = [...functions].sort().map((name) => {
      const counts = { ...((q.outcomes || {})[name] || {}) };
      const seconds = counts.seconds;
      delete counts.seconds;
      const every = (q.crons || {})[name];
      return el("tr", {}, el("td", { class: "mono" }, name), el("td", {}, every ? fmtSeconds(every) : "on demand"), el("td", {}, pairs(counts)), el("td", { class: "num" }, seconds === undefined ? "–" : seconds.toFixed(2) + " s"));
    });
    setRows("outcomes-rows", outcomes, 4, "No jobs have run yet.");
    renderBatches(q.batches);
  }

  // Unfinished batches with their progress (GET /admin/v1/queue's "batches"); done = completed + failed.
  function renderBatches(batches) {
    const active = (batches && batches.active) || [];
    setText("batch-pumps", batches ? `${plural(batches.pumps, "batch pump")} alive` : "");
    const rows = active.slice(0, 10).map((batch) => {
      const counts = batch.request_counts || {};
      const done = (counts.completed || 0) + (counts.failed || 0);
      return el("tr", { dataset: { batch: batch.id } },
        el("td", { class: "mono" }, batch.id), el("td", { class: "mono" }, batch.endpoint), el("td", {}, batch.status),
        el("td", { class: "num" }, `${fmtInt(done)} / ${fmtInt(counts.total || 0)}`), el("td", { class: "num" }, fmtInt(counts.failed || 0)),
        el("td", {}, new Date(batch.created_at * 1000).toLocaleTimeString("en-GB", { hour12: false })));
    });
    setRows("batches-rows", rows, 6, "No batch in progress.");
  }

  function renderRequests(result) {
    if (!result.body) return;
    const rows = result.body.data.map((r) => el("tr", { dataset: { request: r.id } },
      el("td", {}, fmtTime(r.at)),
      el("td", { class: "mono small" }, r.id),
      el("td", { class: "mono" }, r.client || "–"),
      el("td", {}, r.model || "–"),
      el("td", {}, r.provider || "–"),
      el("td", { class: "mono" }, r.key || "–"),
      el("td", {}, el("span", { class: "pill " + (r.status >= 500 ? "bad" : r.status >= 400 ? "warn" : "ok") }, String(r.status))),
      el("td", { class: "num" }, fmtMs(r.latency_ms)),
      el("td", { class: "num" }, `${fmtInt(r.prompt_tokens)} / ${fmtInt(r.completion_tokens)}`),
      el("td", { class: "num" }, fmtUsd(r.cost_usd)),
      el("td", {}, r.cache || "–")));
    setRows("requests-rows", rows, 11, "No requests yet.");
  }

  // ------------------------------------------------------------------ actions

  // A destructive button asks once more: the first click arms it for a few seconds.
  function armed(button, confirmText, action) {
    if (button.dataset.armed === "1") {
      button.dataset.armed = "";
      button.textContent = button.dataset.label;
      action();
      return;
    }
    button.dataset.armed = "1";
    button.textContent = confirmText;
    setTimeout(() => {
      if (button.dataset.armed === "1") {
        button.dataset.armed = "";
        button.textContent = button.dataset.label;
      }
    }, 4000);
  }

  async function act(button, path, method, describe) {
    button.disabled = true;
    try {
      const response = await call(path, { method });
      const body = response.ok ? await response.json().catch(() => ({})) : null;
      setText("action-status", body ? describe(body) : `Failed: ${await errorMessage(response)}`);
    } catch (error) {
      handleError(error);
    } finally {
      button.disabled = false;
      refreshSoon(0);
    }
  }

  const purgeCache = (button) => act(button, "/cache", "DELETE", (body) => `Cache purged: ${fmtInt(body.deleted)} cached answers deleted.`);
  const resetKey = (label, button) => act(button, `/keys/${encodeURIComponent(label)}/reset`, "POST", (body) => `${body.id}: cooldown lifted, failures cleared.`);
  const revokeClient = (id, button) => act(button, `/clients/${encodeURIComponent(id)}`, "DELETE", () => `Client ${id} revoked.`);

  // ------------------------------------------------------------------ refresh loop and session

  function showAlert(text) {
    const alert = $("alert");
    alert.textContent = text;
    alert.hidden = false;
  }

  async function refresh() {
    const mine = generation;
    if (document.hidden) return;
    try {
      const [overview, keys, queue, requests] = await Promise.all([
        readJson("/overview"), readJson("/keys?minutes=60"), readJson("/queue"), readJson("/requests?limit=50"),
      ]);
      // The clients API is optional: asked for only where the overview says this gateway has it.
      const features = (overview.body && overview.body.features) || {};
      const clients = features.clients ? await readJson("/clients") : { status: 404, body: null };
      canRevoke = !!features.revoke_client;
      if (mine !== generation) return;
      $("alert").hidden = true;
      renderOverview(overview);
      renderKeys(keys);
      renderQueue(queue);
      renderRequests(requests);
      renderClients(clients);
      setText("updated", "updated " + new Date().toLocaleTimeString("en-GB", { hour12: false }));
    } catch (error) {
      if (mine === generation) handleError(error);
    }
  }

  function refreshSoon(delay) {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      await refresh();
      if (adminKey) refreshSoon(REFRESH_MS);
    }, delay);
  }

  function handleError(error) {
    if (error instanceof SignedOut) {
      signOut("The admin key was not accepted. Sign in again.");
      return;
    }
    showAlert(`Cannot reach the gateway: ${error.message || error}`);
  }

  function showSignIn(message) {
    $("dashboard").hidden = true;
    $("session").hidden = true;
    $("sign-in").hidden = false;
    setText("sign-in-error", message || "");
    $("admin-key").focus();
  }

  function showDashboard() {
    $("sign-in").hidden = true;
    $("dashboard").hidden = false;
    $("session").hidden = false;
    refreshSoon(0);
  }

  function clearData() {
    for (const id of ["keys-rows", "clients-rows", "jobs-rows", "outcomes-rows", "requests-rows"]) $(id).replaceChildren();
    rpsHistory.length = 0;
  }

  function signOut(message) {
    generation += 1;
    clearTimeout(timer);
    adminKey = null;
    sessionStorage.removeItem(KEY_NAME);
    clearData();
    showSignIn(message);
  }

  async function signIn(event) {
    event.preventDefault();
    const input = $("admin-key");
    const candidate = input.value.trim();
    if (!candidate) return;
    const button = $("sign-in-button");
    button.disabled = true;
    setText("sign-in-error", "");
    try {
      const response = await fetch(API + "/overview", { headers: { authorization: "Bearer " + candidate }, cache: "no-store", credentials: "omit" });
      if (response.status === 401) {
        setText("sign-in-error", "That is not this gateway's admin key.");
        return;
      }
      if (response.status === 404) {
        setText("sign-in-error", "The admin API is off on this gateway (server.admin_api_key is not set).");
        return;
      }
      adminKey = candidate;
      sessionStorage.setItem(KEY_NAME, candidate);
      input.value = "";
      showDashboard();
    } catch (error) {
      setText("sign-in-error", `Cannot reach the gateway: ${error.message || error}`);
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("sign-in-form").addEventListener("submit", signIn);
    $("sign-out").addEventListener("click", () => signOut(""));
    const purge = $("purge-cache");
    purge.addEventListener("click", () => armed(purge, "Confirm purge", () => purgeCache(purge)));
    document.addEventListener("visibilitychange", () => { if (!document.hidden && adminKey) refreshSoon(0); });
    if (adminKey) showDashboard();
    else showSignIn("");
  });
})();
