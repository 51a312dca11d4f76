// The usage logs' "actions per day" chart: an SVG bar chart built with createElementNS (through
// svg() of dom.js), no library. Each day's bar stacks its kinds of action; every bar has a <title>
// (the tooltip and the accessible text) listing the counts, and the whole chart an aria-label.

import { h, svg } from './dom.js';

const WIDTH = 720;
const HEIGHT = 220;
const MARGIN = { top: 12, right: 12, bottom: 36, left: 44 };
// Colours of the kinds, as CSS classes (org.css sets fills that read in light and dark themes).
const SERIES_CLASSES = 8;
const DAY_MS = 86_400_000;

/** The UTC day (YYYY-MM-DD) of a date. */
export function utcDay(date) {
  return date.toISOString().slice(0, 10);
}

/** Every UTC day from `start` to `end` (Dates), both included. */
export function daysBetween(start, end) {
  const days = [];
  const first = Date.UTC(start.getUTCFullYear(), start.getUTCMonth(), start.getUTCDate());
  for (let time = first; time <= end.getTime() && days.length < 400; time += DAY_MS) {
    days.push(utcDay(new Date(time)));
  }
  return days;
}

/**
 * Counts of aggregatelogs' answer ([{kind, count, datetime}]) by day and kind:
 * {days: [...], kinds: [...], counts: Map(day → Map(kind → count))}.
 */
export function countsPerDay(aggregated, start, end) {
  const days = daysBetween(start, end);
  const counts = new Map(days.map((day) => [day, new Map()]));
  const kinds = new Set();
  for (const entry of aggregated) {
    const day = utcDay(new Date(entry.datetime));
    if (!counts.has(day)) counts.set(day, new Map());
    const perKind = counts.get(day);
    perKind.set(entry.kind, (perKind.get(entry.kind) || 0) + entry.count);
    kinds.add(entry.kind);
  }
  const orderedDays = [...counts.keys()].sort();
  return { days: orderedDays, kinds: [...kinds].sort(), counts };
}

function niceMaximum(value) {
  if (value <= 4) return 4;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  const steps = [1, 2, 5, 10].map((step) => step * magnitude);
  return steps.find((step) => step >= value) ?? 10 * magnitude;
}

function total(perKind) {
  let sum = 0;
  for (const count of perKind.values()) sum += count;
  return sum;
}

function axes(maximum, plotHeight, plotWidth) {
  const ticks = Number.isInteger(maximum / 2) ? [0, maximum / 2, maximum] : [0, maximum];
  return ticks.map((tick) => {
    const y = MARGIN.top + plotHeight - (tick / maximum) * plotHeight;
    return svg(
      'g',
      { class: 'chart-tick' },
      svg('line', { x1: MARGIN.left, x2: MARGIN.left + plotWidth, y1: y, y2: y, class: 'chart-grid' }),
      svg('text', { x: MARGIN.left - 6, y: y + 4, 'text-anchor': 'end', class: 'chart-label' }, String(tick)),
    );
  });
}

function dayBar(day, perKind, kinds, geometry) {
  const { x, width, plotHeight, maximum } = geometry;
  let top = MARGIN.top + plotHeight;
  const segments = kinds
    .filter((kind) => perKind.get(kind))
    .map((kind) => {
      const height = (perKind.get(kind) / maximum) * plotHeight;
      top -= height;
      const series = kinds.indexOf(kind) % SERIES_CLASSES;
      return svg('rect', { x, y: top, width, height, class: `chart-bar chart-series-${series}` });
    });
  const lines = kinds.filter((kind) => perKind.get(kind)).map((kind) => `${kind}: ${perKind.get(kind)}`);
  const summary = `${day}: ${total(perKind)} actions${lines.length ? ` (${lines.join(', ')})` : ''}`;
  return svg('g', { class: 'chart-day', 'data-day': day }, svg('title', {}, summary), ...segments);
}

function dayLabels(days, step, geometry) {
  return days
    .map((day, index) => ({ day, index }))
    .filter(({ index }) => index % step === 0)
    .map(({ day, index }) =>
      svg(
        'text',
        {
          x: MARGIN.left + index * geometry.slot + geometry.slot / 2,
          y: HEIGHT - MARGIN.bottom + 16,
          'text-anchor': 'middle',
          class: 'chart-label',
        },
        day.slice(5),
      ),
    );
}

/**
 * The chart of `aggregated` (aggregatelogs' entries) from `start` to `end` (Dates), with a legend of
 * the kinds. Returns a <figure> holding the <svg>.
 */
export function actionsPerDayChart(aggregated, start, end) {
  const { days, kinds, counts } = countsPerDay(aggregated, start, end);
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const totals = days.map((day) => total(counts.get(day)));
  const sum = totals.reduce((a, b) => a + b, 0);
  const maximum = niceMaximum(Math.max(0, ...totals));
  const slot = plotWidth / Math.max(days.length, 1);
  const width = Math.max(1, slot * 0.7);
  const bars = days.map((day, index) =>
    dayBar(day, counts.get(day), kinds, {
      x: MARGIN.left + index * slot + (slot - width) / 2,
      width,
      plotHeight,
      maximum,
    }),
  );
  const labelStep = Math.max(1, Math.ceil(days.length / 10));
  const description = `Actions per day from ${days[0]} to ${days[days.length - 1]}: ${sum} in all`;
  const chart = svg(
    'svg',
    {
      viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
      class: 'chart',
      role: 'img',
      'aria-label': description,
      preserveAspectRatio: 'xMidYMid meet',
    },
    svg('title', {}, description),
    ...axes(maximum, plotHeight, plotWidth),
    ...bars,
    ...dayLabels(days, labelStep, { slot }),
  );
  const legend = h(
    'ul',
    { class: 'chart-legend' },
    kinds.map((kind, index) =>
      h(
        'li',
        {},
        svg(
          'svg',
          { viewBox: '0 0 10 10', width: 12, height: 12, class: 'chart-swatch', 'aria-hidden': 'true' },
          svg('rect', { width: 10, height: 10, class: `chart-bar chart-series-${index % SERIES_CLASSES}` }),
        ),
        kind,
      ),
    ),
  );
  return h('figure', { class: 'chart-figure' }, chart, h('figcaption', {}, description), legend);
}
