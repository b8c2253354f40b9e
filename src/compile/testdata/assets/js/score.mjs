export function init() {}
export function run(raw) {
  return raw;
}
