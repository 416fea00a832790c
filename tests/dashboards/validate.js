// validate.js - checks every dashboard in dashboards/grafana against Grafana's
// published dashboard model: the TypeScript types of @grafana/schema (pinned in
// package.json) are turned into a JSON schema here, at test time, and each
// dashboard is validated with ajv. Usage: node validate.js DASHBOARD.json...
"use strict";
const path = require("path");
const tsj = require("ts-json-schema-generator");
const Ajv = require("ajv");

const pkgDir = path.dirname(require.resolve("@grafana/schema/package.json"));
const typesFile = path.join(pkgDir, "dist/types/raw/dashboard/x/types.gen.d.ts");
const schemaVersion = require(path.join(pkgDir, "package.json")).version;

// Closed objects: a misspelt or invented field is an error, not ignored.
const schema = tsj
  .createGenerator({ path: typesFile, type: "Dashboard", skipTypeCheck: true, additionalProperties: false })
  .createSchema("Dashboard");

// The one exception Grafana's own model documents: an annotation query carries
// its datasource's query fields (for Prometheus: expr, step, titleFormat,
// useValueForTime, ...) next to the common ones ("this should just be a normal
// query target").
schema.definitions.AnnotationQuery.additionalProperties = true;

// The current dashboard schema version is the one @grafana/schema defaults to.
const { defaultDashboard } = require("@grafana/schema");
const currentVersion = defaultDashboard.schemaVersion;

const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(schema);

let failed = 0;
for (const file of process.argv.slice(2)) {
  let dash;
  try {
    dash = JSON.parse(require("fs").readFileSync(file, "utf8"));
  } catch (e) {
    console.log(`FAIL - ${file}: ${e.message}`);
    failed++;
    continue;
  }
  const errors = [];
  if (!validate(dash))
    for (const e of validate.errors) errors.push(`${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);
  if (dash.schemaVersion !== currentVersion)
    errors.push(`schemaVersion ${dash.schemaVersion}, current is ${currentVersion}`);
  if (errors.length) {
    failed++;
    console.log(`FAIL - ${file} against @grafana/schema ${schemaVersion}:`);
    for (const e of errors.slice(0, 30)) console.log(`    ${e}`);
  } else {
    console.log(`ok   - ${file} matches @grafana/schema ${schemaVersion} (schemaVersion ${currentVersion})`);
  }
}
if (process.argv.length < 3) {
  console.log("FAIL - no dashboards given");
  failed++;
}
process.exit(failed ? 1 : 0);
