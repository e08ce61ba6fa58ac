/** Parsing rbd's arguments: sizes, counts, repeatable options and the image-creation options. */
import { Command, Option } from 'commander';
import { FeatureName, parseFeatures } from '../../store/features';
import { CreateImageOptions } from '../../store/store';
import { UsageError } from './context';

const UNITS: Record<string, number> = { B: 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40, P: 2 ** 50, E: 2 ** 60 };

/** rbd's sizes: a number in `defaultUnit` (MiB for --size), or with a K/M/G/T/P/E (i)(B) or B suffix. */
export function parseSize(text: string, defaultUnit: 'B' | 'M', what = 'size'): number {
  const m = /^\s*(\d+)(?:\.(\d+))?\s*(?:([KMGTPE])(?:i?B)?|(B))?\s*$/i.exec(text);
  if (!m) throw new UsageError(`invalid ${what} '${text}' (a number of ${defaultUnit === 'M' ? 'MiB' : 'bytes'}, or with a suffix K, M, G, T, P)`);
  const unit = m[4] ? 1 : m[3] ? UNITS[m[3].toUpperCase()] : UNITS[defaultUnit];
  const value = Number(`${m[1]}.${m[2] ?? '0'}`) * unit;
  if (!Number.isSafeInteger(value)) throw new UsageError(`invalid ${what} '${text}': not a whole number of bytes, or too large`);
  return value;
}

export function parseCount(text: string, what: string): number {
  if (!/^\d+$/.test(text.trim())) throw new UsageError(`invalid ${what} '${text}' (expected a whole number)`);
  return Number(text);
}

export function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

export function imageCreateOptions(o: Record<string, unknown>): Omit<CreateImageOptions, 'size'> {
  const out: { -readonly [K in keyof CreateImageOptions]?: CreateImageOptions[K] } = {};
  if (o.order !== undefined) out.order = parseCount(String(o.order), 'order');
  if (o.objectSize !== undefined) out.objectSize = parseSize(String(o.objectSize), 'B', 'object size');
  if (o.stripeUnit !== undefined) out.stripeUnit = parseSize(String(o.stripeUnit), 'B', 'stripe unit');
  if (o.stripeCount !== undefined) out.stripeCount = parseCount(String(o.stripeCount), 'stripe count');
  if (o.imageFormat !== undefined && String(o.imageFormat) !== '2') throw new UsageError(`image format ${String(o.imageFormat)} is not supported (only format 2)`);
  const feats = o.imageFeature as string[] | undefined;
  if (feats && feats.length) out.features = parseFeatures(feats);
  if (o.imageShared) {
    // rbd --image-shared drops the single-client features.
    const base: FeatureName[] = out.features ? [...out.features] : ['layering', 'exclusive-lock', 'object-map', 'fast-diff', 'deep-flatten'];
    out.features = base.filter((f) => !['exclusive-lock', 'object-map', 'fast-diff', 'journaling'].includes(f));
  }
  return out;
}

export function addImageOptions(c: Command): Command {
  return c
    .option('--order <order>', 'object order [12 <= order <= 25]')
    .option('--object-size <size>', 'object size in B/K/M [4K <= object size <= 32M]')
    .option('--image-feature <feature>', 'image feature (repeatable): layering, striping, exclusive-lock, object-map, fast-diff, deep-flatten, journaling', collect)
    .option('--image-shared', 'shared image (no exclusive-lock, object-map, fast-diff, journaling)')
    .option('--stripe-unit <size>', 'stripe unit in B/K/M')
    .option('--stripe-count <count>', 'stripe count')
    .addOption(new Option('--image-format <format>', 'image format (2)').hideHelp());
}
