import { describe, expect, test } from 'vitest';
import { ConfigError, loadConfig } from './config.js';

/** The ConfigError loadConfig throws for `env`, or a failure when it throws none. */
function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

/** The values of `expected`'s keys in `config` (toEqual treats an absent key as undefined). */
function pick(config: object, expected: object): Record<string, unknown> {
  return Object.fromEntries(Object.keys(expected).map((k) => [k, (config as Record<string, unknown>)[k]]));
}

/** The DESIGN.md environment table: name → default. */
const DESIGN_DEFAULTS = {
  DATABASE_URL: undefined,
  PORT: 8080,
  HOST: '127.0.0.1',
  LEASEHOLD_API_KEY: undefined,
  JWT_SECRET: undefined,
  JWT_JWKS_URL: undefined,
  JWT_ISSUER: undefined,
  JWT_AUDIENCE: undefined,
  OPENAI_API_KEY: undefined,
  OPENAI_BASE_URL: undefined,
  AI_PROVIDER: 'fake',
  WORKER_CONCURRENCY: 10,
  WORKER_LEASE_MS: 30_000,
  WORKER_HEARTBEAT_MS: 10_000,
  WORKER_QUEUES: 'all',
  GOVERNOR_GLOBAL_DAILY_USD: undefined,
  GOVERNOR_MARGIN_FLOOR: 0.4,
  FETCH_ALLOW_PRIVATE: false,
  LOG_LEVEL: 'info',
};

describe('loadConfig defaults', () => {
  test('match the environment table of DESIGN.md', () => {
    expect(pick(loadConfig({}), DESIGN_DEFAULTS)).toEqual(DESIGN_DEFAULTS);
  });

  test('the provider is openai when a key is set, unless AI_PROVIDER says otherwise', () => {
    expect(loadConfig({ OPENAI_API_KEY: 'sk-test' }).AI_PROVIDER).toBe('openai');
    expect(loadConfig({ OPENAI_API_KEY: 'sk-test', AI_PROVIDER: 'fake' }).AI_PROVIDER).toBe('fake');
  });

  test('an empty value counts as unset', () => {
    const blank = Object.fromEntries(Object.keys(DESIGN_DEFAULTS).map((k) => [k, '']));
    expect(pick(loadConfig(blank), DESIGN_DEFAULTS)).toEqual(DESIGN_DEFAULTS);
  });

  test('reads and coerces the values it is given', () => {
    const config = loadConfig({
      DATABASE_URL: 'postgresql://u:p@db.internal:5432/leasehold',
      PORT: '9090',
      WORKER_LEASE_MS: '60000',
      WORKER_HEARTBEAT_MS: '5000',
      FETCH_ALLOW_PRIVATE: 'yes',
      GOVERNOR_GLOBAL_DAILY_USD: '12.5',
    });
    expect(config).toMatchObject({ PORT: 9090, WORKER_LEASE_MS: 60_000, WORKER_HEARTBEAT_MS: 5_000, FETCH_ALLOW_PRIVATE: true, GOVERNOR_GLOBAL_DAILY_USD: 12.5 });
  });
});

describe('loadConfig errors', () => {
  test('name every bad key at once', () => {
    const err = configError({ PORT: 'abc', WORKER_CONCURRENCY: '0', LOG_LEVEL: 'loud' });
    expect(err.problems.map((p) => p.key).sort()).toEqual(['LOG_LEVEL', 'PORT', 'WORKER_CONCURRENCY']);
    for (const key of ['PORT', 'WORKER_CONCURRENCY', 'LOG_LEVEL']) expect(err.message).toContain(`${key}:`);
  });

  test('report a heartbeat no shorter than the lease together with the other bad keys', () => {
    const err = configError({ WORKER_LEASE_MS: '10000', WORKER_HEARTBEAT_MS: '10000', PORT: '70000' });
    expect(err.problems.map((p) => p.key).sort()).toEqual(['PORT', 'WORKER_HEARTBEAT_MS']);
    expect(err.message).toMatch(/WORKER_HEARTBEAT_MS: must be shorter than WORKER_LEASE_MS \(10000\)/);
  });

  test('refuse a DATABASE_URL that is not a postgres URL', () => {
    expect(configError({ DATABASE_URL: 'mysql://localhost/db' }).problems.map((p) => p.key)).toEqual(['DATABASE_URL']);
  });
});

describe('LEASEHOLD_API_KEY', () => {
  test.each([['test-key'], ['demo-key-123'], ['x'], [`lh_abcdefghij_${'A'.repeat(43)}`], ['p@ss:w0rd/$"\'!'], ['k'.repeat(512)]])('takes any visible ASCII text: %j', (key) => {
    expect(loadConfig({ LEASEHOLD_API_KEY: key }).LEASEHOLD_API_KEY).toBe(key);
  });

  test.each([['demo key'], [' leading-space'], ['trailing-space '], ['tab\there'], ['new\nline'], ['   '], ['clé-secrète'], ['k'.repeat(513)]])(
    'refuses %j, naming the variable but never echoing the value',
    (key) => {
      const err = configError({ LEASEHOLD_API_KEY: key });
      expect(err.problems).toEqual([{ key: 'LEASEHOLD_API_KEY', message: 'must be 1 to 512 visible ASCII characters, with no spaces' }]);
      for (const word of key.split(/\s+/).filter(Boolean)) expect(err.message).not.toContain(word);
    },
  );
});

