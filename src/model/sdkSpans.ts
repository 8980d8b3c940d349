/**
 * Whether the Anthropic SDK's own call spans can have any effect. The SDK (traces on by default)
 * starts a span for every call — attributes gathered, the base URL parsed, the context offered to
 * the propagator — even when no OpenTelemetry SDK is registered, only to find that the span records
 * nothing and propagates nothing, and then calls as if tracing were off. With nothing registered
 * the model boundary calls through a copy of the client with its spans off, which skips that work.
 */
import { ProxyTracerProvider, context, propagation, trace } from '@opentelemetry/api';

let providerSeen = false;

/**
 * True when a tracer provider is (or once was) registered, a propagator is registered, or a span
 * is active: then the SDK's spans may record or carry a trace context, and the traced client is
 * used. A provider seen once is remembered (the check is per call, and cheap while none is).
 */
export function sdkSpansMayMatter(): boolean {
  if (providerSeen) return true;
  const provider = trace.getTracerProvider();
  // Another copy of the API (same major version) may own the global: then assume it is set up.
  if (
    !(provider instanceof ProxyTracerProvider) ||
    provider.getDelegateTracer('plumbline') !== undefined
  ) {
    providerSeen = true;
    return true;
  }
  return propagation.fields().length > 0 || trace.getSpan(context.active()) !== undefined;
}
