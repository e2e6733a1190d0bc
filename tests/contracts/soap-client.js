// A second, independent SOAP consumer (the npm `soap` package): loads the WSDL at
// argv[2], lists its services/ports/operations as JSON, and calls operation argv[3]
// with the JSON arguments argv[4]; prints {"describe":..., "result":...} or the fault.
const soap = require("soap");
(async () => {
  try {
    const client = await soap.createClientAsync(process.argv[2]);
    const out = { describe: client.describe() };
    if (process.argv[3]) {
      const [result] = await client[process.argv[3] + "Async"](JSON.parse(process.argv[4] || "{}"));
      out.result = result;
    }
    console.log(JSON.stringify(out));
  } catch (e) {
    console.error(e.root ? JSON.stringify(e.root) : e.message);
    process.exit(1);
  }
})();