describe('JWT settings', () => {
  const JWKS = 'https://idp.example/.well-known/jwks.json';

  test('JWT_SECRET needs 32 characters; the error names the variable but never echoes the value', () => {
    const short = 'hunter2-is-not-a-secret-31-char';
    expect(short).toHaveLength(31);
    const err = configError({ JWT_SECRET: short });
    expect(err.problems).toEqual([{ key: 'JWT_SECRET', message: 'must be at least 32 characters' }]);
    expect(err.message).not.toContain(short);
    expect(loadConfig({ JWT_SECRET: `${short}!` }).JWT_SECRET).toBe(`${short}!`);
  });

  test('JWT_JWKS_URL requires JWT_ISSUER and JWT_AUDIENCE, reported together with any other bad key', () => {
    const err = configError({ JWT_JWKS_URL: JWKS, PORT: 'x' });
    expect(err.problems.map((p) => p.key).sort()).toEqual(['JWT_AUDIENCE', 'JWT_ISSUER', 'PORT']);
    expect(err.message).toContain('JWT_AUDIENCE: is required with JWT_JWKS_URL');
    expect(configError({ JWT_JWKS_URL: JWKS, JWT_ISSUER: 'https://idp.example/' }).problems).toEqual([{ key: 'JWT_AUDIENCE', message: 'is required with JWT_JWKS_URL' }]);
    expect(loadConfig({ JWT_JWKS_URL: JWKS, JWT_ISSUER: 'https://idp.example/', JWT_AUDIENCE: 'leasehold' })).toMatchObject({ JWT_JWKS_URL: JWKS, JWT_AUDIENCE: 'leasehold' });
  });

  test('with JWT_SECRET, issuer and audience stay optional', () => {
    const config = loadConfig({ JWT_SECRET: 's'.repeat(32) });
    expect([config.JWT_SECRET, config.JWT_ISSUER, config.JWT_AUDIENCE]).toEqual(['s'.repeat(32), undefined, undefined]);
  });

  test('refuses a JWKS URL that is not http(s), and both ways at once', () => {
    expect(configError({ JWT_JWKS_URL: 'not a url', JWT_ISSUER: 'i', JWT_AUDIENCE: 'a' }).problems.map((p) => p.key)).toEqual(['JWT_JWKS_URL']);
    expect(configError({ JWT_JWKS_URL: JWKS, JWT_ISSUER: 'i', JWT_AUDIENCE: 'a', JWT_SECRET: 's'.repeat(32) }).problems).toEqual([
      { key: 'JWT_JWKS_URL', message: 'set JWT_SECRET or JWT_JWKS_URL, not both' },
    ]);
  });
});

describe('WORKER_QUEUES', () => {
  test.each([['all'], ['*'], ['  all  ']])('%j means every queue', (raw) => {
    expect(loadConfig({ WORKER_QUEUES: raw }).WORKER_QUEUES).toBe('all');
  });

  test('reads names with optional per-queue concurrency', () => {
    expect(loadConfig({ WORKER_QUEUES: 'a,b:5' }).WORKER_QUEUES).toEqual([{ name: 'a' }, { name: 'b', concurrency: 5 }]);
    expect(loadConfig({ WORKER_QUEUES: ' default , ai.vision:2 ,webhooks' }).WORKER_QUEUES).toEqual([
      { name: 'default' },
      { name: 'ai.vision', concurrency: 2 },
      { name: 'webhooks' },
    ]);
  });

  test("names may hold ':', as POST /v1/jobs allows; a last segment that is a number is the concurrency", () => {
    expect(loadConfig({ WORKER_QUEUES: 'tenant:images,tenant:images2:3,a:1:2' }).WORKER_QUEUES).toEqual([
      { name: 'tenant:images' },
      { name: 'tenant:images2', concurrency: 3 },
      { name: 'a:1', concurrency: 2 },
    ]);
  });

  test.each([
    ['a:0', /bad queue spec "a:0"/],
    ['a:-1', /bad queue spec "a:-1"/],
    ['a:1.5', /bad queue spec "a:1.5"/],
    ['a:', /bad queue spec "a:"/],
    [':3', /bad queue spec ":3"/],
    ['a::b', /bad queue spec "a::b"/],
    ['a:b:0', /bad queue spec "a:b:0"/],
    ['bad name', /bad queue spec "bad name"/],
    ['a,b,a:2', /queue "a" is listed twice/],
    [',', /names no queue/],
  ])('refuses %j', (raw, message) => {
    const err = configError({ WORKER_QUEUES: raw });
    expect(err.problems.map((p) => p.key)).toEqual(['WORKER_QUEUES']);
    expect(err.message).toMatch(message);
  });
});
