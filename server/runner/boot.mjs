// Runner-process entry (forked by server/host/RunnerProcess.ts): registers tsx's TypeScript loader, then runs the runner.
import { register } from 'tsx/esm/api';

register();
await import('./main.ts');
