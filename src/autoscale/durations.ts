// ISO 8601 durations as Azure Monitor writes them in autoscale settings (timeGrain PT1M, timeWindow PT5M,
// cooldown PT1H, P1D) and infergate's own second-level windows (PT10S, PT0.5S). Years and months have no
// fixed length, so they are refused rather than guessed.

const DURATION = /^P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$/i;

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Milliseconds of an ISO 8601 duration (PT5M → 300000), or undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text.trim());
  // "P" and "PT" alone match the pattern but say nothing.
  if (!m || !m.slice(1).some((g) => g !== undefined)) return undefined;
  if (/T$/i.test(text.trim())) return undefined;
  const [w, d, h, min, s] = m.slice(1).map((g) => (g === undefined ? 0 : Number(g)));
  return Math.round(w * 7 * DAY + d * DAY + h * HOUR + min * MINUTE + s * SECOND);
}

/** Like parseDuration, for values the settings' validation has already accepted: throws on anything else. */
export function durationMs(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new Error(`not an ISO 8601 duration: '${text}'`);
  return ms;
}

/** The ISO 8601 form Azure prints: 300000 → PT5M, 90000 → PT1M30S, 500 → PT0.5S, 86400000 → P1D. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) throw new Error(`not a duration: ${ms}`);
  let rest = Math.round(ms);
  const days = Math.floor(rest / DAY);
  rest -= days * DAY;
  const hours = Math.floor(rest / HOUR);
  rest -= hours * HOUR;
  const minutes = Math.floor(rest / MINUTE);
  rest -= minutes * MINUTE;
  const seconds = rest / SECOND;
  let time = '';
  if (hours) time += `${hours}H`;
  if (minutes) time += `${minutes}M`;
  if (seconds) time += `${seconds}S`;
  if (!days && !time) return 'PT0S';
  return `P${days ? `${days}D` : ''}${time ? `T${time}` : ''}`;
}

/** Short human form for messages: 300000 → "5m", 90000 → "90s", 3600000 → "1h". */
export function shortDuration(ms: number): string {
  if (ms % DAY === 0 && ms >= DAY) return `${ms / DAY}d`;
  if (ms % HOUR === 0 && ms >= HOUR) return `${ms / HOUR}h`;
  if (ms % MINUTE === 0 && ms >= MINUTE) return `${ms / MINUTE}m`;
  return `${ms / SECOND}s`;
}
