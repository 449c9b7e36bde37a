// Time-series charts of the dashboard, drawn by uPlot (vendored in ui/vendor/, served from the
// binary, loaded the first time a chart is needed). A chart takes whole series: the x values (Unix
// seconds, one per bucket) and one array per line, `null` where there is nothing to draw.
//
// Every chart drawn is listed in `window.to11Charts` (name → state) so the browser test can ask
// the page itself whether a chart has drawn its data: how many values it holds, how many
// pixels of its plotting area carry a series' colour, and whether it is on the page.

let loading = null;

/** Loads uPlot's script and style sheet once. */
export function loadCharts() {
  if (window.uPlot) return Promise.resolve();
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      document.head.append(h('link', { rel: 'stylesheet', href: '/ui/vendor/uPlot.min.css' }));
      const s = h('script', { src: '/ui/vendor/uPlot.iife.min.js' });
      s.addEventListener('load', () => resolve());
      s.addEventListener('error', () => { loading = null; reject(new Error('the chart library could not be loaded')); });
      document.head.append(s);
    });
  }
  return loading;
}

function h(tag, attrs) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

export const COLOURS = ['#4338ca', '#c2410c', '#0f766e', '#a21caf', '#2563eb', '#65a30d'];

const registry = {};
window.to11Charts = registry;

/** `#rrggbb` → [r, g, b]. */
function rgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/**
 * Pixels of the plotting area close to one of the series' colours, above its bottom edge (where a
 * line of zeros lies): what the chart drew of its values.
 */
function inked(u, colours) {
  const { left, top, width } = u.bbox;
  const height = u.bbox.height - Math.ceil(4 * (window.devicePixelRatio || 1));
  if (width < 1 || height < 1) return 0;
  const px = u.ctx.getImageData(left, top, width, height).data;
  const want = colours.map(rgb);
  let n = 0;
  for (let i = 0; i < px.length; i += 4) {
    if (px[i + 3] < 160) continue;
    for (const [r, g, b] of want) {
      if (Math.abs(px[i] - r) + Math.abs(px[i + 1] - g) + Math.abs(px[i + 2] - b) < 60) { n++; break; }
    }
  }
  return n;
}

// Markers are drawn where a series has a value worth seeing (not null, and not 0 for counts)
// when there are few of them: one busy hour in 90 days is then a visible dot, not a lost pixel.
const FEW = 120;

const DAY = 86400;
const DAILY_TICKS = [DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 91 * DAY, 365 * DAY];

function markers(values, zeroIsEmpty) {
  const idx = [];
  values.forEach((v, i) => { if (v !== null && !(zeroIsEmpty && v === 0)) idx.push(i); });
  return idx;
}

/**
 * A chart in `box`: `lines` is [{label, values, zeroIsEmpty}], `fmt` formats a y value. Returns
 * the uPlot instance; it follows the box's width.
 */
export function timeChart(name, box, xs, lines, fmt, daily) {
  const colours = lines.map((_, i) => COLOURS[i % COLOURS.length]);
  const marks = lines.map((l) => markers(l.values, l.zeroIsEmpty));
  const opts = {
    width: Math.max(300, box.clientWidth || 600),
    height: 200,
    scales: { x: { time: true }, y: { range: (u, min, max) => [Math.min(0, min ?? 0), max > 0 ? max * 1.1 : 1] } },
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
    series: [
      { value: (u, v) => (v === null ? '—' : new Date(v * 1000).toLocaleString(undefined, daily ? { dateStyle: 'medium' } : { dateStyle: 'medium', timeStyle: 'short' })) },
      ...lines.map((l, i) => ({
        label: l.label,
        stroke: colours[i],
        width: 2,
        fill: i === 0 ? `${colours[i]}14` : undefined,
        spanGaps: false,
        value: (u, v) => (v === null || v === undefined ? '—' : fmt(v)),
        points: {
          show: () => marks[i].length > 0 && marks[i].length <= FEW,
          filter: () => marks[i],
          size: 6,
          fill: colours[i],
        },
      })),
    ],
    axes: [
      // By day, ticks fall on whole days only (never "12pm" between two daily points).
      { stroke: '#555b6e', grid: { stroke: '#eef0f5' }, ticks: { stroke: '#e2e5ee' }, ...(daily ? { incrs: DAILY_TICKS } : {}) },
      { stroke: '#555b6e', grid: { stroke: '#eef0f5' }, ticks: { stroke: '#e2e5ee' }, size: 70, values: (u, vals) => vals.map((v) => fmt(v)) },
    ],
  };
  const state = { x: xs.length, values: 0, drawn: 0, inked: () => inked(u, colours) };
  state.values = lines.reduce((n, l) => n + l.values.filter((v) => v !== null && v !== undefined).length, 0);
  state.nonZero = marks.reduce((n, m) => n + m.length, 0);
  opts.hooks = { draw: [() => { state.drawn++; }] };
  const u = new window.uPlot(opts, [xs, ...lines.map((l) => l.values)], box);
  registry[name] = state;
  state.shown = () => u.root.isConnected;
  state.destroy = () => u.destroy();
  // The box may not be in the page yet: the chart takes its width once it is, and follows it.
  new ResizeObserver(() => {
    if (!u.root.isConnected) return;
    const w = Math.max(300, box.clientWidth);
    if (w !== u.width) u.setSize({ width: w, height: 200 });
  }).observe(box);
  return u;
}

/** Destroys the charts drawn before (uPlot's listeners on the window go with them). */
export function forgetCharts() {
  for (const k of Object.keys(registry)) {
    registry[k].destroy();
    delete registry[k];
  }
}
