/**
 * Plain-text tables for terminals, in the style of Asterisk's `sip show peers`: left-aligned
 * columns separated by two spaces, a header row, no borders.
 */

/** Replaces control characters (values may come from the wire, e.g. User-Agent) so they cannot drive the terminal. */
export function sanitizeCell(value: string): string {
  return value.replace(/[\x00-\x1f\x7f-\x9f]/g, '?');
}

/** Formats rows under headers; each line ends with `\n`, no trailing spaces. */
export function formatTable(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const cells = [headers.map(sanitizeCell), ...rows.map((r) => r.map(sanitizeCell))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => [...(r[i] ?? '')].length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i] - [...c].length)))
        .join('  ')
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join('');
}
