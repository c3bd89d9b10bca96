// rewardlearn rollout review: helpers shared by the browse and label pages.
"use strict";

const RL = (() => {
  /** GET or POST JSON; throws Error(message from the server) on a non-2xx answer. */
  async function api(path, body) {
    const init = body === undefined ? {} : {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    };
    const res = await fetch(path, init);
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const err = new Error((data && data.error) || `${res.status} ${res.statusText}`);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  /** Build an element: el("div", {class: "x", onclick: f}, child, "text", ...). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      node.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }

  /** A number for display: 4 significant digits, thousands kept whole, "–" if missing. */
  function fmt(x, digits = 4) {
    if (x === null || x === undefined || Number.isNaN(x)) return "–";
    if (typeof x !== "number") return String(x);
    const a = Math.abs(x);
    if (a >= 1000) return x.toFixed(1);
    if (a === 0) return "0";
    if (a < 1e-3) return x.toExponential(2);
    return Number(x.toPrecision(digits)).toString();
  }

  function signed(x) {
    if (x === null || x === undefined) return "–";
    return (x > 0 ? "+" : "") + x.toFixed(2);
  }

  function ago(unixSeconds) {
    if (!unixSeconds) return "";
    const s = Math.max(0, Date.now() / 1000 - unixSeconds);
    if (s < 60) return `${Math.round(s)} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }

  function toast(message) {
    const t = el("div", { class: "error-toast", role: "alert" }, message);
    document.body.append(t);
    setTimeout(() => t.remove(), 4000);
  }

  /** Keep the pending-queries badge in the header up to date. */
  async function refreshBadge() {
    const badge = document.getElementById("pending-badge");
    if (!badge) return;
    try {
      const s = await api("/api/queue/stats");
      badge.textContent = s.pending;
      badge.classList.toggle("hidden", !s.pending);
    } catch (e) { /* server gone: keep the last count */ }
  }

  async function showRoot() {
    const node = document.getElementById("root-path");
    if (!node) return;
    try {
      const info = await api("/api/info");
      node.textContent = info.root;
      node.title = `labels: ${info.db}`;
    } catch (e) { node.textContent = "server unreachable"; }
  }

  /** True when a key event is typed into a form field (page shortcuts stay off). */
  function typing(ev) {
    const t = ev.target;
    return t && (t.tagName === "INPUT" || t.tagName === "SELECT" || t.tagName === "TEXTAREA" ||
      t.isContentEditable);
  }

  return { api, el, fmt, signed, ago, toast, refreshBadge, showRoot, typing };
})();
