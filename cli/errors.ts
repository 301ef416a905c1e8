/** The CLI's error for bad flags, config fields or values (exit code 2), as opposed to failures while running (exit code 1). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
