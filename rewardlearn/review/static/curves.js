// rewardlearn rollout review: stacked per-step curves on one canvas, with a frame cursor.
//
// Series values are per step: values[i] is the value of step i + 1, which produced
// frame i + 1 (frame 0 is the reset state). The x axis runs over frames 0..T, so the
// cursor at frame f sits on step f's value.
"use strict";

class CurvePlot {
  constructor(canvas, onSeek) {
    this.canvas = canvas;
    this.onSeek = onSeek;
    this.panels = [];
    this.nSteps = 0;
    this.cursor = 0;
    this.hover = null;
    this.margin = { left: 150, right: 64, top: 6, bottom: 26 };
    this.panelH = 62;
    this.gap = 8;
    let dragging = false;
    const seekAt = (ev) => {
      const f = this.frameAt(ev.offsetX);
      if (f !== null) this.onSeek(f);
    };
    canvas.addEventListener("mousedown", (ev) => { dragging = true; seekAt(ev); });
    window.addEventListener("mouseup", () => { dragging = false; });
    canvas.addEventListener("mousemove", (ev) => {
      this.hover = this.frameAt(ev.offsetX);
      if (dragging) seekAt(ev);
      this.draw();
    });
    canvas.addEventListener("mouseleave", () => { this.hover = null; this.draw(); });
    window.addEventListener("resize", () => this.draw());
  }

  /** panels: [{title, series: [{name, color, values}]}] over nSteps steps. */
  setData(panels, nSteps) {
    this.panels = panels.map((p) => {
      const discrete = p.series.every((s) => CurvePlot.discrete(s.values));
      return { ...p, discrete, range: CurvePlot.range(p.series, discrete) };
    });
    this.nSteps = nSteps;
    this.cursor = Math.min(this.cursor, nSteps);
    this.draw();
  }

  setCursor(frame) {
    if (frame === this.cursor) return;
    this.cursor = frame;
    this.draw();
  }

