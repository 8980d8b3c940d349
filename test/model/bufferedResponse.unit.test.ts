/** BufferedResponse: the `Response` members the transport's JSON answers are read through. */
import { describe, expect, it } from 'vitest';
import { BufferedResponse } from '../../src/model/bufferedResponse.js';

const make = (text: string, type = 'application/json'): BufferedResponse =>
  new BufferedResponse(
    'http://x/v1/messages',
    200,
    'OK',
    new Headers({ 'content-type': type }),
    Buffer.from(text),
  );

describe('BufferedResponse', () => {
  it('reads once, by any member, as fetch does', async () => {
    for (const read of [
      (r: Response) => r.json(),
      (r: Response) => r.text(),
      (r: Response) => r.arrayBuffer(),
      (r: Response) => r.bytes(),
      (r: Response) => r.blob(),
    ]) {
      const res = make('{"a":1}');
      await read(res);
      expect(res.bodyUsed).toBe(true);
      await expect(res.text()).rejects.toThrow(/already been read/);
      expect(() => res.clone()).toThrow(TypeError);
    }
  });

  it('gives the same bytes through each member; a clone reads on its own', async () => {
    const res = make('{"é":"ü"}');
    const copy = res.clone();
    expect(new TextDecoder().decode(await res.arrayBuffer())).toBe('{"é":"ü"}');
    expect(await copy.json()).toEqual({ é: 'ü' });
    expect(copy.headers.get('content-type')).toBe('application/json');
    const blob = await make('x', 'text/plain').blob();
    expect([blob.type, await blob.text()]).toEqual(['text/plain', 'x']);
    expect([...(await make('ab').bytes())]).toEqual([97, 98]);
  });

  it('drops a leading byte-order mark and nothing else', async () => {
    expect(await make('\ufeff{"a":1}').json()).toEqual({ a: 1 });
    expect(await make('a\ufeff').text()).toBe('a\ufeff');
  });

  it('is ok for 2xx only; has no body stream (its bytes were read already)', () => {
    const at = (status: number): BufferedResponse =>
      new BufferedResponse('u', status, '', new Headers(), Buffer.alloc(0));
    expect([200, 299, 300, 404, 529].map((s) => at(s).ok)).toEqual([
      true,
      true,
      false,
      false,
      false,
    ]);
    expect(at(200).body).toBeNull();
  });
});
