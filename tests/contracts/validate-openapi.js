// Validates an OpenAPI document (file path or URL) with @apidevtools/swagger-parser:
// prints "ok <title> <version>" and exits 0, or prints the errors and exits 1.
const SwaggerParser = require("@apidevtools/swagger-parser");
(async () => {
  try {
    const api = await SwaggerParser.validate(process.argv[2]);
    console.log("ok", api.info.title, api.openapi || api.swagger);
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
})();
