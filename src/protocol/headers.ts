// Headers that describe one HTTP hop and never travel in a REQUEST frame (RFC 9110 §7.6.1 Connection,
// plus the RFC 9112 framing headers; nginx's proxy module and undici drop the same). The router also
// keeps `authorization` (the endpoint's key or token is not the model's business, as Azure's front end
// does not pass it on), `host` (the instance has none) and `x-request-id` (the router sets its own, last).
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'authorization',
  'host',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'upgrade',
  'proxy-connection',
  'te',
  'trailer',
  'expect',
  'x-request-id',
]);
