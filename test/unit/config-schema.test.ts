import t from 'tap';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { configJsonSchema } from '../../src/config/json-schema.js';
import { parseConfig } from '../../src/config/load.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCHEMA_FILE = join(ROOT, 'appfence.schema.json');
const MODELINE = /^# yaml-language-server: \$schema=(\S+)$/m;
const SKIP = new Set(['node_modules', '.git', 'dist', '.tap', 'coverage', 'state']);

/** Every YAML file of the repository that names a schema in its modeline. */
function exampleConfigs(dir = ROOT): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name)) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) found.push(...exampleConfigs(path));
    else if (/\.ya?ml$/.test(name) && MODELINE.test(readFileSync(path, 'utf8'))) found.push(path);
  }
  return found;
}

const schema = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as Record<string, unknown>;
const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
const validate = ajv.compile(schema);

t.test('appfence.schema.json is what the zod schema generates (run `npm run schema` after changing it)', async (t) => {
  t.same(schema, configJsonSchema());
});

t.test('the JSON Schema accepts every example config, and appfence accepts them too', async (t) => {
  const files = exampleConfigs();
  t.ok(files.some((f) => f.endsWith('spec-example.yaml')), `found ${files.map((f) => relative(ROOT, f)).join(', ')}`);
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const target = resolve(dirname(file), MODELINE.exec(text)?.[1] ?? '');
    t.equal(target, SCHEMA_FILE, `${relative(ROOT, file)}: the modeline points at the shipped schema`);
    t.ok(validate(parse(text)), `${relative(ROOT, file)}: ${ajv.errorsText(validate.errors)}`);
    t.doesNotThrow(() => parseConfig(text, file, { APPFENCE_ADMIN_TOKEN: 'x' }), relative(ROOT, file));
  }
});

t.test('the JSON Schema rejects what appfence rejects: unknown keys, wrong types', async (t) => {
  const reject = (yaml: string, where: string, keyword: string) => {
    t.notOk(validate(parse(yaml)), yaml);
    t.ok(validate.errors?.some((e) => e.instancePath === where && e.keyword === keyword), `${where} ${keyword}: ${ajv.errorsText(validate.errors)}`);
  };
  reject('dns: { upstreams: ["9.9.9.9"], cahce: {} }', '/dns', 'additionalProperties');
  reject('dns: { upstreams: ["9.9.9.9"] }\ngroups: { city: { blok: [tiktok] } }', '/groups/city', 'additionalProperties');
  reject('dns: { upstreams: ["9.9.9.9"], timeoutMs: "1500" }', '/dns/timeoutMs', 'type');
  reject('dns: { upstreams: ["9.9.9.9"] }\nlog: { level: loud }', '/log/level', 'enum');
  reject('dns: { upstreams: [] }', '/dns/upstreams', 'minItems');
  t.ok(validate(parse('dns: { upstreams: ["9.9.9.9"] }\nproxy:\ngroups: { g: { mode: null }, h: }\n')),
    'YAML nulls (`key:` left empty) are accepted, as appfence reads them as left out');
});
