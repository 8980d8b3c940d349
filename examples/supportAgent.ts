/**
 * A support agent: Claude answers a customer with two tools — `lookupOrder` (read-only) and
 * `issueRefund` (an effect, up to $100) — and a refund over $100 waits for a person's approval
 * (`plumbline signal <runId> approve --data '{"ok":true,"by":"ana"}'`) before it is paid.
 *
 * The pipeline is written in src/examples/supportAgent.ts (read it there: the design, and why
 * the refund is idempotent by its key): the build compiles it into the package, so
 * `npx plumbline demo` runs it from an install. This file keeps the short path for
 * `plumbline run examples/supportAgent.ts --input '{"id":"S-1","from":"a@b.c","text":"Order A-1002 arrived damaged, refund please"}'`.
 */
export {
  default,
  ORDERS,
  REFUND_APPROVAL_USD,
  Approval,
  payRefund,
  readRefunds,
  refundsPath,
} from '../src/examples/supportAgent.js';
export type { Refund } from '../src/examples/supportAgent.js';
