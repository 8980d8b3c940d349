/**
 * The NATS command bus: a work-queue stream `<PREFIX>_CMDS` on `<prefix>.cmd.>` read by one
 * durable pull consumer shared by every worker, and a dead-letter stream `<PREFIX>_DLQ` on
 * `<prefix>.dlq.>`. A start is published with msgID `start:<runId>`, so a second start of the
 * same run inside the duplicate window (2 min) is dropped by the server. While a handler works
 * on a command the bus sends `+WPI` every ack wait / 5; a command whose worker died is
 * redelivered one `ack_wait` (default 1.5 s) after its last beat. After `max_deliver`
 * deliveries the server stops and announces it on the MAX_DELIVERIES advisory, which moves the
 * message to the DLQ (and a start-up sweep catches those whose advisory nobody heard).
 */
import type { JetStreamManager, JsMsg } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/transport-node';
import { UsageError } from '../errors.js';
import { jsErrorCode, openNatsLink, type NatsConnectOptions } from '../store/natsConnect.js';
import { readRange } from '../store/natsRead.js';
import { Heartbeat } from './heartbeat.js';
import {
  DEFAULT_ACK_WAIT_MS,
  decodeCommand,
  encodeCommand,
  heartbeatEveryMs,
  MAX_COMMAND_BYTES,
  runHandler,
  type CommandBus,
  type CommandControl,
  type DeadLetter,
} from './types.js';
import { natsCore, natsJetStream } from '../store/natsLib.js';

const {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  jetstream,
  jetstreamManager,
  RetentionPolicy,
  StorageType,
} = natsJetStream;
const { headers, nanos, nuid } = natsCore;

/** Options of {@link openNatsBus}. */
export interface NatsBusOptions extends NatsConnectOptions {
  /** Names everything: streams `<PREFIX>_CMDS` / `<PREFIX>_DLQ`, subjects `<prefix>.cmd.>`. */
  prefix?: string;
  replicas?: number;
  /** The durable consumer's name (default `<prefix>_workers`). */
  durable?: string;
  /**
   * Redelivery after this long without an ack or a heartbeat (default 1.5 s). A worker
   * (`consume`) sets the shared consumer to its value; a publisher changes it only when given.
   */
  ackWaitMs?: number;
  /** Deliveries before a command is dead-lettered (default 5). */
  maxDeliver?: number;
  /** Largest accepted command in bytes (default 256 KiB). */
  maxCommandBytes?: number;
  /** How long one pull waits for a command; also how long `consume` takes to stop (default 5 s). */
  pullExpiresMs?: number;
  timeoutMs?: number;
}

const H = {
  reason: 'Plumbline-Dlq-Reason',
  subject: 'Plumbline-Dlq-Subject',
  seq: 'Plumbline-Dlq-Seq',
  deliveries: 'Plumbline-Dlq-Deliveries',
  at: 'Plumbline-Dlq-At',
} as const;

/** Header values cannot hold line breaks; keep reasons to one readable line. */
const oneLine = (s: string): string => s.replace(/[\r\n]+/g, ' ').slice(0, 1_000);

async function ensureStream(
  jsm: JetStreamManager,
  cfg: Parameters<JetStreamManager['streams']['add']>[0],
): Promise<void> {
  try {
    const info = await jsm.streams.info(cfg.name);
    // Direct gets (the start-up sweep) need allow_direct, else they time out.
    if (cfg.allow_direct === true && !info.config.allow_direct)
      await jsm.streams.update(cfg.name, { ...info.config, allow_direct: true });
    return;
  } catch (e) {
    if (jsErrorCode(e) !== 10059) throw e;
  }
  try {
    await jsm.streams.add(cfg);
  } catch (e) {
    if (jsErrorCode(e) !== 10058) throw e;
  }
}

