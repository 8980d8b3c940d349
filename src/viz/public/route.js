// The page's location hash as a view: `#/runs/<id>`, `#/pipelines/<name>`, else the run list.
// A hash that is not valid percent-encoding (`#/runs/%E0%A4%A`) shows the run list instead of
// throwing a URIError out of the page's router.

/**
 * @param {string} hash `location.hash`
 * @returns {{ kind: 'run', runId: string } | { kind: 'pipeline', name: string } | { kind: 'list', malformed: boolean }}
 */
export function routeOf(hash) {
  let h;
  try {
    h = decodeURIComponent(String(hash ?? '').replace(/^#/, ''));
  } catch {
    return { kind: 'list', malformed: true };
  }
  const run = /^\/runs\/(.+)$/.exec(h);
  if (run) return { kind: 'run', runId: run[1] };
  const pipe = /^\/pipelines\/(.+)$/.exec(h);
  if (pipe) return { kind: 'pipeline', name: pipe[1] };
  return { kind: 'list', malformed: false };
}
