// Pure formatting helpers.

export function shortHex(value, head = 6, tail = 4) {
  if (!value) return '';
  const s = String(value);
  return s.length <= head + tail + 1 ? s : `${s.slice(0, head)}…${s.slice(-tail)}`;
}

export function shortAddress(address) {
  return shortHex(address, 6, 4);
}

export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined || Number.isNaN(Number(bytes))) return '';
  const n = Number(bytes);
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${trim(n / 1024)} KB`;
  if (n < 1024 * 1024 * 1024) return `${trim(n / (1024 * 1024))} MB`;
  return `${trim(n / (1024 * 1024 * 1024))} GB`;
}

function trim(x) {
  return x >= 10 ? Math.round(x).toString() : (Math.round(x * 10) / 10).toString();
}

/** "1 hour", "30 minutes", "2 days", "1 day 6 hours" — for lifetimes. */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s > 0 && s % (7 * 86400) === 0) {
    const w = s / (7 * 86400);
    return `${w} week${w === 1 ? '' : 's'}`;
  }
  const units = [
    [86400, 'day'],
    [3600, 'hour'],
    [60, 'minute'],
    [1, 'second'],
  ];
  const parts = [];
  let rest = s;
  for (const [size, name] of units) {
    if (rest >= size) {
      const n = Math.floor(rest / size);
      rest -= n * size;
      parts.push(`${n} ${name}${n === 1 ? '' : 's'}`);
      if (parts.length === 2) break;
    } else if (parts.length) break;
  }
  return parts.length ? parts.join(' ') : '0 seconds';
}

/** A live countdown: "59:07", "1:02:03", "3 d 04:05:06". */
export function formatCountdown(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  const p = (n) => String(n).padStart(2, '0');
  if (d > 0) return `${d} d ${p(hh)}:${p(mm)}:${p(ss)}`;
  if (hh > 0) return `${hh}:${p(mm)}:${p(ss)}`;
  return `${mm}:${p(ss)}`;
}

/** A unix time in seconds (or an ISO date string) as a local time of day, or date and time. */
export function formatTime(value) {
  if (value === null || value === undefined || value === '') return '';
  const n = Number(value);
  const date = Number.isFinite(n) ? new Date(n * 1000) : new Date(String(value));
  if (Number.isNaN(date.getTime())) return String(value);
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' })
    : date.toLocaleString(undefined, {
        year: 'numeric',
        month: 'short',
        day: 'numeric',
        hour: '2-digit',
        minute: '2-digit',
      });
}

export function subtype(contentType) {
  if (!contentType) return '';
  const sub = String(contentType).split(';')[0].split('/')[1] || '';
  return sub.replace(/^x-/, '').toUpperCase();
}
