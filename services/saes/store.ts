/**
 * The SAEs a loaded model can use, inside its model thread: local ones (a directory per SAE under the
 * model's `saes/` folder) and hub ones (`org/repo/subfolder`, through the HF cache), found by name
 * (never by path: a local name is one directory name, and its real path must stay inside the folder),
 * loaded on first use and kept (the last few), with their feature dashboards. Names describe where an
 * SAE comes from, so a restarted runner finds the same SAEs again.
 */
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { join, sep } from 'node:path';
import type { HookedTransformer } from '../../hooks/HookedTransformer.ts';
import type { HubOptions } from '../../hooks/loading/index.ts';
import { isFile } from '../../hooks/loading/safetensors.ts';
import { DASHBOARD_FILE, loadFeatureDashboards, type FeatureDashboards } from '../../hooks/sae/dashboard.ts';
import { Sae, SAE_CFG_FILE, SAE_SPARSITY_FILE, SAE_WEIGHTS_FILE } from '../../hooks/sae/Sae.ts';
import { checkSaeFits } from '../../hooks/sae/splice.ts';
import type { SaeInfoResult } from './common.ts';
import { UserError } from '../context.ts';

/** SAEs kept loaded at once (each holds its weights). */
const KEEP = 4;

export interface SaeStoreOptions {
  model: HookedTransformer;
  /** The model's directory (its `saes/` folder holds local SAEs), or null for a hub model. */
  modelDir: string | null;
  hub: HubOptions;
  /** Also take a path to an SAE directory as its name (the CLI, where the user names local files; never the server). */
  allowPaths?: boolean;
}

export class SaeStore {
  private readonly loaded = new Map<string, Promise<Sae>>();
  private readonly dashboards = new Map<string, Promise<FeatureDashboards | null>>();
  /** Hub SAEs loaded in this runner, with the revision they were loaded at. */
  private readonly hub = new Map<string, string | undefined>();

  constructor(private readonly opts: SaeStoreOptions) {}

  /** The model's directory, or null for a hub model. */
  get modelDir(): string | null {
    return this.opts.modelDir;
  }

  /** `message` with the model's directory written as `<model>` (answers never show server paths). */
  private hidePaths(message: string): string {
    const dir = this.opts.modelDir;
    return dir ? message.split(dir).join('<model>') : message;
  }

  /** The folder of local SAEs, or null. */
  private root(): string | null {
    return this.opts.modelDir ? join(this.opts.modelDir, 'saes') : null;
  }

  /** A local SAE's directory, checked to lie inside the model's saes/ folder (symlinks resolved). */
  private async localDir(name: string): Promise<string> {
    const root = this.root();
    if (!root) throw new UserError(`sae: '${name}' is not a hub SAE (org/repo/subfolder), and this model (from the hub) has no local saes/ folder`, 404);
    if (name.includes('/') || name === '.' || name === '..') throw new UserError(`sae: '${name}' is not a local SAE name (one directory name under the model's saes/ folder)`);
    let real: string;
    let rootReal: string;
    try {
      rootReal = await realpath(root);
      real = await realpath(join(root, name));
    } catch {
      throw new UserError(`sae: no SAE named '${name}' for this model (GET /api/saes lists them)`, 404);
    }
    if (!real.startsWith(rootReal + sep)) throw new UserError(`sae: '${name}' resolves outside the model's saes/ folder`, 404);
    if (!(await isFile(join(real, 'cfg.json')))) throw new UserError(`sae: '${name}' has no cfg.json (not an SAELens SAE)`, 404);
    // Every file the SAE opens must lie inside the folder too (a file may be a link).
    for (const f of [SAE_CFG_FILE, SAE_WEIGHTS_FILE, SAE_SPARSITY_FILE, DASHBOARD_FILE, 'training.json']) {
      const file = await realpath(join(real, f)).catch(() => null);
      if (file !== null && !file.startsWith(rootReal + sep)) throw new UserError(`sae: ${f} of '${name}' resolves outside the model's saes/ folder`, 404);
    }
    return real;
  }

  /** A hub SAE name → repo and subfolder. */
  private static hubParts(name: string): { repo: string; subfolder: string | undefined } {
    const parts = name.split('/');
    return { repo: parts.slice(0, 2).join('/'), subfolder: parts.length > 2 ? parts.slice(2).join('/') : undefined };
  }

