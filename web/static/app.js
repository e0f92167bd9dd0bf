// tinderbox admin UI: live machine list, profile editor, actions.
// Plain script, no library: fetch() for the JSON API (the session cookie
// authenticates; the API checks the Origin header on state changes) and
// EventSource for live updates.
"use strict";

const $ = (sel) => document.querySelector(sel);

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function when(t) {
  if (!t || t.startsWith("0001-")) return "—";
  return t.replace("T", " ").replace(/\.\d+/, "").replace(/Z$|[+-]\d\d:\d\d$/, "") + " UTC";
}

async function api(method, path, body, headers) {
  const resp = await fetch(path, { method, body, headers: headers || {}, credentials: "same-origin" });
  if (resp.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); }
  return resp;
}

// ---- Machines page --------------------------------------------------------

function rowHTML(m) {
  const host = m.hostname ? esc(m.hostname) : '<span class="muted">no profile</span>';
  const action = m.profile ? "" : `<a class="button small primary" href="/machines/${esc(m.mac)}#profile">Create profile</a>`;
  return `<td data-label="MAC"><a href="/machines/${esc(m.mac)}" class="mono">${esc(m.mac)}</a></td>` +
    `<td data-label="Hostname">${host}</td>` +
    `<td data-label="State"><span class="badge s-${esc(m.state)}">${esc(m.state)}</span>` +
    (m.attention ? ` <span class="badge bad" title="${esc(m.attention)}">${esc(m.attention)}</span>` : "") + `</td>` +
    `<td data-label="Arch">${esc(m.arch || "—")}</td>` +
    `<td data-label="IP"><span class="mono">${esc(m.ip || "—")}</span></td>` +
    `<td data-label="Last seen">${when(m.lastSeen)}</td>` +
    `<td data-label="Last step">${esc(m.lastStep || "—")}</td>` +
    `<td class="actions">${action}</td>`;
}

function applyFilter() {
  const f = $("#filter");
  if (!f) return;
  const q = f.value.trim().toLowerCase();
  const only = $("#attention-only");
  let shown = 0;
  for (const tr of document.querySelectorAll("#machines tbody tr")) {
    const hit = (!q || tr.textContent.toLowerCase().includes(q)) && (!only || !only.checked || tr.classList.contains("attention"));
    tr.hidden = !hit;
    if (hit) shown++;
  }
  const empty = $("#empty");
  if (empty) empty.hidden = shown > 0;
}

function upsertRow(m) {
  const body = $("#machines tbody");
  if (!body) return;
  let tr = body.querySelector(`tr[data-mac="${CSS.escape(m.mac)}"]`);
  if (m.gone) { if (tr) tr.remove(); applyFilter(); return; }
  if (!tr) {
    tr = document.createElement("tr");
    tr.dataset.mac = m.mac;
    const after = [...body.rows].find((r) => r.dataset.mac > m.mac);
    body.insertBefore(tr, after || null);
  }
  tr.className = (m.profile ? "" : "discovered") + (m.attention ? " attention" : "");
  tr.innerHTML = rowHTML(m);
  tr.classList.add("flash");
  applyFilter();
}

function live(onMachine) {
  const status = $("#live");
  const es = new EventSource("/api/v1/events");
  es.addEventListener("hello", () => { if (status) status.textContent = "Live: updates appear as machines boot."; });
  es.addEventListener("machine", (e) => onMachine(JSON.parse(e.data)));
  es.onerror = () => { if (status) status.textContent = "Live updates interrupted; reconnecting…"; };
  return es;
}

function machinesPage() {
  $("#filter")?.addEventListener("input", applyFilter);
  $("#attention-only")?.addEventListener("change", applyFilter);
  live(upsertRow);
}

// ---- Machine page ---------------------------------------------------------

function machinePage() {
  const mac = $("#machine")?.dataset.mac;
  if (!mac) return;
  const base = "/api/v1/machines/" + mac; // a MAC needs no escaping in a path
  live(async (m) => { if (m.mac === mac) await refreshFacts(); });

  $("#reinstall")?.addEventListener("click", async () => {
    if (!confirm(`Re-arm ${mac} for a reinstall? Its next network boot installs Talos again.`)) return;
    const r = await api("POST", base + "/reinstall");
    say("#action-msg", r.ok ? "Re-armed: state is pending." : await errorText(r), r.ok);
    if (r.ok) {
      const m = await r.json(); const b = $("#state"); b.textContent = m.state; b.className = "badge s-" + m.state;
      const a = $("#attention"); if (a) { a.textContent = m.attention || ""; a.hidden = !m.attention; }
    }
  });
  $("#forget")?.addEventListener("click", async () => {
    if (!confirm(`Forget ${mac}? Its recorded state and boot events are deleted; its profile file stays.`)) return;
    const r = await api("DELETE", base);
    if (r.ok) location.href = "/"; else say("#action-msg", await errorText(r), false);
  });
  $("#reveal")?.addEventListener("click", async (e) => {
    const r = await api("GET", base + "/config");
    if (r.ok) { $("#config").textContent = await r.text(); e.target.remove(); }
  });
  $("#delete-profile")?.addEventListener("click", async () => {
    if (!confirm(`Delete the profile of ${mac}? It then boots as an unknown machine.`)) return;
    const form = $("#profile-form");
    const r = await api("DELETE", base + "/profile", null, { "If-Match": form.dataset.etag });
    if (r.ok) location.reload(); else say("#save-msg", await errorText(r), false);
  });
  editor(base);
  installConsole(base);
}

