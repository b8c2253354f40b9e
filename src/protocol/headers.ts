// Headers that describe one HTTP hop and never travel in a REQUEST frame (RFC 9110 §7.6.1 Connection,
// plus the RFC 9112 framing headers; nginx's proxy module and undici drop the same). `expect` is answered
// by the HTTP server in front (Node sends the 100 Continue), not by the instance.
export const CONNECTION_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'upgrade',
  'proxy-connection',
  'te',
  'trailer',
  'expect',
]);
// What the router does not pass on: the above, plus `authorization` (the endpoint's key or token is not
// the model's business, as Azure's front end does not pass it on), `host` (the instance has none) and
// `x-request-id` (the router sets its own, last). `infergate serve` drops only CONNECTION_HEADERS: like
// azmlinfsrv run locally, it has no front end, and the script sees Authorization and Host as sent.
export const HOP_BY_HOP: ReadonlySet<string> = new Set([...CONNECTION_HEADERS, 'authorization', 'host', 'x-request-id']);
