// Compute-thread entry of a queue worker: registers tsx's TypeScript loader in this thread, then runs batch/slot.ts.
import { register } from 'tsx/esm/api';

register();
await import('./slot.ts');
