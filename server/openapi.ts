/** The OpenAPI 3.1 document, generated from the route table's zod schemas (z.toJSONSchema; OpenAPI 3.1 schemas are JSON Schema 2020-12). */
import { z } from 'zod';
import type { RouteDef } from './routeTable.ts';

export const ErrorResponse = z.object({
  error: z.string().describe('what was wrong and what is allowed'),
  details: z.array(z.object({ path: z.string(), message: z.string() })).optional().describe('one entry per invalid field'),
});

function jsonSchema(schema: z.ZodType, io: 'input' | 'output'): Record<string, unknown> {
  const s = z.toJSONSchema(schema, { io, unrepresentable: 'any', reused: 'inline' }) as Record<string, unknown>;
  delete s.$schema;
  return s;
}

const errorContent = { 'application/json': { schema: jsonSchema(ErrorResponse, 'output') } };

export function openApiDocument(routes: readonly RouteDef[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.path.replace(/:(\w+)/g, '{$1}');
    const parameters: unknown[] = [...r.path.matchAll(/:(\w+)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    if (r.formats.includes('csv')) {
      parameters.push({ name: 'format', in: 'query', required: false, schema: { type: 'string', enum: ['json', 'csv'] }, description: 'csv: the result as CSV (also Accept: text/csv)' });
    }
    if (r.formats.includes('sse')) {
      parameters.push({ name: 'stream', in: 'query', required: false, schema: { type: 'string', enum: ['1', 'true', '0', 'false'] }, description: 'Server-Sent Events (also Accept: text/event-stream)' });
    }
    const ok: Record<string, unknown> = {};
    if (r.response) ok['application/json'] = { schema: jsonSchema(r.response, 'output') };
    if (r.formats.includes('csv')) ok['text/csv'] = { schema: { type: 'string' } };
    if (r.formats.includes('sse')) ok['text/event-stream'] = { schema: { type: 'string' } };
    const responses: Record<string, unknown> = {
      200: { description: 'OK', content: ok },
      400: { description: 'Invalid request (the message names the field and what is allowed)', content: errorContent },
      404: { description: 'Not found', content: errorContent },
    };
    if (r.body) {
      responses[413] = { description: 'Body over the size limit', content: errorContent };
      responses[415] = { description: 'Body is not JSON', content: errorContent };
    }
    responses[503] = { description: 'No model loaded, or the job queue is full', content: errorContent };
    paths[path] ??= {};
    paths[path][r.method] = {
      operationId: `${r.method}${path.replace(/[{}]/g, '').split(/[/-]/).filter(Boolean).map((s) => s[0].toUpperCase() + s.slice(1)).join('')}`,
      summary: r.summary,
      ...(r.description ? { description: r.description } : {}),
      ...(parameters.length ? { parameters } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(r.body, 'input') } } } } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Lensboard API',
      version,
      description:
        'Interpretability of GPT-2 over HTTP (TransformerLens semantics). Non-finite numbers are encoded as the strings ' +
        '"Infinity", "-Infinity" and "NaN". Every result is also available as CSV (?format=csv or Accept: text/csv).',
    },
    servers: [{ url: '/' }],
    paths,
  };
}
