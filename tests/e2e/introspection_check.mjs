// Rebuild the served schema from an introspection result with graphql-js
// and compare it with the contract, both ways, with findBreakingChanges
// and findDangerousChanges.  The served schema may only add to the
// contract: every difference that is not an addition is a problem.
//
//   node introspection_check.mjs RESULT.json CONTRACT.graphql
//   node introspection_check.mjs --query     (prints the query to send)
//
// graphql_http.test.mjs imports introspectionQuery() and
// contractProblems() and fails on any problem.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  BreakingChangeType, DangerousChangeType, buildClientSchema, buildSchema,
  findBreakingChanges, findDangerousChanges, getIntrospectionQuery,
} from 'graphql';

// Everything a graphql-js 16 client may ask for.
export function introspectionQuery() {
  return getIntrospectionQuery({
    descriptions: true,
    specifiedByUrl: true,
    directiveIsRepeatable: true,
    schemaDescription: true,
    inputValueDeprecation: true,
    experimentalDirectiveDeprecation: true,
    oneOf: true,
  });
}

// Read from the served schema's side, findBreakingChanges(served,
// contract) lists what the served schema has and the contract lacks: a
// removal there is an addition here.
const REMOVALS = new Set([
  BreakingChangeType.TYPE_REMOVED,
  BreakingChangeType.TYPE_REMOVED_FROM_UNION,
  BreakingChangeType.VALUE_REMOVED_FROM_ENUM,
  BreakingChangeType.FIELD_REMOVED,
  BreakingChangeType.ARG_REMOVED,
  BreakingChangeType.IMPLEMENTED_INTERFACE_REMOVED,
  BreakingChangeType.DIRECTIVE_REMOVED,
  BreakingChangeType.DIRECTIVE_ARG_REMOVED,
  BreakingChangeType.DIRECTIVE_LOCATION_REMOVED,
]);
// What findDangerousChanges(contract, served) reports for an addition.
const ADDITIONS = new Set([
  DangerousChangeType.VALUE_ADDED_TO_ENUM,
  DangerousChangeType.TYPE_ADDED_TO_UNION,
  DangerousChangeType.OPTIONAL_INPUT_FIELD_ADDED,
  DangerousChangeType.OPTIONAL_ARG_ADDED,
  DangerousChangeType.IMPLEMENTED_INTERFACE_ADDED,
]);

// The differences between @served (an introspection result's `data`) and
// @contractSdl that are not additions to the contract, as
// [{ type, description }]; empty when the served schema is the contract
// or a superset of it.
export function contractProblems(served, contractSdl) {
  const client = buildClientSchema(served);
  const contract = buildSchema(contractSdl);
  return [
    ...findBreakingChanges(contract, client).map((c) => ({ ...c, type: `removed: ${c.type}` })),
    ...findDangerousChanges(contract, client)
      .filter((c) => !ADDITIONS.has(c.type))
      .map((c) => ({ ...c, type: `changed: ${c.type}` })),
    ...findBreakingChanges(client, contract)
      .filter((c) => !REMOVALS.has(c.type))
      .map((c) => ({ ...c, type: `served differs: ${c.type}` })),
    ...findDangerousChanges(client, contract).map((c) => ({ ...c, type: `served lacks: ${c.type}` })),
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv[2] === '--query') {
    process.stdout.write(introspectionQuery());
    process.exit(0);
  }
  const result = JSON.parse(readFileSync(process.argv[2], 'utf8'));
  if (result.errors) {
    console.error('introspection errors:', JSON.stringify(result.errors));
    process.exit(1);
  }
  const problems = contractProblems(result.data, readFileSync(process.argv[3], 'utf8'));
  for (const p of problems) console.error(`${p.type}: ${p.description}`);
  console.log(problems.length === 0 ? 'introspection matches the contract'
    : `${problems.length} differences`);
  process.exit(problems.length === 0 ? 0 : 1);
}
