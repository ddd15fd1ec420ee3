// One chart per results file: a horizontal bar per summary row (its headline figure), the
// ratio to the same-run ceiling and the p99 written beside the bar. Plain SVG text, no
// charting library, so the chart is reviewable in a diff and renders anywhere.
import type { ScenarioSummary } from './summary.ts';

const WIDTH = 820;
const LABEL_W = 210;
const VALUE_W = 250;
const BAR_MAX = WIDTH - LABEL_W - VALUE_W - 20;
const ROW_H = 26;
const TOP = 58;

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

function formatValue(v: number): string {
  if (v >= 100) return Math.round(v).toLocaleString('en-US');
  return v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/** The right-hand text of a row: figure, ratio to the ceiling, p99, or why there is no figure. */
export function rowCaption(row: ScenarioSummary['rows'][number], metric: string): string {
  if (row.value === null) return `no figure${row.note ? `: ${row.note}` : ''}`;
  const parts = [`${formatValue(row.value)} ${metric}`];
  if (row.ratio !== undefined && row.ratio !== null) parts.push(`×${row.ratio}`);
  if (row.p99Ms !== undefined && row.p99Ms !== null) parts.push(`p99 ${formatValue(row.p99Ms)} ms`);
  return parts.join(' · ');
}

export function renderChart(summary: ScenarioSummary, subtitle: string): string {
  const max = Math.max(0, ...summary.rows.map((r) => r.value ?? 0));
  const gates = summary.thresholds.length === 0 ? [] : [
    `SLO: ${summary.thresholds.map((t) => `${t.expression} ${t.ok ? 'ok' : `BREACHED (${t.actual ?? 'not measured'})`}`).join(', ')}`,
  ];
  const height = TOP + summary.rows.length * ROW_H + 20 + gates.length * 18;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">${escapeXml(summary.title)}</text>`,
    `<text x="10" y="40" fill="#555">${escapeXml(subtitle)}</text>`,
  ];
  summary.rows.forEach((row, i) => {
    const y = TOP + i * ROW_H;
    const w = row.value === null || max === 0 ? 0 : Math.max(1, Math.round((row.value / max) * BAR_MAX));
    // Per-size comparisons ('raw-uws@100') have a ceiling row at every size.
    const ceiling = row.name === summary.ceiling || (summary.ceiling?.includes('@') === true && row.name.split('@')[0] === summary.ceiling.split('@')[0]);
    out.push(
      `<text x="${LABEL_W - 8}" y="${y + 15}" text-anchor="end">${escapeXml(row.name)}</text>`,
      `<rect x="${LABEL_W}" y="${y + 3}" width="${w}" height="${ROW_H - 8}" fill="${row.value === null ? '#ccc' : ceiling ? '#888' : row.name.startsWith('lantern') ? '#e8811a' : '#4a7fb5'}"/>`,
      `<text x="${LABEL_W + w + 6}" y="${y + 15}" fill="#222">${escapeXml(rowCaption(row, summary.metric))}</text>`,
    );
  });
  gates.forEach((g, i) => {
    out.push(`<text x="10" y="${TOP + summary.rows.length * ROW_H + 14 + i * 18}" fill="${summary.thresholds.every((t) => t.ok) ? '#276b27' : '#b00'}">${escapeXml(g)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
