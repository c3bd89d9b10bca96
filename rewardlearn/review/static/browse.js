// rewardlearn rollout review: runs list -> rollouts table -> video player with reward curves.
"use strict";

(() => {
  const { api, el, fmt, signed, ago } = RL;
  const $ = (id) => document.getElementById(id);
  const PALETTE = ["#16a34a", "#9333ea", "#0891b2", "#db2777", "#ca8a04", "#4f46e5", "#0d9488",
    "#be123c", "#65a30d", "#7c3aed"];
  const state = { runs: [], run: null, rollouts: [], rollout: null, data: null, fps: 30, nSteps: 0 };
  const video = $("video");
  const plot = new CurvePlot($("curves"), (frame) => seekFrame(frame));

  // ---------- URL hash: #run=<id>&rollout=<id> keeps the selection across reloads ----------
  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    return { run: p.get("run"), rollout: p.get("rollout") };
  }
  function writeHash() {
    const p = new URLSearchParams();
    if (state.run) p.set("run", state.run);
    if (state.rollout) p.set("rollout", state.rollout);
    history.replaceState(null, "", `#${p.toString()}`);
  }

  // ---------- runs ----------
  async function loadRuns() {
    let data;
    try { data = await api("/api/runs"); } catch (e) { return; }
    const before = state.runs.find((r) => r.id === state.run);
    state.runs = data.runs;
    renderRuns();
    const now = state.runs.find((r) => r.id === state.run);
    if (state.run && now && before && now.n_rollouts !== before.n_rollouts) loadRollouts();
    if (!state.run && state.runs.length) {
      const want = readHash();
      const known = state.runs.some((r) => r.id === want.run);
      selectRun(known ? want.run : state.runs[0].id, known ? want.rollout : null);
    }
  }

  function renderRuns() {
    const list = $("runs");
    list.replaceChildren(...state.runs.map((r) => el("li", {
      class: r.id === state.run ? "selected" : "", title: r.path || r.id,
      dataset: { run: r.id }, onclick: () => selectRun(r.id),
    },
    el("div", { class: "name" }, r.name),
    el("div", { class: "meta" },
      r.env && el("span", { class: "tag" }, r.env),
      r.agent && el("span", { class: "tag" }, r.agent),
      r.reward && el("span", { class: "tag reward" }, `reward=${r.reward}`),
      el("span", {}, `${r.n_rollouts} rollout${r.n_rollouts === 1 ? "" : "s"}`),
      el("span", {}, `env R ${fmt(r.env_return_mean)}`),
      r.learned_return_mean !== null && el("span", {}, `learned R ${fmt(r.learned_return_mean)}`),
      r.return_corr !== null && el("span", { title: "Pearson correlation of env and learned returns across rollouts" }, `r=${r.return_corr.toFixed(2)}`),
      r.success_rate !== null && el("span", {}, `success ${Math.round(100 * r.success_rate)}%`),
      r.summary && r.summary.total_timesteps && el("span", {}, `${r.summary.total_timesteps.toLocaleString()} steps`),
      el("span", {}, ago(r.updated))))));
    $("runs-count").textContent = `${state.runs.length}`;
    if (!state.runs.length) {
      list.replaceChildren(el("li", { class: "muted" },
        "No runs yet: folders with episode_*.json sidecars appear here as they are written."));
    }
  }

  function selectRun(id, rollout) {
    state.run = id;
    state.rollout = rollout || null;
    state.data = null;
    renderRuns();
    loadRollouts();
  }

  // ---------- rollouts ----------
  async function loadRollouts() {
    if (!state.run) return;
    const q = new URLSearchParams({ sort: $("sort").value, order: $("order").value, success: $("success").value });
    if ($("min-dis").value) q.set("min_disagreement", $("min-dis").value);
    let data;
    try {
      data = await api(`/api/runs/${encodeURIComponent(state.run)}/rollouts?${q}`);
    } catch (e) { RL.toast(e.message); return; }
    state.rollouts = data.rollouts;
    renderRollouts();
    if (!state.data || state.data.run_id !== state.run) {
      const keep = state.rollouts.some((r) => r.id === state.rollout);
      const want = keep ? state.rollout : state.rollouts.length ? state.rollouts[0].id : null;
      if (want) selectRollout(want);
    }
    writeHash();
  }

  function renderRollouts() {
    const maxDis = Math.max(1, ...state.rollouts.map((r) => Math.abs(r.disagreement || 0)));
    $("rollout-rows").replaceChildren(...state.rollouts.map((r) => {
      const d = r.disagreement;
      const disCell = d === null ? "–" : el("span", { class: "dis" },
        el("span", { class: `bar ${d >= 0 ? "pos" : "neg"}`, dataset: { w: String(Math.round(28 * Math.abs(d) / maxDis)) } }),
        signed(d));
      return el("tr", { class: r.id === state.rollout ? "selected" : "", dataset: { rollout: r.id }, onclick: () => selectRollout(r.id) },
        el("td", { title: r.seed !== null ? `seed ${r.seed}` : null }, `#${r.episode ?? r.id}`),
        el("td", {}, r.length ?? "–"),
        el("td", {}, fmt(r.env_return)),
        el("td", {}, fmt(r.learned_return)),
        el("td", {}, disCell),
        el("td", {}, r.success === null ? "–" : r.success ? el("span", { class: "ok" }, "✓") : el("span", { class: "fail" }, "✗")));
    }));
    for (const bar of document.querySelectorAll(".dis .bar")) bar.style.width = `${bar.dataset.w}px`;
    for (const th of document.querySelectorAll("th[data-sort]")) th.classList.toggle("sorted", th.dataset.sort === $("sort").value);
    $("rollouts-count").textContent = `${state.rollouts.length}`;
    $("rollouts-empty").classList.toggle("hidden", state.rollouts.length > 0);
  }

  async function selectRollout(id) {
    state.rollout = id;
    for (const tr of document.querySelectorAll("#rollout-rows tr")) tr.classList.toggle("selected", tr.dataset.rollout === id);
    writeHash();
    let data;
    try {
      data = await api(`/api/rollouts/${encodeURIComponent(state.run)}/${encodeURIComponent(id)}`);
    } catch (e) { RL.toast(e.message); return; }
    if (state.rollout !== id) return;
    showRollout(data);
  }

  // ---------- player ----------
  function showRollout(d) {
    state.data = d;
    state.fps = d.fps || 30;
    state.nSteps = d.length || (d.env_reward || []).length;
    $("player-empty").classList.add("hidden");
    $("player-body").classList.remove("hidden");
    $("ro-title").textContent = `Episode ${d.episode ?? d.id}`;
    $("ro-sub").textContent = `${d.run || d.run_id} · ${[d.env, d.agent, d.reward && `reward=${d.reward}`].filter(Boolean).join(" · ")}`;
    const end = d.terminated ? "terminated" : d.truncated ? "truncated" : "–";
    const stat = (k, v, cls) => el("div", { class: `stat ${cls || ""}` }, el("div", { class: "k" }, k), el("div", { class: "v" }, v));
    $("ro-stats").replaceChildren(
      stat("env return", fmt(d.env_return), "env"),
      stat("learned return", fmt(d.learned_return), "learned"),
      stat("disagreement", signed(d.disagreement)),
      stat("success", d.success === null || d.success === undefined ? "–" : d.success ? "yes" : "no"),
      stat("steps", String(state.nSteps)),
      stat("seed", d.seed ?? "–"),
      stat("ended", end),
      stat("fps", fmt(state.fps, 3)));
    if (d.video_url) {
      video.src = d.video_url;
      video.playbackRate = Number($("rate").value);
      video.play().catch(() => {});
    } else {
      video.removeAttribute("src");
      video.load();
    }
    buildPlot();
    updateCursor();
  }

  function buildPlot() {
    const d = state.data;
    if (!d) return;
    const cum = $("cumulative").checked;
    const running = (xs) => { let s = 0; return xs.map((v) => (s += v)); };
    const view = (xs) => (cum ? running(xs) : xs);
    const panels = [];
    const env = d.env_reward || [], learned = d.learned_reward;
    if ($("overlay").checked && learned && learned.length) {
      const z = (xs) => {
        const m = xs.reduce((a, b) => a + b, 0) / xs.length;
        const sd = Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length) || 1;
        return xs.map((v) => (v - m) / sd);
      };
      panels.push({ title: "", series: [
        { name: "env (z)", color: "#2563eb", values: z(view(env)) },
        { name: "learned (z)", color: "#e8590c", values: z(view(learned)) }] });
    }
    panels.push({ title: cum ? "return so far" : "", series: [{ name: "env reward", color: "#2563eb", values: view(env) }] });
    if (learned) panels.push({ title: cum ? "return so far" : "", series: [{ name: "learned reward", color: "#e8590c", values: view(learned) }] });
    let k = 0;
    for (const [name, values] of Object.entries(d.signals || {})) {
      panels.push({ title: "module signal", series: [{ name, color: PALETTE[k++ % PALETTE.length], values }] });
    }
    for (const [name, values] of Object.entries(d.env_info || {})) {
      panels.push({ title: "env info", series: [{ name, color: PALETTE[k++ % PALETTE.length], values }] });
    }
    state.series = panels.flatMap((p) => p.series.filter((s) => !s.name.endsWith("(z)")));
    plot.setData(panels, state.nSteps);
  }

  function currentFrame() {
    return Math.max(0, Math.min(state.nSteps, Math.floor(video.currentTime * state.fps + 1e-3)));
  }

  function updateCursor() {
    const f = currentFrame();
    plot.setCursor(f);
    $("frame").textContent = `frame ${f} / ${state.nSteps} · ${video.currentTime.toFixed(2)} s`;
    document.body.dataset.frame = String(f);
    $("now").replaceChildren(...(state.series || []).map((s) => {
      const v = f >= 1 ? s.values[f - 1] : null;
      return el("tr", {}, el("td", {}, el("span", { class: "sw", dataset: { c: s.color } }), s.name), el("td", { class: "mono" }, v === null || v === undefined ? "–" : fmt(v)));
    }));
    for (const sw of document.querySelectorAll("#now .sw")) sw.style.background = sw.dataset.c;
  }

  function seekFrame(frame) {
    if (!video.src) return;
    const f = Math.max(0, Math.min(state.nSteps, frame));
    const dur = Number.isFinite(video.duration) ? video.duration : Infinity;
    video.currentTime = Math.min((f + 0.5) / state.fps, Math.max(0, dur - 1e-3));
    plot.setCursor(f);
  }

  function tick() {
    if (!video.paused) updateCursor();
    requestAnimationFrame(tick);
  }

  function togglePlay() {
    if (video.paused) {
      if (video.ended) video.currentTime = 0;
      video.play().catch(() => {});
    } else video.pause();
  }

  function syncPlayButton() { $("play").textContent = video.paused ? "▶ play" : "❚❚ pause"; }

  // ---------- wiring ----------
  video.addEventListener("play", syncPlayButton);
  video.addEventListener("pause", syncPlayButton);
  for (const ev of ["seeked", "timeupdate", "loadedmetadata", "ended"]) video.addEventListener(ev, updateCursor);
  $("play").addEventListener("click", togglePlay);
  $("prev").addEventListener("click", () => { video.pause(); seekFrame(currentFrame() - 1); });
  $("next").addEventListener("click", () => { video.pause(); seekFrame(currentFrame() + 1); });
  $("rate").addEventListener("change", () => { video.playbackRate = Number($("rate").value); });
  $("cumulative").addEventListener("change", buildPlot);
  $("overlay").addEventListener("change", buildPlot);
  $("sort").addEventListener("change", () => {
    $("order").value = ["disagreement", "env_return", "learned_return", "mtime"].includes($("sort").value) ? "desc" : "asc";
    loadRollouts();
  });
  for (const id of ["order", "success", "min-dis"]) $(id).addEventListener("change", loadRollouts);
  for (const th of document.querySelectorAll("th[data-sort]")) {
    th.addEventListener("click", () => {
      if ($("sort").value === th.dataset.sort) $("order").value = $("order").value === "asc" ? "desc" : "asc";
      else {
        $("sort").value = th.dataset.sort;
        $("order").value = th.dataset.sort === "episode" || th.dataset.sort === "length" ? "asc" : "desc";
      }
      loadRollouts();
    });
  }
  document.addEventListener("keydown", (ev) => {
    if (RL.typing(ev) || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const idx = state.rollouts.findIndex((r) => r.id === state.rollout);
    if (ev.key === " ") togglePlay();
    else if (ev.key === "," || ev.key === "ArrowLeft") { video.pause(); seekFrame(currentFrame() - 1); }
    else if (ev.key === "." || ev.key === "ArrowRight") { video.pause(); seekFrame(currentFrame() + 1); }
    else if (ev.key === "ArrowDown" && idx + 1 < state.rollouts.length) selectRollout(state.rollouts[idx + 1].id);
    else if (ev.key === "ArrowUp" && idx > 0) selectRollout(state.rollouts[idx - 1].id);
    else return;
    ev.preventDefault();
  });

  RL.showRoot();
  RL.refreshBadge();
  loadRuns();
  setInterval(loadRuns, 4000);
  setInterval(RL.refreshBadge, 5000);
  requestAnimationFrame(tick);
})();
