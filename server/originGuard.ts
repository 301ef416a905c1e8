/**
 * The server answers only its own origin. A web page that rebinds its DNS name to 127.0.0.1 reaches the server with its
 * own name in the Host header, so every request must name an allowed host (localhost, 127.0.0.1, [::1], --host, and
 * --allowed-hosts; '*' turns the check off): others get 403. And a state-changing request (POST, PUT, PATCH, DELETE)
 * that carries an Origin header must come from this very origin (the Origin's host and port equal the Host header):
 * a page elsewhere, even on another localhost port, cannot start jobs, load models or cancel jobs. Requests without an
 * Origin (curl, the CLI, scripts) are not browsers' cross-site requests and pass.
 */
import type { RequestHandler } from 'express';
import { networkInterfaces } from 'node:os';
import type { ServerConfig } from './config.ts';

const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const WILDCARD_BINDS = new Set(['0.0.0.0', '::', '[::]']);

/** A Host header's or name's host name: lower case, without port, brackets or a trailing dot; null if unparsable. */
export function hostName(host: string | undefined): string | null {
  if (!host) return null;
  try {
    const name = new URL(`http://${host.includes(':') && !host.startsWith('[') && host.split(':').length > 2 ? `[${host}]` : host}`).hostname;
    return name.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase() || null;
  } catch {
    return null;
  }
}

/** The host names this server answers to (see the module comment). */
export function allowedHostNames(config: Pick<ServerConfig, 'host' | 'allowedHosts'>): Set<string> | '*' {
  if (config.allowedHosts.includes('*')) return '*';
  const names = new Set(['localhost', '127.0.0.1', '::1']);
  if (WILDCARD_BINDS.has(config.host)) {
    // Bound to every interface: the machine's own addresses are its names too.
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) names.add(a.address.toLowerCase());
  } else {
    const own = hostName(config.host);
    if (own) names.add(own);
  }
  for (const h of config.allowedHosts) {
    const n = hostName(h);
    if (n) names.add(n);
  }
  return names;
}

/** The middleware: 403 JSON for a foreign Host, and for a foreign Origin on a state-changing request. */
export function originGuard(config: Pick<ServerConfig, 'host' | 'allowedHosts'>): RequestHandler {
  const allowed = allowedHostNames(config);
  const list = allowed === '*' ? '' : [...allowed].map((n) => (n.includes(':') ? `[${n}]` : n)).join(', ');
  return (req, res, next) => {
    const host = req.headers.host;
    if (allowed !== '*') {
      const name = hostName(host);
      if (!name || !allowed.has(name)) {
        res.status(403).json({
          error: `Host ${JSON.stringify(host ?? '')} is not allowed: this server answers only ${list} (a protection against DNS rebinding); ` +
            'start it with --allowed-hosts NAME to serve another name',
        });
        return;
      }
    }
    const origin = req.headers.origin;
    if (origin !== undefined && STATE_CHANGING.has(req.method) && !sameOrigin(origin, host)) {
      res.status(403).json({
        error: `Origin ${JSON.stringify(origin)} may not ${req.method} here: state-changing requests are accepted only from this server's own ` +
          `origin (http://${host ?? ''}) or from clients that send no Origin (curl, scripts)`,
      });
      return;
    }
    next();
  };
}

/** True when `origin` (scheme://host[:port]) is the origin of a request for `host` (the Host header). */
function sameOrigin(origin: string, host: string | undefined): boolean {
  if (!host) return false;
  try {
    const o = new URL(origin);
    if (o.protocol !== 'http:' && o.protocol !== 'https:') return false;
    return o.host === new URL(`${o.protocol}//${host}`).host;
  } catch {
    return false; // "null" (sandboxed frames, file: pages) or garbage
  }
}
