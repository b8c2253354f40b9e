import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { InfergateError } from '../errors/index.js';
import { formatOutput, OUTPUT_FORMATS, type OutputOptions } from './output.js';

// Shapes from contract §2.4/§2.5, with keys deliberately out of order: az sorts them.
const endpointShow = {
  name: 'my-endpoint',
  scoring_uri: 'http://127.0.0.1:8080/endpoints/my-endpoint/score',
  openapi_uri: 'http://127.0.0.1:8080/endpoints/my-endpoint/swagger.json',
  auth_mode: 'key',
  id: '/workspaces/default/onlineEndpoints/my-endpoint',
  kind: 'Managed',
  location: 'local',
  identity: { type: 'system_assigned', principal_id: 'p', tenant_id: 't' },
  mirror_traffic: {},
  properties: { 'azureml.onlineendpointid': '/workspaces/default/onlineendpoints/my-endpoint', createdAt: '2026-04-17T16:55:44.738Z' },
  provisioning_state: 'Succeeded',
  public_network_access: 'enabled',
  tags: {},
  traffic: { green: 0, blue: 100 },
};

const deploymentShow = {
  name: 'blue',
  endpoint_name: 'my-endpoint',
  id: '/workspaces/default/onlineEndpoints/my-endpoint/deployments/blue',
  type: 'managed',
  app_insights_enabled: false,
  instance_count: 1,
  instance_type: 'Standard_DS3_v2',
  environment_variables: {},
  provisioning_state: 'Succeeded',
  request_settings: { max_concurrent_requests_per_instance: 1, request_timeout_ms: 5000 },
  scale_settings: { type: 'default' },
  tags: {},
};

const credentials = { secondaryKey: 'sk-abc', primaryKey: 'pk-xyz' };

const endpointList = [
  { ...endpointShow },
  { ...endpointShow, name: 'other', provisioning_state: 'Creating', auth_mode: 'aml_token', traffic: {} },
];

const out = (value: unknown, output: OutputOptions['output'], query?: string): string => formatOutput(value, { output, query });

describe('formatOutput: json', () => {
  test('indent 2, keys sorted at every level like az, trailing newline', () => {
    assert.equal(out({ b: 1, a: { d: [{ z: 1, y: 2 }], c: null } }, 'json'), '{\n  "a": {\n    "c": null,\n    "d": [\n      {\n        "y": 2,\n        "z": 1\n      }\n    ]\n  },\n  "b": 1\n}\n');
  });

  test('endpoint show round-trips, sorted', () => {
    const text = out(endpointShow, 'json');
    assert.deepEqual(JSON.parse(text), endpointShow);
    assert.deepEqual(Object.keys(JSON.parse(text)), Object.keys(endpointShow).sort());
    assert.ok(text.endsWith('}\n'));
  });

  test('--query traffic (the safe-rollout check)', () => {
    assert.equal(out(endpointShow, 'json', 'traffic'), '{\n  "blue": 100,\n  "green": 0\n}\n');
  });

  test('a --query multiselect hash is sorted too (az json always sorts)', () => {
    assert.equal(out(endpointShow, 'json', '{State:provisioning_state,Name:name}'), '{\n  "Name": "my-endpoint",\n  "State": "Succeeded"\n}\n');
  });

  test('a string result prints as a JSON string (invoke, --query scoring_uri)', () => {
    assert.equal(out('[11055.977245525679, 4503.079536107787]', 'json'), '"[11055.977245525679, 4503.079536107787]"\n');
    assert.equal(out(endpointShow, 'json', 'scoring_uri'), '"http://127.0.0.1:8080/endpoints/my-endpoint/score"\n');
  });

  test('jsonc is json when not colouring; empty containers stay compact', () => {
    assert.equal(out(endpointShow, 'jsonc'), out(endpointShow, 'json'));
    assert.equal(out([], 'json'), '[]\n');
    assert.equal(out({}, 'json'), '{}\n');
  });

  test('undefined fields vanish and Dates print as ISO strings, as on the wire', () => {
    assert.equal(out({ a: undefined, at: new Date('2026-01-02T03:04:05.000Z') }, 'json'), '{\n  "at": "2026-01-02T03:04:05.000Z"\n}\n');
  });
});

