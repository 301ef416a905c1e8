/**
 * Indirect-object-identification prompts in the style of Wang et al. 2022 ("Interpretability in the
 * Wild"): "When Mary and John went to the store, John gave a drink to" → " Mary". ABBA (IO named
 * first) and BABA (S named first) orders, several templates, places and objects, and names that are
 * single GPT-2 tokens with a leading space, split into training names and held-out names.
 */
import { Rng } from '../random.ts';

/** Names used in IOI training prompts (each ' ' + name is one GPT-2 token). */
export const IOI_TRAIN_NAMES: readonly string[] = [
  'Mary', 'John', 'Tom', 'James', 'Anna', 'Paul', 'Sarah', 'Mark', 'Lisa', 'David', 'Emma', 'Peter', 'Kate',
  'Michael', 'Alice', 'Robert', 'Jane', 'Susan', 'Daniel', 'Laura', 'Chris', 'Sam', 'Max', 'Adam', 'Ryan', 'Rose',
  'Helen', 'Bob', 'Steve', 'Kevin', 'Joe', 'Frank', 'Charles', 'Julia', 'Martha', 'Andrew', 'Eric', 'Oliver',
  'Nick', 'Kelly', 'Scott', 'Amy', 'Brian', 'Jason', 'Tim', 'Jeff', 'Dan', 'Patrick', 'Martin', 'Arthur',
  'Jessica', 'Emily', 'Rachel', 'Amanda', 'Tony', 'Alex', 'Lucas', 'Ben', 'Jack', 'Anne', 'Grace', 'Simon',
];

/**
 * Names never used in IOI training prompts (for evaluating generalisation). Each occurs in Tiny
 * Shakespeare, so the model has seen them as names, and they appear in the single-name sentences.
 */
export const IOI_HELDOUT_NAMES: readonly string[] = [
  'Richard', 'Henry', 'Edward', 'Margaret', 'Juliet', 'Romeo', 'Isabel', 'Angelo', 'Lewis', 'Warwick',
  'Clarence', 'Hastings', 'George', 'Thomas', 'Harry',
];

export const IOI_PLACES: readonly string[] = [
  'store', 'garden', 'restaurant', 'school', 'hospital', 'office', 'station', 'park', 'market', 'church',
  'beach', 'library', 'house', 'bank', 'museum', 'kitchen',
];

export const IOI_OBJECTS: readonly string[] = [
  'drink', 'book', 'ring', 'letter', 'gift', 'key', 'bottle', 'flower', 'bag', 'coin', 'snack', 'necklace',
  'basketball', 'computer', 'apple',
];

/** Templates: [A] and [B] are the first-clause names, [S] the repeated subject; the answer (IO) follows the prompt. */
export const IOI_TEMPLATES: readonly string[] = [
  'When [A] and [B] went to the [PLACE], [S] gave a [OBJECT] to',
  'When [A] and [B] got a [OBJECT] at the [PLACE], [S] decided to give it to',
  'Then, [A] and [B] went to the [PLACE]. [S] gave a [OBJECT] to',
  'Then, [A] and [B] had a long argument, and afterwards [S] said to',
  'After [A] and [B] went to the [PLACE], [S] gave a [OBJECT] to',
  'While [A] and [B] were working at the [PLACE], [S] gave a [OBJECT] to',
  'Friends [A] and [B] found a [OBJECT] at the [PLACE]. [S] gave it to',
  'The [PLACE] [A] and [B] went to had a [OBJECT]. [S] gave it to',
  'While [A] and [B] were commuting to the [PLACE], [S] gave a [OBJECT] to',
  'After the lunch, [A] and [B] went to the [PLACE]. [S] gave a [OBJECT] to',
];

export type IoiOrder = 'ABBA' | 'BABA';

export interface IoiPrompt {
  /** The prompt, ending just before the answer (no trailing space). */
  prompt: string;
  /** Indirect object (the correct answer) and subject (the repeated name), without the leading space. */
  io: string;
  s: string;
  /** ' ' + io: the next token the model should predict. */
  answer: string;
  order: IoiOrder;
  template: number;
  place: string;
  object: string;
}

export interface IoiOptions {
  names?: readonly string[];
  order?: IoiOrder;
  template?: number;
}

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(0, xs.length)];

/** Fills a template: ABBA puts the IO first ("When IO and S …, S … to"), BABA puts the subject first. */
export function fillIoiTemplate(template: number, io: string, s: string, order: IoiOrder, place: string, object: string): IoiPrompt {
  if (!Number.isInteger(template) || template < 0 || template >= IOI_TEMPLATES.length) {
    throw new Error(`IOI template ${template} does not exist; allowed: 0 … ${IOI_TEMPLATES.length - 1}`);
  }
  if (io === s) throw new Error(`IOI prompt needs two different names; got '${io}' twice`);
  const [a, b] = order === 'ABBA' ? [io, s] : [s, io];
  const prompt = IOI_TEMPLATES[template]
    .replace('[A]', a)
    .replace('[B]', b)
    .replace('[S]', s)
    .replace('[PLACE]', place)
    .replace('[OBJECT]', object);
  return { prompt, io, s, answer: ` ${io}`, order, template, place, object };
}

/** A random IOI prompt (names drawn from `names`, default the training names). */
export function randomIoiPrompt(rng: Rng, opts: IoiOptions = {}): IoiPrompt {
  const names = opts.names ?? IOI_TRAIN_NAMES;
  if (names.length < 2) throw new Error('randomIoiPrompt: need at least two names');
  const io = pick(rng, names);
  let s = pick(rng, names);
  while (s === io) s = pick(rng, names);
  const order = opts.order ?? (rng.next() < 0.5 ? 'ABBA' : 'BABA');
  const template = opts.template ?? rng.int(0, IOI_TEMPLATES.length);
  return fillIoiTemplate(template, io, s, order, pick(rng, IOI_PLACES), pick(rng, IOI_OBJECTS));
}

/** The same prompt with the other name repeated: the answer flips from IO to S. */
export function swapRepeatedName(p: IoiPrompt): IoiPrompt {
  // first-clause order stays the same: ABBA with (io, s) is the same clause as BABA with (s, io)
  const order: IoiOrder = p.order === 'ABBA' ? 'BABA' : 'ABBA';
  return fillIoiTemplate(p.template, p.s, p.io, order, p.place, p.object);
}

/** Single-name sentences (no IOI structure), so that every name, held-out ones included, is seen as a name. */
export const NAME_SENTENCES: readonly string[] = [
  '[A] went to the [PLACE].',
  '[A] had a [OBJECT].',
  '[A] was at the [PLACE] today.',
  'Yesterday [A] found a [OBJECT] at the [PLACE].',
  '[A] said hello.',
  'Everyone at the [PLACE] knew [A].',
];

/** A random single-name sentence over `names`. */
export function randomNameSentence(rng: Rng, names: readonly string[]): string {
  return pick(rng, NAME_SENTENCES)
    .replace('[A]', pick(rng, names))
    .replace('[PLACE]', pick(rng, IOI_PLACES))
    .replace('[OBJECT]', pick(rng, IOI_OBJECTS));
}