// installConsole fills the machine's console with its newest log lines,
// then appends lines as they arrive; the search box hides the others.
const consoleMax = 500;
async function installConsole(base) {
  const pre = $("#console"), filter = $("#console-filter"), state = $("#console-state");
  if (!pre) return;
  const show = (div) => { const q = (filter?.value || "").trim().toLowerCase(); div.hidden = q !== "" && !div.textContent.toLowerCase().includes(q); };
  const add = (l) => {
    const div = document.createElement("div");
    div.className = "line " + (l.level || "");
    div.textContent = (l.time ? l.time.slice(11, 23) + "  " : "") + l.msg;
    show(div);
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.appendChild(div);
    while (pre.childElementCount > consoleMax) pre.firstElementChild.remove();
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  };
  filter?.addEventListener("input", () => { for (const d of pre.children) show(d); });
  const r = await api("GET", base + "/logs?lines=" + consoleMax);
  if (r.status === 501) { if (state) state.textContent = "Talos logs are not received (reports.enabled is false)."; return; }
  if (r.ok) { for (const l of (await r.json()).lines) add(l); }
  if (state && !pre.childElementCount) state.textContent = "No lines yet: they arrive once the machine's Talos is up.";
  const es = new EventSource(base + "/logs/stream");
  es.addEventListener("line", (e) => { if (state) state.textContent = "Live."; add(JSON.parse(e.data)); });
  es.onerror = () => { if (state) state.textContent = "Live log interrupted; reconnecting…"; };
}

// refreshFacts replaces the state, facts and timeline with the server's
// current rendering, leaving the editor alone.
async function refreshFacts() {
  const r = await api("GET", location.pathname);
  if (!r.ok) return;
  const doc = new DOMParser().parseFromString(await r.text(), "text/html");
  for (const sel of ["#state", ".facts", "#timeline", "#events"]) {
    const fresh = doc.querySelector(sel), old = $(sel);
    if (fresh && old) old.replaceWith(fresh);
  }
}

function say(sel, text, ok) {
  const el = $(sel);
  if (!el) return;
  el.textContent = text;
  el.className = ok ? "ok" : "bad";
}

async function errorText(r) {
  try { const e = await r.json(); return e.error + (e.problems ? ": " + e.problems.join("; ") : ""); }
  catch { return r.status + " " + r.statusText; }
}

function editor(base) {
  const ta = $("#editor"), gutter = $("#gutter"), form = $("#profile-form"), save = $("#save"), box = $("#problems");
  if (!ta) return;
  let bad = new Set(), valid = true, seq = 0, timer;
  const drawGutter = () => {
    const n = ta.value.split("\n").length;
    let html = "";
    for (let i = 1; i <= n; i++) html += bad.has(i) ? `<span class="bad">${i}</span>` : i + "\n";
    gutter.innerHTML = html;
    gutter.scrollTop = ta.scrollTop;
  };
  const show = (problems) => {
    const mine = form.dataset.file;
    bad = new Set(problems.filter((p) => p.line && (!p.file || p.file.endsWith(mine))).map((p) => p.line));
    box.innerHTML = problems.length
      ? "<strong>The profile does not load; Save is off until it does.</strong><ul>" +
        problems.map((p) => `<li>${p.file ? `<span class="line">${esc(p.file)}${p.line ? ":" + p.line : ""}</span> ` : ""}${esc(p.message)}</li>`).join("") + "</ul>"
      : "";
    ta.setAttribute("aria-invalid", problems.length ? "true" : "false");
    drawGutter();
  };
  const check = async () => {
    const my = ++seq;
    const r = await api("PUT", base + "/profile?check=1", ta.value, { "Content-Type": "application/yaml" });
    if (my !== seq) return;
    if (r.status === 422) { valid = false; show((await r.json()).at || []); }
    else if (r.ok) { valid = true; show([]); }
    else { valid = false; show([{ message: await errorText(r) }]); }
    save.disabled = !valid || form.dataset.readonly === "true";
  };
  form.dataset.file = document.querySelector("#profile h2 .mono")?.textContent || "";
  ta.addEventListener("input", () => { drawGutter(); clearTimeout(timer); timer = setTimeout(check, 400); });
  ta.addEventListener("scroll", () => { gutter.scrollTop = ta.scrollTop; });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearTimeout(timer);
    const headers = { "Content-Type": "application/yaml" };
    if (form.dataset.exists === "true") headers["If-Match"] = form.dataset.etag; else headers["If-None-Match"] = "*";
    const r = await api("PUT", base + "/profile", ta.value, headers);
    if (r.status === 422) { valid = false; save.disabled = true; show((await r.json()).at || []); say("#save-msg", "Not saved: fix the problems above.", false); return; }
    if (!r.ok) { say("#save-msg", await errorText(r), false); return; }
    const out = await r.json();
    form.dataset.etag = out.etag; form.dataset.exists = "true";
    show([]);
    say("#save-msg", out.reloadError ? "Saved, but the directory does not load: " + out.reloadError : "Saved and loaded.", !out.reloadError);
    setTimeout(() => location.reload(), 600);
  });
  drawGutter();
  check();
}

// ---- Cache page -----------------------------------------------------------

function cachePage() {
  $("#prefetch")?.addEventListener("click", async (e) => {
    e.target.disabled = true;
    const r = await api("POST", "/api/v1/cache/prefetch");
    say("#prefetch-msg", r.ok ? "Prefetch started; this page refreshes when it ends." : await errorText(r), r.ok);
    if (!r.ok) { e.target.disabled = false; return; }
    const poll = setInterval(async () => {
      const s = await (await api("GET", "/api/v1/cache")).json();
      if (!s.prefetch.running) { clearInterval(poll); location.reload(); }
    }, 2000);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "machines") machinesPage();
  if (page === "machine") machinePage();
  if (page === "cache") cachePage();
});
