// Validates catalog entities with Backstage's own @backstage/catalog-model: the entity
// policies its catalog applies to every catalog-info.yaml it reads, then the Component
// kind's JSON schema. Reads a JSON list of entities on stdin; prints one result each.
const model = require("@backstage/catalog-model");
const fs = require("fs");

async function main() {
  const entities = JSON.parse(fs.readFileSync(0, "utf8"));
  const policy = model.EntityPolicies.allOf([
    new model.DefaultNamespaceEntityPolicy(),
    new model.NoForeignRootFieldsEntityPolicy(),
    new model.FieldFormatEntityPolicy(),
    new model.SchemaValidEntityPolicy(),
  ]);
  const results = [];
  for (const entity of entities) {
    try {
      const enforced = await policy.enforce(entity);
      const component = await model.componentEntityV1alpha1Validator.check(enforced);
      results.push({ ok: component === true, error: component ? "" : "not a Component" });
    } catch (error) {
      results.push({ ok: false, error: String((error && error.message) || error) });
    }
  }
  process.stdout.write(JSON.stringify(results) + "\n");
}

main().catch((error) => {
  process.stderr.write(String(error && error.stack) + "\n");
  process.exit(2);
});
