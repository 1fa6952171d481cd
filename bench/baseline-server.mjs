import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { parseArgs } from 'node:util';

/*
 * The yardstick: bare node:http answering every request with the same small
 * JSON body, with the same keep-alive settings as Padlock's server. Every
 * Padlock figure is reported as a ratio to this server measured in the same
 * run, so a busy or slow machine moves both sides alike. With --tls-cert and
 * --tls-key it is bare node:https instead, with the same TLS versions as
 * Padlock's default (1.3 only), the yardstick of the TLS rows.
 * Prints "listening <port>" on stdout once bound to an ephemeral port.
 */

const { values } = parseArgs({ options: { 'tls-cert': { type: 'string' }, 'tls-key': { type: 'string' } } });

const BODY = Buffer.from(JSON.stringify({ status: 'ok', service: 'baseline' }));

const options = { keepAliveTimeout: 5000, headersTimeout: 10000, requestTimeout: 30000 };
const handler = (req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': BODY.length });
  res.end(BODY);
};
const server =
  values['tls-cert'] === undefined
    ? createServer(options, handler)
    : createHttpsServer(
        {
          ...options,
          cert: readFileSync(values['tls-cert']),
          key: readFileSync(values['tls-key']),
          minVersion: 'TLSv1.3',
        },
        handler,
      );

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});

process.once('SIGTERM', () => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
