/**
 * The in-process command bus for the embedded (SQLite) mode: a queue in memory with the same
 * semantics as the NATS bus (a start is accepted once per run id, nak'ed commands come back
 * after their delay, `maxDeliver` deliveries then the dead-letter list). Nothing survives the
 * process: the run log does, and `plumbline resume` picks stranded runs up from there.
 */
import { UsageError } from '../errors.js';
import {
  encodeCommand,
  MAX_COMMAND_BYTES,
  runHandler,
  type Command,
  type CommandBus,
  type DeadLetter,
} from './types.js';

/** Options of {@link createLocalBus}. */
export interface LocalBusOptions {
  maxDeliver?: number;
  maxCommandBytes?: number;
}

interface Item {
  cmd: Command;
  data: Uint8Array;
  deliveries: number;
  readyAt: number;
}

/** Creates an in-process {@link CommandBus}. */
export function createLocalBus(opts: LocalBusOptions = {}): CommandBus {
  const maxDeliver = opts.maxDeliver ?? 5;
  const maxBytes = opts.maxCommandBytes ?? MAX_COMMAND_BYTES;
  const queue: Item[] = [];
  const startedIds = new Set<string>();
  const dead: DeadLetter[] = [];
  const waiters = new Set<() => void>();
  let closed = false;
  const poke = (): void => {
    for (const w of [...waiters]) w();
  };

  const enqueue = (cmd: unknown): Command => {
    const data = encodeCommand(cmd, maxBytes);
    const parsed = JSON.parse(new TextDecoder().decode(data)) as Command;
    queue.push({ cmd: parsed, data, deliveries: 0, readyAt: 0 });
    poke();
    return parsed;
  };

  /** Waits until an item is ready, the signal aborts or the bus closes. */
  const take = async (signal: AbortSignal): Promise<Item | undefined> => {
    while (!signal.aborted && !closed) {
      const now = Date.now();
      const i = queue.findIndex((q) => q.readyAt <= now);
      if (i >= 0) return queue.splice(i, 1)[0];
      const next = Math.min(...queue.map((q) => q.readyAt), now + 1_000);
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, Math.max(1, next - now));
        function done(): void {
          clearTimeout(t);
          signal.removeEventListener('abort', done);
          waiters.delete(done);
          resolve();
        }
        signal.addEventListener('abort', done);
        waiters.add(done);
      });
    }
    return undefined;
  };

  const bury = (item: Item, reason: string): void => {
    dead.push({
      reason,
      subject: item.cmd.type,
      data: item.data,
      deliveries: item.deliveries,
      at: Date.now(),
    });
  };

  return {
    kind: 'local',
    async publishStart(cmd) {
      if (startedIds.has(cmd.runId)) return { duplicate: true };
      enqueue({ ...cmd, type: 'start' });
      startedIds.add(cmd.runId);
      return { duplicate: false };
    },
    async publishResume(cmd) {
      enqueue({ ...cmd, type: 'resume' });
      return { duplicate: false };
    },
    async consume(handler, { concurrency, signal, onError }) {
      if (!Number.isInteger(concurrency) || concurrency < 1)
        throw new UsageError(`concurrency must be a positive integer, got ${concurrency}`);
      const worker = async (): Promise<void> => {
        for (let item = await take(signal); item !== undefined; item = await take(signal)) {
          const it = item;
          it.deliveries++;
          await runHandler(
            handler,
            it.cmd,
            {
              deliveries: it.deliveries,
              working: () => undefined,
              ack: async () => undefined,
              nak: (delayMs = 0) => {
                if (it.deliveries >= maxDeliver)
                  return bury(
                    it,
                    `gave up after ${it.deliveries} deliveries without an ack (max_deliver ${maxDeliver})`,
                  );
                it.readyAt = Date.now() + delayMs;
                queue.push(it);
                poke();
              },
              deadLetter: async (reason) => bury(it, reason),
              // In one process nobody else holds it: put it back for the redelivery timer.
              release: () => {
                it.readyAt = Date.now() + 30_000;
                queue.push(it);
              },
            },
            onError,
          );
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
    },
    async deadLetters() {
      return [...dead];
    },
    async close() {
      closed = true;
      poke();
    },
  };
}
