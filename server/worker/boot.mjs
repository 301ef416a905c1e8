// Worker-thread entry: registers tsx's TypeScript loader in this thread, then runs the model worker.
import { register } from 'tsx/esm/api';

register();
await import('./entry.ts');
