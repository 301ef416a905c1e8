/** The job kinds a model thread runs, by name: every service's handler (services/registry.ts). */
import type { JobHandler } from '../../services/context.ts';
import { SERVICE_LIST, type ServiceKind, type ServicePayload, type ServiceResult } from '../../services/registry.ts';

export const JOBS: Record<string, JobHandler<never, unknown>> = Object.fromEntries(
  SERVICE_LIST.map((s) => [s.kind, s.handler as JobHandler<never, unknown>]),
);

export type JobKind = ServiceKind;
export type JobPayload<K extends JobKind> = ServicePayload<K>;
export type JobResult<K extends JobKind> = ServiceResult<K>;
