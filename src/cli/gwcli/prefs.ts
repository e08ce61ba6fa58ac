/**
 * gwcli's files under ~/.gwcli (or $GWCLI_HOME): history.txt (one command a line, kept across
 * runs, bounded) and prefs.json (bookmarks), as configshell keeps them.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const HISTORY_MAX = 1000;

export function gwcliHome(): string {
  return process.env.GWCLI_HOME || path.join(os.homedir(), '.gwcli');
}

export class Prefs {
  bookmarks: Record<string, string> = {};
  constructor(readonly dir: string = gwcliHome()) {
    try {
      const v = JSON.parse(fs.readFileSync(path.join(dir, 'prefs.json'), 'utf8')) as { bookmarks?: Record<string, string> };
      if (v.bookmarks && typeof v.bookmarks === 'object') this.bookmarks = v.bookmarks;
    } catch {
      // first run or unreadable: start empty
    }
  }

  save(): void {
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    fs.writeFileSync(path.join(this.dir, 'prefs.json'), JSON.stringify({ bookmarks: this.bookmarks }, null, 2) + '\n', { mode: 0o600 });
  }

  /** Newest first, as node:readline wants its history. */
  loadHistory(): string[] {
    try {
      const lines = fs.readFileSync(path.join(this.dir, 'history.txt'), 'utf8').split('\n').filter((l) => l.trim());
      return lines.slice(-HISTORY_MAX).reverse();
    } catch {
      return [];
    }
  }

  /** Whole history, oldest first; trimmed to HISTORY_MAX lines. */
  saveHistory(newestFirst: readonly string[]): void {
    try {
      fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      // CHAP secrets stay out of the file (they are typed as password=…).
      const lines = [...newestFirst].filter((l) => !/password=/i.test(l)).slice(0, HISTORY_MAX).reverse();
      fs.writeFileSync(path.join(this.dir, 'history.txt'), lines.join('\n') + (lines.length ? '\n' : ''), { mode: 0o600 });
    } catch {
      // history is a convenience: a read-only home must not stop the shell
    }
  }
}
