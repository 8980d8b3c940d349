/**
 * Verbs registered cheaply: commander gets each verb's name, flags and help at start, and the
 * verb's implementation (the SDK, zod, the store adapters, pino) is imported only when it runs,
 * so `--help`, `--version` and a light verb start fast (issue 14).
 */

/** A verb implementation as commander calls it. */
type VerbAction = (...args: never[]) => void | Promise<void>;

/**
 * An action that loads its implementation on first call: `load` does the dynamic `import()`.
 *
 * @example
 * cmd.action(lazyAction(async () => (await import('./runsVerbs.js')).runsAction()));
 */
export function lazyAction(load: () => Promise<VerbAction>): (...args: unknown[]) => Promise<void> {
  return async (...args: unknown[]) => {
    const action = (await load()) as (...a: unknown[]) => void | Promise<void>;
    await action(...args);
  };
}
