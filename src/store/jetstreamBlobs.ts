/**
 * Large events for the JetStream store. A NATS message cannot exceed the server's
 * `max_payload` (1 MiB by default), so an encoded envelope above a threshold is written to the
 * object store bucket `<prefix>_blobs` first and the log message carries only a reference
 * (header {@link BLOB_HEADER}, body `{"$blob": name, ...}`). Reads resolve the reference.
 *
 * Writing the object before the log message means a reference never points at nothing; a
 * writer that dies between the two leaves an unreferenced object (harmless garbage). Object
 * names include the writer's nonce, so two writers racing for the same seq never overwrite
 * each other's payload: only the winner's message is in the log, and it names its own object.
 * Reads take the chunks with a bounded pull consumer (`readRange`) and check the SHA-256
 * digest the object store recorded, instead of the library's push consumer, which waits
 * forever if a chunk never comes.
 */
import { createHash } from 'node:crypto';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { ObjectStore } from '@nats-io/obj';
import type { MsgHdrs } from '@nats-io/transport-node';
import { CorruptEventError } from '../errors.js';
import type { NatsLink } from './natsConnect.js';
import { readRange, type ReadStats } from './natsRead.js';
import { natsJetStream, natsObj } from './natsLib.js';

const { StorageType } = natsJetStream;

/** The header that marks a log message whose event lives in the object store. */
export const BLOB_HEADER = 'Plumbline-Blob';

/** Default threshold: encoded envelopes larger than this many bytes go to the object store. */
export const DEFAULT_LARGE_PAYLOAD_BYTES = 512 * 1024;

/** Room left under `max_payload` for headers and the subject. */
const HEADROOM = 8 * 1024;

/** Options of {@link jetstreamBlobs}. */
export interface BlobOptions {
  link: NatsLink;
  js: JetStreamClient;
  jsm: JetStreamManager;
  bucket: string;
  replicas: number;
  /** Bodies over this many bytes are moved out (clamped below the server's max payload). */
  thresholdBytes?: number;
  stats?: ReadStats;
  track?: (p: Promise<unknown>) => void;
  /** A reader: the bucket is opened, never created (a reference means a writer made it). */
  readOnly?: boolean;
}

/** What to publish for one event: the body itself, or a reference and the header to set. */
export type Encoded = { data: string; blob?: undefined } | { data: string; blob: string };

/** Large payload handling for one store. */
export interface JetStreamBlobs {
  /** The threshold in effect (bytes). */
  readonly thresholdBytes: number;
  /** Moves a body over the threshold to the object store and returns the reference to log. */
  encode(runId: string, seq: number, nonce: string, body: string): Promise<Encoded>;
  /** The event bytes of a log message: its data, or the referenced object's. */
  resolve(
    runId: string,
    streamSeq: number,
    data: Uint8Array,
    hdrs: MsgHdrs | undefined,
  ): Promise<Uint8Array>;
}

/** `SHA-256=<base64url>` as the object store records it, without padding. */
const digestOf = (chunks: Uint8Array[]): string => {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest('base64url');
};

/** Creates the large payload handler; the bucket is created on first use. */
export function jetstreamBlobs(o: BlobOptions): JetStreamBlobs {
  const maxPayload = o.link.nc.info?.max_payload ?? 1024 * 1024;
  const thresholdBytes = Math.max(
    1,
    Math.min(o.thresholdBytes ?? DEFAULT_LARGE_PAYLOAD_BYTES, maxPayload - HEADROOM),
  );
  let bucket: Promise<ObjectStore> | undefined;
  const store = (): Promise<ObjectStore> => {
    // The object store client is loaded with the first large event: most stores have none.
    bucket ??= Promise.resolve()
      .then(() => natsObj().Objm)
      .then((Objm) =>
        o.link.retry(() =>
          o.readOnly === true
            ? new Objm(o.js).open(o.bucket)
            : new Objm(o.js).create(o.bucket, { replicas: o.replicas, storage: StorageType.File }),
        ),
      )
      .catch((e: unknown) => {
        bucket = undefined;
        throw e;
      });
    return bucket;
  };

  return {
    thresholdBytes,

    async encode(runId, seq, nonce, body) {
      const bytes = Buffer.byteLength(body);
      if (bytes <= thresholdBytes) return { data: body };
      const os = await store();
      const name = `${runId}/${seq}/${nonce}`;
      const payload = new TextEncoder().encode(body);
      // Safe to repeat: a second put of the same name replaces the first with the same bytes.
      await o.link.retry(() => os.putBlob({ name }, payload));
      return { data: JSON.stringify({ $blob: name, runId, seq, bytes }), blob: name };
    },

    async resolve(runId, streamSeq, data, hdrs) {
      const name = hdrs?.get(BLOB_HEADER);
      if (name === undefined || name === '') return data;
      const os = await store();
      const info = await o.link.retry(() => os.info(name));
      if (info === null || info.deleted)
        throw new CorruptEventError(
          runId,
          0,
          `stream position ${streamSeq} refers to object ${name} in bucket ${o.bucket}, which is missing`,
        );
      const msgs = await o.link.retry(() =>
        readRange(
          o.js,
          o.jsm,
          { stream: `OBJ_${o.bucket}`, filter: `$O.${o.bucket}.C.${info.nuid}` },
          o.stats,
          o.track,
        ),
      );
      const chunks = msgs.map((m) => m.data);
      const want = info.digest.replace(/^SHA-256=/, '').replace(/=+$/, '');
      const size = chunks.reduce((n, c) => n + c.length, 0);
      if (size !== info.size || digestOf(chunks) !== want)
        throw new CorruptEventError(
          runId,
          0,
          `object ${name} (stream position ${streamSeq}) has ${size} of ${info.size} bytes or a wrong digest`,
        );
      return Buffer.concat(chunks);
    },
  };
}