describe('formatOutput: tsv', () => {
  test('the scripts’ queries print the bare value and a newline', () => {
    assert.equal(out(endpointShow, 'tsv', 'provisioning_state'), 'Succeeded\n');
    assert.equal(out(endpointShow, 'tsv', 'scoring_uri'), 'http://127.0.0.1:8080/endpoints/my-endpoint/score\n');
    assert.equal(out(endpointShow, 'tsv', 'openapi_uri'), 'http://127.0.0.1:8080/endpoints/my-endpoint/swagger.json\n');
    assert.equal(out(credentials, 'tsv', 'primaryKey'), 'pk-xyz\n');
    assert.equal(out(deploymentShow, 'tsv', 'id'), '/workspaces/default/onlineEndpoints/my-endpoint/deployments/blue\n');
    assert.equal(out(endpointShow, 'tsv', 'properties."azureml.onlineendpointid"'), '/workspaces/default/onlineendpoints/my-endpoint\n');
    assert.equal(out(deploymentShow, 'tsv', 'instance_count'), '1\n');
  });

  test('an object prints its values in sorted key order, tab-separated', () => {
    assert.equal(out(credentials, 'tsv'), 'pk-xyz\tsk-abc\n');
    assert.equal(out(endpointShow, 'tsv', 'traffic'), '100\t0\n');
  });

  test('nested objects print empty, nested lists their length, null None, booleans True/False (knack)', () => {
    assert.equal(out({ e: true, d: null, c: [1, 2, 3], b: { x: 1 }, a: 'A', f: 2.5 }, 'tsv'), 'A\t\t3\tNone\tTrue\t2.5\n');
  });

  test('a boolean on its own prints lower-case, as knack does', () => {
    assert.equal(out(deploymentShow, 'tsv', 'app_insights_enabled'), 'false\n');
  });

  test('a list prints one line per item; a multiselect keeps its own order', () => {
    assert.equal(out(endpointList, 'tsv', '[].name'), 'my-endpoint\nother\n');
    assert.equal(out(endpointList, 'tsv', '[].{State:provisioning_state,Name:name}'), 'Succeeded\tmy-endpoint\nCreating\tother\n');
    assert.equal(out(endpointList, 'tsv', '[].[name, auth_mode]'), 'my-endpoint\tkey\nother\taml_token\n');
    assert.equal(out([[1, null], ['a', { b: 1 }]], 'tsv'), '1\tNone\na\t\n');
  });

  test('an empty list prints nothing', () => {
    assert.equal(out([], 'tsv'), '');
  });
});

