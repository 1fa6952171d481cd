import { CONFIG_SCHEMA } from './config.js';

/*
 * docs/config.md is generated from CONFIG_SCHEMA (`npm run docs:config`): the
 * schema's descriptions are the one place a setting's meaning is written, and
 * config-doc.test.ts fails when the committed page and the schema differ.
 */

interface SchemaNode {
  readonly type?: string;
  readonly enum?: readonly unknown[];
  readonly description?: string;
  readonly default?: unknown;
  readonly properties?: Readonly<Record<string, SchemaNode>>;
  readonly required?: readonly string[];
  readonly items?: SchemaNode;
  readonly additionalProperties?: boolean | SchemaNode;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minLength?: number;
  readonly pattern?: string;
  readonly minItems?: number;
  readonly maxItems?: number;
  readonly uniqueItems?: boolean;
  readonly minProperties?: number;
}

interface Row {
  readonly key: string;
  readonly type: string;
  readonly fallback: string;
  readonly meaning: string;
}

const HEADER = `# Configuration reference

<!-- Generated from CONFIG_SCHEMA in packages/server/src/config.ts by \`npm run docs:config\`; do not edit by hand. -->

Padlock reads one JSON file (\`padlock serve --config <file>\`), validates it once at start against one schema
and freezes it. Unknown keys are an error, so a misspelt setting stops the process instead of falling back to
its default. Relative paths are resolved against the config file's directory. \`keks\` is the only key without
a default. How the settings fit together: [operations.md](operations.md).
`;

/** A markdown table cell: pipes escaped, no line breaks. */
function cell(text: string): string {
  return text.replaceAll('|', '\\|').replaceAll('\n', ' ');
}

function code(value: unknown): string {
  return `\`${JSON.stringify(value)}\``;
}

function range(node: SchemaNode): string {
  const { minimum: min, maximum: max } = node;
  if (min !== undefined && max !== undefined) return ` ${min}-${max}`;
  if (min !== undefined) return ` >= ${min}`;
  if (max !== undefined) return ` <= ${max}`;
  return '';
}

/** The value's type and constraints, as a reader checks a value against them. */
function typeOf(node: SchemaNode, at: string): string {
  if (node.enum !== undefined) return `one of ${node.enum.map(code).join(', ')}`;
  switch (node.type) {
    case 'integer':
    case 'number':
      return `${node.type}${range(node)}`;
    case 'boolean':
      return 'boolean';
    case 'string':
      if (node.pattern !== undefined) return `string matching \`${node.pattern}\``;
      return node.minLength !== undefined && node.minLength > 0 ? 'non-empty string' : 'string';
    case 'array': {
      if (node.items === undefined) throw new Error(`${at}: an array without items`);
      const count =
        node.minItems !== undefined && node.maxItems !== undefined
          ? `, ${node.minItems}-${node.maxItems}`
          : node.minItems !== undefined
            ? `, at least ${node.minItems}`
            : '';
      const item = node.items.type === 'object' ? 'objects' : typeOf(node.items, `${at}[]`);
      return `array of ${item}${count}${node.uniqueItems === true ? ', unique' : ''}`;
    }
    case 'object':
      if (typeof node.additionalProperties === 'object') {
        const least = node.minProperties !== undefined ? `, at least ${node.minProperties}` : '';
        return `object: name -> ${typeOf(node.additionalProperties, `${at}.*`)}${least}`;
      }
      return 'object';
    default:
      throw new Error(`${at}: no type the reference can describe`);
  }
}

function fallbackOf(node: SchemaNode, required: boolean): string {
  if (node.default !== undefined) {
    // An object defaulting to {} takes its keys' defaults, listed on their own rows.
    const empty = typeof node.default === 'object' && node.default !== null && !Array.isArray(node.default);
    return empty && Object.keys(node.default).length === 0 ? "its keys' defaults" : code(node.default);
  }
  return required ? 'required' : 'absent';
}

function* rows(node: SchemaNode, path: string, required: boolean): Generator<Row> {
  if (node.description === undefined || node.description.trim() === '') {
    throw new Error(`${path}: no description in CONFIG_SCHEMA (docs/config.md is generated from them)`);
  }
  yield { key: path, type: typeOf(node, path), fallback: fallbackOf(node, required), meaning: node.description };
  const children = node.type === 'array' && node.items?.type === 'object' ? node.items : node;
  const prefix = children === node ? path : `${path}[]`;
  for (const [name, child] of Object.entries(children.properties ?? {})) {
    yield* rows(child, `${prefix}.${name}`, children.required?.includes(name) ?? false);
  }
}

/**
 * The configuration reference (docs/config.md) for a config schema: one section
 * per top-level key, one table row per key beneath it (key, type, default, meaning).
 * Throws, naming the key, when a key has no description.
 *
 * @example
 *   writeFileSync('docs/config.md', configReference());
 */
export function configReference(schema: SchemaNode = CONFIG_SCHEMA): string {
  const sections = [HEADER];
  for (const [name, node] of Object.entries(schema.properties ?? {})) {
    const table = [...rows(node, name, schema.required?.includes(name) ?? false)];
    sections.push(
      [
        `## \`${name}\``,
        '',
        '| key | type | default | meaning |',
        '| --- | --- | --- | --- |',
        ...table.map((r) => `| \`${r.key}\` | ${cell(r.type)} | ${cell(r.fallback)} | ${cell(r.meaning)} |`),
        '',
      ].join('\n'),
    );
  }
  return sections.join('\n');
}
