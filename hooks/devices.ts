/** The devices a model can run on: the one list the library, the server's flags, the CLI and the dashboard's picker read. */
export const DEVICES = ['cpu', 'cuda', 'webgpu', 'auto'] as const;
/** `auto`: CUDA where this onnxruntime build has it, else the CPU. */
export type Device = (typeof DEVICES)[number];
export type ResolvedDevice = Exclude<Device, 'auto'>;
