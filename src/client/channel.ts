/**
 * A push-to-pull queue: producers `push`, one consumer iterates with `for await`. Unbounded (a
 * subscription's backlog is at most the events it has not read yet); `return()` (a `break`)
 * ends it and runs the cleanup once.
 */

/** An async iterator fed by `push`, ended by `end`, failed by `fail`. */
export class Channel<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | null =
    null;
  private ended = false;
  private error: { e: unknown } | null = null;
  private cleaned = false;

  constructor(private readonly cleanup: () => void = () => undefined) {}

  /** True once ended (by the producer, a failure or the consumer). */
  get done(): boolean {
    return this.ended || this.error !== null;
  }

  push(item: T): void {
    if (this.done) return;
    if (this.waiter !== null) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve({ value: item, done: false });
    } else this.items.push(item);
  }

  /** No more items: the consumer gets what is queued, then `done`. */
  end(): void {
    if (this.done) return;
    this.ended = true;
    this.clean();
    this.settle();
  }

  /** The consumer gets what is queued, then this error. */
  fail(e: unknown): void {
    if (this.done) return;
    this.error = { e };
    this.clean();
    this.settle();
  }

  next(): Promise<IteratorResult<T>> {
    const item = this.items.shift();
    if (item !== undefined) return Promise.resolve({ value: item, done: false });
    if (this.error !== null) {
      const { e } = this.error;
      this.error = null;
      this.ended = true;
      return Promise.reject(e as Error);
    }
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** The consumer stops (`break`): drops what is queued and ends. */
  return(): Promise<IteratorResult<T>> {
    this.items.length = 0;
    this.error = null;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private clean(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    this.cleanup();
  }

  private settle(): void {
    const w = this.waiter;
    if (w === null || this.items.length > 0) return;
    this.waiter = null;
    if (this.error !== null) {
      const { e } = this.error;
      this.error = null;
      this.ended = true;
      w.reject(e);
    } else w.resolve({ value: undefined, done: true });
  }
}
