/**
 * Runs libiscsi's iscsi-test-cu one suite at a time (as ../shared/tools/conformance.sh does)
 * and scores every test PASS / SKIP / FAIL with the same rules: a test that printed
 * [SKIPPED] is a SKIP, not a pass; FAILED anywhere in its output is a FAIL.
 */
import { run } from './daemon';

export type Verdict = 'PASS' | 'SKIP' | 'FAIL';

export function scoreLog(log: string, suite: string): Map<string, Verdict> {
  const out = new Map<string, Verdict>();
  let current: string | undefined;
  let buf: string[] = [];
  const close = () => {
    if (!current) return;
    const text = buf.join('\n');
    if (/\bFAILED\b|failed\s*$/m.test(text) && !/^passed\s*$/m.test(text)) out.set(current, 'FAIL');
    else if (text.includes('[SKIPPED]')) out.set(current, 'SKIP');
    else out.set(current, 'PASS');
  };
  for (const line of log.split('\n')) {
    const t = /^\s+Test: (\S+) \.\.\.(.*)/.exec(line);
    if (t) {
      close();
      current = `${suite}.${t[1]}`;
      buf = [t[2]];
      continue;
    }
    if (line.startsWith('Run Summary') || /^Suite: /.test(line)) {
      close();
      current = undefined;
      continue;
    }
    if (current) buf.push(line);
  }
  close();
  return out;
}

/** `url2`: a second path to the same LU (MultipathIO; libiscsi logs in there with a second initiator name). */
export async function runSuite(url: string, suite: string, extraArgs: string[] = [], url2?: string): Promise<{ results: Map<string, Verdict>; log: string }> {
  const r = await run('iscsi-test-cu', ['-d', '-v', ...extraArgs, `--test=ALL.${suite}`, url, ...(url2 ? [url2] : [])], { timeoutMs: 180_000 });
  const log = r.stdout + r.stderr;
  // `suite` may name one test ("MultipathIO.Simple"); verdicts are named "<suite>.<test>" either way.
  const family = suite.split('.')[0];
  const results = scoreLog(log, family);
  if (r.signal === 'SIGKILL') results.set(`${family}.TIMEOUT`, 'FAIL');
  return { results, log };
}
