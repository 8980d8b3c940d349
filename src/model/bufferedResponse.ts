/**
 * A fetch `Response` whose body has already been read into memory: what the HTTP transport
 * (httpFetch.ts) returns for a JSON answer. A WHATWG `Response` would move those bytes through a
 * web stream again for `json()` (50–130 µs more per request, `bench/transportMicro.ts`); this
 * one parses them directly.
 */

const UTF8_BOM = [0xef, 0xbb, 0xbf] as const;

/** The body as text, decoded as fetch does: UTF-8, a leading byte-order mark dropped. */
function utf8(bytes: Buffer): string {
  const bom =
    bytes.length >= 3 &&
    bytes[0] === UTF8_BOM[0] &&
    bytes[1] === UTF8_BOM[1] &&
    bytes[2] === UTF8_BOM[2];
  return bytes.toString('utf8', bom ? 3 : 0);
}

/**
 * A `Response` over bytes already received, with the members and the one-read rule of fetch's.
 * @example const res = new BufferedResponse(url, 200, 'OK', headers, bytes); await res.json();
 */
export class BufferedResponse implements Response {
  readonly type = 'basic' as const;
  readonly redirected = false;
  readonly #bytes: Buffer;
  #used = false;

  constructor(
    readonly url: string,
    readonly status: number,
    readonly statusText: string,
    readonly headers: Headers,
    bytes: Buffer,
  ) {
    this.#bytes = bytes;
  }

  get ok(): boolean {
    return this.status >= 200 && this.status <= 299;
  }

  /**
   * Null: the bytes were read before the response was made; `text()`, `json()` and the others give
   * them. (A stream made here would cost ≈ 15 µs a call, and the SDK reads `body` on every call
   * only to tie a clean-up to its lifetime; the answers it streams never come here.)
   */
  readonly body = null;

  get bodyUsed(): boolean {
    return this.#used;
  }

  /** The bytes, once: a second read fails as fetch's does. */
  #take(): Buffer {
    if (this.bodyUsed) throw new TypeError('Body is unusable: Body has already been read');
    this.#used = true;
    return this.#bytes;
  }

  async text(): Promise<string> {
    return utf8(this.#take());
  }

  async json(): Promise<unknown> {
    return JSON.parse(utf8(this.#take())) as unknown;
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const b = this.#take();
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  }

  async bytes(): Promise<Uint8Array<ArrayBuffer>> {
    return new Uint8Array(this.#take());
  }

  async blob(): Promise<Blob> {
    return new Blob([new Uint8Array(this.#take())], {
      type: this.headers.get('content-type') ?? '',
    });
  }

  async formData(): Promise<FormData> {
    return new Response(new Uint8Array(this.#take()), { headers: this.headers }).formData();
  }

  clone(): BufferedResponse {
    if (this.bodyUsed) throw new TypeError('Response.clone: Body has already been consumed.');
    return new BufferedResponse(
      this.url,
      this.status,
      this.statusText,
      new Headers(this.headers),
      this.#bytes,
    );
  }
}
