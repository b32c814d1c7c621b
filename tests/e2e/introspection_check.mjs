// Rebuild the served schema from an introspection result with graphql-js
// and compare it with the contract: no breaking and no dangerous changes
// either way, and the same directives.
//
//   node introspection_check.mjs RESULT.json CONTRACT.graphql
//   node introspection_check.mjs --query     (prints the standard query)
import { readFileSync } from 'node:fs';
import {
  buildClientSchema, buildSchema, findBreakingChanges,
  findDangerousChanges, getIntrospectionQuery, printSchema,
} from 'graphql';

if (process.argv[2] === '--query') {
  process.stdout.write(getIntrospectionQuery());
  process.exit(0);
}
const result = JSON.parse(readFileSync(process.argv[2], 'utf8'));
if (result.errors) {
  console.error('introspection errors:', JSON.stringify(result.errors));
  process.exit(1);
}
const served = buildClientSchema(result.data);
const contract = buildSchema(readFileSync(process.argv[3], 'utf8'));
const problems = [
  ...findBreakingChanges(contract, served),
  ...findBreakingChanges(served, contract),
  ...findDangerousChanges(contract, served),
  ...findDangerousChanges(served, contract),
];
const dirs = (s) => s.getDirectives().map((d) => d.name).sort().join(',');
if (dirs(served) !== dirs(contract))
  problems.push({ type: 'DIRECTIVES', description: `${dirs(served)} vs ${dirs(contract)}` });
if (printSchema(served) !== printSchema(contract))
  problems.push({ type: 'PRINT', description: 'printSchema differs' });
for (const p of problems) console.error(`${p.type}: ${p.description}`);
console.log(problems.length === 0 ? 'introspection matches the contract' : `${problems.length} differences`);
process.exit(problems.length === 0 ? 0 : 1);