/** Connects to NATS and opens (creating if needed) the command bus. */
export async function openNatsBus(opts: NatsBusOptions): Promise<CommandBus> {
  const prefix = opts.prefix ?? 'plumbline';
  if (!/^[A-Za-z0-9_-]{1,32}$/.test(prefix))
    throw new UsageError(
      `NATS prefix ${JSON.stringify(prefix)} is invalid: use 1–32 letters, digits, '-' or '_'`,
    );
  const P = prefix.toUpperCase();
  const CMDS = `${P}_CMDS`;
  const DLQ = `${P}_DLQ`;
  const durable = opts.durable ?? `${prefix}_workers`;
  const ackWaitMs = opts.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
  const maxDeliver = opts.maxDeliver ?? 5;
  const maxBytes = opts.maxCommandBytes ?? MAX_COMMAND_BYTES;
  const replicas = opts.replicas ?? 1;
  const timeout = opts.timeoutMs ?? 5_000;

  const link = await openNatsLink({ ...opts, name: opts.name ?? 'plumbline-bus' });
  const nc = link.nc;
  const js = jetstream(nc, { timeout });
  let jsm: JetStreamManager;
  try {
    jsm = await jetstreamManager(nc, { timeout });
    const common = {
      storage: StorageType.File,
      num_replicas: replicas,
      discard: DiscardPolicy.Old,
      duplicate_window: nanos(120_000),
    };
    await ensureStream(jsm, {
      name: CMDS,
      subjects: [`${prefix}.cmd.>`],
      retention: RetentionPolicy.Workqueue,
      allow_direct: true,
      ...common,
    });
    await ensureStream(jsm, {
      name: DLQ,
      subjects: [`${prefix}.dlq.>`],
      retention: RetentionPolicy.Limits,
      ...common,
    });
    const consumer = {
      durable_name: durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(ackWaitMs),
      max_deliver: maxDeliver,
      num_replicas: replicas,
    };
    // Created only when missing: adding an existing durable with other settings updates it
    // (2.9 does), and a publisher (`plumbline start`) must not reset the workers' ack_wait /
    // max_deliver. Only options given explicitly are applied to an existing consumer.
    const exists = await jsm.consumers.info(CMDS, durable).then(
      () => true,
      (e: unknown) => {
        if (jsErrorCode(e) === 10014) return false; // consumer not found
        throw e;
      },
    );
    let update = exists;
    if (!exists) {
      // Another process may create it between our look and our add: then update as above.
      update = await jsm.consumers.add(CMDS, consumer).then(
        () => false,
        () => true,
      );
    }
    if (update && (opts.ackWaitMs !== undefined || opts.maxDeliver !== undefined)) {
      await jsm.consumers.update(CMDS, durable, {
        ...(opts.ackWaitMs !== undefined ? { ack_wait: consumer.ack_wait } : {}),
        ...(opts.maxDeliver !== undefined ? { max_deliver: maxDeliver } : {}),
      });
    }
  } catch (e) {
    await link.close();
    throw e;
  }

  /** Copies a command to the DLQ with the reason in headers (idempotent per stream seq). */
  const toDlq = async (
    src: { subject: string; seq: number; data: Uint8Array; deliveries: number },
    reason: string,
  ): Promise<void> => {
    const h: MsgHdrs = headers();
    h.set(H.reason, oneLine(reason));
    h.set(H.subject, src.subject);
    h.set(H.seq, String(src.seq));
    h.set(H.deliveries, String(src.deliveries));
    h.set(H.at, String(Date.now()));
    const suffix = src.subject.startsWith(`${prefix}.cmd.`)
      ? src.subject.slice(prefix.length + 5)
      : 'unknown';
    await link.retry(() =>
      js.publish(`${prefix}.dlq.${suffix}`, src.data, { headers: h, msgID: `dlq:${src.seq}` }),
    );
  };

  /** The MAX_DELIVERIES advisory: the server gave up on a message; move it to the DLQ. */
  const onMaxDeliveries = async (payload: unknown): Promise<void> => {
    const { stream_seq: seq, deliveries } = payload as {
      stream_seq?: unknown;
      deliveries?: unknown;
    };
    if (typeof seq !== 'number') return;
    const sm = await link.retry(() => jsm.streams.getMessage(CMDS, { seq })).catch(() => null);
    if (sm === null) return; // Already moved by another worker.
    const n = typeof deliveries === 'number' ? deliveries : maxDeliver;
    await toDlq(
      { subject: sm.subject, seq, data: sm.data, deliveries: n },
      `gave up after ${n} deliveries without an ack (max_deliver ${maxDeliver})`,
    );
    await jsm.streams.deleteMessage(CMDS, seq, false).catch(() => false);
  };

  /**
   * Backstop for a missed advisory (no worker was listening when it fired): on 2.9 an
   * exhausted message stays in the work queue forever. When nothing is awaiting an ack, every
   * message at or below the consumer's delivered position is such a message.
   */
  const sweepExhausted = async (): Promise<void> => {
    const ci = await link.retry(() => jsm.consumers.info(CMDS, durable));
    if (ci.num_ack_pending !== 0) return;
    for (let seq = ci.ack_floor.stream_seq + 1; ;) {
      const from = seq;
      const sm = await link.retry(() =>
        jsm.direct.getMessage(CMDS, { next_by_subj: `${prefix}.cmd.>`, seq: from }),
      );
      if (sm === null || sm.seq > ci.delivered.stream_seq) return;
      await toDlq(
        { subject: sm.subject, seq: sm.seq, data: sm.data, deliveries: maxDeliver },
        `gave up after ${maxDeliver} deliveries without an ack (max_deliver ${maxDeliver}; found by the start-up sweep)`,
      );
      await jsm.streams.deleteMessage(CMDS, sm.seq, false).catch(() => false);
      seq = sm.seq + 1;
    }
  };

  /**
   * A worker beats at its own ack wait / 5, so the consumer must not wait less: a consumer made
   * by an older version (30 s) or another worker is set to this worker's ack wait. Workers
   * sharing a consumer should share the ack wait (the last to start decides).
   */
  const applyAckWait = async (): Promise<void> => {
    const ci = await link.retry(() => jsm.consumers.info(CMDS, durable));
    if (ci.config.ack_wait !== nanos(ackWaitMs))
      await link.retry(() => jsm.consumers.update(CMDS, durable, { ack_wait: nanos(ackWaitMs) }));
  };

  /** Sends `+WPI` for each delivery; a closed connection fails them all (they then lapse). */
  const beatAll = (ms: JsMsg[]): void => {
    for (const m of ms) m.working();
  };

  const control = (m: JsMsg, beats: Heartbeat<JsMsg>): CommandControl => ({
    deliveries: m.info.deliveryCount,
    working: () => m.working(),
    ack: async () => {
      beats.delete(m);
      await link.retry(() => m.ackAck());
    },
    nak: (delayMs?: number) => {
      beats.delete(m);
      m.nak(delayMs);
    },
    deadLetter: async (reason: string) => {
      // Still beaten while the copy is published: a slow DLQ must not hand it to another worker.
      await toDlq(
        { subject: m.subject, seq: m.seq, data: m.data, deliveries: m.info.deliveryCount },
        reason,
      );
      beats.delete(m);
      // Plain term(): 2.9 ignores term(reason); the reason is in the DLQ headers.
      m.term();
    },
    // Neither ack nor nak, and no more beats: the current delivery (another worker's) decides;
    // if it lapses, the command comes back after the ack wait.
    release: () => beats.delete(m),
  });

  const publish = async (
    subject: string,
    cmd: unknown,
    msgID: string,
  ): Promise<{ duplicate: boolean }> => {
    const data = encodeCommand(cmd, maxBytes);
    let attempts = 0;
    const ack = await link.retry(() => {
      attempts++;
      return js.publish(subject, data, { msgID });
    });
    // After a retry a duplicate may be our own first attempt: only a first answer is conclusive.
    return { duplicate: ack.duplicate && attempts === 1 };
  };

  return {
    kind: 'nats',
    publishStart: (cmd) =>
      publish(`${prefix}.cmd.start`, { ...cmd, type: 'start' }, `start:${cmd.runId}`),
    publishResume: (cmd) =>
      publish(
        `${prefix}.cmd.resume`,
        { ...cmd, type: 'resume' },
        `resume:${cmd.runId}:${nuid.next()}`,
      ),

    async consume(handler, { concurrency, signal, onError }) {
      if (!Number.isInteger(concurrency) || concurrency < 1)
        throw new UsageError(`concurrency must be a positive integer, got ${concurrency}`);
      const consumer = await js.consumers.get(CMDS, durable);
      await applyAckWait().catch((e: unknown) => onError?.(e, undefined));
      await sweepExhausted().catch((e: unknown) => onError?.(e, undefined));
      const beats = new Heartbeat<JsMsg>(heartbeatEveryMs(ackWaitMs), beatAll, (e) =>
        onError?.(e, undefined),
      );
      const adv = nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${CMDS}.${durable}`);
      const advisories = (async () => {
        for await (const a of adv) {
          await onMaxDeliveries(a.json()).catch((e: unknown) => onError?.(e, undefined));
        }
      })();
      const worker = async (): Promise<void> => {
        while (!signal.aborted && !link.closed) {
          let m: JsMsg | null;
          try {
            m = await consumer.next({ expires: opts.pullExpiresMs ?? 5_000 });
          } catch (e) {
            if (signal.aborted || link.closed) return;
            onError?.(e, undefined);
            await new Promise((r) => setTimeout(r, 250));
            continue;
          }
          if (m === null) continue;
          if (signal.aborted) {
            m.nak();
            return;
          }
          const decoded = decodeCommand(m.data, maxBytes);
          const ctl = control(m, beats);
          beats.add(m);
          try {
            if (decoded.ok) await runHandler(handler, decoded.cmd, ctl, onError);
            else await ctl.deadLetter(decoded.reason);
          } catch (e) {
            // Acking or dead-lettering failed: the message comes back after ack_wait.
            onError?.(e, decoded.ok ? decoded.cmd : undefined);
          } finally {
            beats.delete(m);
          }
        }
      };
      try {
        await Promise.all(Array.from({ length: concurrency }, worker));
      } finally {
        beats.stop();
        adv.unsubscribe();
        await advisories;
      }
    },

    async deadLetters(): Promise<DeadLetter[]> {
      const msgs = await link.retry(() => readRange(js, jsm, { stream: DLQ }));
      return msgs.map((m) => ({
        reason: m.headers?.get(H.reason) ?? '',
        subject: m.headers?.get(H.subject) ?? m.subject,
        data: m.data,
        deliveries: Number(m.headers?.get(H.deliveries) ?? 0),
        at: Number(m.headers?.get(H.at) ?? 0),
      }));
    },

    close: () => link.close(),
  };
}
