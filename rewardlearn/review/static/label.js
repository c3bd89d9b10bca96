// rewardlearn rollout review: the preference-labelling queue (two looping clips, four answers).
"use strict";

(() => {
  const { api } = RL;
  const $ = (id) => document.getElementById(id);
  const NAME_KEY = "rewardlearn.annotator";
  const KEYS = { ArrowLeft: "left", 1: "left", ArrowRight: "right", 2: "right", e: "equal", E: "equal",
    "=": "equal", s: "skip", S: "skip", " ": "skip" };
  const sides = ["left", "right"];
  const state = { query: null, busy: false, session: 0, pollTimer: null, heldBy: null };

  function setState(s) { document.body.dataset.state = s; }

  function annotator() { return $("annotator").value.trim(); }

  function showOnly(id) {
    for (const x of ["need-name", "queue-empty", "query"]) $(x).classList.toggle("hidden", x !== id);
  }

  function renderProgress(p) {
    if (!p) return;
    $("progress-text").textContent = `${p.answered} of ${p.queries} answered · ${p.pending} pending` +
      (p.leased ? ` · ${p.leased} on screen` : "");
    $("progress-fill").style.width = `${p.queries ? (100 * p.answered) / p.queries : 0}%`;
    const badge = $("pending-badge");
    badge.textContent = p.pending;
    badge.classList.toggle("hidden", !p.pending);
  }

  async function next() {
    clearTimeout(state.pollTimer);
    const name = annotator();
    if (!name) {
      state.query = null;
      showOnly("need-name");
      $("annotator").classList.add("missing");
      setState("need-name");
      return;
    }
    $("annotator").classList.remove("missing");
    let data;
    try {
      // Leasing changes state, so it is a POST (JSON: other sites cannot send it).
      data = await api("/api/queue/next", { annotator: name });
    } catch (e) {
      RL.toast(e.message);
      state.pollTimer = setTimeout(next, 3000);
      return;
    }
    renderProgress(data.progress);
    if (!data.query) {
      state.query = null;
      // Serving a folder whose database is not the trainer's: say where the queries are.
      $("queue-hint").textContent = data.hint || "";
      $("queue-hint").classList.toggle("hidden", !data.hint);
      delete document.body.dataset.queryId;
      showOnly("queue-empty");
      setState("empty");
      state.pollTimer = setTimeout(next, 2000);
      return;
    }
    state.heldBy = name;
    show(data.query);
  }

  function show(q) {
    const same = state.query && state.query.id === q.id;
    state.query = q;
    showOnly("query");
    document.body.dataset.queryId = String(q.id);
    const meta = Object.entries(q.meta || {}).filter(([k]) => k !== "fps").map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`);
    $("query-info").textContent = `query #${q.id} · run ${q.run}` + (meta.length ? ` · ${meta.join(" · ")}` : "");
    if (!same) {
      for (const side of sides) {
        const clip = q[side], v = $(`video-${side}`);
        $(`clip-${side}`).classList.remove("chosen");
        $(`caption-${side}`).textContent = `${clip.video} · frames ${clip.start}–${clip.end - 1}` +
          (clip.fps ? ` · ${clip.end - clip.start} frames at ${Math.round(clip.fps)} fps` : "");
        $(`err-${side}`).textContent = clip.error || "";
        if (clip.url) {
          v.src = clip.url;
          v.dataset.start = String(clip.t_start || 0);
          v.dataset.end = String(clip.t_end || 0);
        } else {
          v.removeAttribute("src");
          v.load();
        }
      }
    }
    setState("ready");
  }

  // Loop each clip over its frame range [t_start, t_end).
  function startClip(v) {
    const t0 = Number(v.dataset.start || 0);
    if (Math.abs(v.currentTime - t0) > 1e-3) v.currentTime = t0;
    v.play().catch(() => {});
  }

  function loopTick() {
    for (const side of sides) {
      const v = $(`video-${side}`);
      if (!v.src) continue;
      const t0 = Number(v.dataset.start || 0);
      const t1 = Number(v.dataset.end || 0) || v.duration;
      if (v.ended || (Number.isFinite(t1) && v.currentTime >= t1 - 1e-3)) startClip(v);
      const frac = Number.isFinite(t1) && t1 > t0 ? (v.currentTime - t0) / (t1 - t0) : 0;
      $(`track-${side}`).style.width = `${Math.max(0, Math.min(1, frac)) * 100}%`;
    }
    requestAnimationFrame(loopTick);
  }

  async function answer(label) {
    const q = state.query;
    if (!q || state.busy) return;
    const name = annotator();
    if (!name) { next(); return; }
    state.busy = true;
    setState("busy");
    const btn = document.querySelector(`.answers button[data-label="${label}"]`);
    btn.classList.add("flash");
    if (label === "left" || label === "right") $(`clip-${label}`).classList.add("chosen");
    for (const b of document.querySelectorAll(".answers button")) b.disabled = true;
    try {
      const res = await api("/api/labels", { query_id: q.id, label, annotator: name });
      state.session += 1;
      $("session-count").textContent = `${state.session} labelled this session`;
      $("last-answer").textContent = `query #${q.id} → ${label} (answer ${res.seq})`;
      renderProgress(res.progress);
    } catch (e) {
      RL.toast(`query #${q.id}: ${e.message}`);
    } finally {
      btn.classList.remove("flash");
      for (const b of document.querySelectorAll(".answers button")) b.disabled = false;
      state.busy = false;
    }
    state.query = null;
    await next();
  }

  function release(name) {
    if (!state.query || !name) return;
    fetch("/api/queue/release", {
      method: "POST", keepalive: true, headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ query_id: state.query.id, annotator: name }),
    }).catch(() => {});
  }

  // ---------- wiring ----------
  for (const side of sides) {
    const v = $(`video-${side}`);
    v.addEventListener("loadedmetadata", () => startClip(v));
  }
  for (const b of document.querySelectorAll(".answers button")) {
    b.addEventListener("click", () => answer(b.dataset.label));
  }
  $("annotator").value = localStorage.getItem(NAME_KEY) || "";
  $("annotator").addEventListener("change", () => {
    const name = annotator();
    if (state.heldBy && state.heldBy !== name) release(state.heldBy);
    if (name) localStorage.setItem(NAME_KEY, name);
    state.query = null;
    next();
  });
  $("annotator").addEventListener("keydown", (ev) => { if (ev.key === "Enter") ev.target.blur(); });
  document.addEventListener("keydown", (ev) => {
    if (RL.typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const label = KEYS[ev.key];
    if (!label) return;
    ev.preventDefault();
    answer(label);
  });
  window.addEventListener("pagehide", () => release(state.heldBy));

  RL.showRoot();
  next();
  requestAnimationFrame(loopTick);
})();
