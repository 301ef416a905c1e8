/** Server-Sent Events: `event: NAME` + `data: JSON` frames (non-finite numbers encoded as in JSON answers), with keep-alive comments. */
import type { Request, Response } from 'express';
import { stringifyJson } from '../services/common/nonFinite.ts';

/** True when the client asked for a stream: `Accept: text/event-stream` or `?stream=1|true`. */
export function wantsStream(req: Request): boolean {
  const q = req.query.stream;
  if (q === '1' || q === 'true') return true;
  const accept = req.get('accept') ?? '';
  return accept.includes('text/event-stream');
}

export class SseStream {
  private readonly keepAlive: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly res: Response, keepAliveMs = 15_000) {
    res.status(200);
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8');
    res.setHeader('Cache-Control', 'no-cache, no-transform');
    res.setHeader('Connection', 'keep-alive');
    res.setHeader('X-Accel-Buffering', 'no');
    res.flushHeaders();
    this.keepAlive = setInterval(() => this.comment('keep-alive'), keepAliveMs);
    this.keepAlive.unref();
    res.on('close', () => this.stop());
  }

  get isOpen(): boolean {
    return !this.closed && !this.res.writableEnded;
  }

  send(event: string, data: unknown): void {
    this.sendJson(event, stringifyJson(data));
  }

  /** Sends an event whose data is already serialised JSON. */
  sendJson(event: string, json: string): void {
    if (!this.isOpen) return;
    this.res.write(`event: ${event}\ndata: ${json}\n\n`);
  }

  comment(text: string): void {
    if (this.isOpen) this.res.write(`: ${text}\n\n`);
  }

  end(): void {
    this.stop();
    if (!this.res.writableEnded) this.res.end();
  }

  private stop(): void {
    this.closed = true;
    clearInterval(this.keepAlive);
  }
}

/** Parses an SSE body into its events (for tests and clients). */
export function parseSse(text: string): { event: string; data: unknown }[] {
  const out: { event: string; data: unknown }[] = [];
  for (const frame of text.split('\n\n')) {
    let event = 'message';
    const data: string[] = [];
    for (const line of frame.split('\n')) {
      if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    if (data.length > 0) out.push({ event, data: JSON.parse(data.join('\n')) });
  }
  return out;
}
