// Validates Prometheus Operator objects (ServiceMonitor, PrometheusRule) against the operator's
// CRD schemas as shipped by the npm package @kubernetes-models/prometheus-operator; Kubernetes'
// own schemas (kubernetes-validate) do not cover them.
//
//   node operator_crds.mjs NODE_MODULES OBJECTS.json
//
// OBJECTS.json: a JSON array of the objects (deploy/validate extracts them from the rendered YAML).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modules, objectsFile] = process.argv.slice(2);
const load = async (kind) => {
  const file = join(modules, "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1", kind + ".js");
  return (await import(pathToFileURL(file).href))[kind];
};
const models = { ServiceMonitor: await load("ServiceMonitor"), PrometheusRule: await load("PrometheusRule") };
let checked = 0;
let failures = 0;
for (const object of JSON.parse(readFileSync(objectsFile, "utf8"))) {
  const where = `${object.kind}/${object.metadata?.name}`;
  if (!(object.kind in models)) {
    failures += 1;
    console.error(`FAILED ${where}: no schema for this kind here`);
    continue;
  }
  try {
    new models[object.kind](object).validate();
    checked += 1;
  } catch (error) {
    failures += 1;
    console.error(`FAILED ${where}: ${error.message}`);
  }
}
console.log(`operator CRDs: ${checked} objects valid, ${failures} invalid`);
process.exit(failures === 0 && checked > 0 ? 0 : 1);