describe('formatOutput: table', () => {
  test('--query "[].{Name:name}" -o table', () => {
    assert.equal(out(endpointList, 'table', '[].{Name:name}'), 'Name\n-----------\nmy-endpoint\nother\n');
  });

  test('--query "{Name:name,State:provisioning_state}" -o table keeps the query’s column order', () => {
    assert.equal(
      out(endpointShow, 'table', '{Name:name,State:provisioning_state}'),
      'Name         State\n-----------  ---------\nmy-endpoint  Succeeded\n',
    );
  });

  test('columns are at least the header plus two wide; cells are left-aligned; no trailing spaces', () => {
    assert.equal(out([{ a: 'x', bb: 12345678 }, { a: 'yy', bb: 1 }], 'table'), 'A    Bb\n---  --------\nx    12345678\nyy   1\n');
  });

  test('a list without --query: sorted keys, capitalised, skipping id/type/etag, nulls and nested values', () => {
    const text = out(endpointList, 'table');
    assert.equal(
      text,
      [
        'Auth_mode    Kind     Location    Name         Openapi_uri                                               Provisioning_state    Public_network_access    Scoring_uri',
        '-----------  -------  ----------  -----------  --------------------------------------------------------  --------------------  -----------------------  -------------------------------------------------',
        'key          Managed  local       my-endpoint  http://127.0.0.1:8080/endpoints/my-endpoint/swagger.json  Succeeded             enabled                  http://127.0.0.1:8080/endpoints/my-endpoint/score',
        'aml_token    Managed  local       other        http://127.0.0.1:8080/endpoints/my-endpoint/swagger.json  Creating              enabled                  http://127.0.0.1:8080/endpoints/my-endpoint/score',
        '',
      ].join('\n'),
    );
  });

  test('a single object is a one-row table; booleans print True/False', () => {
    assert.equal(
      out(deploymentShow, 'table'),
      [
        'App_insights_enabled    Endpoint_name    Instance_count    Instance_type    Name    Provisioning_state',
        '----------------------  ---------------  ----------------  ---------------  ------  --------------------',
        'False                   my-endpoint      1                 Standard_DS3_v2  blue    Succeeded',
        '',
      ].join('\n'),
    );
  });

  test('rows missing a column get an empty cell; columns appear in first-seen order', () => {
    assert.equal(out([{ b: 1 }, { a: 2, b: 3 }], 'table', '[].{B:b,A:a}'), 'B    A\n---  ---\n1\n3    2\n');
  });

  test('scalars go under Result, lists under Column1..n', () => {
    assert.equal(out(endpointList, 'table', '[].name'), 'Result\n-----------\nmy-endpoint\nother\n');
    assert.equal(out(endpointShow, 'table', 'provisioning_state'), 'Result\n---------\nSucceeded\n');
    assert.equal(out(endpointList, 'table', '[].[name, auth_mode]'), 'Column1      Column2\n-----------  ---------\nmy-endpoint  key\nother        aml_token\n');
  });

  test('an object with nothing to show is an error that points at --query', () => {
    assert.throws(
      () => out(endpointShow, 'table', 'traffic.{a: missing}'),
      (err: unknown) => err instanceof InfergateError && err.code === 'BadArgument' && /--query/.test(err.message),
    );
    assert.throws(() => out({ nested: { a: 1 } }, 'table'), (err: unknown) => err instanceof InfergateError && err.code === 'BadArgument');
  });

  test('an empty list prints nothing', () => {
    assert.equal(out([], 'table'), '');
  });
});

describe('formatOutput: yaml', () => {
  test('block style, sorted keys, unindented sequences and quoting like PyYAML', () => {
    assert.equal(
      out({ traffic: { green: 0, blue: 100 }, name: 'ep', list: ['a', { y: 1, x: 'yes' }], created: '2026-04-17T16:57:03Z', empty: {} }, 'yaml'),
      "created: '2026-04-17T16:57:03Z'\nempty: {}\nlist:\n- a\n- x: 'yes'\n  'y': 1\nname: ep\ntraffic:\n  blue: 100\n  green: 0\n",
    );
  });

  test('endpoint show round-trips; yamlc is yaml when not colouring', () => {
    assert.deepEqual(parseYaml(out(endpointShow, 'yaml')), endpointShow);
    assert.equal(out(endpointShow, 'yamlc'), out(endpointShow, 'yaml'));
  });

  test('a long value is never folded', () => {
    const long = 'word '.repeat(40).trim();
    assert.equal(out({ description: long }, 'yaml'), `description: ${long}\n`);
  });
});

describe('formatOutput: none, null and --query errors', () => {
  test('none prints nothing', () => {
    assert.equal(out(endpointShow, 'none'), '');
  });

  test('a null result prints nothing in every format (az prints nothing for None)', () => {
    for (const output of OUTPUT_FORMATS) {
      assert.equal(out(endpointShow, output, 'no_such_field'), '', output);
      assert.equal(out(null, output), '', output);
      assert.equal(out(undefined, output), '', output);
    }
  });

  test('a bad expression is BadArgument with the parser’s message', () => {
    assert.throws(
      () => out(endpointShow, 'json', '[.bad'),
      (err: unknown) =>
        err instanceof InfergateError && err.code === 'BadArgument' && err.status === 400 && err.message.includes("'[.bad'") && err.message.includes('Invalid token'),
    );
  });

  test('an expression that fails while running is BadArgument too', () => {
    assert.throws(
      () => out(endpointShow, 'tsv', 'abs(name, name)'),
      (err: unknown) => err instanceof InfergateError && err.code === 'BadArgument' && /abs\(\) takes 1 argument/.test(err.message),
    );
  });

  test('the query sees the value, not a shared reference', () => {
    const value = { a: { b: 1 } };
    out(value, 'json', 'a');
    assert.deepEqual(value, { a: { b: 1 } });
  });
});