  /** The SAE `name`, loaded on first use (a hub SAE from the HF cache, or downloaded). */
  get(name: string, onProgress?: HubOptions['onProgress']): Promise<Sae> {
    let p = this.loaded.get(name);
    if (p) {
      this.loaded.delete(name);
      this.loaded.set(name, p);
      return p;
    }
    p = (async () => {
      if (this.opts.allowPaths && (await isDirectory(name))) return Sae.fromPretrained(name, { threads: 1 });
      if (!name.includes('/')) {
        const dir = await this.localDir(name);
        try {
          return await Sae.fromPretrained(dir, { threads: 1 });
        } catch (e) {
          throw new UserError(`sae: could not load '${name}': ${this.hidePaths((e as Error).message)}`, 422);
        }
      }
      const { repo, subfolder } = SaeStore.hubParts(name);
      try {
        return await Sae.fromPretrained(repo, { ...this.opts.hub, subfolder, revision: this.hub.get(name), onProgress, threads: 1 });
      } catch (e) {
        throw new UserError(`sae: could not load '${name}' from the hub: ${(e as Error).message}`, 422);
      }
    })();
    this.loaded.set(name, p);
    p.catch(() => this.loaded.delete(name));
    while (this.loaded.size > KEEP) {
      const [oldest, sae] = this.loaded.entries().next().value as [string, Promise<Sae>];
      this.loaded.delete(oldest);
      void sae.then((s) => s.dispose(), () => undefined);
    }
    return p;
  }

  /** The SAE `name`, which must fit the model (its hook point exists and has d_in values per position). */
  async fitting(name: string): Promise<Sae> {
    const sae = await this.get(name);
    try {
      checkSaeFits(sae, this.opts.model.cfg, new Map(this.opts.model.hookPoints().map((h) => [h.name, h])));
    } catch (e) {
      throw new UserError(`sae: ${(e as Error).message}`);
    }
    return sae;
  }

  /** Loads a hub SAE (repo + subfolder) and remembers it under its name `repo/subfolder`. */
  async loadHub(repo: string, subfolder: string | undefined, revision: string | undefined, onProgress?: HubOptions['onProgress']): Promise<string> {
    const name = subfolder ? `${repo}/${subfolder}` : repo;
    this.hub.set(name, revision);
    this.loaded.delete(name);
    await this.get(name, onProgress);
    return name;
  }

  /** The SAE's feature dashboards (feature_dashboards.json.gz beside it), or null. */
  dashboardsOf(name: string, sae: Sae): Promise<FeatureDashboards | null> {
    let d = this.dashboards.get(name);
    if (!d) {
      d = sae.dir ? loadFeatureDashboards(sae.dir) : Promise.resolve(null);
      this.dashboards.set(name, d);
      d.catch(() => this.dashboards.delete(name));
    }
    return d;
  }

  /** What GET /api/saes says of an SAE. */
  async info(name: string, source: 'local' | 'hub'): Promise<SaeInfoResult> {
    const sae = await this.get(name);
    let problem: string | null = null;
    try {
      checkSaeFits(sae, this.opts.model.cfg, new Map(this.opts.model.hookPoints().map((h) => [h.name, h])));
    } catch (e) {
      problem = (e as Error).message;
    }
    let metrics: SaeInfoResult['metrics'] = null;
    if (sae.dir) {
      try {
        const t = JSON.parse(await readFile(join(sae.dir, 'training.json'), 'utf8')) as { heldOut?: Record<string, number> };
        if (t.heldOut) {
          const h = t.heldOut;
          metrics = {
            tokens: h.tokens, explainedVariance: h.explainedVariance, l0: h.l0, deadFraction: h.deadFraction, denseFraction: h.denseFraction,
            ceLossRecovered: h.ceLossRecovered, ceLossClean: h.ceLossClean, ceLossSpliced: h.ceLossSpliced, ceLossZeroAblated: h.ceLossZeroAblated,
          };
        }
      } catch {
        // no training.json (an SAE from elsewhere)
      }
    }
    const c = sae.cfg;
    return {
      name, source, architecture: c.architecture, hookName: c.hook_name, hookLayer: c.hook_layer, dIn: c.d_in, dSae: c.d_sae, k: c.k,
      modelName: c.model_name, fits: problem === null, problem, dashboards: sae.dir !== null && (await isFile(join(sae.dir, DASHBOARD_FILE))), metrics,
    };
  }

  /** Every SAE of the model: local directories with a cfg.json, then hub SAEs loaded in this runner. A local SAE that cannot be read is listed with its problem. */
  async list(): Promise<SaeInfoResult[]> {
    const out: SaeInfoResult[] = [];
    const root = this.root();
    const names = root ? await readdir(root, { withFileTypes: true }).then((es) => es.filter((e) => e.isDirectory() || e.isSymbolicLink()).map((e) => e.name).sort(), () => []) : [];
    for (const name of names) {
      if (!(await isFile(join(root!, name, 'cfg.json')))) continue;
      try {
        out.push(await this.info(name, 'local'));
      } catch (e) {
        out.push({
          name, source: 'local', architecture: '?', hookName: '?', hookLayer: null, dIn: 0, dSae: 0, k: null, modelName: null,
          fits: false, problem: this.hidePaths((e as Error).message), dashboards: false, metrics: null,
        });
      }
    }
    for (const name of this.hub.keys()) out.push(await this.info(name, 'hub'));
    return out;
  }

  async dispose(): Promise<void> {
    const saes = [...this.loaded.values()];
    this.loaded.clear();
    for (const s of saes) await s.then((x) => x.dispose(), () => undefined);
  }
}

async function isDirectory(p: string): Promise<boolean> {
  return stat(p).then((s) => s.isDirectory(), () => false);
}
