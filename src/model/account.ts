/**
 * The account a model client spends, named without its secret: shared rate limits are kept
 * per API key, and a store row, event or log line must never hold the key itself.
 */
import { createHash } from 'node:crypto';

/**
 * A short hash (12 hex digits of SHA-256) of the credential and the base URL: the same key
 * against two endpoints (the API and a proxy, or two fakes) is two accounts.
 * @example accountIdOf(process.env.ANTHROPIC_API_KEY ?? null, 'https://api.anthropic.com') // 'a1b2c3d4e5f6'
 */
export function accountIdOf(credential: string | null, baseURL: string | undefined): string {
  const url = (baseURL ?? 'https://api.anthropic.com').replace(/\/+$/, '');
  return createHash('sha256')
    .update(`${credential ?? ''}\n${url}`)
    .digest('hex')
    .slice(0, 12);
}
