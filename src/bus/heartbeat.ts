/**
 * Keeps a consumer's handed-out commands alive while it works on them: one timer per consume
 * loop beats every unsettled delivery (a NATS `+WPI` each, one SQLite transaction for all),
 * so the ack wait can be short — a worker that dies stops beating and its commands lapse
 * within one ack wait — without a long run ever being redelivered while its worker lives.
 */

/** The unsettled deliveries of one consume loop, beaten together every `everyMs`. */
export class Heartbeat<K> {
  private readonly live = new Set<K>();
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param beat sends the heartbeat for these deliveries (a throw goes to `onError`).
   * @param onError told about a failed beat: the deliveries stay live and are beaten again.
   */
  constructor(
    private readonly everyMs: number,
    private readonly beat: (keys: K[]) => void,
    private readonly onError: (e: unknown) => void,
  ) {}

  /** Starts beating a delivery (just handed to a handler). */
  add(key: K): void {
    this.live.add(key);
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.tick(), this.everyMs);
      // Never what keeps a process alive: the handler it beats for does that.
      this.timer.unref();
    }
  }

  /** Stops beating a delivery (settled: acked, nak'ed, dead-lettered, released, or its handler ended). */
  delete(key: K): void {
    this.live.delete(key);
    if (this.live.size === 0) this.stop();
  }

  /** How many deliveries are being beaten (for tests). */
  get size(): number {
    return this.live.size;
  }

  /** Stops the timer and forgets every delivery. */
  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.live.clear();
  }

  private tick(): void {
    if (this.live.size === 0) return;
    try {
      this.beat([...this.live]);
    } catch (e) {
      // A timer must never throw (it would kill the process): a full disk must not.
      this.onError(e);
    }
  }
}