  /** y range of a panel; integer-valued panels (stage, success) always show 0 and 1. */
  static range(series, discrete) {
    let lo = Infinity, hi = -Infinity;
    for (const s of series) for (const v of s.values) {
      if (v === null || !Number.isFinite(v)) continue;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    if (!Number.isFinite(lo)) return [0, 1];
    if (discrete) {
      lo = Math.min(lo, 0);
      hi = Math.max(hi, 1);
      return [lo - 0.12 * (hi - lo), hi + 0.12 * (hi - lo)];
    }
    if (hi - lo < 1e-12) { lo -= 0.5 * (Math.abs(lo) || 1); hi += 0.5 * (Math.abs(hi) || 1); }
    const pad = 0.06 * (hi - lo);
    return [lo - pad, hi + pad];
  }

  /** Integer-valued series with few levels (stage, success) are drawn as stairs. */
  static discrete(values) {
    const seen = new Set();
    for (const v of values) {
      if (v === null) continue;
      if (!Number.isInteger(v)) return false;
      seen.add(v);
      if (seen.size > 12) return false;
    }
    return true;
  }

  plotWidth() { return this.canvas.clientWidth - this.margin.left - this.margin.right; }

  xOf(frame) {
    return this.margin.left + (this.nSteps ? frame / this.nSteps : 0) * this.plotWidth();
  }

  frameAt(px) {
    if (!this.nSteps) return null;
    const t = (px - this.margin.left) / this.plotWidth();
    if (t < -0.02 || t > 1.02) return null;
    return Math.max(0, Math.min(this.nSteps, Math.round(t * this.nSteps)));
  }

  valueAt(series, frame) {
    if (frame < 1 || frame > series.values.length) return null;
    return series.values[frame - 1];
  }

  draw() {
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const cssH = this.margin.top + this.panels.length * (this.panelH + this.gap) + this.margin.bottom;
    const cssW = c.clientWidth;
    if (c.height !== Math.round(cssH * dpr) || c.width !== Math.round(cssW * dpr)) {
      c.style.height = `${cssH}px`;
      c.height = Math.round(cssH * dpr);
      c.width = Math.round(cssW * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, cssW, cssH);
    g.font = "12px system-ui, 'DejaVu Sans', sans-serif";
    const x0 = this.margin.left, x1 = cssW - this.margin.right;
    this.panels.forEach((p, k) => this.drawPanel(g, p, this.margin.top + k * (this.panelH + this.gap), x0, x1));
    this.drawAxis(g, x0, x1, cssH - this.margin.bottom);
    const yTop = this.margin.top, yBot = cssH - this.margin.bottom;
    if (this.hover !== null) {
      g.strokeStyle = "rgba(100,116,139,0.45)";
      g.lineWidth = 1;
      g.setLineDash([3, 3]);
      const xh = Math.round(this.xOf(this.hover)) + 0.5;
      g.beginPath(); g.moveTo(xh, yTop); g.lineTo(xh, yBot); g.stroke();
      g.setLineDash([]);
    }
    const xc = Math.round(this.xOf(this.cursor)) + 0.5;
    g.strokeStyle = "#dc2626";
    g.lineWidth = 1.5;
    g.beginPath(); g.moveTo(xc, yTop); g.lineTo(xc, yBot); g.stroke();
    g.fillStyle = "#dc2626";
    g.beginPath(); g.moveTo(xc - 5, yBot); g.lineTo(xc + 5, yBot); g.lineTo(xc, yBot - 6); g.fill();
  }

  drawPanel(g, p, y, x0, x1) {
    const h = this.panelH, [lo, hi] = p.range;
    const yOf = (v) => y + h - ((v - lo) / (hi - lo)) * h;
    g.fillStyle = "#fafbfc";
    g.fillRect(x0, y, x1 - x0, h);
    g.strokeStyle = "#e3e7ec";
    g.lineWidth = 1;
    g.strokeRect(x0 + 0.5, y + 0.5, x1 - x0 - 1, h - 1);
    if (lo < 0 && hi > 0) {
      g.strokeStyle = "#c9d0d9";
      g.setLineDash([4, 3]);
      g.beginPath(); g.moveTo(x0, Math.round(yOf(0)) + 0.5); g.lineTo(x1, Math.round(yOf(0)) + 0.5); g.stroke();
      g.setLineDash([]);
    }
    g.fillStyle = "#8a94a3";
    g.textAlign = "left";
    if (p.discrete) {
      const top = Math.floor(hi), bottom = Math.ceil(lo);
      g.fillText(String(top), x1 + 6, yOf(top) + 4);
      g.fillText(String(bottom), x1 + 6, yOf(bottom) + 4);
    } else {
      g.fillText(CurvePlot.tick(hi), x1 + 6, y + 10);
      g.fillText(CurvePlot.tick(lo), x1 + 6, y + h - 2);
    }
    g.save();
    g.beginPath(); g.rect(x0, y, x1 - x0, h); g.clip();
    for (const s of p.series) {
      const stairs = CurvePlot.discrete(s.values);
      g.strokeStyle = s.color;
      g.lineWidth = 1.6;
      g.beginPath();
      let pen = false;
      s.values.forEach((v, i) => {
        if (v === null || !Number.isFinite(v)) { pen = false; return; }
        const x = this.xOf(i + 1), yy = yOf(v);
        if (!pen) { g.moveTo(stairs ? this.xOf(i) : x, yy); pen = true; }
        else if (stairs) g.lineTo(this.xOf(i), yy);
        g.lineTo(x, yy);
      });
      g.stroke();
      const cv = this.valueAt(s, this.cursor);
      if (cv !== null && Number.isFinite(cv)) {
        g.fillStyle = s.color;
        g.beginPath(); g.arc(this.xOf(this.cursor), yOf(cv), 3.2, 0, 2 * Math.PI); g.fill();
      }
    }
    g.restore();
    g.textAlign = "right";
    let ty = y + 14;
    for (const s of p.series) {
      g.fillStyle = s.color;
      g.font = "600 12px system-ui, 'DejaVu Sans', sans-serif";
      g.fillText(s.name, x0 - 10, ty);
      const frame = this.hover !== null ? this.hover : this.cursor;
      const v = this.valueAt(s, frame);
      g.font = "12px 'DejaVu Sans Mono', monospace";
      g.fillStyle = "#475467";
      g.fillText(v === null || v === undefined ? "–" : RL.fmt(v), x0 - 10, ty + 14);
      ty += 30;
    }
    if (p.title && p.series.length === 1) {
      g.fillStyle = "#98a2b3";
      g.font = "11px system-ui, 'DejaVu Sans', sans-serif";
      g.fillText(p.title, x0 - 10, ty + 14);
    }
    g.font = "12px system-ui, 'DejaVu Sans', sans-serif";
  }

  drawAxis(g, x0, x1, y) {
    g.strokeStyle = "#c9d0d9";
    g.lineWidth = 1;
    g.beginPath(); g.moveTo(x0, y + 0.5); g.lineTo(x1, y + 0.5); g.stroke();
    if (!this.nSteps) return;
    const raw = this.nSteps / Math.max(2, Math.floor((x1 - x0) / 80));
    const p10 = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * p10).find((s) => s >= raw) || raw;
    g.fillStyle = "#8a94a3";
    g.textAlign = "center";
    for (let f = 0; f <= this.nSteps; f += step) {
      const x = Math.round(this.xOf(f)) + 0.5;
      g.beginPath(); g.moveTo(x, y); g.lineTo(x, y + 4); g.stroke();
      g.fillText(String(f), x, y + 16);
    }
    g.textAlign = "right";
    g.fillText("step", x0 - 10, y + 16);
  }

  static tick(v) {
    const a = Math.abs(v);
    if (a >= 1000) return v.toFixed(0);
    if (a >= 10) return v.toFixed(1);
    if (a >= 0.01 || a === 0) return v.toFixed(2);
    return v.toExponential(1);
  }
}
