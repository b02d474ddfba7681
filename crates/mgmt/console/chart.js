// Line charts drawn on a <canvas> from RabbitMQ's *_details.samples (or
// from points the page collected itself). No library: axes, grid, lines,
// an HTML legend, and a text summary for screen readers.

import { h } from './ui.js';

export const COLORS = ['#c04a00', '#0b57a4', '#17753a', '#8e2bb5', '#b58900', '#555'];
/** Points kept per series when a page collects its own history. */
export const POINTS_MAX = 120;

/** [[t_ms, value], ...] oldest first, from samples (newest first). */
export function fromSamples(details) {
  if (!details || !Array.isArray(details.samples)) return [];
  return details.samples.map((s) => [s.timestamp, s.sample]).reverse();
}

/** Rates per second between successive counter points. */
export function toRates(points) {
  const out = [];
  for (let i = 1; i < points.length; i++) {
    const dt = (points[i][0] - points[i - 1][0]) / 1000;
    if (dt > 0) out.push([points[i][0], Math.max(0, (points[i][1] - points[i - 1][1]) / dt)]);
  }
  return out;
}

/** A figure with a canvas; `update(series)` redraws it. */
export function chart(title, unit = '') {
  const canvas = h('canvas.chart', { role: 'img', 'aria-label': title });
  const legend = h('div.legend');
  const fig = h('figure', h('figcaption', title), canvas, legend);
  let last = [];
  const draw = () => paint(canvas, last, unit);
  fig.update = (series) => {
    last = series;
    canvas.dataset.last = JSON.stringify(Object.fromEntries(series.map((s) => [s.label, s.points.length ? s.points[s.points.length - 1][1] : null])));
    canvas.dataset.points = String(series.reduce((n, s) => n + s.points.length, 0));
    canvas.dataset.newest = String(Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[0]))));
    const summary = series.map((s) => `${s.label} ${s.points.length ? fmtv(s.points[s.points.length - 1][1]) : 'no data'}${unit}`).join(', ');
    canvas.setAttribute('aria-label', `${title}: ${summary}`);
    legend.replaceChildren(...series.map((s, i) => h('span', h('i', { style: `background:${s.color || COLORS[i % COLORS.length]}` }),
      `${s.label}: ${s.points.length ? fmtv(s.points[s.points.length - 1][1]) : '–'}${unit}`)));
    draw();
  };
  new ResizeObserver(draw).observe(canvas);
  return fig;
}

const fmtv = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function paint(canvas, series, unit) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, hgt = canvas.clientHeight;
  if (!w || !hgt) return;
  canvas.width = w * dpr; canvas.height = hgt * dpr;
  const g = canvas.getContext('2d');
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, hgt);
  const pad = { l: 48, r: 8, t: 8, b: 20 };
  const all = series.flatMap((s) => s.points);
  const now = Date.now();
  const t0 = all.length ? Math.min(...all.map((p) => p[0])) : now - 60000;
  const t1 = all.length ? Math.max(...all.map((p) => p[0])) : now;
  const span = Math.max(t1 - t0, 1000);
  const ymax = niceMax(all.length ? Math.max(...all.map((p) => p[1])) : 1);
  const x = (t) => pad.l + ((t - t0) / span) * (w - pad.l - pad.r);
  const y = (v) => hgt - pad.b - (v / ymax) * (hgt - pad.t - pad.b);
  g.font = '11px system-ui, sans-serif';
  g.strokeStyle = '#e3e7ec'; g.fillStyle = '#5a6472'; g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = (ymax * i) / 4, yy = Math.round(y(v)) + 0.5;
    g.beginPath(); g.moveTo(pad.l, yy); g.lineTo(w - pad.r, yy); g.stroke();
    g.fillText(fmtv(v) + unit, 2, yy + 4);
  }
  const secs = Math.round(span / 1000);
  g.fillText(`${secs} s`, pad.l, hgt - 4);
  g.fillText('now', w - pad.r - 22, hgt - 4);
  series.forEach((s, i) => {
    if (!s.points.length) return;
    g.strokeStyle = s.color || COLORS[i % COLORS.length]; g.lineWidth = 2;
    g.beginPath();
    s.points.forEach(([t, v], j) => (j ? g.lineTo(x(t), y(v)) : g.moveTo(x(t), y(v))));
    if (s.points.length === 1) g.arc(x(s.points[0][0]), y(s.points[0][1]), 2, 0, 7);
    g.stroke();
  });
}

/** Collects points of its own (for objects without samples in the API). */
export class History {
  constructor() { this.series = new Map(); }
  add(label, t, v) {
    const p = this.series.get(label) || [];
    p.push([t, v]);
    if (p.length > POINTS_MAX) p.shift();
    this.series.set(label, p);
    return p;
  }
}
