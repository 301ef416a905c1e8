/** Entry point of `npm run train:sae`: see training/sae/cli.ts for the options. */
import { runTrainSaeCli } from '../sae/cli.ts';

const tty = process.stderr.isTTY;
const draw = tty ? (line: string) => process.stderr.write(`\r${line.slice(0, (process.stderr.columns ?? 120) - 1)}\x1b[K`) : undefined;
runTrainSaeCli(process.argv.slice(2), (l) => {
  if (tty) process.stderr.write('\r\x1b[K');
  console.log(l);
}, draw).catch((e: unknown) => {
  if (tty) process.stderr.write('\n');
  console.error(`train:sae: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
