/** rbd's output formats: byte sizes, timestamps and text tables. */

/** Ceph's byte_u_t: "100 GiB", "1.5 MiB", "512 B". */
export function prettyBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  const s = Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1).replace(/\.?0+$/, '');
  return `${s} ${units[i]}`;
}

/** ctime(3) format, as rbd prints timestamps. */
export function ctime(iso: string): string {
  const d = new Date(iso);
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const p = (x: number): string => String(x).padStart(2, '0');
  return `${days[d.getDay()]} ${months[d.getMonth()]} ${String(d.getDate()).padStart(2, ' ')} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${d.getFullYear()}`;
}

/** rbd's TextTable: header row, two spaces between columns, numbers right-aligned. */
export function table(head: Array<[string, 'l' | 'r']>, rows: string[][]): string {
  const w = head.map(([h], i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (head[i][1] === 'r' ? c.padStart(w[i]) : i === cells.length - 1 ? c : c.padEnd(w[i])))
      .join('  ')
      .trimEnd();
  return [line(head.map(([h]) => h)), ...rows.map(line)].join('\n') + '\n';
}
