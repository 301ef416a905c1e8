/**
 * Test helper: a real HTTP server on 127.0.0.1 that answers `/{org}/{name}/resolve/{revision}/{file}` like the
 * Hugging Face hub (HEAD and GET, ETag / X-Repo-Commit / X-Linked-Etag / X-Linked-Size headers, *.safetensors
 * redirected to a /cdn/ URL as LFS files are, Range → 206), with gated repos (401 without the token), 404s
 * carrying X-Error-Code, a switch that cuts a response off mid-body, and a log of every request.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeRequest {
  method: string;
  /** URL path, decoded. */
  path: string;
  range: string | null;
  authorization: string | null;
  status: number;
}

interface FakeFile {
  content: Buffer;
  /** LFS files (*.safetensors) are served through a redirect to /cdn/{sha256}. */
  lfs: boolean;
  gitSha: string;
  sha256: string;
}

interface FakeRepo {
  commit: string;
  files: Map<string, FakeFile>;
  token: string | null;
}

const sha = (algo: 'sha1' | 'sha256', data: Buffer) => createHash(algo).update(data).digest('hex');

export class FakeHub {
  readonly log: FakeRequest[] = [];
  private readonly repos = new Map<string, FakeRepo>();
  private readonly blobs = new Map<string, { file: string; content: Buffer }>();
  private readonly cuts = new Map<string, { after: number; times: number }>();

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<FakeHub> {
    let hub: FakeHub | null = null;
    const server = createServer((req, res) => hub!.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    hub = new FakeHub(server, `http://127.0.0.1:${port}`);
    return hub;
  }

  /** Add (or replace) a repo; returns its commit hash. `token`: the repo is gated and needs `Bearer token`. */
  addRepo(id: string, files: Record<string, Buffer | string>, opts: { commit?: string; token?: string } = {}): string {
    const commit = opts.commit ?? randomBytes(20).toString('hex');
    const map = new Map<string, FakeFile>();
    for (const [name, data] of Object.entries(files)) {
      const content = typeof data === 'string' ? Buffer.from(data) : data;
      const f: FakeFile = {
        content,
        lfs: name.endsWith('.safetensors'),
        gitSha: sha('sha1', Buffer.concat([Buffer.from(`blob ${content.length}\0`), content])),
        sha256: sha('sha256', content),
      };
      map.set(name, f);
      if (f.lfs) this.blobs.set(f.sha256, { file: name, content });
    }
    this.repos.set(id, { commit, files: map, token: opts.token ?? null });
    return commit;
  }

  /** The ETag the cache should use as blob name: sha256 for LFS files, the git blob sha1 otherwise. */
  etag(repo: string, file: string): string {
    const f = this.repos.get(repo)!.files.get(file)!;
    return f.lfs ? f.sha256 : f.gitSha;
  }

  /** The next `times` GET bodies of `file` stop (connection closed) after `after` bytes. */
  cutNext(file: string, after: number, times = 1): void {
    this.cuts.set(file, { after, times });
  }

  clearLog(): void {
    this.log.length = 0;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = decodeURIComponent(new URL(req.url ?? '/', this.url).pathname);
    const entry: FakeRequest = {
      method: req.method ?? 'GET',
      path,
      range: req.headers.range ?? null,
      authorization: req.headers.authorization ?? null,
      status: 0,
    };
    this.log.push(entry);
    const reply = (status: number, headers: Record<string, string | number> = {}, body?: Buffer) => {
      entry.status = status;
      res.writeHead(status, headers);
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405);

    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(path);
    if (cdn) {
      const blob = this.blobs.get(cdn[1]);
      if (!blob) return reply(404);
      return this.serve(req, res, entry, blob.file, blob.content, { ETag: `"${cdn[1]}"` });
    }

    const m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (!m) return reply(404);
    const [, repoId, revision, file] = m;
    const repo = this.repos.get(repoId);
    if (!repo) return reply(404, { 'X-Error-Code': 'RepoNotFound', 'X-Error-Message': 'Repository not found' });
    if (repo.token !== null && req.headers.authorization !== `Bearer ${repo.token}`) {
      return reply(401, { 'X-Error-Code': 'GatedRepo', 'X-Error-Message': `Access to model ${repoId} is restricted.` });
    }
    if (revision !== 'main' && revision !== repo.commit) {
      return reply(404, { 'X-Error-Code': 'RevisionNotFound', 'X-Error-Message': 'Invalid rev id' });
    }
    const f = repo.files.get(file);
    if (!f) return reply(404, { 'X-Error-Code': 'EntryNotFound', 'X-Error-Message': 'Entry not found', 'X-Repo-Commit': repo.commit });
    if (f.lfs) {
      return reply(302, {
        Location: `${this.url}/cdn/${f.sha256}`,
        'X-Repo-Commit': repo.commit,
        'X-Linked-Etag': `"${f.sha256}"`,
        'X-Linked-Size': f.content.length,
        ETag: `"${f.gitSha}"`,
        'Content-Length': 0,
      });
    }
    return this.serve(req, res, entry, file, f.content, { ETag: `"${f.gitSha}"`, 'X-Repo-Commit': repo.commit });
  }

  /** 200 or, for `Range: bytes=a-[b]`, 206 / 416; a pending cut closes the connection after some bytes. */
  private serve(
    req: IncomingMessage,
    res: ServerResponse,
    entry: FakeRequest,
    file: string,
    content: Buffer,
    headers: Record<string, string | number>,
  ): void {
    let start = 0;
    let end = content.length - 1;
    let status = 200;
    const range = req.headers.range;
    if (range) {
      const r = /^bytes=(\d+)-(\d*)$/.exec(range);
      if (!r || Number(r[1]) >= content.length) {
        entry.status = 416;
        res.writeHead(416, { 'Content-Range': `bytes */${content.length}` });
        res.end();
        return;
      }
      start = Number(r[1]);
      if (r[2] !== '') end = Math.min(end, Number(r[2]));
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${content.length}`;
    }
    const body = content.subarray(start, end + 1);
    entry.status = status;
    res.writeHead(status, { ...headers, 'Content-Length': body.length, 'Accept-Ranges': 'bytes' });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const cut = this.cuts.get(file);
    if (cut && cut.times > 0) {
      cut.times--;
      res.write(body.subarray(0, Math.min(cut.after, body.length)), () => {
        setTimeout(() => res.socket?.destroy(), 20);
      });
      return;
    }
    res.end(body);
  }
}
