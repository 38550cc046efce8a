// s3rver-run.js: starts the test S3 server (@20minutes/s3rver) for coffre's integration tests.
// Usage: node s3rver-run.js DIR ACCESS_KEY SECRET_KEY BUCKET...
// Listens on 127.0.0.1 on a port the system picks, prints "port N" on stdout once ready, and
// accepts only the given key pair (the built-in S3RVER/S3RVER pair is revoked). SigV4
// signatures are verified by the server with that secret.
'use strict';

const S3rver = require('@20minutes/s3rver');
const AWSAccount = require('@20minutes/s3rver/lib/models/account');

const [dir, accessKey, secretKey, ...buckets] = process.argv.slice(2);
if (!dir || !accessKey || !secretKey) {
  process.stderr.write('usage: s3rver-run.js DIR ACCESS_KEY SECRET_KEY BUCKET...\n');
  process.exit(2);
}
AWSAccount.DUMMY_ACCOUNT.revokeAccessKey('S3RVER');
AWSAccount.DUMMY_ACCOUNT.createKeyPair(accessKey, secretKey);

const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  directory: dir,
  silent: true,
  serviceEndpoint: 'localhost',
  configureBuckets: buckets.map((name) => ({ name })),
});
server.run().then(
  (addr) => {
    process.stdout.write(`port ${addr.port}\n`);
  },
  (err) => {
    process.stderr.write(`s3rver: ${err.stack || err}\n`);
    process.exit(1);
  },
);
process.on('SIGTERM', () => {
  server.close().finally(() => process.exit(0));
});
