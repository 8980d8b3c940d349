/**
 * The run visualizer: a local web page drawing each run's statechart, the path it took, a
 * time-travel scrubber and a live timeline.
 */
export { startVizServer } from './server.js';
export type { VizServer, VizServerOptions } from './server.js';
export { layoutGraph, edgeLabel } from './layout.js';
export type { ChartLayout, LaidOutNode, LaidOutEdge, LayoutOptions } from './layout.js';
export { pathOf, pathSteps, summarizePath } from './path.js';
export type { PathEnvelope, PathOptions, PathStep, RunPath } from './path.js';
export { traceEdges } from './trace.js';
