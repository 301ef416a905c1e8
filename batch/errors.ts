/** A dataset-experiment run that cannot finish for a reason its user can act on (said without a stack trace; exit code 1). */
export class BatchError extends Error {}
