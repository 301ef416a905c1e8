/** Entry point of `npm run train`: see training/cli.ts for the options. */
import { runTrainCli } from '../cli.ts';

runTrainCli(process.argv.slice(2)).catch((e: unknown) => {
  console.error(`train: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
