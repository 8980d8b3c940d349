/**
 * Who may talk to the visualizer: only requests whose `Host` names the address it serves (or a
 * host of the allow-list), and, when an `Origin` is sent, only from such a host. A page on
 * another site whose DNS name is rebound to 127.0.0.1 sends its own name as `Host`, so it is
 * refused before it can read any run's inputs and outputs.
 */
import type { IncomingMessage } from 'node:http';
import { hostname, networkInterfaces } from 'node:os';
import { HttpError } from './http.js';

/** A host name and its port; `port: null` in the allow-list means any port. */
interface HostPort {
  name: string;
  port: number | null;
}

const HOST = /^(\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(?::(\d{1,5}))?$/;

/** `name[:port]` (IPv6 in brackets), lowercased; null when it is not a plain host. */
function parseHost(raw: string, defaultPort: number | null): HostPort | null {
  const m = HOST.exec(raw.trim().toLowerCase());
  if (m === null) return null;
  return { name: m[1] ?? '', port: m[2] === undefined ? defaultPort : Number(m[2]) };
}

const bracket = (h: string): string => (h.includes(':') && !h.startsWith('[') ? `[${h}]` : h);
const LOOPBACK = ['localhost', '127.0.0.1', '[::1]'];
const isLoopback = (h: string): boolean =>
  h === 'localhost' || h === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(h);
const isWildcard = (h: string): boolean => h === '0.0.0.0' || h === '[::]' || h === '';

/** What {@link hostGuard} needs: the bound address and the allow-list. */
export interface HostGuardOptions {
  /** The interface the server is bound to (`127.0.0.1`, `::1`, `0.0.0.0`, a name…). */
  host: string;
  /** The port it listens on. */
  port: number;
  /** More host names (`name` for any port, or `name:port`), e.g. behind a reverse proxy. */
  allowedHosts?: readonly string[];
}

/**
 * The check run on every request: throws a 403 {@link HttpError} when `Host` is not one of
 * the server's names, or `Origin` is present and not one of them.
 * @example const guard = hostGuard({ host: '127.0.0.1', port: 7777 }); guard(req);
 */
export function hostGuard(opts: HostGuardOptions): (req: IncomingMessage) => void {
  const bound = bracket(opts.host.toLowerCase());
  const names = new Set([bound]);
  if (isLoopback(bound) || isWildcard(bound)) for (const n of LOOPBACK) names.add(n);
  if (isWildcard(bound)) {
    // Bound to every interface: each of the machine's own addresses names it too.
    names.add(hostname().toLowerCase());
    for (const list of Object.values(networkInterfaces()))
      for (const a of list ?? []) names.add(bracket(a.address.toLowerCase()));
  }
  const allowed: HostPort[] = [...names].map((name) => ({ name, port: opts.port }));
  for (const raw of opts.allowedHosts ?? []) {
    const hp = parseHost(raw, null);
    if (hp === null)
      throw new TypeError(`allowed host '${raw}' is not a host name: use 'name' or 'name:port'`);
    allowed.push(hp);
  }
  const ok = (hp: HostPort | null): boolean =>
    hp !== null && allowed.some((a) => a.name === hp.name && (a.port ?? hp.port) === hp.port);
  const served = `http://${bound === '[::]' || bound === '0.0.0.0' ? '127.0.0.1' : bound}:${opts.port}/`;

  return (req) => {
    const host = req.headers.host ?? '';
    if (!ok(parseHost(host, 80))) {
      const name = parseHost(host, null)?.name ?? '<host>';
      throw new HttpError(
        403,
        `host '${host.slice(0, 100)}' is not an address of this visualizer: open ${served}, or start it with --allowed-host ${name} (allowedHosts) if it is served under that name`,
      );
    }
    const origin = req.headers.origin;
    if (origin !== undefined && !ok(originHost(origin))) {
      throw new HttpError(
        403,
        `cross-origin request from '${origin.slice(0, 100)}' refused: open the visualizer at ${served}, or start it with --allowed-host <host> for the host it is served under`,
      );
    }
  };
}

/** The host of an `http(s)://host[:port]` origin; null for `null` or anything else. */
function originHost(origin: string): HostPort | null {
  const m = /^(https?):\/\/([^/]+)$/.exec(origin.trim().toLowerCase());
  if (m === null) return null;
  return parseHost(m[2] ?? '', m[1] === 'https' ? 443 : 80);
}
